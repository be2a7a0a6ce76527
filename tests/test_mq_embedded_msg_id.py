"""The MsgIds the embedded queue manager makes: "AMQ ", its name, and 8 bytes of os.urandom, drawn
4 KiB at a time (ams/mq/embedded_md.py random_tail), each handed out once, in threads too, and
never handed out again by a forked child."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from ams.mq import MQMD, EmbeddedQueueManager, embedded_md
from ams.mq.embedded_md import random_tail


def test_msg_ids_are_unique_and_name_their_queue_manager(tmp_path: Path) -> None:
    manager = EmbeddedQueueManager(tmp_path / "qm.sqlite", name="QM1", create=True)
    manager.define_queue("Q")
    queue = manager.connect().open("Q", output=True)
    ids = [queue.put(MQMD(), b"x", syncpoint=True).msg_id for _ in range(1100)]  # more than two draws
    assert len(set(ids)) == len(ids)
    assert all(msg_id[:16] == b"AMQ QM1         " and len(msg_id) == 24 for msg_id in ids)


def test_a_given_msg_id_is_kept(tmp_path: Path) -> None:
    """The twin: a put with a MsgId of its own keeps it; no random bytes replace it."""
    manager = EmbeddedQueueManager(tmp_path / "qm.sqlite", name="QM1", create=True)
    manager.define_queue("Q")
    queue = manager.connect().open("Q", output=True)
    assert queue.put(MQMD(msg_id=b"mine"), b"x").msg_id == b"mine".ljust(24, b"\0")


def test_tails_come_from_os_urandom_and_each_once(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[bytes] = []
    real = os.urandom

    def urandom(size: int) -> bytes:
        drawn.append(real(size))
        return drawn[-1]

    embedded_md._tails.clear()
    monkeypatch.setattr(os, "urandom", urandom)
    tails = [random_tail() for _ in range(1024)]
    assert b"".join(tails) == b"".join(drawn) and [len(draw) for draw in drawn] == [4096, 4096]  # each byte once


def test_threads_never_share_a_tail() -> None:
    embedded_md._tails.clear()
    found: list[list[bytes]] = [[] for _ in range(4)]

    def take(into: list[bytes]) -> None:
        into.extend(random_tail() for _ in range(3000))

    threads = [threading.Thread(target=take, args=(into,)) for into in found]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [tail for into in found for tail in into]
    assert len(set(every)) == len(every) == 12000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_child_does_not_hand_out_its_parents_next_tails() -> None:
    """A child inherits its parent's memory: without the reset at fork, it would make the MsgIds
    the parent makes next."""
    embedded_md._tails.clear()
    random_tail()  # a draw in the parent: 511 tails left in memory
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        os.close(reader)
        os.write(writer, b"".join(random_tail() for _ in range(100)))
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        theirs = pipe.read()
    os.waitpid(child, 0)
    ours = b"".join(random_tail() for _ in range(100))
    assert len(theirs) == 800 and theirs != ours
    assert not {theirs[at : at + 8] for at in range(0, 800, 8)} & {ours[at : at + 8] for at in range(0, 800, 8)}
