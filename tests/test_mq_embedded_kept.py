"""A unit of work's rows left as MQCMIT will leave them while its transaction is held
(ams/mq/embedded_kept.py): a get under syncpoint deletes its row, a put inserts its row visible;
both are marked (taken, put pending) before anything but MQCMIT writes the transaction. What an
application observes must be exactly what marking every row at once gave: its own uncommitted
puts never got, browsed or matched; MQBACK returning every message got, its BackoutCount raised
and its MQMD and place in the queue kept; the file, once written before MQCMIT, holding the same
rows a marked get and put would have left. The transaction is held for longer than each test
(HOLD_SECONDS), not raced: no timing is asserted."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ams.mq import MQMD, EmbeddedQueueManager, NoMessageAvailable
from ams.mq.embedded import EmbeddedConnection
from ams.mq.embedded_queue import EmbeddedQueue
from ams.mq.embedded_schema import GOT_PENDING, PUT_PENDING, VISIBLE
from ams.mq.mqmd import MD_FIELDS

MD = MQMD(persistence=1)


def _manager(path: Path) -> EmbeddedQueueManager:
    manager = EmbeddedQueueManager(path, create=True)
    manager.define_queue("Q")
    return manager


def _app(path: Path) -> tuple[EmbeddedConnection, EmbeddedQueue]:
    """A connection to a new queue manager file at ``path``, and its queue Q open for input and output."""
    app = _manager(path).connect("app")
    return app, app.open("Q", input=True, output=True)


def _state(connection: EmbeddedConnection, message_id: bytes) -> int | None:
    """The state of the message's row as the connection's own transaction sees it (None: no row)."""
    row = connection._db.execute("SELECT state FROM messages WHERE msg_id = ?", (message_id,)).fetchone()
    return None if row is None else int(row[0])


def _file_rows(path: Path) -> dict[bytes, tuple[int, str | None, int, bytes]]:
    """What the file holds (committed), by MsgId: state, owner, backout count, body."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute(
            "SELECT m.msg_id, m.state, m.owner, m.backouts, coalesce(b.body, m.body) FROM messages m "
            "LEFT JOIN bodies b ON b.id = m.id"
        ).fetchall()
    return {bytes(r[0]): (int(r[1]), r[2], int(r[3]), bytes(r[4])) for r in rows}


def test_own_uncommitted_puts_are_never_got_browsed_or_matched(tmp_path: Path, held: None) -> None:
    manager = _manager(tmp_path / "qm.sqlite")
    app, other = manager.connect("app"), manager.connect("other")
    queue = app.open("Q", input=True, output=True, browse=True)
    committed = queue.put(MQMD(priority=0), b"committed")
    mine = queue.put(MQMD(priority=9), b"mine", syncpoint=True)  # ahead of the committed one, were it committed
    assert _state(app, mine.msg_id) == VISIBLE  # inserted as MQCMIT will leave it: the path under test
    got = queue.get(syncpoint=True)
    assert (got.body, got.md.msg_id) == (b"committed", committed.msg_id)
    assert _state(app, committed.msg_id) is None  # deleted at the get, kept in memory
    attempts: list[Callable[[], object]] = [
        lambda: queue.get(syncpoint=True),
        lambda: queue.get(msg_id=mine.msg_id, syncpoint=True),
        lambda: queue.browse_first(),
        lambda: queue.browse_first(msg_id=mine.msg_id),
    ]
    for attempt in attempts:
        with pytest.raises(NoMessageAvailable):
            attempt()
    assert _state(app, mine.msg_id) == VISIBLE  # still held: nothing wrote the transaction
    app.commit()
    # the twin: committed, it is got (by another connection, and it was the only one left)
    assert other.open("Q", input=True).get(msg_id=mine.msg_id).body == b"mine"
    with pytest.raises(NoMessageAvailable):
        other.open("Q", input=True).get()
    app.close()
    other.close()


def test_a_write_before_mqcmit_leaves_the_rows_a_marking_get_and_put_leave(tmp_path: Path, held: None) -> None:
    path = tmp_path / "qm.sqlite"
    app, queue = _app(path)
    first = queue.put(MD, b"first")
    queue.put(MD, b"second")
    got = queue.get(syncpoint=True)
    put = queue.put(MD, b"third", syncpoint=True)
    before = _file_rows(path)  # the transaction held is not in the file
    assert before[first.msg_id][:3] == (VISIBLE, None, 0)
    assert put.msg_id not in before
    app.release_writer(wait=True)  # as another process's wait, or the flusher, would write it
    after = _file_rows(path)
    owner = after[first.msg_id][1]
    assert after[first.msg_id] == (GOT_PENDING, owner, 0, b"first") and owner  # taken by the app, body kept
    assert after[put.msg_id] == (PUT_PENDING, owner, 0, b"third")
    assert app.depth("Q") == 2  # second, third (uncommitted puts count; a got message does not)
    # the rest of the unit of work marks its rows at once (another write before MQCMIT is likely)
    queue.get(syncpoint=True)
    assert _state(app, got.md.msg_id) == GOT_PENDING
    app.backout()
    restored = _file_rows(path)
    assert restored[first.msg_id] == (VISIBLE, None, 1, b"first")
    assert put.msg_id not in restored
    assert [queue.get().body for _ in range(2)] == [b"first", b"second"]  # order kept
    app.close()


def test_mqback_of_the_transaction_held_returns_every_message_as_it_was(tmp_path: Path, held: None) -> None:
    path = tmp_path / "qm.sqlite"
    app, queue = _app(path)
    sent = [
        queue.put(MQMD(priority=p, correl_id=bytes([p + 1]) * 24, expiry=36000, persistence=p % 2), f"m{p}".encode())
        for p in (3, 7, 5)
    ]
    depth = app.depth("Q")
    got = [queue.get(syncpoint=True) for _ in sent]
    queue.put(MD, b"uncommitted", syncpoint=True)
    assert all(_state(app, m.md.msg_id) is None for m in got)  # kept in memory, not marked
    app.backout()
    assert app.depth("Q") == depth
    again = [queue.get() for _ in sent]
    assert [m.body for m in again] == [b"m7", b"m5", b"m3"]  # priority order, as before
    for before, after in zip(got, again, strict=True):
        assert after.md.backout_count == before.md.backout_count + 1 == 1
        assert (after.md.msg_id, after.md.correl_id, after.md.priority, after.md.persistence) == (
            before.md.msg_id,
            before.md.correl_id,
            before.md.priority,
            before.md.persistence,
        )
        assert 0 < after.md.expiry <= before.md.expiry
    with pytest.raises(NoMessageAvailable):
        queue.get()
    app.close()


_COLUMNS = "id, queue, md, body, priority, persistent, expires, msg_id, correl_id"  # all but state, owner, backouts


def _columns(path: Path) -> dict[int, tuple[Any, ...]]:
    """Every message row of the file (committed), by id: every column a get's restore must put back."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute(f"SELECT {_COLUMNS}, backouts, (SELECT body FROM bodies b WHERE b.id = m.id) FROM messages m")
        return {int(row[0]): tuple(row[1:]) for row in rows.fetchall()}


_VARIED = [  # priorities above MaxPriority (queued at 9), CorrelIds given and none, expiries, both persistences
    (MQMD(priority=12, correl_id=b"c" * 24, expiry=36000, persistence=1), b"x" * 100),
    (MQMD(priority=4, msg_id=b"given", persistence=0), b""),
    (MQMD(priority=9, correl_id=b"short"), bytes(10_000)),  # its body in the bodies table
    (MQMD(), b"y" * 2048),
]


@pytest.mark.parametrize("end", ["backout", "write"])
def test_a_kept_get_restores_its_row_column_by_column(tmp_path: Path, held: None, end: str) -> None:
    path = tmp_path / "qm.sqlite"
    app, queue = _app(path)
    sent = [queue.put(md, body) for md, body in _VARIED]
    before = _columns(path)
    got = [queue.get(syncpoint=True) for _ in sent]
    assert all(_state(app, m.md.msg_id) is None for m in got)  # kept: the rows are gone from the transaction
    if end == "backout":
        app.backout()
        expected = {row_id: (*row[:8], row[8] + 1, row[9]) for row_id, row in before.items()}  # BackoutCount + 1
    else:
        app.release_writer(wait=True)  # written before MQCMIT: each row back, marked taken
        expected = before
    assert _columns(path) == expected
    assert any(row[7] is None for row in before.values()) and any(row[7] is not None for row in before.values())
    if end == "write":
        app.commit()
        assert _columns(path) == {}
    app.close()


def test_a_row_whose_mqmd_an_earlier_release_stored_as_text_is_marked_not_kept(tmp_path: Path, held: None) -> None:
    path = tmp_path / "qm.sqlite"
    app, queue = _app(path)
    texted, binary = queue.put(MD, b"as text"), queue.put(MD, b"as bytes")
    fields = {name: getattr(texted, name) for name in MD_FIELDS}
    fields["msg_id"], fields["correl_id"] = texted.msg_id.hex(), texted.correl_id.hex()
    app.release_writer(wait=True)
    with contextlib.closing(sqlite3.connect(path)) as db, db:  # as format 6's JSON array, put during a migration
        db.execute("UPDATE messages SET md = ? WHERE msg_id = ?", (json.dumps(list(fields.values())), texted.msg_id))
    before = _columns(path)
    first, second = queue.get(syncpoint=True), queue.get(syncpoint=True)
    assert (first.body, first.md.msg_id) == (b"as text", texted.msg_id)
    assert _state(app, texted.msg_id) == GOT_PENDING  # marked: its restore would need its MQMD's bytes
    assert _state(app, binary.msg_id) is None and second.body == b"as bytes"  # the twin: kept
    app.backout()
    assert _columns(path) == {row_id: (*row[:8], row[8] + 1, row[9]) for row_id, row in before.items()}
    app.close()


def test_messages_beyond_the_bound_are_marked_not_kept(
    tmp_path: Path, held: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ams.mq import embedded_connection

    monkeypatch.setattr(embedded_connection, "KEPT_BYTES", 100)
    manager = _manager(tmp_path / "qm.sqlite")
    app = manager.connect("app")
    queue = app.open("Q", input=True, output=True)
    small, large, last = (queue.put(MD, body) for body in (b"s" * 60, b"l" * 60, b"t" * 30))
    queue.get(syncpoint=True)
    queue.get(syncpoint=True)
    queue.get(syncpoint=True)
    assert _state(app, small.msg_id) is None  # 60 bytes kept
    assert _state(app, large.msg_id) == GOT_PENDING  # 120 would pass the bound: marked
    assert _state(app, last.msg_id) is None  # 90 still within it
    app.commit()
    with pytest.raises(NoMessageAvailable):
        queue.get()
    app.close()


def test_rows_beyond_the_bound_are_marked_not_kept(tmp_path: Path, held: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from ams.mq import embedded_connection

    monkeypatch.setattr(embedded_connection, "KEPT_ROWS", 2)
    manager = _manager(tmp_path / "qm.sqlite")
    app = manager.connect("app")
    queue = app.open("Q", input=True, output=True)
    sent = [queue.put(MD, bytes([n])) for n in range(3)]
    for _ in sent:
        queue.get(syncpoint=True)
    assert [_state(app, m.msg_id) for m in sent] == [None, None, GOT_PENDING]
    app.backout()
    assert [queue.get().md.backout_count for _ in sent] == [1, 1, 1]
    app.close()


# -- the same observations, whatever wrote the transaction when -----------------------------------

_STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 9), st.booleans()),  # priority, under syncpoint
        st.tuples(st.just("get"), st.booleans()),  # under syncpoint
        st.tuples(st.sampled_from(["commit", "backout", "write", "peek", "depth", "own depth"])),
    ),
    max_size=25,
)


class _Model:
    """What MQ promises one connection: committed messages in priority then arrival order; its
    uncommitted puts invisible; MQBACK returns what it got, one more backout each, in place."""

    def __init__(self) -> None:
        self.committed: list[tuple[int, int, bytes, int]] = []  # (-priority, arrival, body, backouts)
        self.got: list[tuple[int, int, bytes, int]] = []
        self.put: list[tuple[int, int, bytes, int]] = []
        self.arrivals = 0

    def add(self, priority: int, body: bytes, syncpoint: bool) -> None:
        self.arrivals += 1
        (self.put if syncpoint else self.committed).append((-priority, self.arrivals, body, 0))

    def take(self, syncpoint: bool) -> tuple[bytes, int] | None:
        if not self.committed:
            return None
        first = min(self.committed)
        self.committed.remove(first)
        if syncpoint:
            self.got.append(first)
        return first[2], first[3]

    def end(self, commit: bool) -> None:
        if commit:
            self.committed += self.put
        else:
            self.committed += [(p, a, b, n + 1) for p, a, b, n in self.got]
        self.got, self.put = [], []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=_STEPS)
def test_what_the_connection_observes_matches_mq_whenever_the_transaction_is_written(
    tmp_path_factory: pytest.TempPathFactory, held: None, steps: list[tuple[object, ...]]
) -> None:
    manager = _manager(tmp_path_factory.mktemp("kept") / "qm.sqlite")
    app, observer = manager.connect("app"), manager.connect("observer")
    queue = app.open("Q", input=True, output=True)
    model = _Model()
    for number, step in enumerate(steps):
        if step[0] == "put":
            body = f"{number}".encode()
            queue.put(MQMD(priority=int(step[1])), body, syncpoint=bool(step[2]))  # type: ignore[call-overload]
            model.add(int(step[1]), body, bool(step[2]))  # type: ignore[call-overload]
        elif step[0] == "get":
            expected = model.take(bool(step[1]))
            if expected is None:
                with pytest.raises(NoMessageAvailable):
                    queue.get(syncpoint=bool(step[1]))
            else:
                message = queue.get(syncpoint=bool(step[1]))
                assert (message.body, message.md.backout_count) == expected
        elif step[0] in ("commit", "backout"):
            (app.commit if step[0] == "commit" else app.backout)()
            model.end(step[0] == "commit")
        elif step[0] == "write":
            app.release_writer(wait=True)
        elif step[0] == "peek":  # another connection of the process: the held transaction is written first
            first = min(model.committed)[2] if model.committed else None
            try:
                seen: bytes | None = observer.open("Q", browse=True).browse_first().body
            except NoMessageAvailable:
                seen = None
            assert seen == first
        elif step[0] == "own depth":  # read in the transaction held, its calls' changes not written yet
            assert app.depth("Q") == len(model.committed) + len(model.put)
        else:
            assert observer.depth("Q") == len(model.committed) + len(model.put)
    app.close()  # backs out: what it got returns
    model.end(commit=False)
    assert observer.depth("Q") == len(model.committed)
    observer.close()
