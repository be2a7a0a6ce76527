"""Who waits for the embedded queue manager's writer (ams/mq/embedded_wanted.py): the lock file
beside the queue manager's file, private and never through a link; a waiting process's lock seen
by other processes only, counted per thread, and gone with the process that dies holding it; and a
get under syncpoint written at once while another process reads the same queue.

Real processes (spawn) play the others; no timing is asserted: a writer never given up shows as
MQRC 2195 after SQLite's 30 s, not as a slow test."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import os
import signal
from pathlib import Path

import pytest

from ams.errors import ConfigurationError
from ams.mq import MQMD, EmbeddedQueueManager, embedded_unit_of_work, embedded_writer
from ams.mq.embedded_wanted import WriterWanted, wanted_path

SPAWN = multiprocessing.get_context("spawn")
MD = MQMD(persistence=1)


def _manager(path: Path | str) -> EmbeddedQueueManager:
    manager = EmbeddedQueueManager(path, create=True)
    manager.define_queue("Q", max_depth=1000)
    return manager


def _wanted(manager: EmbeddedQueueManager) -> WriterWanted:
    assert manager._wanted is not None
    return manager._wanted


# -- the lock file ------------------------------------------------------------------------------------


def test_the_lock_file_is_private_and_only_a_file_beside_the_queue_manager(tmp_path: Path) -> None:
    path = tmp_path / "qm.sqlite"
    _manager(path)
    found = os.lstat(wanted_path(path))
    assert wanted_path(path) == tmp_path / "qm.sqlite-writer"
    assert oct(found.st_mode & 0o777) == "0o600" and found.st_uid == os.geteuid()
    assert EmbeddedQueueManager()._wanted is None  # in memory: one process only, no file


@pytest.mark.parametrize("dangling", [False, True])
def test_a_lock_file_that_is_a_link_is_refused(tmp_path: Path, dangling: bool) -> None:
    """Whoever could lock the file would have every holder write at each call: a planted link
    (to a file of the attacker's, or to nowhere, which would be created) is refused, not followed."""
    path = tmp_path / "qm.sqlite"
    target = tmp_path / "elsewhere"
    if not dangling:
        target.write_bytes(b"not ours to touch")
    wanted_path(path).symlink_to(target)
    with pytest.raises(ConfigurationError, match=r"writer lock file .*it is a symbolic link"):
        EmbeddedQueueManager(path, create=True)
    assert (not target.exists()) if dangling else target.read_bytes() == b"not ours to touch"


def test_a_lock_file_others_may_use_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "qm.sqlite"
    _manager(path)
    wanted_path(path).chmod(0o644)
    with pytest.raises(ConfigurationError, match=r"group or others may use it \(mode 0644\).*chmod 600"):
        EmbeddedQueueManager(path)
    wanted_path(path).chmod(0o600)
    EmbeddedQueueManager(path).close()  # its twin: the private file is accepted


@pytest.mark.skipif(os.geteuid() != 0, reason="making a file someone else's needs root")
def test_a_lock_file_someone_else_owns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "qm.sqlite"
    _manager(path)
    os.chown(wanted_path(path), 4242, -1)
    with pytest.raises(ConfigurationError, match="owned by uid 4242"):
        EmbeddedQueueManager(path)


# -- a waiting process's lock -------------------------------------------------------------------------


def _wait_for_ever(path: str, times: int, locked: multiprocessing.synchronize.Event) -> None:
    """Play a process whose threads wait for the writer (``times`` of them started, one stopped)."""
    wanted = _wanted(EmbeddedQueueManager(path))
    for _ in range(times):
        wanted.waits()
    wanted.waited()
    locked.set()
    signal.pause()  # until killed


def _start_waiter(path: Path, times: int) -> multiprocessing.process.BaseProcess:
    locked = SPAWN.Event()
    process = SPAWN.Process(target=_wait_for_ever, args=(str(path), times, locked))
    process.start()
    assert locked.wait(timeout=120)
    return process


def test_another_process_waiting_is_heard_and_its_death_releases_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our own waiting threads are not another process's; another process's wait is heard while
    one of its threads still waits (two started, one done), and no longer once it was killed
    holding the lock: nothing is left that would make every holder write for ever."""
    path = tmp_path / "qm.sqlite"
    wanted = _wanted(_manager(path))
    wanted.waits()
    assert not wanted.by_others()
    wanted.waited()
    process = _start_waiter(path, 2)
    assert wanted.by_others()
    os.kill(process.pid or 0, signal.SIGKILL)
    process.join(timeout=60)
    assert not wanted.by_others()
    # and a unit of work keeps the writer between its calls again (HOLD_SECONDS made longer than the test)
    monkeypatch.setattr(embedded_writer, "HOLD_SECONDS", 3600.0)
    monkeypatch.setattr(embedded_unit_of_work, "HOLD_SECONDS", 3600.0)
    connection = EmbeddedQueueManager(path).connect("after")
    connection.open("Q", output=True).put(MD, b"kept", syncpoint=True)
    connection.release_writer(wait=False)  # what the flusher does: nobody waits, nothing to write
    assert connection._held is not None
    connection.commit()
    assert connection._held is None and connection.depth("Q") == 1


def test_a_waiter_whose_last_thread_stopped_is_not_heard(tmp_path: Path) -> None:
    path = tmp_path / "qm.sqlite"
    wanted = _wanted(_manager(path))
    process = _start_waiter(path, 1)  # one started, one stopped: it waits no more
    try:
        assert not wanted.by_others()
    finally:
        os.kill(process.pid or 0, signal.SIGKILL)
        process.join(timeout=60)


# -- competing consumers ------------------------------------------------------------------------------


def _reader(path: str, opened: multiprocessing.synchronize.Event, go: multiprocessing.synchronize.Event) -> None:
    """Another process with Q open for input, getting nothing, until told to close it."""
    connection = EmbeddedQueueManager(path).connect("competitor")
    queue = connection.open("Q", input=True)
    opened.set()
    assert go.wait(timeout=120)
    queue.close()
    connection.close()


def test_a_get_is_written_at_once_while_another_process_reads_the_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alone on the queue, a get under syncpoint keeps the writer (HOLD_SECONDS made longer than the
    test); with a competing consumer in another process, it is written at its end, so that the
    other's next get does not wait for our work on the message; alone again, held again."""
    path = tmp_path / "qm.sqlite"
    connection = _manager(path).connect("app")
    for index in range(3):
        connection.put1("Q", MD, b"%d" % index)
    monkeypatch.setattr(embedded_writer, "HOLD_SECONDS", 3600.0)
    monkeypatch.setattr(embedded_unit_of_work, "HOLD_SECONDS", 3600.0)
    # nor after the other process made us wait, or waited for us (only who reads the queue counts here)
    monkeypatch.setattr(embedded_unit_of_work, "CONTENDED_SECONDS", 0.0)
    queue = connection.open("Q", input=True)
    queue.get(syncpoint=True)
    assert connection._held is not None
    opened, go = SPAWN.Event(), SPAWN.Event()
    process = SPAWN.Process(target=_reader, args=(str(path), opened, go))
    process.start()
    assert opened.wait(timeout=120)  # its MQOPEN waited for our writer, which our flusher gave up
    queue.get(syncpoint=True)
    assert connection._held is None
    go.set()
    process.join(timeout=60)
    assert process.exitcode == 0
    queue.get(syncpoint=True)
    assert connection._held is not None
    connection.commit()
    assert connection.depth("Q") == 0
