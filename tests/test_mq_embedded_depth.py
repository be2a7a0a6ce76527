"""MAXDEPTH with the depth read once per transaction (ams/mq/embedded_connection.py _depth_read):
while the depth last read plus this connection's puts since stays below MAXDEPTH, a put in the
same transaction held does not read it again; at MAXDEPTH, after its own gets, and after a
recovery of a dead process's gets (which puts messages back) it is read, and MQRC 2053 comes at
exactly the put that would pass MAXDEPTH. No timing is asserted: the transaction is held for longer
than the test (HOLD_SECONDS), not raced; each test closes its connections before it ends (one
collected later, its close taking the writer while another test holds it for an hour, would
have the flusher sleep that hour)."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from ams.mq import MQMD, EmbeddedQueueManager, MQError, embedded_unit_of_work, embedded_writer
from ams.mq.embedded import EmbeddedConnection

SPAWN = multiprocessing.get_context("spawn")
MD = MQMD(persistence=1)


def _hold_for_ever() -> None:
    """The writer is held between calls until the process writes it itself (no flusher write)."""
    embedded_writer.HOLD_SECONDS = 3600.0
    embedded_unit_of_work.HOLD_SECONDS = 3600.0  # type: ignore[attr-defined]  # imported there by name


def _manager(path: Path | str, max_depth: int = 3) -> EmbeddedQueueManager:
    manager = EmbeddedQueueManager(path, create=True)
    manager.define_queue("Q", max_depth=max_depth)
    manager.define_queue("OTHER")
    return manager


def _depth_reads(connection: EmbeddedConnection) -> list[str]:
    reads: list[str] = []
    connection._db.set_trace_callback(lambda sql: reads.append(sql) if "FROM curdepths" in sql else None)
    return reads


def test_a_put_in_the_transaction_held_reads_the_depth_once_until_it_could_be_full(tmp_path: Path, held: None) -> None:
    connection = _manager(tmp_path / "qm.sqlite").connect("app")
    queue = connection.open("Q", output=True)
    reads = _depth_reads(connection)
    queue.put(MD, b"1", syncpoint=True)
    queue.put(MD, b"2", syncpoint=True)
    queue.put(MD, b"3", syncpoint=True)
    assert len(reads) == 1  # 0 read, then 0 + 1 and 0 + 2 below 3
    with pytest.raises(MQError) as caught:
        queue.put(MD, b"4", syncpoint=True)
    assert caught.value.reason == 2053 and len(reads) == 2  # 0 + 3: read, found full
    connection.commit()
    assert connection.depth("Q") == 3
    connection.close()  # now, not by the collector in a later test (ams/mq/embedded_writer.py's flusher)


def test_gets_in_the_same_transaction_make_room_read_at_the_next_put(tmp_path: Path, held: None) -> None:
    """The twin: the bound is not a count: a get lowered the depth, the put near MAXDEPTH reads it
    and is accepted, and the one after is refused."""
    connection = _manager(tmp_path / "qm.sqlite").connect("app")
    queue = connection.open("Q", output=True, input=True)
    queue.put(MD, b"1")
    queue.put(MD, b"2")  # outside syncpoint: each written at once; then one transaction
    queue.put(MD, b"3", syncpoint=True)  # 2 read: full now
    queue.get(syncpoint=True)  # under syncpoint, not counted: depth 2
    queue.put(MD, b"4", syncpoint=True)  # 2 + 1 is MAXDEPTH: read, 2, accepted
    with pytest.raises(MQError) as caught:
        queue.put(MD, b"5", syncpoint=True)
    assert caught.value.reason == 2053
    connection.commit()
    assert connection.depth("Q") == 3
    connection.close()  # now, not by the collector in a later test (ams/mq/embedded_writer.py's flusher)


def _get_written_and_end(path: str, commit: bool) -> None:
    _hold_for_ever()
    connection = _manager(path).connect("doomed")
    connection.open("Q", input=True).get(syncpoint=True)
    if commit:
        connection.commit()
    else:
        connection.release_writer(wait=True)  # what the flusher does after HOLD_SECONDS
    os.kill(os.getpid(), signal.SIGKILL)


def _recovered_in_a_held_transaction(path: Path, commit: bool) -> EmbeddedConnection:
    """Two messages on Q (MAXDEPTH 3), one on OTHER; another process gets one of Q's, its get
    written, and is killed (``commit``: after MQCMIT). Then one transaction: a put to Q (depth read:
    1), a browse of OTHER (which recovers the dead process: its message back on Q unless committed)."""
    manager = _manager(path)
    filler = manager.connect("filler")
    for queue, body in (("Q", b"poison"), ("Q", b"other"), ("OTHER", b"elsewhere")):
        filler.put1(queue, MD, body)
    filler.close()  # now: dropped at the return, its close would write the transaction below first
    connection = manager.connect("app")
    process = SPAWN.Process(target=_get_written_and_end, args=(str(path), commit))
    process.start()
    process.join(timeout=120)
    assert process.exitcode == -signal.SIGKILL
    connection.open("Q", output=True).put(MD, b"mine", syncpoint=True)
    connection.open("OTHER", browse=True).browse_first()  # a get would write the transaction, yielding it
    assert connection._held is not None  # still the transaction of the put
    return connection


def test_a_recovery_in_the_transaction_held_is_counted_before_the_next_put(tmp_path: Path, held: None) -> None:
    """The dead process's get is backed out inside this transaction: Q holds 3 (poison, other,
    mine), and the next put is refused although 1 read + 1 put was below MAXDEPTH."""
    connection = _recovered_in_a_held_transaction(tmp_path / "qm.sqlite", commit=False)
    with pytest.raises(MQError) as caught:
        connection.open("Q", output=True).put(MD, b"too many", syncpoint=True)
    assert caught.value.reason == 2053
    connection.commit()
    assert connection.depth("Q") == 3
    connection.close()  # now, not by the collector in a later test (ams/mq/embedded_writer.py's flusher)


def test_a_dead_process_that_committed_leaves_room(tmp_path: Path, held: None) -> None:
    """The twin: the dead process committed its get; nothing comes back, and the put is accepted."""
    connection = _recovered_in_a_held_transaction(tmp_path / "qm.sqlite", commit=True)
    connection.open("Q", output=True).put(MD, b"fits", syncpoint=True)
    connection.commit()
    assert connection.depth("Q") == 3
    connection.close()  # now, not by the collector in a later test (ams/mq/embedded_writer.py's flusher)
