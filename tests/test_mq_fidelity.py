"""What a real queue manager does that could lose a message or its headers, held for every
transport alike: the embedded queue manager (memory and file), the pymqi adapter over the pymqi
stand-in, and IBM MQ itself when AMS_TEST_MQ names one."""

from __future__ import annotations

import gc
import struct
import threading
import time

import pytest

import ams
import ams.errors
from ams.mq import MQMD, MQError, NoMessageAvailable, ProtectedQueueManager, QueueManager
from ams.mq.protected import ERROR_QUEUE
from ams.mqconstants import reason_name
from tests.conftest import Pki, store
from tests.mq_transports import Factory

BIG = 100 * 1024  # over the adapter's first buffer (64 KiB) and pymqi's own (4 KiB)


def drain(connection: QueueManager, queue: str) -> list[bytes]:
    handle = connection.open(queue, input=True)
    bodies = []
    while True:
        try:
            bodies.append(handle.get().body)
        except NoMessageAvailable:
            return bodies


def mqdisc(connection: QueueManager) -> None:
    """MQDISC itself, without this library's back-out first."""
    raw = getattr(connection, "_qmgr", None)
    if raw is not None:
        raw.disconnect()  # the client's own MQDISC
    else:
        connection.disconnect()  # type: ignore[attr-defined]


def needs_stand_in(connections: Factory) -> None:
    if connections.manager is None:
        pytest.skip("switches a behaviour on in the stand-in; on IBM MQ use setmqaut as scripts/test-real-mq says")


# -- units of work: MQDISC commits, close backs out -----------------------------------------------


def test_mqdisc_commits_uncommitted_work(connections: Factory) -> None:
    """IBM MQ's rule, which the stand-ins follow, so that code relying on it is caught."""
    connections("setup").put1("T.DISC", MQMD(), b"got")
    app = connections("app")
    app.open("T.DISC", output=True).put(MQMD(), b"put", syncpoint=True)
    assert app.open("T.DISC", input=True).get(syncpoint=True).body == b"got"
    mqdisc(app)
    assert drain(connections("check"), "T.DISC") == [b"put"]


def test_close_backs_out_before_it_disconnects(connections: Factory) -> None:
    connections("setup").put1("T.DISC", MQMD(), b"got")
    app = connections("app")
    app.open("T.DISC", output=True).put(MQMD(), b"put", syncpoint=True)
    assert app.open("T.DISC", input=True).get(syncpoint=True).body == b"got"
    app.close()
    app.close()  # twice is harmless
    message = connections("check").open("T.DISC", input=True).get()
    assert (message.body, message.md.backout_count) == (b"got", 1)
    assert drain(connections("check2"), "T.DISC") == []


def test_a_connection_dropped_without_close_backs_out(connections: Factory) -> None:
    connections("setup").put1("T.DROP", MQMD(), b"in flight")
    app = connections("app")
    assert app.open("T.DROP", input=True).get(syncpoint=True).body == b"in flight"
    del app
    gc.collect()
    assert drain(connections("check"), "T.DROP") == [b"in flight"]


def test_a_closed_connection_refuses_calls(connections: Factory) -> None:
    app = connections("app")
    app.close()
    with pytest.raises(MQError):
        app.put1("T.DISC", MQMD(), b"too late")


# -- a refused error-queue put keeps the message --------------------------------------------------


def test_an_error_queue_without_put_authority_keeps_the_message(connections: Factory, pki: Pki) -> None:
    needs_stand_in(connections)
    assert connections.manager is not None
    policies = store(f'setmqspl -m QM -p P.PRIV -s SHA256 -e AES256 -r "{pki.dn("bob")}"')
    alice = ProtectedQueueManager(connections("alice"), pki.keystore("alice"), policies)
    alice.open("P.PRIV", output=True).put(MQMD(), b"not for carol")
    connections.manager.deny(ERROR_QUEUE, "put")
    carol = ProtectedQueueManager(connections("carol"), pki.keystore("carol"), policies)
    for syncpoint in (False, True):
        with pytest.raises(MQError) as caught:
            carol.open("P.PRIV", input=True).get(syncpoint=syncpoint)
        assert caught.value.reason == 2035 and "MQRC_NOT_AUTHORIZED" in str(caught.value)
        assert connections("spy").depth("P.PRIV") == 1 and connections("spy").depth(ERROR_QUEUE) == 0
    connections.manager.deny(ERROR_QUEUE, "put", allowed=True)
    with pytest.raises(ams.errors.NotARecipientError):
        carol.open("P.PRIV", input=True).get()
    assert connections("spy").depth(ERROR_QUEUE) == 1


# -- MQRFH2 headers and PROPCTL -------------------------------------------------------------------


def _rfh2(folder: bytes) -> bytes:
    padded = folder + b" " * (-len(folder) % 4)
    header = struct.pack("<4siiii8sii", b"RFH ", 2, 36 + 4 + len(padded), 546, 1208, b"MQSTR   ", 0, 1208)
    return header + struct.pack("<i", len(padded)) + padded


@pytest.mark.parametrize("queue", ["T.PROPS.NONE", "T.PROPS.COMPAT"])
def test_protected_mqrfh2_headers_reach_the_reader_whatever_the_propctl(
    connections: Factory, pki: Pki, queue: str
) -> None:
    """A get without FORCE_MQRFH2 would lose a header that has no usr/mcd/jms folder on COMPAT and
    every header on NONE; the protected message would then unprotect without them."""
    policies = store(f"setmqspl -m QM -p {queue} -s SHA256")
    rfh2 = _rfh2(b"<abc><Route>east</Route></abc>")
    md = MQMD(format="MQHRF2  ", encoding=546, ccsid=1208)
    alice = ProtectedQueueManager(connections("alice"), pki.keystore("alice"), policies)
    alice.open(queue, output=True).put(md, rfh2 + b"payload")
    bob = ProtectedQueueManager(connections("bob"), pki.keystore("bob"), policies)
    got = bob.open(queue, input=True).get()
    assert (got.body, got.md.format) == (rfh2 + b"payload", "MQHRF2  ")


@pytest.mark.parametrize(
    ("propctl", "folder", "kept"),
    [
        ("NONE", b"<usr><a>1</a></usr>", False),
        ("COMPAT", b"<abc><a>1</a></abc>", False),
        ("COMPAT", b"<usr><a>1</a></usr>", True),
        ("ALL", b"<abc><a>1</a></abc>", True),
    ],
)
def test_the_embedded_queue_manager_applies_propctl_to_gets_that_do_not_force_mqrfh2(
    propctl: str, folder: bytes, kept: bool
) -> None:
    manager = ams.mq.EmbeddedQueueManager()
    manager.define_queue("Q", propctl=propctl)
    connection = manager.connect()
    md = MQMD(format="MQHRF2  ", encoding=546, ccsid=1208)
    for _ in range(2):
        connection.put1("Q", md, _rfh2(folder) + b"body")
    handle = connection.open("Q", input=True)
    plain = handle.get(force_rfh2=False)
    assert (plain.body.startswith(b"RFH "), plain.md.format) == (kept, "MQHRF2  " if kept else "MQSTR   ")
    assert plain.body.endswith(b"body")
    assert handle.get(force_rfh2=True).body.startswith(b"RFH ")


# -- opening: undefined queues, sharing ------------------------------------------------------------


def test_an_undefined_queue_is_2085_with_its_name(connections: Factory) -> None:
    with pytest.raises(MQError) as caught:
        connections("app").open("NOT.DEFINED.ANYWHERE", output=True)
    assert caught.value.reason == 2085 and "MQRC_UNKNOWN_OBJECT_NAME" in str(caught.value)
    with pytest.raises(MQError) as caught:
        connections("app").put1("NOT.DEFINED.ANYWHERE", MQMD(), b"x")
    assert caught.value.reason == 2085


def test_readers_share_a_queue_whose_default_is_exclusive(connections: Factory) -> None:
    """Opening for input AS_Q_DEF on a DEFSOPT(EXCL) queue would lock out every other reader."""
    first = connections("first").open("T.EXCL", input=True)
    second = connections("second").open("T.EXCL", input=True)
    connections("writer").put1("T.EXCL", MQMD(), b"one")
    assert first.get().body == b"one"
    with pytest.raises(NoMessageAvailable):
        second.get()


def test_a_noshare_queue_takes_one_reader(connections: Factory) -> None:
    first = connections("first").open("T.NOSHARE", input=True)
    with pytest.raises(MQError) as caught:
        connections("second").open("T.NOSHARE", input=True)
    assert caught.value.reason == 2042 and "MQRC_OBJECT_IN_USE" in str(caught.value)
    first.close()
    connections("third").open("T.NOSHARE", input=True)


def test_a_handle_not_open_for_input_says_2037(connections: Factory) -> None:
    with pytest.raises(MQError) as caught:
        connections("app").open("T.MODES", output=True).get()
    assert caught.value.reason in (2037, 2046)  # MQ's client may refuse the options first


# -- depth, length, priority, expiry, persistence ---------------------------------------------------


def test_depth_counts_uncommitted_puts_and_not_uncommitted_gets(connections: Factory) -> None:
    connections("setup").put1("T.DEPTH", MQMD(), b"committed")
    app = connections("app")
    app.open("T.DEPTH", output=True).put(MQMD(), b"pending", syncpoint=True)
    spy = connections("spy")
    assert spy.depth("T.DEPTH") == 2
    assert app.open("T.DEPTH", input=True).get(syncpoint=True).body == b"committed"
    assert spy.depth("T.DEPTH") == 1
    app.backout()
    assert spy.depth("T.DEPTH") == 1  # the pending put gone, the got message back


def test_a_message_longer_than_maxmsgl_is_refused_and_not_cut(connections: Factory) -> None:
    app = connections("app")
    app.put1("T.SMALL", MQMD(), b"x" * 1024)
    with pytest.raises(MQError) as caught:
        app.put1("T.SMALL", MQMD(), b"x" * 1025)
    assert caught.value.reason == 2030 and "MQRC_MSG_TOO_BIG_FOR_Q" in str(caught.value)
    assert drain(app, "T.SMALL") == [b"x" * 1024]


def test_a_message_over_the_first_buffer_arrives_whole(connections: Factory) -> None:
    app = connections("app")
    bodies = [bytes([i]) * (BIG + i) for i in range(3)]
    for body in bodies:
        app.put1("T.BIG", MQMD(), body)
    browser = app.open("T.BIG", browse=True)
    assert browser.browse_first().body == bodies[0] and browser.browse_next().body == bodies[1]
    assert drain(app, "T.BIG") == bodies


def test_priority_order_then_first_in_first_out(connections: Factory) -> None:
    app = connections("app")
    for body, priority in ((b"low-1", 1), (b"high-1", 9), (b"mid", 5), (b"high-2", 9), (b"low-2", 1)):
        app.put1("T.PRIORITY", MQMD(priority=priority), body)
    assert drain(app, "T.PRIORITY") == [b"high-1", b"high-2", b"mid", b"low-1", b"low-2"]


def test_an_expired_message_is_never_delivered(connections: Factory) -> None:
    app = connections("app")
    app.put1("T.EXPIRY", MQMD(expiry=2), b"gone in 0.2 s")  # tenths of a second
    app.put1("T.EXPIRY", MQMD(), b"stays")
    time.sleep(0.5)
    assert drain(app, "T.EXPIRY") == [b"stays"]


def test_persistence_and_priority_as_the_queue_defines(connections: Factory) -> None:
    app = connections("app")
    app.put1("T.PERSIST", MQMD(), b"as queue")  # DEFPSIST(YES) DEFPRTY(4)
    app.put1("T.PERSIST", MQMD(persistence=0, priority=2), b"explicit")
    app.put1("T.FIFO", MQMD(), b"default queue")  # DEFPSIST(NO) DEFPRTY(0)
    handle = app.open("T.PERSIST", input=True)
    first, second = handle.get().md, handle.get().md
    assert (first.persistence, first.priority) == (1, 4) and (second.persistence, second.priority) == (0, 2)
    plain = app.open("T.FIFO", input=True).get().md
    assert (plain.persistence, plain.priority) == (0, 0)


def test_the_put_context_is_the_queue_managers(connections: Factory) -> None:
    """A re-put message (a requeue, a move aside) gets new context, and a BackoutCount of 0."""
    app = connections("putter")
    done = app.put1("T.FIFO", MQMD(put_appl_name="someone else", backout_count=7), b"x")
    got = app.open("T.FIFO", input=True).get().md
    assert got.put_appl_name.strip() == done.put_appl_name.strip() == "putter"
    assert got.backout_count == 0 and got.msg_id == done.msg_id


def test_reasons_are_named(connections: Factory) -> None:
    with pytest.raises(NoMessageAvailable) as caught:
        connections("app").open("T.FIFO", input=True).get()
    assert caught.value.reason == 2033
    assert reason_name(2080) == "2080 (MQRC_TRUNCATED_MSG_FAILED)" and "MQRC_Q_FULL" in reason_name(2053)


# -- what only a queue manager restart shows -------------------------------------------------------


def test_a_restart_keeps_persistent_messages_only(connections: Factory) -> None:
    needs_stand_in(connections)
    assert connections.manager is not None
    app = connections("app")
    app.put1("T.PERSIST", MQMD(), b"persistent by default")
    app.put1("T.FIFO", MQMD(), b"non-persistent by default")
    app.put1("T.FIFO", MQMD(persistence=1), b"persistent")
    app.open("T.FIFO", output=True).put(MQMD(persistence=1), b"uncommitted", syncpoint=True)
    assert connections.manager.restart() == 1
    with pytest.raises(MQError) as broken:  # its unit of work is gone: a commit must not pretend otherwise
        app.commit()
    assert broken.value.reason == 2009
    check = connections("check")
    assert drain(check, "T.FIFO") == [b"persistent"] and drain(check, "T.PERSIST") == [b"persistent by default"]


def test_maxdepth_and_inhibited_queues_refuse_with_their_reasons(connections: Factory) -> None:
    app = connections("app")
    for body in (b"1", b"2"):
        app.put1("T.FULL", MQMD(), body)
    app.open("T.FULL", output=True).put(MQMD(), b"3 (uncommitted counts)", syncpoint=True)
    with pytest.raises(MQError) as full:
        app.put1("T.FULL", MQMD(), b"4")
    assert full.value.reason == 2053 and "MQRC_Q_FULL" in str(full.value)
    app.backout()
    app.put1("T.FULL", MQMD(), b"3")
    with pytest.raises(MQError) as put:
        app.put1("T.PUTINH", MQMD(), b"x")
    assert put.value.reason == 2051
    with pytest.raises(MQError) as get:
        app.open("T.GETINH", input=True).get()
    assert get.value.reason == 2016


def test_a_waiting_get_ends_with_2016_when_the_queue_is_get_disabled(connections: Factory) -> None:
    """ALTER QLOCAL(...) GET(DISABLED) during a waiting MQGET ends it with 2016, not 2033 at the end
    of the wait (issue 18, item 11)."""
    if connections.manager is None:
        pytest.skip("needs a queue manager the test can alter (runmqsc on IBM MQ)")
    manager = connections.manager
    timer = threading.Timer(0.3, lambda: manager.define_queue("T.WAIT", get_inhibited=True))
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(MQError) as caught:
            connections("app").open("T.WAIT", input=True).get(wait=10)
    finally:
        timer.join()
    assert caught.value.reason == 2016 and time.monotonic() - started < 5
