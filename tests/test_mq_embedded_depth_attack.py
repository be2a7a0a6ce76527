"""Attacks on the depths of file format 8, kept by the writers (a connection's calls count their
changes in memory and write them with their transaction; MQBACK, recovery and restart write theirs
at once): after each, the file's kept depth of every queue must equal its rows' count (state 0 or
1), MQINQ CURDEPTH must say so, and MAXDEPTH must refuse a put exactly at it. Faults are played by
triggers that refuse a write as a full disk does (statement-level, as SQLITE_FULL may be), and the
transaction is held for longer than each test (HOLD_SECONDS): no timing is asserted."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from ams.mq import MQMD, EmbeddedQueueManager, MQError

MD = MQMD(persistence=1)


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
