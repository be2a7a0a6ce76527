"""Connection handles as pymqi and MQ hand them out (issue 18, items 1 and 2): a second connect on
a thread, thread affinity, a disconnected handle, and a worker that meets one.

The pymqi stand-in is checked first against what pymqi itself does (dsuch/pymqi 1.12.11,
code/pymqi/__init__.py), then the adapter over it, then every transport."""

from __future__ import annotations

import contextlib
import gc
import io
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import ams
from ams.mq import MQMD, MQError, connect
from ams.mq.embedded import EmbeddedQueueManager
from ams.mq.proxy.worker import RouteWorker
from ams.mq.pymqi_adapter import PymqiConnection
from tests import fake_ibmmq, fake_pymqi
from tests.mq_transports import Factory, define_test_queues
from tests.proxy_world import make_world

URL = "mq://127.0.0.1(1414)/TESTQM?channel=TEST.SVRCONN"


@pytest.fixture
def pymqi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmbeddedQueueManager]:
    """The stand-in installed as pymqi over a fresh queue manager TESTQM."""
    manager = define_test_queues(EmbeddedQueueManager(tmp_path / "qm.sqlite", name="TESTQM", create=True))
    fake_pymqi.MANAGERS["TESTQM"] = manager
    fake_pymqi.forget_connections()
    monkeypatch.setitem(sys.modules, "pymqi", fake_pymqi)
    monkeypatch.setitem(sys.modules, "ibmmq", None)
    yield manager
    fake_pymqi.forget_connections()


def _put(manager: EmbeddedQueueManager, queue: str, body: bytes) -> None:
    with manager.connect("feeder") as feeder:
        feeder.put1(queue, MQMD(), body)


def test_the_stand_in_connects_as_pymqi_does(pymqi: EmbeddedQueueManager) -> None:
    """pymqi.connect passes MQCNO_NONE: a second connect on the thread is MQCC_WARNING 2002, the
    orphan it made holds the same Hconn and disconnects it when collected, committing the first
    connection's get; after that the first object's calls fail as pymqi's do."""
    _put(pymqi, "T.UOW", b"got under syncpoint")
    first = fake_pymqi.connect("TESTQM", "TEST.SVRCONN", "127.0.0.1(1414)")
    queue = fake_pymqi.Queue(first, "T.UOW", fake_pymqi.CMQC.MQOO_INPUT_SHARED)
    queue.get(None, fake_pymqi.MD(), fake_pymqi.GMO(fake_pymqi.CMQC.MQGMO_SYNCPOINT))
    with pytest.raises(fake_pymqi.MQMIError) as caught:
        fake_pymqi.connect("TESTQM", "TEST.SVRCONN", "127.0.0.1(1414)")
    assert (caught.value.comp, caught.value.reason) == (1, 2002)
    del caught
    gc.collect()  # the orphan's __del__: MQDISC of the shared Hconn, which commits
    with pytest.raises(fake_pymqi.MQMIError) as gone:
        first.backout()
    assert gone.value.reason == 2018  # the Hconn the orphan disconnected
    with pymqi.connect("spy") as spy:
        assert spy.depth("T.UOW") == 0  # the get was committed: the message is lost
    first.disconnect = lambda: None  # type: ignore[method-assign]  # its handle is gone already


def test_the_stand_in_keeps_non_shared_handles_to_their_thread_and_fails_as_pymqi_after_disconnect(
    pymqi: EmbeddedQueueManager,
) -> None:
    plain = fake_pymqi.connect("TESTQM", "TEST.SVRCONN", "127.0.0.1(1414)")
    failures: list[BaseException] = []
    thread = threading.Thread(target=lambda: _record(failures, plain.commit))
    thread.start()
    thread.join()
    assert [getattr(f, "reason", None) for f in failures] == [2018]  # not this thread's handle
    queue = fake_pymqi.Queue(plain, "T.UOW", fake_pymqi.CMQC.MQOO_INPUT_SHARED)
    plain.disconnect()
    for call in (plain.commit, plain.backout):
        with pytest.raises(TypeError):  # pymqe.MQCMIT(None)
            call()
    with pytest.raises(fake_pymqi.PYIFError, match="not connected"):
        queue.get(None, fake_pymqi.MD(), fake_pymqi.GMO())
    with pytest.raises(fake_pymqi.PYIFError, match="not connected"):
        plain.disconnect()
    shared = fake_pymqi.QueueManager(None)
    shared.connect_with_options("TESTQM", opts=fake_pymqi.CMQC.MQCNO_HANDLE_SHARE_BLOCK)
    again: list[BaseException] = []
    thread = threading.Thread(target=lambda: _record(again, shared.commit))
    thread.start()
    thread.join()
    assert again == []  # a shared handle serves any thread
    shared.disconnect()


def _record(failures: list[BaseException], call: object) -> None:
    try:
        call()  # type: ignore[operator]
    except BaseException as error:
        failures.append(error)


def test_the_ibmmq_stand_in_shares_handles_itself_as_ibmmq_does(pymqi: EmbeddedQueueManager) -> None:
    """ibmmq (mq-mqi-python code/ibmmq/mqqmgr.py) adds MQCNO_HANDLE_SHARE_BLOCK to a connect that
    names no sharing: two connects on one thread are two handles, and dropping the second commits
    nothing of the first. Its twin: ``QueueManager(name)`` is a bare MQCONN, a handle of the
    thread's own, so a second one is 2002; ibmmq raises before storing the handle (no orphan)."""
    _put(pymqi, "T.UOW", b"got under syncpoint")
    first = fake_ibmmq.connect("TESTQM", "TEST.SVRCONN", "127.0.0.1(1414)")
    queue = fake_ibmmq.Queue(first, "T.UOW", fake_ibmmq.CMQC.MQOO_INPUT_SHARED)
    queue.get(None, fake_ibmmq.MD(), fake_ibmmq.GMO(fake_ibmmq.CMQC.MQGMO_SYNCPOINT))
    second = fake_ibmmq.connect("TESTQM", "TEST.SVRCONN", "127.0.0.1(1414)")
    assert second.get_handle() is not first.get_handle()
    del second
    gc.collect()  # its __del__ disconnects its own handle only
    first.backout()
    assert (
        fake_ibmmq.Queue(first, "T.UOW", fake_ibmmq.CMQC.MQOO_INPUT_SHARED).get(None, fake_ibmmq.MD(), fake_ibmmq.GMO())
        == b"got under syncpoint"
    )
    bare = fake_ibmmq.QueueManager("TESTQM")
    orphan = fake_ibmmq.QueueManager(None)
    with pytest.raises(fake_ibmmq.MQMIError) as caught:
        orphan.connect("TESTQM")
    assert (caught.value.comp, caught.value.reason) == (1, 2002)
    with pytest.raises(fake_ibmmq.PYIFError, match="not connected"):
        orphan.get_handle()
    del orphan
    gc.collect()
    bare.commit()  # still connected: nothing disconnected the bare handle
    first.disconnect()
    bare.disconnect()


def test_the_ibmmq_stand_in_has_a_version_2_mqmd_and_a_version_4_gmo(pymqi: EmbeddedQueueManager) -> None:
    """mqmd.py: GroupId, MsgSeqNumber, Offset, MsgFlags and OriginalLength are there (only the
    MQMD inside an MQXQH drops them, mqxqh.py); mqgmo.py: version 4, where pymqi's GMO is version 1."""
    md, gmo = fake_ibmmq.MD(), fake_ibmmq.GMO()
    assert (md.Version, md.GroupId, md.MsgSeqNumber, md.MsgFlags, gmo.Version) == (2, bytes(24), 1, 0, 4)
    assert fake_pymqi.GMO().Version == 1  # pymqi 1.12.11: MQGMO_VERSION_1 by default


def test_the_adapter_prefers_ibmmq_when_both_are_installed(
    pymqi: EmbeddedQueueManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ams/mq/pymqi_adapter.py ``_client``: ibmmq first, pymqi when ibmmq cannot be imported."""
    monkeypatch.setitem(sys.modules, "ibmmq", fake_ibmmq)
    with contextlib.closing(connect(URL)) as both:
        assert isinstance(both, PymqiConnection) and both.mq is fake_ibmmq
    monkeypatch.setitem(sys.modules, "ibmmq", None)
    with contextlib.closing(connect(URL)) as only_pymqi:
        assert isinstance(only_pymqi, PymqiConnection) and only_pymqi.mq is fake_pymqi


def test_the_adapter_shares_its_handle_and_never_reconnects_behind_the_application(
    pymqi: EmbeddedQueueManager,
) -> None:
    fake_pymqi.CALLS.clear()
    connect(URL).close()
    (made,) = [arguments for name, arguments in fake_pymqi.CALLS if name == "connect"]
    cmqc = fake_pymqi.CMQC
    assert made["options"] & cmqc.MQCNO_HANDLE_SHARE_BLOCK and made["options"] & cmqc.MQCNO_RECONNECT_DISABLED
    assert made["disconnect_on_exit"] is False and made["max_msg_length"] == 100 * 1024 * 1024


def test_a_get_under_syncpoint_survives_a_second_connect_on_the_same_thread(connections: Factory) -> None:
    """With pymqi's MQCNO_NONE the second connect was 2002, and collecting its orphan committed the
    get: the message was gone. Each connection now has a handle of its own."""
    feeder = connections("feeder")
    feeder.put1("T.UOW", MQMD(), b"keep me")
    first = connections("first")
    handle = first.open("T.UOW", input=True)
    assert handle.get(syncpoint=True).body == b"keep me"
    second = connections("second")  # a route's other side, the CLI...
    second.put1("T.MODES", MQMD(), b"the second connection works")
    gc.collect()
    first.backout()
    assert handle.get(syncpoint=True).body == b"keep me"  # back on the queue after the backout
    first.backout()
    assert second.open("T.MODES", input=True).get().body == b"the second connection works"


def test_a_connection_serves_another_thread(connections: Factory) -> None:
    """A connection made on one thread and used from another: 2018 with a non-shared pymqi handle."""
    connection = connections("app")
    connection.put1("T.UOW", MQMD(), b"from the main thread")
    failures: list[BaseException] = []
    got: list[bytes] = []
    thread = threading.Thread(target=lambda: _record(failures, lambda: got.append(_get(connection))))
    thread.start()
    thread.join()
    assert failures == [] and got == [b"from the main thread"]


def _get(connection: ams.mq.QueueManager) -> bytes:
    handle = connection.open("T.UOW", input=True)
    try:
        return handle.get().body
    finally:
        handle.close()


def test_every_failure_of_a_disconnected_client_is_mq_error_2018(pymqi: EmbeddedQueueManager) -> None:
    """pymqi's handle is None after a disconnect: TypeError from MQCMIT, MQBACK and MQPUT1,
    PYIFError from MQGET. Each must reach the caller as MQError, never as the library's error."""
    connection = connect(URL)
    assert isinstance(connection, PymqiConnection)
    handle = connection.open("T.UOW", input=True, output=True)
    connection._qmgr.disconnect()  # what a library-level disconnect leaves
    for what, call in (
        ("MQCMIT", connection.commit),
        ("MQBACK", connection.backout),
        ("MQPUT1", lambda: connection.put1("T.UOW", MQMD(), b"x")),
        ("MQGET", lambda: handle.get()),
        ("MQPUT", lambda: handle.put(MQMD(), b"x")),
        ("MQOPEN", lambda: connection.open("T.UOW", input=True)),
    ):
        with pytest.raises(MQError) as caught:
            call()
        assert caught.value.reason == 2018 and what in str(caught.value), what
    connection.close()  # the connection is gone: closing it is not an error


def test_a_worker_that_meets_a_disconnected_handle_reconnects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world(tmp_path)
    fake_pymqi.MANAGERS["QM"] = world.qm()
    fake_pymqi.forget_connections()
    monkeypatch.setitem(sys.modules, "pymqi", fake_pymqi)
    monkeypatch.setitem(sys.modules, "ibmmq", None)
    config = world.config()
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            'qm = "qm.sqlite"', 'qm = "mq://127.0.0.1(1414)/QM?channel=T.SVRCONN"'
        ),
        encoding="utf-8",
    )
    out = io.StringIO()
    worker = RouteWorker(config, "in", 0, out=out)
    status: list[int] = []
    thread = threading.Thread(target=lambda: status.append(worker.run()))
    thread.start()
    try:
        world.send([b"before %d" % n for n in range(5)])
        _wait_for(lambda: len(world.received()) == 5)
        for connection in [o for o in gc.get_objects() if isinstance(o, PymqiConnection) and not o._closed]:
            connection._qmgr.disconnect()  # the library's handle is None from now on
        world.send([b"after %d" % n for n in range(5)])
        _wait_for(lambda: len(world.received()) == 10)
    finally:
        worker.stopping = True
        thread.join(30)
    assert status == [0] and not thread.is_alive()  # stopped as asked, not died
    assert "lost its queue manager" in out.getvalue() and "2018" in out.getvalue()
    assert sorted(world.received()) == sorted(
        [b"before %d" % n for n in range(5)] + [b"after %d" % n for n in range(5)]
    )
    assert world.depth("IN.Q") == 0


def _wait_for(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def test_a_dropped_connection_is_backed_out_and_disconnected(pymqi: EmbeddedQueueManager) -> None:
    """With disconnect_on_exit=False the library never disconnects a dropped connection (ibmmq's
    connections used to stay open until the process ended); the adapter backs out, then disconnects."""

    def live() -> int:
        with contextlib.closing(sqlite3.connect(pymqi.path)) as db:  # type: ignore[arg-type]
            return int(db.execute("SELECT COUNT(*) FROM connections").fetchone()[0])

    before = live()
    connection = connect(URL)
    connection.put1("T.DROP", MQMD(), b"never committed", syncpoint=True)
    assert live() == before + 1
    del connection
    gc.collect()
    assert live() == before
    with pymqi.connect("spy") as spy, pytest.raises(ams.mq.NoMessageAvailable):
        spy.open("T.DROP", input=True).get()


def test_the_stand_in_matches_a_version_1_gmo_on_the_mqmd_as_mq_does(pymqi: EmbeddedQueueManager) -> None:
    """Below GMO version 2 MatchOptions is not read and MQ matches the MQMD's MsgId and CorrelId (a
    reused MQMD still selects: the classic 2033 of a pymqi loop); BROWSE_NEXT matches too."""
    cmqc = fake_pymqi.CMQC
    with pymqi.connect("feeder") as feeder:
        ids = [feeder.put1("T.MSGID", MQMD(correl_id=b"C"), b"m%d" % n).msg_id for n in range(3)]
    qmgr = fake_pymqi.connect("TESTQM", "TEST.SVRCONN", "127.0.0.1(1414)")
    queue = fake_pymqi.Queue(qmgr, "T.MSGID", cmqc.MQOO_INPUT_SHARED | cmqc.MQOO_BROWSE)
    md = fake_pymqi.MD()
    md.MsgId = ids[1]
    gmo = fake_pymqi.GMO(cmqc.MQGMO_BROWSE_FIRST)
    gmo.MatchOptions = cmqc.MQMO_NONE  # not read at version 1
    assert queue.get(None, md, gmo) == b"m1"
    md = fake_pymqi.MD()
    md.CorrelId = b"C".ljust(24, b"\0")
    browse_next = fake_pymqi.GMO(cmqc.MQGMO_BROWSE_NEXT)
    browse_next.Version, browse_next.MatchOptions = cmqc.MQGMO_VERSION_2, cmqc.MQMO_MATCH_MSG_ID
    md.MsgId = ids[2]
    assert queue.get(None, md, browse_next) == b"m2"  # the next with that MsgId, past the cursor
    md = fake_pymqi.MD()
    assert queue.get(None, md, fake_pymqi.GMO()) == b"m0"  # a fresh MQMD: any message
    with pytest.raises(fake_pymqi.MQMIError) as caught:
        queue.get(None, md, fake_pymqi.GMO())  # the MQMD reused: MsgId m0's, gone now
    assert caught.value.reason == 2033
    qmgr.disconnect()
