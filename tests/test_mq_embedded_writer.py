"""The embedded queue manager's units of work share SQLite's one writer (ams/mq/embedded_writer.py).

A unit of work's puts stay in an SQLite transaction until its next get or its commit; the writer
is held a bounded time between calls; other processes make progress meanwhile; and a process
killed anywhere, inside MQCMIT included, loses nothing committed and repeats nothing. No timing
is asserted: a writer held for ever shows as a process that never finishes (MQRC 2195 after
SQLite's 30 s busy timeout), not as a slow one."""

from __future__ import annotations

import contextlib
import errno
import gc
import hashlib
import multiprocessing
import multiprocessing.synchronize
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ams.mq import MQMD, EmbeddedQueueManager, MQError, NoMessageAvailable, embedded_unit_of_work, embedded_writer
from ams.mq import embedded as embedded_module
from ams.mq.embedded_schema import INLINE_BODY_BYTES

SPAWN = multiprocessing.get_context("spawn")
MD = MQMD(persistence=1)
COUNT = 60


def _manager(path: Path) -> EmbeddedQueueManager:
    manager = EmbeddedQueueManager(path, create=True)
    for queue in ("SOURCE", "TARGET"):
        manager.define_queue(queue, max_depth=100_000)
    return manager


def _fill(path: Path, count: int = COUNT) -> list[bytes]:
    bodies = [b"message %03d" % index for index in range(count)]
    connection = _manager(path).connect("filler")
    out = connection.open("SOURCE", output=True)
    for body in bodies:
        out.put(MD, body, syncpoint=True)
    connection.commit()
    connection.close()
    return bodies


def _rows(path: Path) -> dict[str, list[bytes]]:
    """Every message in the file by queue, as another process reads it (after recovery)."""
    _manager(path).close()  # backs out what dead processes left uncommitted
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute(
            "SELECT m.queue, coalesce(b.body, m.body), m.state FROM messages m LEFT JOIN bodies b ON b.id = m.id "
            "ORDER BY m.id"
        ).fetchall()
    assert all(state == 0 for _, _, state in rows), "work of a dead process left pending"
    found: dict[str, list[bytes]] = {"SOURCE": [], "TARGET": []}
    for queue, body, _ in rows:
        found[queue].append(bytes(body))
    return found


def _exactly_once(path: Path, bodies: list[bytes]) -> dict[str, list[bytes]]:
    found = _rows(path)
    assert sorted(found["SOURCE"] + found["TARGET"]) == sorted(bodies)  # none lost, none twice
    return found


# -- two processes ------------------------------------------------------------------------------


def _hold_for_ever() -> None:
    """In this process, a unit of work keeps the writer between its calls for ever, unless another
    process waits for it (no time bound left to make progress with)."""
    embedded_writer.HOLD_SECONDS = 3600.0
    embedded_unit_of_work.HOLD_SECONDS = 3600.0  # type: ignore[attr-defined]  # imported there by name


def _mover(path: str, name: str, batch: int, moved: multiprocessing.Queue[tuple[str, int]], hold: bool = False) -> None:
    """Move SOURCE to TARGET in units of work of ``batch`` until SOURCE is empty; ``hold``: with no
    time bound on the writer held, and some work of the application's between get and put."""
    if hold:
        _hold_for_ever()
    connection = EmbeddedQueueManager(path).connect(name)
    into, out = connection.open("SOURCE", input=True), connection.open("TARGET", output=True)
    count = 0
    while True:
        try:
            for _ in range(batch):
                message = into.get(syncpoint=True)
                if hold:
                    hashlib.sha256(message.body * 2000).digest()  # the application's work, the writer held or not
                out.put(message.md, message.body, syncpoint=True)
                count += 1
        except NoMessageAvailable:
            connection.commit()
            break
        connection.commit()
    connection.close()
    moved.put((name, count))


@pytest.mark.parametrize("hold", [False, True])
def test_two_processes_interleave_and_move_every_message_once(tmp_path: Path, hold: bool) -> None:
    """Competing consumers, each under syncpoint; ``hold``: neither ever gives up the writer for
    time's sake, so they progress only by hearing that the other waits (ams/mq/embedded_wanted.py),
    and by writing each get while the other reads the queue too (2195 after 30 s otherwise)."""
    path = tmp_path / "qm.sqlite"
    bodies = _fill(path, 400)
    moved: multiprocessing.Queue[tuple[str, int]] = SPAWN.Queue()
    workers = [SPAWN.Process(target=_mover, args=(str(path), f"w{n}", 7, moved, hold)) for n in (1, 2)]
    for worker in workers:
        worker.start()
    counts = dict(moved.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    found = _exactly_once(path, bodies)
    assert found["SOURCE"] == [] and sum(counts.values()) == len(bodies)


def _idle_holder(path: str, put: multiprocessing.synchronize.Event, go: multiprocessing.synchronize.Event) -> None:
    """Put under syncpoint (the transaction held), then make no call until told to commit."""
    connection = EmbeddedQueueManager(path).connect("idle")
    connection.open("TARGET", output=True).put(MD, b"held", syncpoint=True)
    put.set()
    assert go.wait(timeout=120)
    connection.commit()
    connection.close()


def test_a_unit_of_work_idle_between_calls_does_not_keep_the_writer(tmp_path: Path) -> None:
    """Another process moves every message and commits while the first one's unit of work, with
    an uncommitted put, makes no call: the writer it took for the put was given up meanwhile."""
    path = tmp_path / "qm.sqlite"
    bodies = _fill(path, 30)
    put, go = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=_idle_holder, args=(str(path), put, go))
    holder.start()
    assert put.wait(timeout=120)
    moved: multiprocessing.Queue[tuple[str, int]] = SPAWN.Queue()
    _mover(str(path), "mover", 5, moved)  # here: would wait for ever (2195) on a writer never given up
    assert moved.get(timeout=10) == ("mover", 30)
    spy = EmbeddedQueueManager(path).connect("spy")
    assert spy.depth("TARGET") == 31  # the idle one's uncommitted put counts, as on MQ
    go.set()
    holder.join(timeout=60)
    assert holder.exitcode == 0
    assert sorted(_rows(path)["TARGET"]) == sorted([*bodies, b"held"])


def _idle_holder_for_ever(
    path: str, put: multiprocessing.synchronize.Event, go: multiprocessing.synchronize.Event
) -> None:
    """The idle holder, the writer kept for ever between its calls: only its flusher thread, hearing
    that another process waits, gives it up."""
    _hold_for_ever()
    _idle_holder(path, put, go)


def _busy_holder(
    path: str, put: multiprocessing.synchronize.Event, go: multiprocessing.synchronize.Event, pause: float = 0.002
) -> None:
    """Put under syncpoint, then browse again and again (``pause`` between calls), the writer kept
    for ever between calls and the flusher asleep, until told to commit: only the end of its own
    calls can give the writer up (for two minutes at most, longer than SQLite's 30 s: the waiter
    fails first)."""
    _hold_for_ever()
    embedded_writer.WANTED_POLL_SECONDS = 3600.0
    connection = EmbeddedQueueManager(path).connect("busy")
    connection.open("TARGET", output=True).put(MD, b"busy", syncpoint=True)
    browser = connection.open("SOURCE", browse=True)
    put.set()
    deadline = time.monotonic() + 120
    while not go.wait(timeout=pause) and time.monotonic() < deadline:
        with contextlib.suppress(NoMessageAvailable):  # once the test got SOURCE's messages
            browser.browse_first()
    connection.commit()
    connection.close()


def _back_to_back_holder(
    path: str, put: multiprocessing.synchronize.Event, go: multiprocessing.synchronize.Event
) -> None:
    """The busy holder with no pause between its calls, and a call's end asking whether another
    process waits at most every 50 ms (WANTED_ASK_SECONDS, far longer than a call): heard only
    because the first call to end that long after the last ask asks again."""
    embedded_unit_of_work.WANTED_ASK_SECONDS = 0.05  # type: ignore[attr-defined]  # imported there by name
    _busy_holder(path, put, go, pause=0.0)


@pytest.mark.parametrize("holder", [_idle_holder_for_ever, _busy_holder, _back_to_back_holder])
def test_a_waiting_process_gets_the_writer_with_no_time_bound(tmp_path: Path, holder: Callable[..., None]) -> None:
    """The holder keeps the writer for ever between its calls (HOLD_SECONDS an hour), idle (its
    flusher thread hears that we wait) or calling (a call's end hears it, calls back to back
    included): our put and get complete meanwhile, not after SQLite's 30 s (MQRC 2195)."""
    path = tmp_path / "qm.sqlite"
    _fill(path, 1)
    put, go = SPAWN.Event(), SPAWN.Event()
    process = SPAWN.Process(target=holder, args=(str(path), put, go))
    process.start()
    assert put.wait(timeout=120)
    app = EmbeddedQueueManager(path).connect("app")
    app.open("SOURCE", output=True).put(MD, b"mine", syncpoint=True)
    app.commit()
    assert process.is_alive() and not go.is_set()  # the holder still holds its unit of work open
    assert sorted(m.body for m in (app.open("SOURCE", input=True).get() for _ in range(2))) == [
        b"message 000",
        b"mine",
    ]
    go.set()
    process.join(timeout=60)
    assert process.exitcode == 0
    assert _rows(path)["TARGET"] == [b"held" if holder is _idle_holder_for_ever else b"busy"]


def test_threads_of_one_process_share_the_writer(tmp_path: Path) -> None:
    """A second connection in the same thread (which cannot wait for the first to finish its call)
    and the queue manager's own writes take the writer from a unit of work holding it."""
    path = tmp_path / "qm.sqlite"
    manager = _manager(path)
    first, second = manager.connect("first"), manager.connect("second")
    first.open("TARGET", output=True).put(MD, b"first", syncpoint=True)
    second.open("TARGET", output=True).put(MD, b"second", syncpoint=True)
    manager.define_queue("LATER")
    assert first.depth("TARGET") == 2
    with pytest.raises(NoMessageAvailable):  # uncommitted puts are invisible to a getter
        second.open("TARGET", input=True).get()
    first.backout()
    second.commit()
    assert [m.body for m in [manager.connect("reader").open("TARGET", input=True).get()]] == [b"second"]


# -- killed inside MQCMIT -----------------------------------------------------------------------


def _commit_and_die(path: str, at: str, written: bool) -> None:
    """Move every message under one unit of work (``written``: its transaction written before
    MQCMIT, as a wait of another process has it, its gets' rows then taken, not deleted), then die
    at ``at`` inside MQCMIT."""
    connection = EmbeddedQueueManager(path).connect("doomed")
    into, out = connection.open("SOURCE", input=True), connection.open("TARGET", output=True)
    for _ in range(COUNT):
        message = into.get(syncpoint=True)
        out.put(message.md, message.body, syncpoint=True)
    if written:
        connection.release_writer(wait=True)

    def die(*_: object) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def on_statement(sql: str) -> None:
        if sql.startswith(at):
            die()

    if at == "sync":
        embedded_module.sync_log = die  # type: ignore[attr-defined,assignment]  # after COMMIT, before the disk confirms it
    else:
        connection._db.set_trace_callback(on_statement)
    connection.commit()
    os._exit(3)  # not reached: a commit that returned would be the test's failure


@pytest.mark.parametrize(
    ("at", "committed", "written"),
    [
        # the transaction held: the gets deleted their rows, the puts inserted them visible (ams/mq/embedded_kept.py)
        ("COMMIT", False, False),  # MQCMIT's one statement, as SQLite starts to commit
        ("sync", True, False),  # committed, the log not yet synced: the process's death loses nothing
        # written before MQCMIT: the gets' rows restored as taken, which MQCMIT deletes
        ("DELETE FROM messages WHERE id", False, True),  # the first of the commit's statements
        ("UPDATE messages SET state = 0", False, True),  # between its statements
        ("COMMIT", False, True),
        ("sync", True, True),
    ],
)
def test_a_process_killed_inside_mqcmit_loses_nothing_and_repeats_nothing(
    tmp_path: Path, at: str, committed: bool, written: bool
) -> None:
    path = tmp_path / "qm.sqlite"
    bodies = _fill(path)
    process = SPAWN.Process(target=_commit_and_die, args=(str(path), at, written))
    process.start()
    process.join(timeout=120)
    assert process.exitcode == -signal.SIGKILL
    found = _exactly_once(path, bodies)
    assert found["TARGET" if committed else "SOURCE"] == bodies
    if not committed:  # every get was written before it returned: each message counts its backout
        reader = EmbeddedQueueManager(path).connect("after").open("SOURCE", input=True)
        assert {reader.get().md.backout_count for _ in range(COUNT)} == {1}


def test_a_failing_call_undoes_its_own_work_not_the_unit_of_works(tmp_path: Path) -> None:
    """A put that fails half-way (its body refused, as by a full disk) inside a unit of work whose
    transaction is held leaves nothing of itself, and the earlier put of the unit of work stays."""
    path = tmp_path / "qm.sqlite"
    manager = _manager(path)
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "CREATE TRIGGER disk_full BEFORE INSERT ON bodies WHEN substr(NEW.body, 1, 7) = CAST('refused' AS BLOB) "
            "BEGIN SELECT RAISE(ABORT, 'disk is full'); END"
        )
    app = manager.connect("app")
    out = app.open("TARGET", output=True)
    out.put(MD, b"kept", syncpoint=True)
    with pytest.raises(MQError) as caught:  # beyond INLINE_BODY_BYTES: its row written, then its body refused
        out.put(MD, b"refused".ljust(INLINE_BODY_BYTES + 1, b"."), syncpoint=True)
    assert caught.value.reason == 2195
    out.put(MD, b"after", syncpoint=True)
    app.commit()
    assert app.depth("TARGET") == 2  # no message row left without its body
    assert _rows(path)["TARGET"] == [b"kept", b"after"]


# -- another process wanting the writer -----------------------------------------------------------


def _hold_until_told(path: str, got: multiprocessing.synchronize.Event, go: multiprocessing.synchronize.Event) -> None:
    """Get under syncpoint with a hold longer than the test, then make no call until told to commit."""
    from ams.mq import embedded_unit_of_work, embedded_writer

    embedded_writer.HOLD_SECONDS = 3600.0
    embedded_unit_of_work.HOLD_SECONDS = 3600.0  # type: ignore[attr-defined]  # imported there by name
    connection = EmbeddedQueueManager(path).connect("holder")
    connection.open("SOURCE", input=True).get(syncpoint=True)
    got.set()
    assert go.wait(timeout=120)
    connection.commit()
    connection.close()


def test_a_writer_held_between_calls_is_written_when_another_process_wants_it(tmp_path: Path) -> None:
    """The holder would keep the writer for an hour between its calls; another process waiting for
    it (its lock on FILE-writer: ams/mq/embedded_wanted.py) has the holder's flusher write it. Without it,
    the getter here would wait until SQLite's busy timeout and fail with MQRC 2195."""
    path = tmp_path / "qm.sqlite"
    bodies = _fill(path, 2)
    got, go = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=_hold_until_told, args=(str(path), got, go))
    holder.start()
    try:
        assert got.wait(timeout=120)
        other = EmbeddedQueueManager(path).connect("other").open("SOURCE", input=True)
        assert other.get(syncpoint=True).body == bodies[1]  # the holder's get was written: it is hidden
        other.connection.commit()
    finally:
        go.set()
        holder.join(timeout=60)
    assert holder.exitcode == 0
    assert _rows(path) == {"SOURCE": [], "TARGET": []}


def test_a_connection_left_open_at_exit_lets_the_process_end(tmp_path: Path) -> None:
    """A connection left open at the interpreter's exit, holding the writer with an uncommitted
    put, neither hangs the process (a flusher thread started then would never run; one stopped
    holding the connection's lock would block its close) nor keeps its put: the process ends as a
    killed one, and the next to open the file backs its work out."""
    path = tmp_path / "qm.sqlite"
    _manager(path).close()
    script = (
        "import sys\nfrom ams.mq import MQMD, EmbeddedQueueManager\n"
        "connection = EmbeddedQueueManager(sys.argv[1]).connect('left')\n"
        "connection.open('TARGET', output=True).put(MQMD(), b'uncommitted', syncpoint=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], timeout=120, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    assert _rows(path)["TARGET"] == []  # backed out


# -- a connection dropped unclosed ------------------------------------------------------------------


@pytest.mark.parametrize("in_memory", [True, False], ids=["memory", "file"])
def test_a_connection_collected_inside_another_connections_call_is_closed_after_that_call(
    tmp_path: Path, in_memory: bool
) -> None:
    """The garbage collector runs a dropped connection's finalizer inside whatever call allocates:
    here another connection's put, which holds its own lock and the writer. The finalizer's close
    waited there for that lock (30 s) and then for the writer (30 s more), failed, and left the
    dropped unit of work's get unfinished: the message stayed taken. Now the process's next
    transaction closes it: the message is back, its backout counted once, and the put went through."""
    manager = EmbeddedQueueManager(None if in_memory else tmp_path / "qm.sqlite", create=True)
    manager.define_queue("Q")
    manager.connect("setup").put1("Q", MD, b"in flight")
    dropped = manager.connect("dropped")
    taken = dropped.open("Q", input=True).get(syncpoint=True).body  # not in an assert: its rewrite keeps the queue
    assert taken == b"in flight"
    cycle: list[object] = [dropped]
    cycle.append(cycle)  # freed by the collector only, not as the last name goes
    del dropped, cycle
    other = manager.connect("other")
    out = other.open("Q", output=True)
    collected: list[int] = []
    depth_read = other._depth_read

    def collecting(found: object) -> tuple[int, int]:  # inside the put's call: its lock and the writer held
        collected.append(gc.collect())
        return depth_read(found)  # type: ignore[arg-type]

    other._depth_read = collecting  # type: ignore[method-assign]
    out.put(MD, b"after", syncpoint=True)
    other.commit()
    assert collected and collected[0] > 0  # the dropped connection was collected in there
    queue = other.open("Q", input=True)  # a transaction of the process: the dropped connection closed first
    got = [queue.get(), queue.get()]
    assert [(m.body, m.md.backout_count) for m in got] == [(b"in flight", 1), (b"after", 0)]
    other.close()


@pytest.mark.parametrize("in_memory", [True, False], ids=["memory", "file"])
def test_a_call_made_inside_another_connections_call_in_its_thread_fails_at_once(
    tmp_path: Path, in_memory: bool
) -> None:
    """A finalizer the collector runs inside one connection's call (the MQ adapter's, which backs
    its dropped connection out: ams/mq/pymqi_adapter.py) makes another connection's call in the
    same thread, which needs the writer the first holds. It waited 30 s for the first's lock, then
    30 s for the writer, and failed with SQLite's "database is locked". Now it fails at once, saying
    why; the first call goes on, and the second connection's call succeeds once it has ended."""
    manager = EmbeddedQueueManager(None if in_memory else tmp_path / "qm.sqlite", create=True)
    manager.define_queue("Q")
    manager.connect("setup").put1("Q", MD, b"in flight")
    second = manager.connect("second")
    second_queue = second.open("Q", input=True)
    assert second_queue.get(syncpoint=True).body == b"in flight"
    second.release_writer(wait=True)  # its unit of work written, the writer free for the first
    first = manager.connect("first")
    out = first.open("Q", output=True)
    failures: list[MQError] = []
    depth_read = first._depth_read

    def finalizer_inside(found: object) -> tuple[int, int]:  # inside the put's call: its lock and the writer held
        try:
            second.backout()
        except MQError as error:
            failures.append(error)
        return depth_read(found)  # type: ignore[arg-type]

    first._depth_read = finalizer_inside  # type: ignore[method-assign]
    out.put(MD, b"after", syncpoint=True)
    first._depth_read = depth_read  # type: ignore[method-assign]
    assert [type(error) for error in failures] == [embedded_writer.HeldInThisThread]
    assert failures[0].reason == 2195 and "another connection of this thread" in str(failures[0])
    first.commit()  # the first call went on: its put is committed
    second.backout()  # the twin: outside that call, the same backout returns the message, counted once
    queue = first.open("Q", input=True)
    assert [(m.body, m.md.backout_count) for m in (queue.get(), queue.get())] == [(b"in flight", 1), (b"after", 0)]
    first.close()
    second.close()


@pytest.mark.parametrize("where", ["before its file", "in its initialiser"])
def test_a_connection_collected_while_another_is_made_is_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """A dropped connection's finalizer run while another connection is being made (its
    initialiser allocates) asked the new one, half made, for attributes it did not have yet:
    AttributeError, and the dropped connection was left unclosed, its got message taken until the
    process ended. Now it is closed at once (the new one has not reached the file) or by the next
    transaction (the new one writes its row): the message is back, counted once."""
    manager = EmbeddedQueueManager(tmp_path / "qm.sqlite", create=True)
    manager.define_queue("Q")
    manager.connect("setup").put1("Q", MD, b"in flight")
    dropped = manager.connect("dropped")
    taken = dropped.open("Q", input=True).get(syncpoint=True).body
    assert taken == b"in flight"
    cycle: list[object] = [dropped]
    cycle.append(cycle)  # freed by the collector only
    del dropped, cycle
    unraisable: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    collected: list[int] = []

    class Collecting(embedded_module.EmbeddedConnection):
        def __init__(self, *arguments: Any) -> None:
            if where == "before its file":
                collected.append(gc.collect())
            super().__init__(*arguments)

    if where == "in its initialiser":
        new_owner = manager._new_owner

        def collecting_owner() -> str:
            collected.append(gc.collect())
            return new_owner()

        monkeypatch.setattr(manager, "_new_owner", collecting_owner)
    other = Collecting(manager, manager._open_db(), "other")
    assert collected and collected[0] > 0 and not unraisable
    got = other.open("Q", input=True).get()
    assert (got.body, got.md.backout_count) == (b"in flight", 1)
    other.close()


class _VanishingHolders(dict):  # type: ignore[type-arg]
    """The registry's holders as the flusher may find them: one holder as it looks, none by the time
    it reads them (a weak key collected in between, by any thread's allocation)."""

    looks = 0

    def __len__(self) -> int:
        self.looks += 1
        return 1 if self.looks == 1 else 0


def test_the_flusher_survives_its_holders_vanishing_under_it() -> None:
    """The flusher read the holders' times with min(), which raised on the table emptied since it
    looked: the thread ended, and no held transaction of the process was written by it again."""
    registry = embedded_writer._Registry()
    registry.holders = _VanishingHolders()  # type: ignore[assignment]
    thread = threading.Thread(target=embedded_writer._flusher, args=(registry,), daemon=True)
    thread.start()
    for _ in range(3000):  # a liveness bound (30 s), not a measure: it idles at once, or dies
        if registry.idle or not thread.is_alive():
            break
        time.sleep(0.01)
    assert thread.is_alive() and registry.idle  # back to waiting for a holder, not dead


# -- the log's sync -----------------------------------------------------------------------------


def test_a_get_with_no_descriptor_left_for_the_log_s_sync_still_returns_its_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A get outside syncpoint commits its delete, then opens the write-ahead log to sync it: with
    every descriptor of the process in use (EMFILE), that OSError left the library and the message
    was gone, committed as got and never returned. Now the system's sync, which needs no
    descriptor, confirms the commit, and the get returns the message."""
    queue = _manager(tmp_path / "qm.sqlite").connect("app").open("SOURCE", input=True, output=True)
    queue.put(MD, b"precious")
    opened, synced = os.open, []

    def exhausted(path: str, *arguments: Any, **options: Any) -> int:
        if str(path).endswith("-wal"):
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE), path)
        return opened(path, *arguments, **options)

    monkeypatch.setattr(os, "open", exhausted)
    monkeypatch.setattr(os, "sync", lambda: synced.append(True))
    assert queue.get().body == b"precious"
    assert synced == [True]


def test_a_log_sync_that_fails_is_mqrc_2195_not_an_os_error(tmp_path: Path) -> None:
    """Only MQError leaves the library: the disk failing the log's sync (EIO) is MQRC 2195; the
    accepted twin: a sync that works returns."""
    path = tmp_path / "qm.sqlite"
    connection = _manager(path).connect("app")
    connection.open("SOURCE", output=True).put(MD, b"committed")  # the log exists while a connection is open

    def failing(descriptor: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    with pytest.raises(MQError) as caught:
        embedded_writer.sync_log(path, failing)
    assert caught.value.reason == 2195 and "Input/output error" in str(caught.value)
    embedded_writer.sync_log(path)
    connection.close()


def test_a_new_log_s_name_is_synced_into_its_directory_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MQCMIT's promise holds across a power loss only if the log's name does too: the first sync
    of each log file made also syncs its directory (SQLite would only at its first checkpoint); the
    later syncs of the same log do not (a directory sync per commit); a log made again (the last
    connection closed deletes it) is synced into its directory again."""
    path = tmp_path / "qm.sqlite"
    synced = _directory_syncs(monkeypatch)
    manager = _manager(path)
    connection = manager.connect("app")
    queue = connection.open("SOURCE", output=True)
    queue.put(MD, b"first")  # outside syncpoint: synced as it returns
    assert synced == [str(tmp_path)]
    queue.put(MD, b"second")
    connection.commit()
    assert synced == [str(tmp_path)]  # the same log: its name is synced already
    connection.close()
    manager.close()
    assert not Path(f"{path}-wal").exists()  # the last connection to close deleted it
    again = _manager(path).connect("again")
    again.open("SOURCE", output=True).put(MD, b"third")
    assert synced == [str(tmp_path)] * 2  # a new log, a new name to sync
    again.close()


def test_no_descriptor_for_the_journals_listing_is_mqrc_2195_and_the_message_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only MQError leaves the library: a get that cannot list the other connections' get journals
    (no descriptor left, EMFILE) fails with MQRC 2195 naming the system's error, before it takes
    anything; the accepted twin: with descriptors again, the next get returns the message."""
    path = tmp_path / "qm.sqlite"
    connection = _manager(path).connect("app")
    connection.put1("SOURCE", MD, b"kept")
    queue = connection.open("SOURCE", input=True)
    real_listdir = os.listdir

    def exhausted(directory: Any = ".") -> list[str]:
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE), str(directory))

    monkeypatch.setattr(os, "listdir", exhausted)
    with pytest.raises(MQError) as caught:
        queue.get(syncpoint=True)
    assert caught.value.reason == 2195 and "Too many open files" in str(caught.value)
    monkeypatch.setattr(os, "listdir", real_listdir)
    assert queue.get(syncpoint=True).body == b"kept"
    connection.commit()
    connection.close()


def _directory_syncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The directories fsync'ed from now on (the log's own sync is fdatasync)."""
    synced: list[str] = []
    real_fsync = os.fsync

    def watched(descriptor: int) -> None:
        if os.path.isdir(f"/proc/self/fd/{descriptor}"):
            synced.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", watched)
    return synced


def test_a_log_made_again_in_the_deleted_one_s_inode_is_synced_into_its_directory_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The system may give a new log the inode of the one the last connection deleted (ext4 does,
    at once): a log known by its device and inode was taken for the one whose name was synced, and
    the new log's name was not (the test above failed, run alone). Every log file the system makes
    is told apart here by giving them all one inode."""
    path = tmp_path / "qm.sqlite"
    synced = _directory_syncs(monkeypatch)
    real_fstat = os.fstat

    def one_inode(descriptor: int) -> os.stat_result:
        found = real_fstat(descriptor)
        if not os.readlink(f"/proc/self/fd/{descriptor}").endswith("-wal"):
            return found
        return os.stat_result((found.st_mode, 4242, 4242, *tuple(found)[3:]))

    monkeypatch.setattr(os, "fstat", one_inode)
    manager = _manager(path)
    connection = manager.connect("app")
    connection.open("SOURCE", output=True).put(MD, b"first")
    connection.close()
    manager.close()
    assert synced == [str(tmp_path)] and not Path(f"{path}-wal").exists()
    again = _manager(path).connect("again")
    again.open("SOURCE", output=True).put(MD, b"second")
    assert synced == [str(tmp_path)] * 2  # a new log, a new name to sync
    again.close()


def test_a_queue_manager_opened_by_a_relative_path_syncs_its_log_after_a_chdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative path was kept as given: after the process changed its directory, the log's sync
    opened "qm.sqlite-wal" in the new one, found none and returned, syncing nothing (and the get
    journals were looked for there too). The path is made absolute as the queue manager opens."""
    (tmp_path / "home").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "home")
    connection = _manager(Path("qm.sqlite")).connect("app")
    queue = connection.open("SOURCE", output=True)
    monkeypatch.chdir(tmp_path / "elsewhere")
    opened: list[str] = []
    real_open = os.open

    def watched(file: Any, *arguments: Any, **options: Any) -> int:
        descriptor = real_open(file, *arguments, **options)
        opened.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        return descriptor

    monkeypatch.setattr(os, "open", watched)
    queue.put(MD, b"committed")  # outside syncpoint: its log synced as it returns
    monkeypatch.setattr(os, "open", real_open)
    assert str(tmp_path / "home" / "qm.sqlite-wal") in opened
    connection.close()


def test_a_directory_the_system_cannot_fsync_is_synced_by_the_system_s_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some file systems have no fsync for a directory (EINVAL: vboxsf, for one; SQLite ignores its own
    directory syncs' errors, PostgreSQL these): every call outside syncpoint and MQCMIT failed with
    MQRC 2195 after committing (a get's message lost). The system's sync stands in, once per log."""
    path = tmp_path / "qm.sqlite"
    real_fsync = os.fsync
    synced: list[bool] = []

    def no_directory_fsync(descriptor: int) -> None:
        if os.path.isdir(f"/proc/self/fd/{descriptor}"):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", no_directory_fsync)
    monkeypatch.setattr(os, "sync", lambda: synced.append(True))
    connection = _manager(path).connect("app")
    queue = connection.open("SOURCE", input=True, output=True)
    queue.put(MD, b"precious")
    assert queue.get().body == b"precious"
    assert synced == [True]
    connection.close()
