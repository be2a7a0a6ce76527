"""What MQPUT does with a Priority above MaxPriority (MQCC_WARNING 2049: put, at 9) and an Expiry
of 0 (MQRC 2013) (issue 18, item 6), over every transport: a warning is not a failure, so a
caller's retry never puts the message twice, and the MsgId of a warned put is known."""

from __future__ import annotations

import time

import pytest

from ams.mq import MQMD, MQError, NoMessageAvailable, ProtectedQueueManager
from ams.mq.backout import ChannelTooSmallError
from ams.mq.ledger import SWEEP_EVERY, DeliveryLedger
from tests import fake_pymqi
from tests.conftest import Pki, store
from tests.mq_transports import Factory


@pytest.mark.parametrize("how", ["put", "put1"])
def test_a_priority_above_9_is_put_once_at_9_and_its_msgid_is_known(connections: Factory, how: str) -> None:
    app = connections("app")
    queue = app.open("T.PRIORITY", output=True, input=True)
    queue.put(MQMD(priority=9), b"nine, first")
    md = MQMD(priority=12)
    done = queue.put(md, b"twelve") if how == "put" else app.put1("T.PRIORITY", md, b"twelve")
    assert any(done.msg_id)
    assert queue.get().body == b"nine, first"  # queued at 9, behind the first 9 (FIFO within a priority)
    again = queue.get(msg_id=done.msg_id)  # the MsgId the put returned is the message's
    assert again.body == b"twelve"
    with pytest.raises(NoMessageAvailable):  # put once
        queue.get()


def test_expiry_0_is_refused_with_2013_and_an_expiry_is_never_0_on_a_get(connections: Factory) -> None:
    app = connections("app")
    for expiry in (0, -2):
        with pytest.raises(MQError) as caught:
            app.put1("T.EXPIRY", MQMD(expiry=expiry), b"never")
        assert caught.value.reason == 2013
    with pytest.raises(MQError) as caught:
        app.put1("T.EXPIRY", MQMD(priority=-2), b"never")
    assert caught.value.reason == 2050
    app.put1("T.EXPIRY", MQMD(expiry=50), b"five seconds")  # its twin
    got = app.open("T.EXPIRY", input=True).get()
    assert got.body == b"five seconds" and 0 < got.md.expiry <= 50
    with pytest.raises(NoMessageAvailable):
        app.open("T.EXPIRY", input=True).get()


def test_a_message_longer_than_the_client_channel_stops_with_the_fix_and_stays(
    connections: Factory, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 5 MiB message put by a bindings application, got over a client channel: both libraries
    default the client side to 4 MiB, so every get was 2010, nothing backed out, and a route
    stalled saying only that. Now the client asks for 100 MiB (the SVRCONN's MAXMSGL decides), and
    2010 is a ConfigurationError naming the channel setting; the message stays."""
    if connections.manager is None:
        pytest.skip("needs a bindings connection beside the client one (scripts/test-real-mq puts it with amqsput)")
    policies = store(f'setmqspl -m QM -p T.HUGE -s SHA256 -a "{pki.dn("alice")}"')
    bindings = ProtectedQueueManager(connections.manager.connect("bindings"), pki.keystore("alice"), policies)
    bindings.open("T.HUGE", output=True).put(MQMD(), bytes(5 * 1024 * 1024))
    reader = ProtectedQueueManager(connections("bob"), pki.keystore("bob"), policies).open("T.HUGE", input=True)
    if connections.kind.endswith("-adapter"):  # the SVRCONN's MAXMSGL is 4 MiB: too short
        with pytest.raises(ChannelTooSmallError, match=r"CHLTYPE\(SVRCONN\) MAXMSGL") as caught:
            reader.get()
        assert caught.value.reason == 2010
        assert connections.manager.connect("spy").depth("T.HUGE") == 1  # still there, never backed out
        monkeypatch.setattr(fake_pymqi, "CHANNEL_MAX_MESSAGE_LENGTH", 10 * 1024 * 1024)  # ALTER CHANNEL ... MAXMSGL
        reader = ProtectedQueueManager(connections("bob"), pki.keystore("bob"), policies).open("T.HUGE", input=True)
    got = reader.get()
    assert len(got.body) == 5 * 1024 * 1024 and got.md.backout_count == 0


def test_as_queue_default_persistence_and_priority_come_from_the_alias(connections: Factory) -> None:
    """DEFPSIST and DEFPRTY come from the first definition on the resolution path: through an alias
    (DEFPSIST(NO) DEFPRTY(0), MQ's defaults) to T.PERSIST (YES, 4) a message is non-persistent at 0,
    and a restart loses it, where the stand-in kept it (issue 18, item 7)."""
    app = connections("app")
    app.put1("T.ALIAS.PERSIST", MQMD(), b"through the alias")
    app.put1("T.PERSIST", MQMD(), b"direct")
    handle = app.open("T.PERSIST", browse=True)
    direct = handle.browse_first()
    aliased = handle.browse_next()
    assert (direct.body, direct.md.persistence, direct.md.priority) == (b"direct", 1, 4)
    assert (aliased.body, aliased.md.persistence, aliased.md.priority) == (b"through the alias", 0, 0)
    handle.close()
    if connections.manager is None:
        return  # scripts/test-real-mq restarts the queue manager with docker exec
    assert connections.manager.restart() == 1  # the non-persistent one is gone
    survivor = connections("after").open("T.PERSIST", input=True)
    assert survivor.get().body == b"direct"
    with pytest.raises(NoMessageAvailable):
        survivor.get()


def test_expired_messages_count_towards_maxdepth_until_a_get_passes_over_them(connections: Factory) -> None:
    """MQ discards an expired message only when a get or browse would have returned it: until then
    it counts towards CURDEPTH and MAXDEPTH (issue 18, item 8). T.FULL holds 3."""
    app = connections("app")
    for n in range(3):
        app.put1("T.FULL", MQMD(expiry=1), b"gone in 0.1 s %d" % n)
    time.sleep(0.3)
    with pytest.raises(MQError) as caught:
        app.put1("T.FULL", MQMD(), b"no room yet")
    assert caught.value.reason == 2053
    assert app.depth("T.FULL") == 3
    handle = app.open("T.FULL", input=True, browse=True)
    with pytest.raises(NoMessageAvailable):
        handle.browse_first()  # passes over all three: discarded
    assert app.depth("T.FULL") == 0
    app.put1("T.FULL", MQMD(), b"room now")
    assert handle.get().body == b"room now"


def test_a_ledger_sweeps_its_expired_entries(connections: Factory) -> None:
    """A ledger looks entries up by key, passing over no other: without a sweep its expired entries
    would fill the queue to MAXDEPTH on MQ. Every SWEEP_EVERY entries it browses its head."""
    app = connections("proxy")
    ledger = DeliveryLedger(app, "T.DEPTH", retention=1, scope="test")
    for n in range(SWEEP_EVERY - 1):
        ledger.record(b"%d" % n, b"body")
    app.commit()
    assert app.depth("T.DEPTH") == SWEEP_EVERY - 1
    time.sleep(1.2)  # every entry has expired
    assert app.depth("T.DEPTH") == SWEEP_EVERY - 1  # counted still
    ledger.record(b"last", b"body")  # the SWEEP_EVERY-th: the sweep discards the expired ones
    app.commit()
    assert app.depth("T.DEPTH") == 1 and ledger.delivered(b"last", b"body")


def test_a_put_leaves_the_input_only_fields_as_given(connections: Factory) -> None:
    """MQPUT fills in the MsgId and the put context, not Persistence or Priority (input fields): the
    MQMD after the put still says "as queue default"; the message got carries what was used."""
    app = connections("app")
    done = app.put1("T.PERSIST", MQMD(), b"as queue default")
    assert (done.persistence, done.priority) == (2, -1) and any(done.msg_id) and done.put_date
    got = app.open("T.PERSIST", input=True).get()
    assert (got.md.persistence, got.md.priority, got.md.msg_id) == (1, 4, done.msg_id)
