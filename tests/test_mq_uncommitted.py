"""MaxUncommittedMsgs (MAXUMSGS, MQRC 2024), inquired and not assumed (issue 18, item 9): a unit of
work holds at most that many messages, and a proxy's batches are bounded by it, over every
transport."""

from __future__ import annotations

import pytest

from ams.mq import MQMD, EmbeddedQueueManager, MQError, ProtectedQueueManager
from ams.mq.proxy import ProxyEvent, ReprotectionProxy
from ams.pki import Issued
from tests.example_people import POLICIES, keystore, make_people
from tests.mq_transports import Factory


@pytest.fixture(scope="module")
def people() -> dict[str, Issued]:
    return make_people()


def limited(factory: Factory, limit: int) -> EmbeddedQueueManager:
    if factory.manager is None:
        pytest.skip("needs a queue manager whose MAXUMSGS the test sets (ALTER QMGR MAXUMSGS on IBM MQ)")
    factory.manager.max_uncommitted = limit
    return factory.manager


def test_a_unit_of_work_holds_at_most_maxumsgs(connections: Factory) -> None:
    limited(connections, 20)
    app = connections("app")
    assert app.max_uncommitted() == 20
    queue = app.open("T.UOW", output=True, input=True)
    for n in range(20):
        queue.put(MQMD(), b"%d" % n, syncpoint=True)
    with pytest.raises(MQError) as caught:
        queue.put(MQMD(), b"one too many", syncpoint=True)
    assert caught.value.reason == 2024
    app.commit()  # the 20 are put; the count starts again
    queue.put(MQMD(), b"20", syncpoint=True)
    for _ in range(19):
        queue.get(syncpoint=True)
    with pytest.raises(MQError) as caught:  # gets count too
        queue.get(syncpoint=True)
    assert caught.value.reason == 2024
    app.backout()
    queue.put(MQMD(), b"without syncpoint: not counted")
    assert app.depth("T.UOW") == 21


def test_a_proxy_batch_is_bounded_by_the_inquired_maxumsgs(connections: Factory, people: dict[str, Issued]) -> None:
    """Batches of 50 move 100 messages under syncpoint (a get and a put each): over a MAXUMSGS of
    20 every batch failed with 2024 at the same message and backed out. Now 10 per batch."""
    limited(connections, 20)
    orders = ProtectedQueueManager(connections("orders"), keystore(people, "orders"), POLICIES)
    out = orders.open("EXTERNAL_IN", output=True)
    for n in range(30):
        out.put(MQMD(), b"order %d" % n)
    qm = connections("gateway")
    gateway = ProtectedQueueManager(qm, keystore(people, "gateway"), POLICIES)
    events: list[ProxyEvent] = []
    proxy = ReprotectionProxy(gateway, "EXTERNAL_IN", gateway, "INTERNAL_IN", batch_size=50, on_event=events.append)
    assert proxy.batch_size == 10
    assert [proxy.move_batch() for _ in range(4)] == [10, 10, 10, 0]
    assert [e.outcome for e in events] == ["moved"] * 30
    alice = ProtectedQueueManager(connections("alice"), keystore(people, "alice"), POLICIES)
    reader = alice.open("INTERNAL_IN", input=True)
    assert [reader.get().md.backout_count for _ in range(30)] == [0] * 30  # none was ever backed out
