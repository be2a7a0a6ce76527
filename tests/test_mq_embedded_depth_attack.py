"""Attacks on the depths of file format 8, kept by the writers (a connection's calls count their
changes in memory and write them with their transaction; MQBACK, recovery and restart write theirs
at once): after each, the file's kept depth of every queue must equal its rows' count (state 0 or
1), MQINQ CURDEPTH must say so, and MAXDEPTH must refuse a put exactly at it. Faults are played by
triggers that refuse a write as a full disk does (statement-level, as SQLITE_FULL may be), and the
transaction is held for longer than each test (HOLD_SECONDS): no timing is asserted."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import signal
import sqlite3
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ams.mq import (
    MQMD,
    EmbeddedQueueManager,
    MQError,
    NoMessageAvailable,
    embedded,
    embedded_connection,
    embedded_kept,
    embedded_owners,
    embedded_unit_of_work,
)
from ams.mq.embedded import EmbeddedConnection
from ams.mq.embedded_queue import EmbeddedQueue
from ams.mq.embedded_schema import INLINE_BODY_BYTES
from ams.mq.embedded_writer import released
from tests.test_mq_embedded_storage import _sound

MD = MQMD(persistence=1)
_T = TypeVar("_T")


def _counted(path: Path) -> tuple[dict[str, int], dict[str, int]]:
    """The file's kept depths (those not 0) and its rows' own counts, committed."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        counted = dict(db.execute("SELECT queue, COUNT(*) FROM messages WHERE state IN (0, 1) GROUP BY queue"))
        kept = {queue: depth for queue, depth in db.execute("SELECT queue, depth FROM curdepths") if depth}
    return kept, counted


def _disk_full_for_depths(path: Path) -> None:
    """Writing a kept depth fails as a full disk does while ``disk.full`` (set in the holder's own
    transaction by :func:`_fill`)."""
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE disk (full INTEGER)")
        db.execute("INSERT INTO disk VALUES (0)")
        for event in ("INSERT", "UPDATE"):
            db.execute(
                f"CREATE TRIGGER disk_full_{event.lower()} BEFORE {event} ON curdepths WHEN (SELECT full FROM disk) "
                "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
            )


def _fill(db: sqlite3.Connection, full: bool) -> None:
    db.execute("UPDATE disk SET full = ?", (int(full),))


def test_an_mqback_whose_depth_write_fails_leaves_the_depths_counts(tmp_path: Path, held: None) -> None:
    """MQBACK deletes the unit of work's put and returns its get, then writes their queues' depths:
    that write refused (a full disk), the call fails with 2195 and the transaction stays held. The
    row changes stayed in it without their depths, and the next write (here MQCMIT) committed the
    put's +1 alone: R's depth 1 with no message on it. Now the backout is all or none."""
    path = tmp_path / "qm.sqlite"
    manager = EmbeddedQueueManager(path, create=True)
    manager.define_queue("Q", max_depth=2)
    manager.define_queue("R")
    _disk_full_for_depths(path)
    app = manager.connect("app")
    queue, other_queue = app.open("Q", input=True, output=True), app.open("R", output=True)
    queue.put(MD, b"committed")
    assert queue.get(syncpoint=True).body == b"committed"  # kept in the transaction held
    queue.put(MD, b"uncommitted", syncpoint=True)
    other_queue.put(MD, b"elsewhere", syncpoint=True)
    _fill(app._db, True)
    with pytest.raises(MQError) as caught:
        app.backout()
    assert caught.value.reason == 2195
    _fill(app._db, False)
    app.commit()  # the unit of work went on, whole: its get final, its puts visible
    kept, counted = _counted(path)
    assert kept == counted == {"Q": 1, "R": 1}
    assert app.depth("Q") == 1
    queue.put(MD, b"to MAXDEPTH")
    with pytest.raises(MQError) as full:
        queue.put(MD, b"one too many")
    assert full.value.reason == 2053
    app.close()


# -- every step, two connections ---------------------------------------------------------------

QUEUES = ("Q", "A", "R")  # Q (MAXDEPTH 3), A an alias of Q, R
MAX_DEPTH = 3
_FAULTS = {  # a write refused as a full disk refuses it, by the connections under test only (TEMP triggers)
    "depths": ("BEFORE INSERT ON curdepths", "BEFORE UPDATE ON curdepths"),
    "bodies": ("BEFORE INSERT ON bodies",),
    "messages": ("BEFORE UPDATE ON messages", "BEFORE DELETE ON messages"),
    # SQLITE_INTERRUPT in a change: SQLite rolls the whole transaction back (sqlite3_interrupt's docs)
    "rollback": ("BEFORE INSERT ON messages", "BEFORE UPDATE ON messages", "BEFORE INSERT ON curdepths"),
}
_OPERATION = st.one_of(
    st.tuples(st.just("put"), st.integers(0, 1), st.sampled_from(QUEUES), st.booleans(), st.booleans()),
    st.tuples(st.just("get"), st.integers(0, 1), st.sampled_from(QUEUES), st.booleans()),
    st.tuples(st.sampled_from(["browse", "depth"]), st.integers(0, 1), st.sampled_from(QUEUES)),
    st.tuples(st.sampled_from(["commit", "backout", "write", "close"]), st.integers(0, 1)),
    st.tuples(st.sampled_from(["tick", "restart", "kill"])),
)
# each step an operation, and the fault it meets (mostly none)
# "interrupt": Ctrl-C (KeyboardInterrupt) as a depth is written, or a put marked before a write
_STEP = st.tuples(_OPERATION, st.sampled_from([None, None, None, None, "interrupt", *sorted(_FAULTS)]))


class _World:
    """A file, two connections playing the application (each with a handle on every queue), a clock
    a step moves on, and the fault the step under way meets."""

    def __init__(self, path: Path, monkeypatch: pytest.MonkeyPatch, elsewhere: bool) -> None:
        self.path, self.monkeypatch, self.elsewhere = path, monkeypatch, elsewhere
        self.manager = EmbeddedQueueManager(path, create=True)
        self.manager.define_queue("Q", max_depth=MAX_DEPTH)
        self.manager.define_queue("R")
        self.manager.define_alias("A", "Q")
        self.fault: str | None = None
        self.offset = 0.0
        clock = types.SimpleNamespace(
            time=lambda: time.time() + self.offset, monotonic=time.monotonic, sleep=time.sleep, gmtime=time.gmtime
        )
        monkeypatch.setattr(embedded_connection, "time", clock)
        for module, name in ((embedded_unit_of_work, "add_depths"), (embedded_owners, "add_depths")):
            monkeypatch.setattr(module, name, self._interruptible(getattr(module, name)))
        monkeypatch.setattr(embedded_unit_of_work, "mark_put", self._interruptible(embedded_kept.mark_put))
        self.connections = [self._connect(0), self._connect(1)]
        self.serial = 0

    def _connect(self, which: int) -> tuple[EmbeddedConnection, dict[str, EmbeddedQueue]]:
        """Connection ``which``; the second, ``elsewhere``, as one of another live process (the parent
        of this one): each then has the queues open for input in another process, and marks its gets."""
        with self.monkeypatch.context() as there:
            if which and self.elsewhere:
                parent = os.getppid()
                there.setattr(embedded, "_process_tag", lambda: f"{parent}.{embedded._started(parent)}")
            connection = self.manager.connect("app")
            handles = {name: connection.open(name, input=True, output=True, browse=True) for name in QUEUES}
        db = connection._db

        def fault(kind: str) -> bool:
            if kind == "rollback" == self.fault:
                db.interrupt()
            return kind == self.fault

        db.create_function("fault", 1, fault)
        for kind, events in _FAULTS.items():
            refusal = "SELECT 1" if kind == "rollback" else "SELECT RAISE(ABORT, 'database or disk is full')"
            for index, event in enumerate(events):
                db.execute(
                    f"CREATE TEMP TRIGGER fault_{kind}_{index} {event} WHEN fault('{kind}') BEGIN {refusal}; END"
                )
        return connection, handles

    def _interruptible(self, function: Callable[..., _T]) -> Callable[..., _T]:
        def interrupted(*arguments: Any) -> _T:
            if self.fault == "interrupt":
                raise KeyboardInterrupt
            return function(*arguments)

        return interrupted

    def replace(self, which: int) -> None:
        """A new connection in place of a broken or closed one."""
        old = self.connections[which][0]
        with contextlib.suppress(MQError):
            old.close()
        _abandon(old)
        self.connections[which] = self._connect(which)

    def kill(self) -> None:
        """The process dies: every connection's transaction lost (its database closed, as the kernel
        closes it), its get journal left; then another process opens the file and recovers them."""
        for connection, _ in self.connections:
            _abandon(connection)
        with self.monkeypatch.context() as dead:
            dead.setattr(embedded, "_alive", lambda owner: False)
            dead.setattr(embedded, "_process_tag", lambda: "another")
            EmbeddedQueueManager(self.path).close()
        self.connections = [self._connect(0), self._connect(1)]

    def run(self, step: tuple[object, ...], fault: str | None) -> None:
        """One step, meeting ``fault``; the MQ failures a step may meet (a fault, a broken connection,
        MAXDEPTH) are checked for what they say, and a broken connection replaced."""
        kind = step[0]
        if kind in ("tick", "restart", "kill"):
            self.offset += kind == "tick"
            if kind == "restart":
                self.manager.restart()
            elif kind == "kill":
                self.kill()
            return
        which = int(step[1])  # type: ignore[call-overload]
        connection, handles = self.connections[which]
        self.fault = fault
        try:
            self._call(connection, handles, step)
        except (NoMessageAvailable, KeyboardInterrupt):
            pass
        except MQError as error:
            assert error.reason in (2009, 2195, 2053), error
            if error.reason == 2053:
                assert step[0] == "put" and step[2] in ("Q", "A")
                assert _seen(connection, "Q") >= MAX_DEPTH, "a put refused below MAXDEPTH"
            if error.reason == 2009:
                self.replace(which)
        finally:
            self.fault = None

    def _call(
        self, connection: EmbeddedConnection, handles: dict[str, EmbeddedQueue], step: tuple[object, ...]
    ) -> None:
        kind = step[0]
        if kind == "put":
            _, _, name, syncpoint, expiring = step
            self.serial += 1
            md = MQMD(persistence=int(not expiring), expiry=5 if expiring else -1)
            # every other body beyond INLINE_BODY_BYTES: a put of one row, and a put of a row and its body
            body = (b"m%d" % self.serial).ljust(INLINE_BODY_BYTES + 1 if self.serial % 2 else 0, b".")
            handles[str(name)].put(md, body, syncpoint=bool(syncpoint))
            if name in ("Q", "A"):  # the depth it was checked at: what it sees now, less its own row
                assert _seen(connection, "Q") - 1 < MAX_DEPTH, "a put accepted at MAXDEPTH"
        elif kind == "get":
            handles[str(step[2])].get(syncpoint=bool(step[3]))
        elif kind == "browse":
            handles[str(step[2])].browse_first()
            handles[str(step[2])].browse_next()
        elif kind == "depth":
            local = "Q" if step[2] == "A" else str(step[2])
            assert connection.depth(local) == _seen(connection, local), "MQINQ CURDEPTH"
        elif kind == "commit":
            connection.commit()
        elif kind == "backout":
            connection.backout()
        elif kind == "write":
            connection.release_writer(wait=True)
        else:
            connection.close()
            self.connections[int(step[1])] = self._connect(int(step[1]))  # type: ignore[call-overload]

    def check(self) -> None:
        """The file's depths are counts; so are those a holder sees with its changes not yet written,
        and a connection holding nothing has none."""
        _sound(self.path)  # and every message has its body, every body its message
        for connection, _ in self.connections:
            _holder_sound(connection)

    def close(self) -> None:
        for connection, _ in self.connections:
            with contextlib.suppress(MQError):
                connection.close()
            _abandon(connection)
        self.manager.close()


def _abandon(connection: EmbeddedConnection) -> None:
    """``connection`` dropped as a dying process drops it (its database closed, its get journal's
    lock gone, the file left), unless it was closed: never left to the collector, which may meet it
    inside another test's call that holds the writer, and wait for that writer (30 s a time)."""
    if connection.closed:
        return
    released(connection)
    connection._watch.close()
    connection._db.close()
    connection._connection = None
    if connection._journal._descriptor is not None:  # the lock goes with the process, the file stays
        os.close(connection._journal._descriptor)
        connection._journal._descriptor = None


def _seen(connection: EmbeddedConnection, queue: str) -> int:
    """The queue's depth counted from the rows the connection sees (its own transaction's included)."""
    row = connection._db.execute("SELECT COUNT(*) FROM messages WHERE queue = ? AND state IN (0, 1)", (queue,))
    return int(row.fetchone()[0])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(_STEP, min_size=20, max_size=40), elsewhere=st.booleans())
def test_every_step_keeps_the_depths_counts(
    tmp_path_factory: pytest.TempPathFactory,
    held: None,
    steps: list[tuple[tuple[object, ...], str | None]],
    elsewhere: bool,
) -> None:
    """Puts (through an alias, expiring, to MAXDEPTH), gets and browses (passing expired messages
    over), MQCMIT, MQBACK, writes, closes, each step perhaps meeting a fault, restarts and a process's death,
    by two connections: after every step the depths are counts, MQINQ CURDEPTH says so, and
    MAXDEPTH refuses a put exactly at it."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        world = _World(tmp_path_factory.mktemp("qm") / "qm.sqlite", monkeypatch, elsewhere)
        try:
            for step, fault in steps:
                world.run(step, fault)
                world.check()
        finally:
            world.close()


def test_closing_a_broken_connection_ends_it(tmp_path: Path) -> None:
    """A connection broken by a restart (its unit of work backed out by it): close() raised 2009
    at every try and never ended it, its SQLite connection, get journal and connection row left
    for as long as the process lived (a later release's migration refused the file meanwhile, this
    process counted as connected). Now close() ends it; the twin, a close that fails otherwise,
    still raises."""
    path = tmp_path / "qm.sqlite"
    manager = EmbeddedQueueManager(path, create=True)
    manager.define_queue("Q")
    app = manager.connect("app")
    app.open("Q", output=True).put(MD, b"backed out by the restart", syncpoint=True)
    manager.restart()
    app.close()
    assert app.closed
    app.close()  # a closed connection's close does nothing
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT COUNT(*) FROM connections").fetchone() == (0,)
    assert list((tmp_path / "qm.sqlite-gets").iterdir()) == []
    failing = manager.connect("failing")
    failing._db.execute("CREATE TEMP TRIGGER refused BEFORE DELETE ON opens BEGIN SELECT RAISE(ABORT, 'disk'); END")
    failing.open("Q", input=True)
    with pytest.raises(MQError) as caught:
        failing.close()
    assert caught.value.reason == 2195 and not failing.closed
    failing._db.execute("DROP TRIGGER refused")
    failing.close()  # not left to the collector, which may meet it inside another test's call holding the writer
    assert failing.closed


# -- two processes -------------------------------------------------------------------------------


def _holder_sound(connection: EmbeddedConnection) -> None:
    """While ``connection`` holds the writer (nobody else writes, its flusher kept out by its lock),
    the file's depths plus its changes not yet written are the counts it sees; holding nothing, it
    has no changes."""
    with connection._lock:
        changes = {queue: change for queue, change in connection._depth_changes.items() if change}
        if connection._held is None:
            assert changes == {}
            return
        for queue in ("Q", "R"):
            row = connection._db.execute("SELECT depth FROM curdepths WHERE queue = ?", (queue,)).fetchone()
            assert (0 if row is None else row[0]) + changes.get(queue, 0) == _seen(connection, queue), queue


def _interleaving(path: str, seed: int, calls: int) -> None:
    """One process's ``calls`` calls (0: until it is killed), chosen by ``seed``, each followed by
    :func:`_holder_sound`."""
    choose = random.Random(seed)
    connection = EmbeddedQueueManager(path).connect(f"p{seed}")
    handles = {name: connection.open(name, input=True, output=True, browse=True) for name in ("Q", "R")}
    index = 0
    while index < calls or not calls:
        index += 1
        handle = handles[choose.choice("QR")]
        action = choose.randrange(8)
        try:
            if action < 3:
                md = MQMD(persistence=1, expiry=choose.choice([-1, -1, 1]))
                handle.put(md, b"%d.%d" % (seed, index), syncpoint=choose.random() < 0.6)
            elif action < 5:
                handle.get(syncpoint=choose.random() < 0.6)
            elif action == 5:
                handle.browse_first()
            elif action == 6:
                connection.commit() if choose.random() < 0.7 else connection.backout()
            else:
                time.sleep(0.01)  # expiring puts expire; the flusher writes what is held
        except MQError as error:
            assert error.reason in (2033, 2053), error
        _holder_sound(connection)
    connection.close()


def test_two_processes_interleaving_keep_the_depths_counts(tmp_path: Path) -> None:
    """Two processes put (some expiring, up to MAXDEPTH), get, browse, commit and back out on the
    same queues, each writer's depth changes held in memory until it writes, and one is killed
    (SIGKILL) on the way, its work recovered by the other: each sees, whenever it holds the writer,
    the file's depths plus its own changes equal the counts, and the file's depths are counts at
    the end."""
    path = tmp_path / "qm.sqlite"
    manager = EmbeddedQueueManager(path, create=True)
    manager.define_queue("Q", max_depth=MAX_DEPTH)
    manager.define_queue("R")
    spawn = multiprocessing.get_context("spawn")
    survivor = spawn.Process(target=_interleaving, args=(str(path), 1, 800))
    killed = spawn.Process(target=_interleaving, args=(str(path), 2, 0))
    for process in (survivor, killed):
        process.start()
    time.sleep(1.0)  # both at work (a spawned process takes about half of it to start)
    assert killed.pid is not None
    os.kill(killed.pid, signal.SIGKILL)
    survivor.join(timeout=120)
    killed.join(timeout=60)
    assert (survivor.exitcode, killed.exitcode) == (0, -signal.SIGKILL)
    _sound(path)
    EmbeddedQueueManager(path).close()  # what the survivor did not recover (no call of its took the writer since)
    _sound(path)
    manager.close()
