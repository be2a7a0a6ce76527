"""An adversarial review of the embedded queue manager's file format 7 (ams/mq/embedded_md.py,
embedded_schema.py) and of the writer held less (the get journals' locks, ams/mq/embedded_journal.py;
the shape counter, ams/mq/embedded_shape.py): each attack with its accepted case and its rejected
twin, real processes (spawn, and a fork) where liveness is the question."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import multiprocessing.queues
import multiprocessing.synchronize
import os
import signal
import sqlite3
import struct
import time
from pathlib import Path

import attrs
import pytest

from ams.errors import AmsError, UsageError
from ams.mq import MQMD, EmbeddedQueueManager, MQError, NoMessageAvailable
from ams.mq.embedded_journal import journal_directory
from ams.mq.embedded_md import _LAYOUT, md_from_bytes, md_row_bytes
from ams.mq.embedded_wanted import locked_elsewhere
from ams.mq.mqmd import md_with
from tests.test_mq_embedded_format import _EARLIER_SCHEMA as EARLIER_SCHEMA
from tests.test_mq_embedded_format import DEAD, _earlier_md
from tests.test_mq_embedded_journal import _lock_seen

SPAWN = multiprocessing.get_context("spawn")
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
# every field away from its default, at an extreme MQ allows: 32-bit limits, full lengths (MQ's
# MQ_FORMAT_LENGTH 8, MQ_Q_NAME_LENGTH 48, MQ_Q_MGR_NAME_LENGTH 48, MQ_USER_ID_LENGTH 12,
# MQ_PUT_APPL_NAME_LENGTH 28, MQ_PUT_DATE_LENGTH 8, MQ_PUT_TIME_LENGTH 8), trailing blanks as MQ pads
# them, non-ASCII and lone surrogates; MsgId and CorrelId with every byte set, or zeros but the last
EXTREME = MQMD(
    format="MQHRF2  ",
    encoding=INT32_MIN,
    ccsid=INT32_MAX,
    persistence=1,
    msg_type=INT32_MAX,
    priority=9,
    expiry=INT32_MAX,
    msg_id=bytes(range(1, 25)),
    correl_id=bytes(23) + b"\x01",
    reply_to_q="R\u00e9PLY\U0001f600".ljust(48),
    reply_to_qmgr="Q" * 48,
    user_identifier="\ud83d\ude00x\udc80".ljust(12),
    put_appl_type=INT32_MIN,
    put_appl_name="appl \u00fc".ljust(28),
    put_date="20261206",
    put_time="23595999",
)
RICH_ENOUGH = MQMD(user_identifier="bob", persistence=1, priority=3)


def _manager(path: Path) -> EmbeddedQueueManager:
    manager = EmbeddedQueueManager(path, create=True)
    manager.define_queue("Q", max_depth=1000)
    return manager


def _raw(path: Path, statement: str, *arguments: object) -> None:
    """One statement written to the file by a plain SQLite connection: an earlier release, or anyone."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None, timeout=30)) as db:
        db.execute(statement, arguments)


# -- format 7: the MQMD's bytes ------------------------------------------------------------------


def test_every_mqmd_field_comes_back_exactly_at_its_extremes(tmp_path: Path) -> None:
    """Put with MQPMO_SET_ALL_CONTEXT (the context kept as given), got back field for field: the
    Expiry counts down, the rest is as put, trailing blanks and lone surrogates included."""
    connection = _manager(tmp_path / "qm.sqlite").connect("app")
    put = connection.put1("Q", EXTREME, b"extreme", set_all_context=True)
    assert (put.msg_id, put.correl_id) == (EXTREME.msg_id, EXTREME.correl_id)
    got = connection.open("Q", input=True).get()
    assert 0 < INT32_MAX - got.md.expiry < 100
    assert got.md == attrs.evolve(EXTREME, expiry=got.md.expiry)
    # and the empty texts, negative integers of 64 bits, through the layout alone
    empty = MQMD(format="", encoding=-(1 << 63), ccsid=(1 << 63) - 1, msg_type=-1, put_appl_type=0)
    assert md_from_bytes(md_row_bytes(empty), 5) == attrs.evolve(empty, backout_count=5)


def test_an_identifier_longer_than_24_bytes_is_refused_not_cut(tmp_path: Path) -> None:
    """The rejected twin of the identifiers: 25 bytes is a UsageError (an AmsError), nothing put."""
    connection = _manager(tmp_path / "qm.sqlite").connect("app")
    for md in (md_with(EXTREME, correl_id=bytes(24) + b"\x01"), md_with(EXTREME, msg_id=b"m" * 25)):
        with pytest.raises(UsageError, match="at most 24 bytes"):
            connection.put1("Q", md, b"too long")
    assert connection.depth("Q") == 0


def test_gets_by_msg_id_and_correl_id_tell_zeros_from_almost_zeros(tmp_path: Path) -> None:
    """A CorrelId of 23 zeros and a 1 is a CorrelId (matched exactly, never by MQCI_NONE's NULL);
    all zeros matches any message; MsgId and CorrelId together must both match; a MsgId of zeros
    on a put is generated, on a get matches any."""
    connection = _manager(tmp_path / "qm.sqlite").connect("app")
    queue = connection.open("Q", input=True, output=True, browse=True)
    plain = queue.put(MQMD(), b"plain")  # MQMI_NONE: a MsgId is generated, MQCI_NONE kept
    almost = queue.put(MQMD(correl_id=bytes(23) + b"\x01", msg_id=bytes(23) + b"\x01"), b"almost")
    assert any(plain.msg_id) and plain.msg_id != bytes(24) and plain.correl_id == bytes(24)
    assert almost.msg_id == bytes(23) + b"\x01"
    with pytest.raises(NoMessageAvailable):  # the rejected twins: one of the two does not match
        queue.get(msg_id=plain.msg_id, correl_id=bytes(23) + b"\x01")
    with pytest.raises(NoMessageAvailable):
        queue.get(msg_id=almost.msg_id, correl_id=bytes(22) + b"\x01\x00")
    with pytest.raises(NoMessageAvailable):
        queue.get(correl_id=b"\x01")  # padded: a 1 and 23 zeros, not 23 zeros and a 1
    assert queue.get(msg_id=almost.msg_id, correl_id=bytes(23) + b"\x01", syncpoint=True).body == b"almost"
    assert queue.get(msg_id=bytes(24), correl_id=bytes(24)).body == b"plain"  # zeros: any, in order
    connection.backout()
    assert queue.get(correl_id=bytes(23) + b"\x01").md.backout_count == 1


def _damage(data: bytes, how: str) -> bytes:
    if how == "truncated":
        return data[: _LAYOUT.size - 1]
    if how == "not utf-8":
        return data[:-1] + b"\xff"
    counts = list(struct.unpack_from("<7I", data, _LAYOUT.size - 28))
    counts[0] += 1 if how == "lengths too long" else -1
    return data[: _LAYOUT.size - 28] + struct.pack("<7I", *counts) + data[_LAYOUT.size :]


@pytest.mark.parametrize("how", ["truncated", "not utf-8", "lengths too long", "lengths too short"])
def test_a_damaged_stored_mqmd_is_mqrc_2195_never_a_struct_or_decoding_error(tmp_path: Path, how: str) -> None:
    """Only AmsError subclasses leave the library: a row whose MQMD is not format 7's layout is
    MQRC 2195 on get and browse (before the fix: struct.error, UnicodeDecodeError, or, lengths
    that do not add up, an MQMD whose texts were cut in the wrong places, returned as if whole).
    The accepted twin: the same message intact comes back."""
    path = tmp_path / "qm.sqlite"
    connection = _manager(path).connect("app")
    queue = connection.open("Q", input=True, output=True, browse=True)
    queue.put(EXTREME, b"intact")
    assert queue.browse_first().md.reply_to_qmgr == EXTREME.reply_to_qmgr
    with contextlib.closing(sqlite3.connect(path)) as db:
        (stored,) = db.execute("SELECT md FROM messages").fetchone()
    _raw(path, "UPDATE messages SET md = ?", _damage(stored, how))
    for syncpoint in (None, True):
        with pytest.raises(MQError) as caught:
            queue.browse_first() if syncpoint is None else queue.get(syncpoint=syncpoint)
        assert caught.value.reason == 2195 and "damaged" in str(caught.value) and isinstance(caught.value, AmsError)
    connection.backout()
    _raw(path, "UPDATE messages SET md = ?", stored)
    assert queue.get().md.put_appl_name == "app"  # backed out once: intact again, it is got


# a row's other columns of a type no writer of this library stores (a damaged file, another program's write)
OTHER_TYPES = [("body", "text"), ("body", 7), ("body", 1.5), ("backouts", "x"), ("backouts", b"\x01")]
OTHER_TYPES += [("expires", "soon"), ("expires", b"\x01"), ("expires", float("inf"))]
OTHER_TYPES += [("expires", "planted words " * 100)]  # named by its type, never echoed into the error


@pytest.mark.parametrize(("column", "value"), OTHER_TYPES, ids=lambda value: repr(value)[:24])
@pytest.mark.parametrize("syncpoint", [False, True])
def test_a_row_whose_body_backouts_or_expiry_is_not_of_its_type_is_mqrc_2195(
    tmp_path: Path, column: str, value: object, syncpoint: bool
) -> None:
    """Only AmsError subclasses leave the library, for the row's other columns too: a body, backout
    count or expiry of another type was a TypeError, ValueError or OverflowError on get and
    browse, and a body stored as the integer 7 came back as 7 zero bytes. Now MQRC 2195, the
    message left on its queue; the twin: repaired, the same message is got."""
    path = tmp_path / "qm.sqlite"
    connection = _manager(path).connect("app")
    queue = connection.open("Q", input=True, output=True, browse=True)
    queue.put(RICH_ENOUGH, b"intact")
    with contextlib.closing(sqlite3.connect(path)) as db:
        (stored,) = db.execute(f"SELECT {column} FROM messages").fetchone()
    _raw(path, f"UPDATE messages SET {column} = ?", value)
    for browse in (True, False):
        with pytest.raises(MQError) as caught:
            queue.browse_first() if browse else queue.get(syncpoint=syncpoint)
        assert caught.value.reason == 2195 and "damaged" in str(caught.value) and isinstance(caught.value, AmsError)
        assert "planted" not in str(caught.value) and len(str(caught.value)) < 400
    connection.backout()
    _raw(path, f"UPDATE messages SET {column} = ?", stored)
    got = queue.get(syncpoint=syncpoint)
    assert (got.body, got.md.backout_count) == (b"intact", 0)
    connection.commit()
    assert connection.depth("Q") == 0


@pytest.mark.parametrize("syncpoint", [False, True])
def test_a_get_of_a_damaged_message_leaves_it_on_its_queue(tmp_path: Path, syncpoint: bool) -> None:
    """No get loses a message: the stored MQMD is read before the row is deleted (outside syncpoint)
    or taken (under it), so a damaged one is MQRC 2195 and the message is still queued, at its
    depth and not taken; the twin: repaired, the same message is got, once."""
    path = tmp_path / "qm.sqlite"
    connection = _manager(path).connect("app")
    queue = connection.open("Q", input=True, output=True)
    queue.put(EXTREME, b"keep me")
    with contextlib.closing(sqlite3.connect(path)) as db:
        (stored,) = db.execute("SELECT md FROM messages").fetchone()
    _raw(path, "UPDATE messages SET md = ?", _damage(stored, "truncated"))
    with pytest.raises(MQError) as caught:
        queue.get(syncpoint=syncpoint)
    assert caught.value.reason == 2195
    connection.commit()
    assert connection.depth("Q") == 1
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT state, owner FROM messages").fetchall() == [(0, None)]
    _raw(path, "UPDATE messages SET md = ?", stored)
    assert queue.get(syncpoint=syncpoint).body == b"keep me"
    connection.commit()
    assert connection.depth("Q") == 0


def test_a_format_6_message_with_every_field_away_from_its_default_is_migrated_whole(tmp_path: Path) -> None:
    """A file of format 6 holding a message with every field at its extreme: opened by format 7,
    it comes back field for field, its BackoutCount kept, its 24-byte ids found by a get by both."""
    path = tmp_path / "qm.sqlite"
    # a surrogate pair, which format 6's JSON read back as one character, is format 7's alone (above)
    md = md_with(EXTREME, expiry=-1, user_identifier="\udc80x\u00e9".ljust(12))
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.executescript(EARLIER_SCHEMA)
        db.execute("INSERT INTO queues (name, attributes) VALUES ('Q', NULL)")
        db.execute("INSERT INTO connections (owner) VALUES (?)", (DEAD,))
        db.execute(
            "INSERT INTO messages (queue, md, body, state, owner, backouts, priority, msg_id, correl_id) "
            "VALUES ('Q', ?, X'', 0, NULL, 3, 9, ?, ?)",
            (_earlier_md(md, 6), md.msg_id.hex(), md.correl_id.hex()),
        )
        db.execute("INSERT INTO bodies (id, body) VALUES (last_insert_rowid(), X'6f6c64')")
        db.execute("PRAGMA user_version = 6")
    os.chmod(path, 0o600)
    queue = EmbeddedQueueManager(path).connect("new").open("Q", input=True)
    with pytest.raises(NoMessageAvailable):  # the rejected twin: the ids are bytes now, exactly these
        queue.get(msg_id=md.msg_id, correl_id=bytes(22) + b"\x01\x00")
    got = queue.get(msg_id=md.msg_id, correl_id=md.correl_id)
    assert (got.body, got.md) == (b"old", attrs.evolve(md, backout_count=3))


# -- the shape counter: what moves it, and what happens without it -------------------------------


def test_raw_writes_of_queues_move_the_shape_and_a_missing_shape_row_disables_the_caches(tmp_path: Path) -> None:
    """The triggers are in the file: a plain SQLite connection (an earlier release) denying a put
    is seen at the next call. With the shape row deleted (by anyone) the caches are read again at
    every call: no crash, no stale answer; the next opener puts the row back."""
    path = tmp_path / "qm.sqlite"
    connection = _manager(path).connect("app")
    connection.put1("Q", MQMD(), b"cached")  # the queue's resolution cached
    _raw(path, "UPDATE queues SET denied = 'put' WHERE name = 'Q'")
    with pytest.raises(MQError) as caught:
        connection.put1("Q", MQMD(), b"denied")
    assert caught.value.reason == 2035
    _raw(path, "DELETE FROM file_shape")
    _raw(path, "UPDATE queues SET denied = '' WHERE name = 'Q'")  # the trigger updates no row now
    connection.put1("Q", MQMD(), b"allowed again")
    _raw(path, "UPDATE queues SET attributes = json_set(attributes, '$.put_inhibited', json('true'))")
    with pytest.raises(MQError) as caught:
        connection.put1("Q", MQMD(), b"inhibited")
    assert caught.value.reason == 2051
    assert connection.open("Q", input=True).get().body == b"cached"
    EmbeddedQueueManager(path).close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT count(*) FROM file_shape").fetchone() == (1,)


def test_a_raw_put_that_expires_is_looked_for_by_the_next_get(tmp_path: Path) -> None:
    """The count of expiring puts is a trigger of the file too: a message with an expiry inserted
    by a plain SQLite connection, after this connection found the queue with none that expires, is
    discarded once expired (the rejected twin: not returned); its non-expiring neighbour is got."""
    path = tmp_path / "qm.sqlite"
    connection = _manager(path).connect("app")
    queue = connection.open("Q", input=True, output=True)
    with pytest.raises(NoMessageAvailable):
        queue.get()  # the queue has no message that expires: not looked at again while the count stays
    queue.put(MQMD(), b"template")
    _raw(path, "UPDATE messages SET expires = ?", time.time() - 1)  # an UPDATE: no trigger, no count
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute(
            "INSERT INTO messages (queue, md, body, state, backouts, priority, persistent, expires, msg_id) "
            "SELECT queue, md, body, state, 0, priority, persistent, ?, randomblob(24) FROM messages",
            (time.time() - 1,),
        )
        db.execute("UPDATE curdepths SET depth = depth + 1")  # as every writer of format 8 keeps it
    with pytest.raises(NoMessageAvailable):
        queue.get()
    assert connection.depth("Q") == 0  # both discarded: the insert moved the count, the update rode on it


# -- the get journals' locks: several connections, a fork ------------------------------------------


def _two_then_one(
    path: str, ready: multiprocessing.synchronize.Event, journals: multiprocessing.queues.Queue[str]
) -> None:
    first = _manager(Path(path)).connect("first")
    second = _manager(Path(path)).connect("second")
    first.open("Q", input=True).get(syncpoint=True)
    second.open("Q", input=True).get(syncpoint=True)
    second.release_writer(wait=True)
    first.close()  # its journal's descriptor closed: another file, the second's lock stays
    # a third queue manager object and connection in this process, which read the file and the journals
    third = _manager(Path(path)).connect("third")
    with contextlib.suppress(NoMessageAvailable):
        third.open("Q", input=True, browse=True).browse_first()
    third.close()
    journals.put(str(second._journal.path))
    ready.set()
    time.sleep(600)  # killed


def test_closing_one_connection_keeps_the_lock_of_another_of_its_process(tmp_path: Path) -> None:
    """A process with two connections closes one, and opens and closes another queue manager
    object: the remaining connection's journal is still seen locked by another process, its message
    left alone; once the process is killed, the lock is gone and the message counted once."""
    path = tmp_path / "qm.sqlite"
    filler = _manager(path).connect("filler")
    for body in (b"1", b"2", b"3"):
        filler.put1("Q", MQMD(persistence=1), body)
    filler.close()
    ready, journals = SPAWN.Event(), SPAWN.Queue()
    process = SPAWN.Process(target=_two_then_one, args=(str(path), ready, journals))
    process.start()
    try:
        assert ready.wait(timeout=120)
        journal = Path(journals.get(timeout=10))
        assert _lock_seen(journal) in (True, None)
        reader = _manager(path).connect("reader")
        queue = reader.open("Q", input=True)
        got = queue.get(syncpoint=True)
        assert (got.body, got.md.backout_count) == (b"1", 1)  # the first's, backed out by its close
        assert queue.get(syncpoint=True).body == b"3"
        with pytest.raises(NoMessageAvailable):
            queue.get(syncpoint=True)  # "2" is the live second connection's
        reader.backout()
    finally:
        process.kill()
        process.join(timeout=60)
    assert _lock_seen(journal) in (False, None)
    counts = {m.body: m.md.backout_count for m in (queue.get(syncpoint=True) for _ in range(3))}
    assert counts == {b"1": 2, b"2": 1, b"3": 1}
    reader.close()


def _fork_and_report(path: str, results: multiprocessing.queues.Queue[object]) -> None:
    """A parent holding a get under syncpoint forks a child that closes every inherited journal
    descriptor, connects on its own, and exits without closing (a crash)."""
    parent = _manager(Path(path)).connect("parent")
    parent.open("Q", input=True).get(syncpoint=True)
    parent.release_writer(wait=True)
    journal = parent._journal
    assert journal.path is not None and journal._descriptor is not None
    child = os.fork()
    if child == 0:  # no fcntl lock is inherited; closing the inherited descriptor drops none of the parent's
        code = 1
        with contextlib.suppress(BaseException):
            seen = locked_elsewhere(journal._descriptor)
            os.close(journal._descriptor)
            kid = EmbeddedQueueManager(Path(path)).connect("child")
            body = kid.open("Q", input=True).get(syncpoint=True).body  # "held" is the parent's
            kid.release_writer(wait=True)
            code = 10 * (seen is not False) + (body == b"free")
        os._exit(code)
    _, status = os.waitpid(child, 0)
    results.put(os.waitstatus_to_exitcode(status))
    results.put(locked_elsewhere(os.open(journal.path, os.O_RDONLY)))  # own lock: never reported (False)
    parent.backout()
    results.put(parent.open("Q", input=True).get(syncpoint=True).md.backout_count)  # "held" again, once
    time.sleep(600)


def test_a_forked_child_closing_inherited_journals_leaves_the_parents_lock(tmp_path: Path) -> None:
    """The fork: the child sees the parent's lock (its own process is another), closing the
    inherited descriptor drops nothing of the parent's, it takes only the free message; killed, the
    child's get is counted once, the parent's own lock still held while it lives."""
    path = tmp_path / "qm.sqlite"
    filler = _manager(path).connect("filler")
    for body in (b"held", b"free"):
        filler.put1("Q", MQMD(persistence=1), body)
    filler.close()
    results: multiprocessing.queues.Queue[object] = SPAWN.Queue()
    process = SPAWN.Process(target=_fork_and_report, args=(str(path), results))
    process.start()
    try:
        assert results.get(timeout=120) == 11  # the parent's lock seen by the child; "free" got
        assert results.get(timeout=60) is not True
        assert results.get(timeout=60) == 1
        names = [name for name in os.listdir(journal_directory(path)) if not name.startswith(".")]
        # the parent's, and the dead child's: the parent's last get recovered it, but its journal goes only
        # once the parent's transaction is written (its flusher's, within HOLD_SECONDS), which may be done
        assert len(names) in (1, 2)
        parent_journal = [journal_directory(path) / n for n in names if _lock_seen(journal_directory(path) / n)]
        assert len(parent_journal) in (1, 0)  # 0 only where F_GETLK cannot be asked
        reader = _manager(path).connect("reader")
        got = reader.open("Q", input=True).get(syncpoint=True)
        assert (got.body, got.md.backout_count) == (b"free", 1)  # the dead child's get counted once
        reader.close()
    finally:
        process.kill()
        process.join(timeout=60)


# -- the descriptors a process keeps on other processes' journals -----------------------------------


def _many_connections(
    path: str, count: int, ready: multiprocessing.synchronize.Event, go: multiprocessing.synchronize.Event
) -> None:
    connections = [EmbeddedQueueManager(Path(path)).connect(f"held {n}") for n in range(count)]
    ready.set()
    assert go.wait(timeout=120)
    for connection in connections:
        connection.close()


def _descriptors_on(names: set[str]) -> int:
    """How many descriptors this process has open on the files named ``names`` (by base name)."""
    found = 0
    for descriptor in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            found += os.path.basename(os.readlink(f"/proc/self/fd/{descriptor}")) in names
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors through /proc")
def test_a_process_keeps_one_descriptor_per_other_journal_whatever_its_connections(tmp_path: Path) -> None:
    """Each connection asks about the journals of other processes' connections by their lock, on a
    descriptor kept open: one per journal in the process, shared by its connections, not one per
    connection and journal (8 connections of each of two processes held 64 before: 40 and 40 would
    be 1,600, past a soft limit of 1,024, and a new connection's SQLite open then fails). The twin:
    closing the connections of this process closes them; the other's journals still seen live."""
    path = tmp_path / "qm.sqlite"
    _manager(path).close()
    ready, go = SPAWN.Event(), SPAWN.Event()
    process = SPAWN.Process(target=_many_connections, args=(str(path), 8, ready, go))
    process.start()
    try:
        assert ready.wait(timeout=120)
        theirs = set(os.listdir(journal_directory(path))) - {".writer"}
        readers = [EmbeddedQueueManager(path).connect(f"reader {n}") for n in range(8)]
        for reader in readers:
            with pytest.raises(NoMessageAvailable):  # a transaction that read a message: journals asked about
                reader.open("Q", input=True).get(syncpoint=True)
            reader.backout()
        assert len(theirs) >= 8 and 0 < _descriptors_on(theirs) <= len(theirs)
        for reader in readers:
            reader.close()
        assert _descriptors_on(theirs) == 0
    finally:
        go.set()
        process.join(timeout=60)
    assert process.exitcode == 0


# -- a journal without a connection row ---------------------------------------------------------------


def test_a_connection_whose_row_cannot_be_inserted_leaves_no_journal(tmp_path: Path) -> None:
    """The row's INSERT refused (a trigger of the file raising, as a full disk would fail it): the
    connection is MQRC 2195 and its journal is removed with it; the twin, the trigger gone, connects."""
    path = tmp_path / "qm.sqlite"
    manager = _manager(path)
    _raw(path, "CREATE TRIGGER refuse BEFORE INSERT ON connections BEGIN SELECT RAISE(ABORT, 'refused'); END")
    with pytest.raises(MQError) as caught:
        manager.connect("refused")
    assert caught.value.reason == 2195 and "refused" in str(caught.value)
    assert [name for name in os.listdir(journal_directory(path)) if not name.startswith(".")] == []
    _raw(path, "DROP TRIGGER refuse")
    connection = manager.connect("accepted")
    assert connection._journal.path is not None and connection._journal.path.exists()
    connection.close()


def _row_ids(path: Path) -> list[int]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [row for (row,) in db.execute("SELECT id FROM messages")]


def _journal_then_die(path: str) -> None:
    """A connection killed after its journal was made, before its row was inserted."""
    from ams.mq import embedded as embedded_module
    from ams.mq.embedded_journal import GetJournal

    journal = GetJournal(Path(path), embedded_module._process_tag() + ":" + "ab" * 16)
    journal.record(0, 1)  # as if a get had been made: no row, so nothing of it is counted
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_journal_left_without_a_row_counts_nothing_and_is_removed_once_listed(tmp_path: Path) -> None:
    """Made by a process killed before its connection row was inserted: the shape did not move, so
    a reader connected before does not list it (nothing to count: a journal without a row never
    holds a get); once the shape moves, it is listed, found dead, counts nothing, and goes."""
    path = tmp_path / "qm.sqlite"
    filler = _manager(path).connect("filler")
    assert filler.put1("Q", MQMD(persistence=1), b"message") and _row_ids(path) == [1]  # what the journal lists
    reader = _manager(path).connect("reader")
    queue = reader.open("Q", input=True, browse=True)
    assert queue.browse_first().md.backout_count == 0  # the journals listed
    process = SPAWN.Process(target=_journal_then_die, args=(str(path),))
    process.start()
    process.join(timeout=120)
    assert process.exitcode == -signal.SIGKILL
    (left,) = [name for name in os.listdir(journal_directory(path)) if name.startswith(f"{process.pid}.")]
    assert queue.browse_first().md.backout_count == 0 and (journal_directory(path) / left).exists()
    filler.close()  # a connection row deleted: the shape moves
    got = queue.get(syncpoint=True)
    assert (got.body, got.md.backout_count) == (b"message", 0)  # its row id was listed: nothing counted
    reader.commit()
    assert not (journal_directory(path) / left).exists()
    reader.close()


def test_an_alias_retargeted_or_a_queue_deleted_elsewhere_is_seen_at_the_next_call(tmp_path: Path) -> None:
    """DEFINE QALIAS ... REPLACE is an INSERT OR REPLACE (its DELETE fires no trigger without
    recursive triggers; its INSERT does): a connection that cached the alias's target puts to the
    new one. A queue row deleted by a plain SQLite connection is MQRC 2085 at the next call, not a
    put into a queue that no longer exists (the twin: before, it was put)."""
    path = tmp_path / "qm.sqlite"
    manager = _manager(path)
    manager.define_queue("Q2")
    manager.define_alias("A", "Q")
    connection = manager.connect("app")
    connection.put1("A", MQMD(), b"to Q")
    EmbeddedQueueManager(path).define_alias("A", "Q2")  # another object: another SQLite connection
    connection.put1("A", MQMD(), b"to Q2")
    assert (connection.depth("Q"), connection.depth("Q2")) == (1, 1)
    _raw(path, "DELETE FROM queues WHERE name = 'Q2'")
    with pytest.raises(MQError) as caught:
        connection.put1("A", MQMD(), b"to nowhere")
    assert caught.value.reason == 2085


@pytest.mark.parametrize("version", [5, 6])
def test_a_short_msg_id_or_correl_id_of_an_early_release_is_found_after_the_migration(
    tmp_path: Path, version: int
) -> None:
    """Releases before format 5 stored a MsgId or CorrelId given shorter than 24 bytes as given:
    migrated, the columns hold them as the layout does (padded), so a get by either finds the
    message (before: browsed with the padded id, never got by it). The twin: another id does not."""
    path = tmp_path / "qm.sqlite"
    md = MQMD(msg_id=b"A", correl_id=b"C")
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.executescript(EARLIER_SCHEMA)
        db.execute("INSERT INTO queues (name, attributes) VALUES ('Q', NULL)")
        for body in (b"by msg_id", b"by correl_id"):
            db.execute(
                "INSERT INTO messages (queue, md, body, state, msg_id, correl_id) VALUES ('Q', ?, ?, 0, '41', '43')",
                (_earlier_md(md, version), body),
            )
        db.execute(f"PRAGMA user_version = {version}")
    os.chmod(path, 0o600)
    queue = EmbeddedQueueManager(path).connect("new").open("Q", input=True)
    for msg_id, correl_id in ((b"B", None), (None, b"A"), (b"A", b"A")):
        with pytest.raises(NoMessageAvailable):
            queue.get(msg_id=msg_id, correl_id=correl_id)
    got = queue.get(msg_id=b"A")
    assert (got.body, got.md.msg_id, got.md.correl_id) == (b"by msg_id", b"A".ljust(24, b"\0"), b"C".ljust(24, b"\0"))
    assert queue.get(correl_id=b"C", msg_id=got.md.msg_id).body == b"by correl_id"


@pytest.mark.parametrize("stored", ["not json", "null", "[1, 2]", '{"msg_id": 5}', "too big"])
def test_a_damaged_json_mqmd_stops_the_migration_with_2195_naming_its_row(tmp_path: Path, stored: str) -> None:
    """A format-6 row whose JSON is not an MQMD, or holds an integer beyond 64 bits, stops the
    migration with MQRC 2195 naming the row, never a JSON, type or struct error, and leaves the file
    at format 6; the twin, the row made whole, is migrated."""
    path = tmp_path / "qm.sqlite"
    whole = _earlier_md(MQMD(msg_id=b"A"), 6)
    text = stored
    if stored == "too big":  # Format (a text) first, then Encoding: Encoding made 2**64
        fields = json.loads(whole)
        fields[1] = 1 << 64
        text = json.dumps(fields)
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.executescript(EARLIER_SCHEMA)
        db.execute("INSERT INTO queues (name, attributes) VALUES ('Q', NULL)")
        db.execute("INSERT INTO messages (queue, md, body, state) VALUES ('Q', ?, X'01', 0)", (text,))
        db.execute("PRAGMA user_version = 6")
    os.chmod(path, 0o600)
    with pytest.raises(MQError) as caught:
        EmbeddedQueueManager(path)
    assert caught.value.reason == 2195 and "message row 1" in str(caught.value)
    _raw(path, "UPDATE messages SET md = ?", whole)
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (6,)
    queue = EmbeddedQueueManager(path).connect("new").open("Q", input=True)
    assert queue.get(msg_id=b"A").body == b"\x01"


def test_a_json_mqmd_in_a_format_7_file_is_read_and_a_damaged_one_is_2195(tmp_path: Path) -> None:
    """A row of format 6 (JSON text) in a file of format 7, as an earlier release racing the
    migration would put it, is got with its MQMD; damaged, it is MQRC 2195, not a JSON error."""
    path = tmp_path / "qm.sqlite"
    connection = _manager(path).connect("app")
    queue = connection.open("Q", input=True, output=True, browse=True)
    queue.put(MQMD(), b"json")
    _raw(path, "UPDATE messages SET md = ?", _earlier_md(md_with(RICH_ENOUGH, msg_id=b"J".ljust(24, b"\0")), 6))
    assert queue.browse_first().md.user_identifier == RICH_ENOUGH.user_identifier
    _raw(path, "UPDATE messages SET md = ?", '["MQSTR"]')
    with pytest.raises(MQError) as caught:
        queue.get()
    assert caught.value.reason == 2195 and "damaged" in str(caught.value)


def test_a_shape_row_deleted_and_made_again_never_counts_through_a_cached_value(tmp_path: Path) -> None:
    """The row deleted, the next opener makes it again: however many changes follow, the counter
    never reads a value a connection cached the queue at while the queue changed (from 0, the
    change that brought it back to that value was taken for none: a denied put was let through)."""
    path = tmp_path / "qm.sqlite"
    connection = _manager(path).connect("app")
    connection.put1("Q", MQMD(), b"cached")  # the resolution cached at the counter's value now
    with contextlib.closing(sqlite3.connect(path)) as db:
        (cached,) = db.execute("SELECT version FROM file_shape").fetchone()
    _raw(path, "DELETE FROM file_shape")
    EmbeddedQueueManager(path).close()  # the row made again
    with contextlib.closing(sqlite3.connect(path)) as db:
        (start,) = db.execute("SELECT version FROM file_shape").fetchone()
    for _ in range(max(0, cached - start - 1)):  # never, now: counted from 0 it brought the counter back
        _raw(path, "UPDATE queues SET denied = denied WHERE name = 'Q'")
    _raw(path, "UPDATE queues SET denied = 'put' WHERE name = 'Q'")
    with pytest.raises(MQError) as caught:
        connection.put1("Q", MQMD(), b"denied")
    assert caught.value.reason == 2035 and start > cached


def test_a_connections_own_mqopen_leaves_its_queue_resolutions_cached(tmp_path: Path) -> None:
    """Opening a queue for input raises the file's shape counter by this connection's own write,
    which leaves data_version as it was: the counter it keeps for its transactions is read again
    there, so that inside and outside them it agrees with the file's and the queue resolved once
    stays cached batch after batch. The rejected twin: another connection's DEFINE changes the
    shape, and the queue is resolved again (its new attributes seen)."""
    manager = _manager(tmp_path / "qm.sqlite")
    connection = manager.connect("app")
    queue = connection.open("Q", input=True, output=True)
    queue.put(MQMD(), b"first")  # resolved again once: the open's own write moved the counter after its look-up
    resolutions: list[str] = []
    connection._db.set_trace_callback(lambda sql: resolutions.append(sql) if "FROM queues" in sql else None)
    for _ in range(3):
        message = queue.get(syncpoint=True)  # then a put in the transaction the get holds, as a proxy's
        queue.put(message.md, message.body, syncpoint=True)
        connection.commit()
    assert resolutions == []
    manager.define_queue("Q", max_message_length=10)
    with pytest.raises(MQError) as caught:
        queue.put(MQMD(), b"longer than ten bytes")
    assert caught.value.reason == 2030 and len(resolutions) == 1
