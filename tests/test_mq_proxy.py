"""The re-protection proxy on the worked example: partner -> EXTERNAL_IN -> gateway -> INTERNAL_IN."""

from __future__ import annotations

import pytest

import ams
import ams.errors
from ams.mq import MQMD, ProtectedQueueManager
from ams.mq.protected import ERROR_QUEUE
from ams.mq.proxy import ReprotectionProxy, RouteUnavailable
from ams.pki import Issued
from tests.example_people import NAMES, POLICIES, keystore, make_people
from tests.mq_transports import Factory


@pytest.fixture(scope="module")
def people() -> dict[str, Issued]:
    return make_people()


def test_proxy_re_protects_and_refuses_forgeries(connections: Factory, people: dict[str, Issued]) -> None:
    partner = ProtectedQueueManager(connections("orders"), keystore(people, "orders"), POLICIES)
    intruder = ProtectedQueueManager(connections("intruder"), keystore(people, "intruder"), POLICIES)
    out = partner.open("EXTERNAL_IN", output=True)
    out.put(MQMD(correl_id=b"O" * 24), b"order 1")
    intruder.open("EXTERNAL_IN", output=True).put(MQMD(), b"pay me")
    out.put(MQMD(correl_id=b"P" * 24), b"order 2")
    gateway = ProtectedQueueManager(connections("gateway"), keystore(people, "gateway"), POLICIES)
    proxy = ReprotectionProxy(gateway, "EXTERNAL_IN", gateway, "INTERNAL_IN")
    stats = proxy.run()
    assert (stats.moved, stats.refused) == (2, 1) and "UnauthorisedSignerError" in stats.reasons[0]
    spy = connections("spy")
    assert spy.depth("EXTERNAL_IN") == 0 and spy.depth(ERROR_QUEUE) == 1 and spy.depth("INTERNAL_IN") == 2
    for staff in ("alice", "bob"):
        reader = ProtectedQueueManager(connections(staff), keystore(people, staff), POLICIES)
        handle = reader.open("INTERNAL_IN", browse=True)
        first, second = handle.browse_first(), handle.browse_next()
        assert [first.body, second.body] == [b"order 1", b"order 2"]
        assert first.md.correl_id == b"O" * 24  # the descriptor travels with the message
        assert str(ams.DistinguishedName.from_x509(first.signer.subject)) == NAMES["gateway"]  # type: ignore[union-attr]


def test_a_failed_put_leaves_the_message_where_it_was(connections: Factory, people: dict[str, Issued]) -> None:
    ProtectedQueueManager(connections("orders"), keystore(people, "orders"), POLICIES).open(
        "EXTERNAL_IN", output=True
    ).put(MQMD(), b"order 3")
    gateway = ProtectedQueueManager(connections("gateway"), keystore(people, "gateway"), POLICIES)
    proxy = ReprotectionProxy(gateway, "EXTERNAL_IN", gateway, "INTERNAL_IN")

    def broken_put(*args: object, **kwargs: object) -> MQMD:
        raise ams.mq.MQError("queue full", 2053)

    proxy._out.handle.put = broken_put  # type: ignore[method-assign]  # the queue manager refuses the put
    with pytest.raises(RouteUnavailable, match="queue full"):  # the target's trouble, not the message's
        proxy.move_one()
    assert proxy.stats.failed == 0
    spy = connections("spy")
    assert spy.depth("EXTERNAL_IN") == 1 and spy.depth("INTERNAL_IN") == 0 and spy.depth(ERROR_QUEUE) == 0


def test_proxy_refuses_to_start_without_a_recipients_certificate(
    connections: Factory, people: dict[str, Issued]
) -> None:
    gateway = ProtectedQueueManager(connections("gateway"), keystore(people, "gateway", without="bob"), POLICIES)
    with pytest.raises(ams.errors.RecipientNotFoundError, match="CN=bob,OU=Finance"):
        ReprotectionProxy(gateway, "EXTERNAL_IN", gateway, "INTERNAL_IN")


def test_a_configuration_error_stops_the_proxy_and_keeps_the_message(
    connections: Factory, people: dict[str, Issued]
) -> None:
    """On IBM MQ the CLI's disconnect would commit whatever was in flight: nothing may be."""
    ProtectedQueueManager(connections("orders"), keystore(people, "orders"), POLICIES).open(
        "EXTERNAL_IN", output=True
    ).put(MQMD(), b"order 4")
    gateway = ProtectedQueueManager(connections("gateway"), keystore(people, "gateway"), POLICIES)
    proxy = ReprotectionProxy(gateway, "EXTERNAL_IN", gateway, "INTERNAL_IN")

    def misconfigured(*args: object, **kwargs: object) -> MQMD:
        raise ams.errors.ConfigurationError("the target policy changed under the proxy")

    proxy._out.forward = misconfigured  # type: ignore[method-assign]
    with pytest.raises(ams.errors.ConfigurationError):
        proxy.run()
    gateway.close()
    spy = connections("spy")
    assert spy.depth("EXTERNAL_IN") == 1 and spy.depth("INTERNAL_IN") == 0 and spy.depth(ERROR_QUEUE) == 0
