"""The get journal (ams/mq/embedded_journal.py): a get under syncpoint stays in the unit of work's
SQLite transaction, and a process killed holding the message still raises its BackoutCount, once.

Each case kills a real process (SIGKILL, or os._exit) at a chosen point: before the transaction
holding its get was written, after, after MQBACK or MQCMIT, and between their commit and the
journal being emptied. No timing is asserted: where a case needs the transaction still held, the
hold is made longer than the test (HOLD_SECONDS), not raced.
"""

from __future__ import annotations

import contextlib
import errno
import multiprocessing
import multiprocessing.synchronize
import os
import signal
import sqlite3
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from ams.errors import ConfigurationError, UsageError
from ams.mq import MQMD, EmbeddedQueueManager, MQError, embedded_journal, embedded_unit_of_work, embedded_writer
from ams.mq import embedded as embedded_module
from ams.mq.embedded_journal import journal_directory
from ams.mq.embedded_wanted import locked_elsewhere, wanted_path

SPAWN = multiprocessing.get_context("spawn")
MD = MQMD(persistence=1)


def _manager(path: Path | str) -> EmbeddedQueueManager:
    manager = EmbeddedQueueManager(path, create=True)
    manager.define_queue("Q", max_depth=1000)
    return manager


def _fill(path: Path, *bodies: bytes) -> None:
    connection = _manager(path).connect("filler")
    for body in bodies:
        connection.put1("Q", MD, body)
    connection.close()


def _raw(path: Path) -> dict[bytes, tuple[int, int]]:
    """body -> (state, backouts) of every message, as the file holds them now (no recovery)."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute(
            "SELECT coalesce(b.body, m.body), m.state, m.backouts FROM messages m LEFT JOIN bodies b ON b.id = m.id"
        )
        return {bytes(body): (state, backouts) for body, state, backouts in rows}


def _counts(path: Path) -> dict[bytes, int]:
    """body -> BackoutCount of every message, as a reader sees it after the file was opened (recovery)."""
    reader = _manager(path).connect("after").open("Q", input=True, browse=True)
    found = {}
    with contextlib.suppress(MQError):
        message = reader.browse_first()
        while True:
            found[message.body] = message.md.backout_count
            message = reader.browse_next()
    return found


def _journals(path: Path) -> list[str]:
    """The get journals beside the file (not the writer's lock file, ".writer")."""
    return sorted(name for name in os.listdir(journal_directory(path)) if not name.startswith("."))


def _hold_for_ever() -> None:
    """The writer is held between calls until the process writes it itself (no flusher write)."""
    embedded_writer.HOLD_SECONDS = 3600.0
    embedded_unit_of_work.HOLD_SECONDS = 3600.0  # type: ignore[attr-defined]  # imported there by name


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _run(target: Callable[..., object], *args: object) -> None:
    process = SPAWN.Process(target=target, args=args)
    process.start()
    process.join(timeout=120)
    assert process.exitcode == -signal.SIGKILL


# -- killed holding the message ---------------------------------------------------------------------


def _get_and_die(path: str, written: bool) -> None:
    _hold_for_ever()
    connection = _manager(path).connect("doomed")
    connection.open("Q", input=True).get(syncpoint=True)
    if written:
        connection.release_writer(wait=True)  # what the flusher does after HOLD_SECONDS
    _die()


@pytest.mark.parametrize("written", [False, True])
def test_a_process_killed_holding_a_get_raises_its_backout_count_once(tmp_path: Path, written: bool) -> None:
    path = tmp_path / "qm.sqlite"
    _fill(path, b"poison", b"other")
    _run(_get_and_die, str(path), written)
    # not written: the transaction died with the process and the message is back as if never got
    # (only the journal knows); written: it is pending, held by the dead process
    assert _raw(path)[b"poison"] == ((2, 0) if written else (0, 0))
    assert _journals(path)  # the dead connection's journal is still there
    assert _counts(path) == {b"poison": 1, b"other": 0}  # counted once either way
    assert not _journals(path)  # applied, then removed
    assert _counts(path) == {b"poison": 1, b"other": 0}  # a second recovery counts nothing


def test_a_connection_opened_before_the_kill_gets_the_message_counted(tmp_path: Path) -> None:
    """No new open is needed: the next connection to take the writer recovers the dead process's
    journal first, so the message its death put back is never got with the count not raised."""
    path = tmp_path / "qm.sqlite"
    _fill(path, b"poison")
    reader = _manager(path).connect("reader").open("Q", input=True)
    _run(_get_and_die, str(path), False)
    assert reader.get(syncpoint=True).md.backout_count == 1
    reader.connection.commit()  # the dead one's journal goes once the recovery is written; the reader's stays
    assert _journals(path) == [reader.connection._journal.path.name]  # type: ignore[union-attr]


def _two_connections_and_die(path: str) -> None:
    _hold_for_ever()
    manager = _manager(path)
    first, second = manager.connect("first"), manager.connect("second")
    first.open("Q", input=True).get(syncpoint=True)  # written when the second takes the writer
    second.open("Q", input=True).get(syncpoint=True)  # held when the process dies
    _die()


def test_two_connections_of_a_killed_process_count_each_message_once(tmp_path: Path) -> None:
    path = tmp_path / "qm.sqlite"
    _fill(path, b"first", b"second", b"third")
    _run(_two_connections_and_die, str(path))
    assert _raw(path)[b"first"] == (2, 0) and _raw(path)[b"second"] == (0, 0)
    assert _counts(path) == {b"first": 1, b"second": 1, b"third": 0}


# -- killed after MQBACK or MQCMIT --------------------------------------------------------------------


def _settle_and_die(path: str, how: str, inside: bool) -> None:
    _hold_for_ever()
    connection = _manager(path).connect("doomed")
    queue = connection.open("Q", input=True, output=True)
    message = queue.get(syncpoint=True)
    if how == "commit":
        queue.put(message.md, b"again", syncpoint=True)
    if inside:  # between the SQLite commit and the journal being emptied
        embedded_journal.GetJournal.clear = lambda self: _die()  # type: ignore[method-assign]
    connection.commit() if how == "commit" else connection.backout()
    _die()


@pytest.mark.parametrize("inside", [False, True])
@pytest.mark.parametrize("how", ["backout", "commit"])
def test_a_process_killed_after_its_mqback_or_mqcmit_counts_nothing_more(
    tmp_path: Path, how: str, inside: bool
) -> None:
    path = tmp_path / "qm.sqlite"
    _fill(path, b"got", b"other")
    _run(_settle_and_die, str(path), how, inside)
    if how == "backout":  # counted once, by MQBACK: its journal's records are of a settled generation
        assert _counts(path) == {b"got": 1, b"other": 0}
    else:  # committed: the message is gone, its successor never got
        assert _counts(path) == {b"other": 0, b"again": 0}


# -- whose journals are read ------------------------------------------------------------------------


def _get_and_wait(path: str, got: multiprocessing.synchronize.Event, go: multiprocessing.synchronize.Event) -> None:
    connection = _manager(path).connect("alive")
    connection.open("Q", input=True).get(syncpoint=True)
    got.set()
    assert go.wait(timeout=120)
    connection.backout()
    connection.close()


def test_the_journal_of_a_live_process_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "qm.sqlite"
    _fill(path, b"held")
    got, go = SPAWN.Event(), SPAWN.Event()
    process = SPAWN.Process(target=_get_and_wait, args=(str(path), got, go))
    process.start()
    assert got.wait(timeout=120)
    journals = _journals(path)
    _manager(path).close()  # recovers dead owners: not this one
    assert _journals(path) == journals and _raw(path)[b"held"] == (2, 0)
    go.set()
    process.join(timeout=60)
    assert process.exitcode == 0
    assert _counts(path) == {b"held": 1} and not _journals(path)


def _plant(path: Path, process: str, body: bytes) -> str:
    """A journal and connection row of ``process`` ("pid.start") listing the message ``body``."""
    owner = f"{process}:{uuid.uuid4().hex}"
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("INSERT INTO connections (owner) VALUES (?)", (owner,))
        (row,) = db.execute(
            "SELECT m.id FROM messages m LEFT JOIN bodies b ON b.id = m.id WHERE coalesce(b.body, m.body) = ?", (body,)
        ).fetchone()
    (journal_directory(path) / owner).write_bytes(embedded_journal._RECORD.pack(0, row))
    os.chmod(journal_directory(path) / owner, 0o600)
    return owner


def test_a_reused_pid_is_not_taken_for_the_journals_owner(tmp_path: Path) -> None:
    """The owner tag has the process's start time: a live process with the pid of a dead owner
    (another start time) does not keep that owner's journal from being applied."""
    path = tmp_path / "qm.sqlite"
    _fill(path, b"of the live parent", b"of a dead process")
    _manager(path).connect("makes the directory").close()
    parent = os.getppid()
    _plant(path, f"{parent}.{embedded_module._started(parent)}", b"of the live parent")
    _plant(path, f"{parent}.1", b"of a dead process")  # the same pid, started at another time
    assert _counts(path) == {b"of the live parent": 0, b"of a dead process": 1}
    assert len(_journals(path)) == 1  # the live one's, left alone


def test_an_owner_no_release_writes_is_no_process_to_wait_for(tmp_path: Path) -> None:
    """Owner tags that name no process ("abc", pid 0, which os.kill would take for our own process
    group) are applied as a dead process's, not an exception escaping a get; the live parent's
    journal beside them is still left alone."""
    path = tmp_path / "qm.sqlite"
    _fill(path, b"of the live parent", b"of no process", b"of pid 0")
    _manager(path).connect("makes the directory").close()
    parent = os.getppid()
    _plant(path, f"{parent}.{embedded_module._started(parent)}", b"of the live parent")
    _plant(path, "abc.def", b"of no process")
    _plant(path, "0.1", b"of pid 0")
    assert _counts(path) == {b"of the live parent": 0, b"of no process": 1, b"of pid 0": 1}
    assert len(_journals(path)) == 1


def test_a_journal_someone_else_could_have_written_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "qm.sqlite"
    _fill(path, b"message")
    _manager(path).connect("makes the directory").close()
    owner = _plant(path, "1.1", b"message")  # pid 1 started at tick 1: not the running init
    journal = journal_directory(path) / owner
    os.chmod(journal, 0o644)
    with pytest.raises(ConfigurationError, match="group or others"):
        EmbeddedQueueManager(path)
    journal.unlink()
    journal.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigurationError, match="symbolic link"):
        EmbeddedQueueManager(path)
    journal.unlink()
    os.chmod(journal_directory(path), 0o777)
    with pytest.raises(ConfigurationError, match="get journal directory"):
        EmbeddedQueueManager(path)
    os.chmod(journal_directory(path), 0o700)
    assert _counts(path) == {b"message": 0}  # the rejected twin: a private directory without the journal


def test_a_link_planted_at_a_new_connections_journal_is_not_followed(tmp_path: Path) -> None:
    path = tmp_path / "qm.sqlite"
    _fill(path, b"message")
    owner = f"{embedded_module._process_tag()}:{'0' * 32}"
    target = tmp_path / "target"
    (journal_directory(path) / owner).symlink_to(target)
    manager = _manager(path)
    manager._new_owner = lambda: owner  # type: ignore[method-assign]
    with pytest.raises(UsageError, match="symbolic link"):
        manager.connect("app")
    assert not target.exists()


def test_a_restart_settles_the_journals_of_the_connections_it_breaks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """restart() backs out (and counts) what a live connection got; when that connection's process
    dies later, its journal counts nothing more."""
    path = tmp_path / "qm.sqlite"
    _fill(path, b"message")
    manager = _manager(path)
    victim = manager.connect("victim")
    victim.open("Q", input=True).get(syncpoint=True)
    manager.restart()
    with pytest.raises(MQError) as caught:
        victim.commit()
    assert caught.value.reason == 2009
    monkeypatch.setattr(embedded_module, "_alive", lambda owner: False)
    monkeypatch.setattr(embedded_module, "_process_tag", lambda: "another")
    assert _counts(path) == {b"message": 1}


def test_a_queue_manager_in_memory_has_no_journal_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    manager = EmbeddedQueueManager()
    manager.define_queue("Q")
    connection = manager.connect("app")
    connection.put1("Q", MD, b"message")
    queue = connection.open("Q", input=True)
    queue.get(syncpoint=True)
    connection.backout()
    assert queue.get(syncpoint=True).md.backout_count == 1
    connection.commit()
    assert os.listdir(tmp_path) == []


def test_a_link_planted_at_the_writer_lock_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "qm.sqlite"
    _fill(path, b"message")
    wish = wanted_path(path)  # beside the file (ams/mq/embedded_wanted.py); tests/test_mq_embedded_wanted.py has more
    wish.unlink()
    wish.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigurationError, match="symbolic link"):
        _manager(path).connect("app")
    assert not (tmp_path / "elsewhere").exists()


def _overwrite_and_die(path: str) -> None:
    _hold_for_ever()
    connection = _manager(path).connect("doomed")
    queue = connection.open("Q", input=True)
    queue.get(syncpoint=True)
    queue.get(syncpoint=True)
    connection.commit()  # "a" and "b" gone; their records stay in the file, settled
    queue.get(syncpoint=True)
    connection.backout()  # "c" counted once, the generation raised
    queue.get(syncpoint=True)  # "c" again, its record written over the first settled one
    journal = connection._journal.path
    assert journal is not None and journal.stat().st_size == 2 * embedded_journal._RECORD.size  # the largest
    _die()


def test_a_unit_of_work_writes_its_records_over_the_settled_ones(tmp_path: Path) -> None:
    """A journal is written from its start by each unit of work: the records past the current ones
    are settled (a commit's rows deleted, a backout's of an earlier generation) and count nothing."""
    path = tmp_path / "qm.sqlite"
    _fill(path, b"a", b"b", b"c", b"d")
    _run(_overwrite_and_die, str(path))
    (owner,) = _journals(path)
    records = embedded_journal.read_journal(path, owner)
    assert [generation for generation, _ in records] == [1, 0]  # "c" of generation 1, then "b"'s settled record
    assert _counts(path) == {b"c": 2, b"d": 0}  # once by MQBACK, once by the death: "b"'s record counts nothing


def test_a_journal_that_cannot_be_written_fails_the_get_and_takes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(descriptor: int, data: bytes, offset: int) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    path = tmp_path / "qm.sqlite"
    _fill(path, b"kept")
    connection = _manager(path).connect("app")
    queue = connection.open("Q", input=True)
    monkeypatch.setattr(os, "pwrite", full)  # the journal's writes only: SQLite's own are its C library's
    with pytest.raises(MQError) as failed:
        queue.get(syncpoint=True)
    assert failed.value.reason == 2195
    assert "get journal" in str(failed.value) and "No space left on device" in str(failed.value)
    assert connection.depth("Q") == 1  # nothing taken
    monkeypatch.undo()  # the twin: room again, the same get succeeds and counts nothing extra
    assert queue.get(syncpoint=True).body == b"kept"
    connection.backout()
    assert queue.get(syncpoint=True).md.backout_count == 1
    connection.close()


def test_a_withdrawn_record_is_not_read_and_the_next_takes_its_place(tmp_path: Path) -> None:
    path = tmp_path / "qm.sqlite"
    _fill(path, b"first", b"second")
    connection = _manager(path).connect("app")
    queue = connection.open("Q", input=True)
    assert [queue.get(syncpoint=True).body for _ in range(2)] == [b"first", b"second"]
    journal = connection._journal.path
    assert journal is not None
    assert embedded_journal.read_journal(path, journal.name) == [(0, 1), (0, 2)]
    connection._journal.withdraw()  # as a get whose take failed
    assert embedded_journal.read_journal(path, journal.name) == [(0, 1)]
    connection._journal.record(0, 2)  # the twin: written again, read again
    assert embedded_journal.read_journal(path, journal.name) == [(0, 1), (0, 2)]
    connection.backout()
    assert [queue.get(syncpoint=True).md.backout_count for _ in range(2)] == [1, 1]
    connection.close()


# -- whose journals are asked about: the journal's lock (a live connection holds it) ---------------


def _lock_seen(journal: Path) -> bool | None:
    """Whether another process holds the lock on ``journal`` (None: not known on this system)."""
    descriptor = os.open(journal, os.O_RDONLY)
    try:
        return locked_elsewhere(descriptor)
    finally:
        os.close(descriptor)


def _open_then_die_on_go(
    path: str, opened: multiprocessing.synchronize.Event, go: multiprocessing.synchronize.Event
) -> None:
    _hold_for_ever()
    connection = _manager(path).connect("doomed")
    queue = connection.open("Q", input=True)  # a change of the file's shape: made before the reader looks
    opened.set()
    assert go.wait(timeout=120)
    queue.get(syncpoint=True)  # held in the transaction when it dies
    _die()


def test_a_journal_seen_locked_is_applied_once_its_process_died_though_nothing_else_changed(tmp_path: Path) -> None:
    """The reader lists the journals once (the file's shape then unchanged): the journal it found
    locked, of a live connection, is asked about again at every transaction, and applied once the
    kernel dropped the lock with the process."""
    path = tmp_path / "qm.sqlite"
    _fill(path, b"poison", b"other")
    reader = _manager(path).connect("reader")
    queue = reader.open("Q", input=True, browse=True)
    opened, go = SPAWN.Event(), SPAWN.Event()
    process = SPAWN.Process(target=_open_then_die_on_go, args=(str(path), opened, go))
    process.start()
    assert opened.wait(timeout=120)
    (journal,) = (journal_directory(path) / name for name in _journals(path) if name != reader._owner)
    assert queue.browse_first().body == b"poison"  # a transaction that looked at the journals: the other's alive
    assert _lock_seen(journal) in (True, None) and journal.exists()
    shape = reader._shape
    go.set()
    process.join(timeout=120)
    assert process.exitcode == -signal.SIGKILL
    assert _lock_seen(journal) in (False, None)  # dropped by the kernel with the process
    got = queue.get(syncpoint=True)
    assert (got.body, got.md.backout_count) == (b"poison", 1)
    assert reader._shape == shape  # counted from the journals listed before its death
    reader.commit()
    assert not journal.exists()


def _drop_own_lock_and_wait(
    path: str, dropped: multiprocessing.synchronize.Event, go: multiprocessing.synchronize.Event
) -> None:
    connection = _manager(path).connect("alive")
    connection.open("Q", input=True).get(syncpoint=True)
    connection.release_writer(wait=True)
    journal = connection._journal.path
    assert journal is not None
    os.close(os.open(journal, os.O_RDONLY))  # closing any descriptor of a file drops the process's POSIX locks on it
    dropped.set()
    assert go.wait(timeout=120)
    connection.backout()
    connection.close()


def test_a_live_process_that_lost_its_journals_lock_is_not_taken_for_dead(tmp_path: Path) -> None:
    """The rejected twin of the lock: a journal found unlocked is applied only once its process is
    dead too (pid and start time), never on the lock alone."""
    path = tmp_path / "qm.sqlite"
    _fill(path, b"held", b"free")
    dropped, go = SPAWN.Event(), SPAWN.Event()
    process = SPAWN.Process(target=_drop_own_lock_and_wait, args=(str(path), dropped, go))
    process.start()
    assert dropped.wait(timeout=120)
    (journal,) = (journal_directory(path) / name for name in _journals(path))
    assert _lock_seen(journal) in (False, None)
    reader = _manager(path).connect("reader")
    assert reader.open("Q", input=True).get(syncpoint=True).body == b"free"  # the journals were looked at
    reader.backout()
    assert _raw(path)[b"held"] == (2, 0) and journal.exists()  # still the live process's, not backed out
    go.set()
    process.join(timeout=60)
    assert process.exitcode == 0
    assert _counts(path) == {b"held": 1, b"free": 1}  # each backed out once, by its own connection
    reader.close()


def test_a_journal_locked_by_this_process_is_not_taken_for_dead_by_its_other_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F_GETLK does not report a process's own locks: a connection of this process, played as
    another process's, finds the journal unlocked, and asks whether the process lives (it does)."""
    path = tmp_path / "qm.sqlite"
    _fill(path, b"held", b"free")
    manager = _manager(path)
    holder = manager.connect("holder")
    holder.open("Q", input=True).get(syncpoint=True)
    monkeypatch.setattr(embedded_module, "_process_tag", lambda: "another.1")
    reader = _manager(path).connect("reader")  # its owner is "another.1:...": the holder's journal is another's
    assert reader.open("Q", input=True).get(syncpoint=True).body == b"free"
    assert holder._journal.path is not None and holder._journal.path.exists()
    assert _raw(path)[b"held"] == (2, 0)
    reader.commit()
    holder.commit()  # its work is still its own: not backed out, the connection not broken
    assert _raw(path) == {}


def _get_twice_and_wait(
    path: str, grown: multiprocessing.synchronize.Event, go: multiprocessing.synchronize.Event
) -> None:
    _hold_for_ever()
    connection = _manager(path).connect("alive")
    queue = connection.open("Q", input=True)
    queue.get(syncpoint=True)
    queue.get(syncpoint=True)
    grown.set()
    assert go.wait(timeout=120)
    connection.backout()
    connection.close()


def test_a_journal_stays_locked_while_its_connection_writes_it(tmp_path: Path) -> None:
    """Nothing the journal's writes do may drop the connection's lock (any close of a descriptor of
    the file drops the process's POSIX locks: a memory map's own copy did), or every other process
    asks /proc about a live connection at each transaction."""
    path = tmp_path / "qm.sqlite"
    _fill(path, b"first", b"second", b"free")
    grown, go = SPAWN.Event(), SPAWN.Event()
    process = SPAWN.Process(target=_get_twice_and_wait, args=(str(path), grown, go))
    process.start()
    try:
        assert grown.wait(timeout=120)
        (journal,) = (journal_directory(path) / name for name in _journals(path))
        assert journal.stat().st_size == 2 * embedded_journal._RECORD.size
        assert _lock_seen(journal) in (True, None)
    finally:
        go.set()
        process.join(timeout=60)
    assert process.exitcode == 0
    assert _counts(path) == {b"first": 1, b"second": 1, b"free": 0}


# a full disk at the statement that takes the message, after its get journal's record was written
_REFUSE_TAKE = (
    "CREATE TEMP TRIGGER refuse_{0} BEFORE {0} ON main.messages WHEN OLD.body = X'626164' "
    "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
)


def _fail_a_get_commit_and_die(path: str) -> None:
    _hold_for_ever()
    connection = _manager(path).connect("doomed")
    queue = connection.open("Q", input=True)
    for statement in ("DELETE", "UPDATE"):  # kept (deleted) or marked taken (updated): refused either way
        connection._db.execute(_REFUSE_TAKE.format(statement))
    with contextlib.suppress(MQError):
        queue.get(syncpoint=True)  # "bad": its record written, the row never taken
    for statement in ("DELETE", "UPDATE"):
        connection._db.execute(f"DROP TRIGGER temp.refuse_{statement}")
    connection.commit()  # settles the unit of work: nothing was got
    _die()


def test_a_get_that_took_nothing_leaves_no_record_to_count(tmp_path: Path) -> None:
    """A get whose take fails after its journal record was written (a full disk) took nothing: a
    later death of the connection, in the same generation (no backout since), must not count that
    message, which the settled record, never truncated any more, would name for ever."""
    path = tmp_path / "qm.sqlite"
    _fill(path, b"bad", b"good")
    _run(_fail_a_get_commit_and_die, str(path))
    assert _counts(path) == {b"bad": 0, b"good": 0}


def test_a_finalizer_run_inside_a_watch_open_gives_its_watches_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table of other processes' journals is shared by a process's connections under one lock;
    a finalizer the collector ran inside one of its holders (a connection's get listing journals,
    at any allocation) gave its own watches up there and waited for that lock for ever: the test
    suite hung. Played here by the open inside ``_watch_open`` running such a finalizer's close."""
    other, opened = tmp_path / "other", tmp_path / "opened"
    other.write_bytes(b"")
    opened.write_bytes(b"")
    embedded_journal._watch_open(other)
    real_open = os.open

    def finalizer_inside(path: str, flags: int, *rest: int) -> int:
        embedded_journal._watch_close(other)
        return real_open(path, flags, *rest)

    monkeypatch.setattr(os, "open", finalizer_inside)
    done: list[int] = []
    thread = threading.Thread(target=lambda: done.append(embedded_journal._watch_open(opened)), daemon=True)
    thread.start()
    thread.join(timeout=60)  # a deadlock's bound, not a measure: it returns at once or never
    monkeypatch.undo()
    assert done, "_watch_open waited for ever for the lock its own finalizer took"
    assert str(other) not in embedded_journal._WATCHED  # the finalizer's close went through
    assert embedded_journal._WATCHED[str(opened)] == [done[0], 1]
    embedded_journal._watch_close(opened)  # the twin: given up as usual
    assert str(opened) not in embedded_journal._WATCHED
