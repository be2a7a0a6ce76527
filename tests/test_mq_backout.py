"""BOTHRESH and BOQNAME read at open (an alias's from its base queue, the defaults without +inq),
and a refused or poison message that can never fit where it must go (issue 18, items 3 and 4):
nothing loops, nothing is lost, over every transport."""

from __future__ import annotations

import logging

import pytest

import ams
from ams.mq import MQMD, NoMessageAvailable, ProtectedQueueManager
from ams.mq.backout import MessageStuckError
from ams.mq.protected import ERROR_QUEUE, PoisonMessageError
from ams.mq.proxy import ReprotectionProxy
from ams.mq.transport import BackoutSettings, QueueAttributes
from tests.conftest import Pki, store
from tests.mq_transports import Factory


@pytest.fixture
def policies(pki: Pki) -> ams.PolicyStore:
    return store(
        *(
            f'setmqspl -m QM -p {queue} -s SHA256 -a "{pki.dn("alice")}"'
            for queue in ("T.ALIAS", "T.ALIASED", "T.STUCK", "T.STUCK.B", "T.INQ")
        )
    )


def bob(factory: Factory, pki: Pki, policies: ams.PolicyStore) -> ProtectedQueueManager:
    return ProtectedQueueManager(factory("bob"), pki.keystore("bob"), policies)


def alice_puts(factory: Factory, pki: Pki, policies: ams.PolicyStore, queue: str, body: bytes) -> None:
    alice = ProtectedQueueManager(factory("alice"), pki.keystore("alice"), policies)
    alice.open(queue, output=True).put(MQMD(), body)
    alice.close()


def embedded_only(factory: Factory) -> ams.mq.EmbeddedQueueManager:
    if factory.manager is None:
        pytest.skip("needs a queue manager the test can redefine queues and authorities on (scripts/test-real-mq)")
    return factory.manager


def test_an_alias_source_takes_its_base_queues_backout_settings(
    connections: Factory, pki: Pki, policies: ams.PolicyStore
) -> None:
    """MQINQ of BOTHRESH on an alias is 2068: inside a get's unit of work that backed every message
    out, for ever. Read at open, from the base queue (MQCA_BASE_Q_NAME)."""
    alice_puts(connections, pki, policies, "T.ALIAS", b"through the alias")
    reader = bob(connections, pki, policies).open("T.ALIAS", input=True)
    assert reader.backout == BackoutSettings(2, "T.BOQ")  # T.ALIASED's
    got = reader.get()
    assert (got.body, got.md.backout_count) == (b"through the alias", 0)
    alice_puts(connections, pki, policies, "T.ALIAS", b"poison")
    spy = connections("spy")
    handle = spy.open("T.ALIASED", input=True)
    for _ in range(2):
        handle.get(syncpoint=True)
        spy.backout()
    with pytest.raises(PoisonMessageError, match=r"T\.BOQ"):
        reader.get()
    assert spy.open("T.BOQ", input=True).get().body[:4] == b"PDMQ"  # moved, as it was, to the base queue's BOQNAME


def test_a_queue_that_cannot_be_inquired_gets_the_default_threshold(
    connections: Factory, pki: Pki, policies: ams.PolicyStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Without +inq the MQINQ is 2035: the default threshold applies, with a warning; the get works."""
    embedded_only(connections).deny("T.INQ", "inq")
    alice_puts(connections, pki, policies, "T.INQ", b"readable")
    with caplog.at_level(logging.WARNING, logger="ams.mq.backout"):
        reader = bob(connections, pki, policies).open("T.INQ", input=True)
    assert reader.backout == BackoutSettings(5, "")
    assert "+inq" in caplog.text and "T.INQ" in caplog.text
    got = reader.get()
    assert (got.body, got.md.backout_count) == (b"readable", 0)
    with pytest.raises(NoMessageAvailable):
        connections("spy").open("T.INQ", input=True).get()


def _small_error_queue(factory: Factory) -> None:
    embedded_only(factory).define_queue(ERROR_QUEUE, QueueAttributes(default_persistent=True, max_message_length=2_000))


def test_a_refused_message_too_long_for_the_error_queue_stops_with_the_fix(
    connections: Factory, pki: Pki, policies: ams.PolicyStore
) -> None:
    """1,900 bytes plus a 172-byte MQDLH do not fit a 2,000-byte MAXMSGL (2030): backed out and
    tried at the head of the queue for ever, the messages behind it never read. Now a clear error,
    every time, and the message stays; past BOTHRESH too."""
    _small_error_queue(connections)
    spy = connections("spy")
    spy.put1("T.STUCK", MQMD(), b"x" * 1_900)  # not protected: refused
    reader = bob(connections, pki, policies).open("T.STUCK", input=True)
    for _ in range(6):
        with pytest.raises(MessageStuckError) as caught:
            reader.get()
        assert (
            "MAXMSGL" in str(caught.value) and ERROR_QUEUE in str(caught.value) and "2,072 bytes" in str(caught.value)
        )
    assert "backed out 5 times" in str(caught.value)  # the poison path says the same, not a loop
    left = spy.open("T.STUCK", browse=True).browse_first()
    assert left.body == b"x" * 1_900 and left.md.backout_count == 6
    with pytest.raises(NoMessageAvailable):
        spy.open(ERROR_QUEUE, browse=True).browse_first()


def test_a_refused_message_that_fits_goes_to_the_error_queue_as_before(
    connections: Factory, pki: Pki, policies: ams.PolicyStore
) -> None:
    _small_error_queue(connections)
    spy = connections("spy")
    spy.put1("T.STUCK", MQMD(), b"x" * 1_000)
    with pytest.raises(ams.SecurityError):
        bob(connections, pki, policies).open("T.STUCK", input=True).get()
    assert spy.open(ERROR_QUEUE, input=True).get().body.endswith(b"x" * 1_000)


def test_a_refused_message_too_long_for_the_error_queue_goes_to_boqname(
    connections: Factory, pki: Pki, policies: ams.PolicyStore
) -> None:
    _small_error_queue(connections)
    spy = connections("spy")
    spy.put1("T.STUCK.B", MQMD(correl_id=b"mine"), b"y" * 1_900)
    with pytest.raises(ams.SecurityError) as caught:
        bob(connections, pki, policies).open("T.STUCK.B", input=True).get()
    assert "its backout queue T.BOQ" in caught.value.__notes__[0]
    moved = spy.open("T.BOQ", input=True).get()
    assert (moved.body, moved.md.correl_id[:4]) == (b"y" * 1_900, b"mine")  # as it was, no MQDLH
    with pytest.raises(NoMessageAvailable):
        spy.open("T.STUCK.B", input=True).get()


def test_a_route_stops_on_a_refused_message_it_can_never_move_aside(
    connections: Factory, pki: Pki, policies: ams.PolicyStore
) -> None:
    """Through the proxy: the route raises the ConfigurationError (a worker pauses the route and
    says why) instead of backing the message out and trying it again at once, for ever."""
    _small_error_queue(connections)
    spy = connections("spy")
    spy.put1("T.STUCK", MQMD(), b"x" * 1_900)
    spy.put1("T.STUCK", MQMD(), b"behind it")
    gateway = bob(connections, pki, policies)
    proxy = ReprotectionProxy(gateway, "T.STUCK", gateway, "T.MODES")
    for _ in range(2):
        with pytest.raises(MessageStuckError, match="ALTER QLOCAL"):
            proxy.move_batch()
    assert spy.open("T.STUCK", browse=True).browse_first().body == b"x" * 1_900  # nothing lost
    with pytest.raises(NoMessageAvailable):  # nothing moved past it either
        spy.open("T.MODES", input=True).get()
