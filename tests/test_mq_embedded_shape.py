"""The file's shape counter (ams/mq/embedded_shape.py): what a connection caches about queues, opens
and connections is read again when another process changed them, and not when it only moved
messages. Each change is made by a real other process; no timing is asserted."""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.synchronize
import sqlite3
import time
from pathlib import Path

import pytest

from ams.mq import MQMD, EmbeddedQueueManager, MQError, embedded_unit_of_work, embedded_writer
from ams.mq.embedded_connection import EmbeddedConnection
from ams.mq.embedded_shape import shape_version

SPAWN = multiprocessing.get_context("spawn")


def _shape(path: Path) -> int | None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return shape_version(db)


def _elsewhere(
    path: str,
    change: str,
    opened: multiprocessing.synchronize.Event | None = None,
    go: multiprocessing.synchronize.Event | None = None,
) -> None:
    """In another process: one change of the file's shape (or, "messages", none); an open for input
    is kept until ``go``."""
    manager = EmbeddedQueueManager(path)
    if change == "redefine":
        manager.define_alias("ALIAS", "Q2")
        manager.define_queue("Q1", put_inhibited=True)
    elif change == "deny":
        manager.deny("Q1", "put")
    elif change == "open for input":
        competitor = manager.connect("competitor")  # kept: a connection dropped is closed
        competitor.open("Q1", input=True)
        assert opened is not None and go is not None
        opened.set()
        assert go.wait(timeout=120)
    elif change == "restart":
        manager.restart()
    elif change == "messages":
        connection = manager.connect("mover")
        connection.put1("Q1", MQMD(), b"theirs", syncpoint=True)
        connection.commit()
        connection.open("Q1", input=True).get(syncpoint=True)
        connection.backout()
        connection.close()  # its connection row goes: a change of shape, after the messages'


def _run(path: Path, change: str) -> None:
    process = SPAWN.Process(target=_elsewhere, args=(str(path), change))
    process.start()
    process.join(timeout=120)
    assert process.exitcode == 0


def _world(path: Path) -> EmbeddedConnection:
    manager = EmbeddedQueueManager(path, create=True)
    for queue in ("Q1", "Q2"):
        manager.define_queue(queue, max_depth=1000)
    manager.define_alias("ALIAS", "Q1")
    return manager.connect("cached")


def test_the_shape_moves_with_queues_opens_and_connections_and_not_with_messages(tmp_path: Path) -> None:
    path = tmp_path / "qm.sqlite"
    connection = _world(path)
    queue = connection.open("Q1", output=True)
    before = _shape(path)
    queue.put(MQMD(), b"1", syncpoint=True)
    connection.commit()
    reader = connection.open("Q1", input=True)  # an open for input: a change
    opened = _shape(path)
    assert before is not None and opened is not None and opened > before
    reader.get(syncpoint=True)
    connection.backout()
    reader.get(syncpoint=True)
    connection.commit()
    connection.put1("Q1", MQMD(), b"2")
    assert _shape(path) == opened  # puts, gets, MQCMIT and MQBACK: no change
    steps = [
        lambda: connection.manager.define_queue("Q3"),
        lambda: connection.manager.deny("Q3", "get"),
        reader.close,
        lambda: connection.manager.connect("another"),
        connection.close,
    ]
    for step in steps:
        seen = _shape(path)
        step()
        assert _shape(path) != seen


def test_another_process_redefining_a_queue_is_seen_at_the_next_call(tmp_path: Path) -> None:
    path = tmp_path / "qm.sqlite"
    connection = _world(path)
    connection.put1("ALIAS", MQMD(), b"to Q1")  # the alias's resolution, and Q1's attributes, cached
    assert connection.resolve("ALIAS") == "Q1"
    _run(path, "messages")  # only messages moved (and a connection came and went)
    assert connection.resolve("ALIAS") == "Q1"
    _run(path, "redefine")
    connection.put1("ALIAS", MQMD(), b"to Q2")
    assert connection.resolve("ALIAS") == "Q2"
    with pytest.raises(MQError) as caught:
        connection.put1("Q1", MQMD(), b"refused")
    assert caught.value.reason == 2051  # MQRC_PUT_INHIBITED
    assert [connection.depth("Q1"), connection.depth("Q2")] == [2, 1]  # "to Q1" and "theirs"; "to Q2"
    connection.close()


def test_another_process_denying_a_put_is_seen_at_the_next_call(tmp_path: Path) -> None:
    path = tmp_path / "qm.sqlite"
    connection = _world(path)
    connection.put1("Q1", MQMD(), b"allowed")
    _run(path, "deny")
    with pytest.raises(MQError) as caught:
        connection.put1("Q1", MQMD(), b"denied")
    assert caught.value.reason == 2035  # MQRC_NOT_AUTHORIZED
    connection.close()


def test_another_process_opening_a_queue_for_input_makes_the_next_get_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A single reader keeps its transaction after a get; once another process has the queue open
    for input, the next get writes at its end (the competitor's next get would wait otherwise)."""
    monkeypatch.setattr(embedded_writer, "HOLD_SECONDS", 3600.0)
    monkeypatch.setattr(embedded_unit_of_work, "HOLD_SECONDS", 3600.0)
    monkeypatch.setattr(embedded_unit_of_work, "CONTENDED_SECONDS", 0.0)  # not written for having waited
    path = tmp_path / "qm.sqlite"
    connection = _world(path)
    for body in (b"1", b"2"):
        connection.put1("Q1", MQMD(), body)
    queue = connection.open("Q1", input=True)
    queue.get(syncpoint=True)
    assert connection._held is not None  # alone: kept
    connection.commit()
    opened, go = SPAWN.Event(), SPAWN.Event()
    competitor = SPAWN.Process(target=_elsewhere, args=(str(path), "open for input", opened, go))
    competitor.start()
    assert opened.wait(timeout=120)
    queue.get(syncpoint=True)
    assert connection._held is None  # another process reads the queue: written
    connection.commit()
    go.set()
    competitor.join(timeout=120)
    assert competitor.exitcode == 0
    connection.close()


def test_another_process_breaking_the_connection_is_seen_at_the_next_call(tmp_path: Path) -> None:
    path = tmp_path / "qm.sqlite"
    connection = _world(path)
    connection.put1("Q1", MQMD(), b"message")
    queue = connection.open("Q1", input=True)
    _run(path, "messages")  # its connection came and went, and moved messages: nothing broken
    assert queue.get(syncpoint=True).body == b"message"
    connection.commit()
    connection.put1("Q1", MQMD(), b"second")
    queue.get(syncpoint=True)
    connection.release_writer(wait=True)
    _run(path, "restart")
    with pytest.raises(MQError) as caught:
        connection.commit()
    assert caught.value.reason == 2009  # MQRC_CONNECTION_BROKEN


def test_the_expiry_look_up_is_made_again_only_after_a_put_that_expires(tmp_path: Path) -> None:
    """Another connection's puts without an expiry leave a getter's "nothing expires here" as it was
    (data_version moved, the count of expiring puts did not); one that expires is looked for, and
    discarded once expired, at the getter's next get."""
    path = tmp_path / "qm.sqlite"
    getter = _world(path)
    putter = getter.manager.connect("putter")
    for body in (b"a", b"b", b"c"):
        putter.put1("Q1", MQMD(), body)
    statements: list[str] = []
    getter._db.set_trace_callback(statements.append)
    queue = getter.open("Q1", input=True)
    assert queue.get().body == b"a"
    putter.put1("Q1", MQMD(), b"d")  # another writer, no expiry
    assert queue.get().body == b"b"
    assert len([sql for sql in statements if "min(expires)" in sql]) == 1  # looked at once only
    putter.put1("Q1", MQMD(expiry=1), b"short-lived")
    putter.put1("Q1", MQMD(), b"e")
    time.sleep(0.25)
    assert [queue.get().body, queue.get().body, queue.get().body] == [b"c", b"d", b"e"]
    assert len([sql for sql in statements if "min(expires)" in sql]) > 1
    assert getter.depth("Q1") == 0  # the expired one discarded as the get passed over it
    getter.close()
