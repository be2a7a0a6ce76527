"""Attacks on the rows kept in the transaction held (ams/mq/embedded_kept.py): a restore that fails
part way (a full disk, played by a trigger that refuses one body), a holder's failing write met
by another connection of the process, and a write racing a browse. The transaction is held for
longer than each test (HOLD_SECONDS): no timing is asserted."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from ams.mq import MQMD, EmbeddedQueueManager, MQError, NoMessageAvailable, embedded_unit_of_work, embedded_wanted
from ams.mq.embedded import EmbeddedConnection
from ams.mq.embedded_queue import EmbeddedQueue
from ams.mq.embedded_schema import INLINE_BODY_BYTES
from ams.mq.embedded_shape import versions
from ams.mq.transport import Match

MD = MQMD(persistence=1)


# what the second message's restore fails to write: its row, its body kept there (INLINE_BODY_BYTES); or
# its body, in the bodies table, after its row
REFUSED = pytest.mark.parametrize("refused", [b"refused", b"refused".ljust(INLINE_BODY_BYTES + 1, b".")], ids=len)


TABLES = ("messages", "bodies")


def _refusing(body: bytes) -> tuple[str, ...]:
    """The inserts of ``body`` into the messages' or the bodies' table (for :func:`_disk_full`)."""
    return tuple(f"BEFORE INSERT ON {table} WHEN NEW.body = CAST('{body.decode()}' AS BLOB)" for table in TABLES)


# MQBACK's last write: the get journal's generation, raised with the messages' return
SETTLING = "BEFORE UPDATE OF settled ON connections WHEN 1"


def _disk_full(path: Path, *writes: str) -> None:
    """The ``writes`` (a trigger's event and condition) fail as on a full disk, until :func:`_disk_free`."""
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE disk (full INTEGER)")
        db.execute("INSERT INTO disk VALUES (1)")
        for number, write in enumerate(writes):
            db.execute(
                f"CREATE TRIGGER disk_full_{number} {write} AND (SELECT full FROM disk) "
                "BEGIN SELECT RAISE(ABORT, 'disk is full'); END"
            )


def _disk_free(db: sqlite3.Connection) -> None:
    db.execute("UPDATE disk SET full = 0")


def _after_a_failed_mqback(
    tmp_path: Path, second: bytes, *refused: str
) -> tuple[EmbeddedQueueManager, EmbeddedConnection, EmbeddedQueue]:
    """Messages ``a`` and ``second`` got under syncpoint, an MQBACK failing at one of the writes
    ``refused`` (MQRC 2195), the disk free again."""
    path = tmp_path / "qm.sqlite"
    manager = EmbeddedQueueManager(path, create=True)
    manager.define_queue("Q")
    app = manager.connect("app")
    queue = app.open("Q", input=True, output=True)
    queue.put(MD, b"a")
    queue.put(MD, second)
    _disk_full(path, *refused)
    assert queue.get(syncpoint=True).body == b"a"
    assert queue.get(syncpoint=True).body == second
    with pytest.raises(MQError) as caught:
        app.backout()
    assert caught.value.reason == 2195
    _disk_free(app._db)
    return manager, app, queue


@REFUSED
def test_an_mqcmit_after_a_failed_mqback_delivers_nothing_again(tmp_path: Path, held: None, refused: bytes) -> None:
    """MQBACK's restore of the rows kept fails at the second body: the first row, inserted again as
    taken, must not stay behind. It did: MQCMIT then left it taken, and the close backed it out,
    a committed get delivered a second time."""
    manager, app, _ = _after_a_failed_mqback(tmp_path, refused, *_refusing(refused))
    app.commit()  # the unit of work went on: both gets final
    app.close()
    other = manager.connect("other")
    with pytest.raises(NoMessageAvailable):
        other.open("Q", input=True).get()
    assert other.depth("Q") == 0
    other.close()


@REFUSED
def test_an_mqback_after_a_failed_mqback_returns_every_message(tmp_path: Path, held: None, refused: bytes) -> None:
    """The twin: MQBACK again, the disk free, returns both messages, counted once (it failed on
    the half-restored row's id, UNIQUE constraint, at every try)."""
    _, app, queue = _after_a_failed_mqback(tmp_path, refused, *_refusing(refused))
    app.backout()
    got = [queue.get() for _ in range(2)]
    assert [(m.body, m.md.backout_count) for m in got] == [(b"a", 1), (refused, 1)]
    app.close()


def test_an_mqcmit_after_an_mqback_that_could_not_settle_its_journal_commits_the_gets(
    tmp_path: Path, held: None
) -> None:
    """The MQBACK that failed at the journal's generation is undone whole: the unit of work goes
    on as it was, and MQCMIT makes its gets final. Its messages stayed returned (backout count 1)
    with the journal unsettled: MQCMIT left them on the queue, and a death of the process before
    the journal was emptied would have raised their counts a second time."""
    manager, app, _ = _after_a_failed_mqback(tmp_path, b"b", SETTLING)
    app.commit()
    app.close()
    other = manager.connect("other")
    assert other.depth("Q") == 0
    with pytest.raises(NoMessageAvailable):
        other.open("Q", input=True).get()
    other.close()


def test_an_mqback_after_one_that_could_not_settle_its_journal_counts_each_message_once(
    tmp_path: Path, held: None
) -> None:
    """The twin: MQBACK again, the disk free, returns both messages with a backout count of 1."""
    _, app, queue = _after_a_failed_mqback(tmp_path, b"b", SETTLING)
    app.backout()
    got = [queue.get() for _ in range(2)]
    assert [(m.body, m.md.backout_count) for m in got] == [(b"a", 1), (b"b", 1)]
    app.close()


@REFUSED
def test_another_connections_call_is_not_failed_by_the_holders_failing_restore(
    tmp_path: Path, held: None, refused: bytes
) -> None:
    """Another connection of the process has the holder write first (release_others); the holder's
    restore fails: the holder is broken (2009 at its next call), its get backed out and counted, and
    the other connection's call goes on. It failed with the holder's 2195 (release_writer raises
    MQError, which release_others did not expect)."""
    path = tmp_path / "qm.sqlite"
    manager = EmbeddedQueueManager(path, create=True)
    manager.define_queue("Q")
    app, other = manager.connect("app"), manager.connect("other")
    queue = app.open("Q", input=True, output=True)
    queue.put(MD, refused)
    _disk_full(path, *_refusing(refused))
    assert queue.get(syncpoint=True).body == refused
    assert other.depth("Q") == 1  # the holder's write failed: its unit of work is lost, the message back
    with pytest.raises(MQError) as caught:
        queue.get(syncpoint=True)
    assert caught.value.reason == 2009
    got = other.open("Q", input=True).get()
    assert (got.body, got.md.backout_count) == (refused, 1)
    other.close()


def test_a_browse_raced_by_a_write_sees_what_others_committed(
    tmp_path: Path, held: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The browse's bound (below its own puts inserted visible) was read before its lock: a write in
    between (the flusher, another thread's connection) marks those puts, another connection puts
    above them and commits, and the browse passed over that committed message (2033)."""
    from ams.mq import embedded_connection, embedded_schema

    manager = EmbeddedQueueManager(tmp_path / "qm.sqlite", create=True)
    manager.define_queue("Q")
    app, other = manager.connect("app"), manager.connect("other")
    queue = app.open("Q", browse=True, output=True)
    queue.put(MD, b"mine", syncpoint=True)  # visible in the transaction held: its id bounds the browse
    matching = embedded_schema._matching  # what the browse calls before taking its lock

    def raced(match: Match) -> tuple[str, str, tuple[object, ...]]:  # the flusher, or another thread, writes here
        monkeypatch.setattr(embedded_connection, "_matching", matching)
        other.open("Q", output=True).put(MD, b"theirs")
        return matching(match)

    monkeypatch.setattr(embedded_connection, "_matching", raced)
    assert queue.browse_first().body == b"theirs"
    app.close()
    other.close()


class _Interrupted(list[object]):
    """A list of the unit of work whose next append is interrupted (Ctrl-C, a signal handler that
    raises): the row deleted or inserted just before, its record in memory missing."""

    def append(self, item: object) -> None:
        raise KeyboardInterrupt


def test_a_get_interrupted_after_its_delete_loses_no_message(tmp_path: Path, held: None) -> None:
    """The kept list is the only record of a row a get deleted in the transaction held: interrupted
    before it is listed, an MQBACK (here: close) committed the delete, and the message was gone."""
    manager = EmbeddedQueueManager(tmp_path / "qm.sqlite", create=True)
    manager.define_queue("Q")
    app, other = manager.connect("app"), manager.connect("other")
    queue = app.open("Q", input=True, output=True)
    queue.put(MD, b"first")
    queue.put(MD, b"second")
    assert queue.get(syncpoint=True).body == b"first"  # kept, listed
    app._kept = _Interrupted(app._kept)  # type: ignore[assignment]
    with pytest.raises(KeyboardInterrupt):
        queue.get(syncpoint=True)
    with pytest.raises(MQError) as caught:  # the unit of work is lost with the call: the connection broken
        app.backout()
    assert caught.value.reason == 2009
    reader = other.open("Q", input=True)
    got = [reader.get() for _ in range(2)]
    assert [(m.body, m.md.backout_count) for m in got] == [(b"first", 1), (b"second", 1)]
    other.close()


def test_a_put_interrupted_after_its_insert_publishes_nothing(tmp_path: Path, held: None) -> None:
    """The twin for a put: its row inserted visible in the transaction held, interrupted before it
    is listed, was never marked put, and an MQBACK committed it as a message put outside syncpoint."""
    manager = EmbeddedQueueManager(tmp_path / "qm.sqlite", create=True)
    manager.define_queue("Q")
    app, other = manager.connect("app"), manager.connect("other")
    queue = app.open("Q", input=True, output=True)
    queue.put(MD, b"uncommitted", syncpoint=True)
    app._visible = _Interrupted(app._visible)  # type: ignore[assignment]
    with pytest.raises(KeyboardInterrupt):
        queue.put(MD, b"interrupted", syncpoint=True)
    with pytest.raises(MQError) as caught:
        app.backout()
    assert caught.value.reason == 2009
    with pytest.raises(NoMessageAvailable):
        other.open("Q", input=True).get()
    assert other.depth("Q") == 0
    other.close()


def test_a_write_interrupted_as_it_restores_loses_the_unit_of_work_not_the_connection_s_writer(
    tmp_path: Path, held: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted inside the write before MQCMIT (the kept rows restored, the puts not yet marked),
    the transaction stayed open with the connection no longer counting itself its holder: every
    later call failed to begin one (2195), and other processes waited on its lock for ever. Now the
    transaction is rolled back, the unit of work lost with it (its get counted) and the connection
    broken (2009)."""

    def interrupted(*_: object) -> list[tuple[int, str, int]]:
        raise KeyboardInterrupt

    manager = EmbeddedQueueManager(tmp_path / "qm.sqlite", create=True)
    manager.define_queue("Q")
    app, other = manager.connect("app"), manager.connect("other")
    queue = app.open("Q", input=True, output=True)
    queue.put(MD, b"got")
    assert queue.get(syncpoint=True).body == b"got"
    queue.put(MD, b"uncommitted", syncpoint=True)
    monkeypatch.setattr(embedded_unit_of_work, "mark_put", interrupted)
    with pytest.raises(KeyboardInterrupt):
        app.release_writer(wait=True)
    with pytest.raises(MQError) as caught:
        app.backout()
    assert caught.value.reason == 2009
    got = other.open("Q", input=True).get()
    assert (got.body, got.md.backout_count) == (b"got", 1)
    with pytest.raises(NoMessageAvailable):
        other.open("Q", input=True).get()
    other.close()


def test_a_transaction_begun_but_failing_before_it_is_held_is_not_left_open(
    tmp_path: Path, held: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read failing just after BEGIN IMMEDIATE (an I/O error, an interrupt) left the transaction
    open while the connection counted itself no holder: each later call failed to begin (2195:
    "cannot start a transaction within a transaction"), close could not back out, and other
    processes waited on the writer it kept. Now it is rolled back, and the next call works."""
    manager = EmbeddedQueueManager(tmp_path / "qm.sqlite", create=True)
    manager.define_queue("Q")
    app = manager.connect("app")
    queue = app.open("Q", input=True, output=True)

    def failing(db: sqlite3.Connection) -> tuple[int, int | None, int | None]:
        monkeypatch.setattr(embedded_unit_of_work, "versions", versions)
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(embedded_unit_of_work, "versions", failing)
    with pytest.raises(MQError) as caught:
        queue.put(MD, b"refused")
    assert caught.value.reason == 2195
    queue.put(MD, b"after")
    other = manager.connect("other")
    assert other.open("Q", input=True).get().body == b"after"
    other.close()
    app.close()


class _InterruptedAsItReturns:
    """A connection's shared cursor (UnitOfWork._rows) whose next SELECT is interrupted as its
    execute returns, before the row is fetched (a signal handler that raises, run by the
    interpreter's check after a C call): the statement is left stepped, not reset."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self.cursor, self.armed = cursor, True

    def execute(self, statement: str, arguments: tuple[object, ...] = ()) -> sqlite3.Cursor:
        result = self.cursor.execute(statement, arguments)
        if self.armed and statement.startswith("SELECT"):
            self.armed = False
            raise KeyboardInterrupt
        return result

    def __getattr__(self, name: str) -> object:
        return getattr(self.cursor, name)


@pytest.mark.parametrize("syncpoint", [False, True])
def test_a_get_interrupted_before_its_fetch_leaves_no_read_open_on_its_connection(
    tmp_path: Path, held: None, monkeypatch: pytest.MonkeyPatch, syncpoint: bool
) -> None:
    """The get's SELECT runs on the connection's one cursor: interrupted between its execute and
    its fetch, the statement stayed open on it after the call's ROLLBACK, keeping a read snapshot;
    once another connection wrote, each later call of this one waited BUSY_TIMEOUT_SECONDS for
    a writer it could never take (SQLITE_BUSY_SNAPSHOT), then failed with 2195, for the
    connection's life (a cursor of its own per statement was reset as it was dropped). Now the
    call's failure resets it, and the connection gets every message, the interrupted one too."""
    monkeypatch.setattr(embedded_wanted, "BUSY_TIMEOUT_SECONDS", 1)  # failing: 2195 after 1 s, not 30
    manager = EmbeddedQueueManager(tmp_path / "qm.sqlite", create=True)
    manager.define_queue("Q")
    app, other = manager.connect("app"), manager.connect("other")
    queue = app.open("Q", input=True, output=True)
    queue.put(MD, b"first")
    app._rows = _InterruptedAsItReturns(app._rows)  # type: ignore[assignment]
    with pytest.raises(KeyboardInterrupt):
        queue.get(syncpoint=syncpoint)
    other.open("Q", output=True).put(MD, b"second")  # written: the interrupted read's snapshot is stale
    assert [queue.get(syncpoint=syncpoint).body for _ in range(2)] == [b"first", b"second"]
    app.commit()
    assert other.depth("Q") == 0
    app.close()
    other.close()
