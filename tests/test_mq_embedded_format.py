"""The embedded queue manager's MQMD as stored since format 6 (a JSON array in a fixed field order),
rows of format 5 (a JSON object) still read, and the expiry scan skipped only while provably
nothing on the queue expires."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from pathlib import Path

import attrs
import pytest

from ams.mq import MQMD, EmbeddedQueueManager, MQError, NoMessageAvailable
from ams.mq.embedded_schema import _MD_ORDER, _SCHEMA_VERSION

RICH = MQMD(
    format="MQSTR",
    persistence=1,
    priority=7,
    correl_id=b"correl".ljust(24, b"\0"),
    reply_to_q="REPLY.Q",
    reply_to_qmgr="QM2",
    user_identifier="alice",
    msg_type=1,
)


def _manager(path: Path) -> EmbeddedQueueManager:
    manager = EmbeddedQueueManager(path, create=True)
    manager.define_queue("Q")
    return manager


def _stored(path: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [text for (text,) in db.execute("SELECT md FROM messages ORDER BY id")]


def _received(md: MQMD) -> MQMD:
    """What a get returns of a message put with ``md``: its values used, its BackoutCount."""
    return attrs.evolve(md, persistence=1, priority=7)


def test_the_mqmd_is_stored_as_an_array_in_a_fixed_order_and_read_back_whole(tmp_path: Path) -> None:
    path = tmp_path / "qm.sqlite"
    connection = _manager(path).connect("app")
    put = connection.put1("Q", RICH, b"body")
    (text,) = _stored(path)
    values = json.loads(text)
    assert isinstance(values, list) and len(values) == len(_MD_ORDER)
    assert dict(zip(_MD_ORDER, values, strict=True))["reply_to_q"] == "REPLY.Q"
    got = connection.open("Q", input=True).get()
    assert got.md == _received(put) and got.md.put_appl_name == "app" and got.md.correl_id == RICH.correl_id
    assert put.persistence == RICH.persistence and put.priority == RICH.priority  # MQPUT's output MQMD


def test_rows_of_format_5_are_read_and_the_file_is_marked_6(tmp_path: Path) -> None:
    """A file written by the release of format 5 (the MQMD a JSON object): opened by this one, its
    messages come back with every field, and messages put since are arrays."""
    path = tmp_path / "qm.sqlite"
    manager = _manager(path)
    put = [manager.connect("app").put1("Q", RICH, b"old %d" % index) for index in range(2)]
    manager.close()
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        for row_id, text in db.execute("SELECT id, md FROM messages").fetchall():
            as_object = dict(zip(_MD_ORDER, json.loads(text), strict=True))  # what format 5 wrote
            db.execute("UPDATE messages SET md = ? WHERE id = ?", (json.dumps(as_object), row_id))
        db.execute("PRAGMA user_version = 5")
    assert all(text.startswith("{") for text in _stored(path))
    reopened = EmbeddedQueueManager(path)
    connection = reopened.connect("new")
    connection.put1("Q", RICH, b"new")
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (_SCHEMA_VERSION,) == (6,)
    assert [text[0] for text in _stored(path)] == ["{", "{", "["]
    queue = connection.open("Q", input=True)
    assert [queue.get().md for _ in range(2)] == [_received(md) for md in put]
    assert queue.get().body == b"new"


def test_a_release_of_format_5_refuses_a_file_of_format_6(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rejected twin: format 5's reader would take the array for an object; it refuses the file."""
    from ams.mq import embedded

    path = tmp_path / "qm.sqlite"
    _manager(path).connect("app").put1("Q", RICH, b"body")
    monkeypatch.setattr(embedded, "_SCHEMA_VERSION", 5)
    with pytest.raises(MQError) as caught:
        EmbeddedQueueManager(path)
    assert caught.value.reason == 2195 and "format 6" in str(caught.value)


def test_the_expiry_scan_is_skipped_only_while_nothing_on_the_queue_expires(tmp_path: Path) -> None:
    """A getter that found no expiring message stops looking for them, until another connection
    writes (here: puts one that expires) or it puts one itself; then an expired message it passes
    over is discarded, as MQ does, not left counting towards CURDEPTH."""
    path = tmp_path / "qm.sqlite"
    manager = _manager(path)
    getter, putter = manager.connect("getter"), manager.connect("putter")
    for body in (b"a", b"b", b"c"):
        putter.put1("Q", MQMD(), body)
    statements: list[str] = []
    getter._db.set_trace_callback(statements.append)
    queue = getter.open("Q", input=True, output=True)
    assert queue.get().body == b"a"
    assert queue.get().body == b"b"
    scans = [sql for sql in statements if "min(expires)" in sql]
    assert len(scans) == 1  # looked once: nothing expires, and nobody else wrote since
    putter.put1("Q", MQMD(expiry=1), b"short-lived")
    putter.put1("Q", MQMD(), b"d")
    time.sleep(0.25)
    assert queue.get().body == b"c"
    assert queue.get().body == b"d"  # passed over the expired one...
    assert getter.depth("Q") == 0  # ...and discarded it
    with pytest.raises(NoMessageAvailable):
        queue.get()  # the queue has no message that expires again: not looked at from here
    queue.put(MQMD(expiry=1), b"mine")  # this connection's own: no other writer to tell it
    time.sleep(0.25)
    with pytest.raises(NoMessageAvailable):
        queue.get()
    assert getter.depth("Q") == 0
