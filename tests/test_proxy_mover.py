"""The proxy's mover: batches, poison messages inside a batch, what travels with a message, and
duplicates between two queue managers suppressed by the delivery ledger."""

from __future__ import annotations

import hashlib
import json
import logging
import struct
from pathlib import Path

import pytest

import ams
import ams.errors
from ams.mq import MQMD, EmbeddedQueueManager, ProtectedQueueManager, QueueManager
from ams.mq.ledger import DeliveryLedger
from ams.mq.properties import read_properties
from ams.mq.protected import ERROR_QUEUE, PoisonMessageError
from ams.mq.proxy import ProxyEvent, ReprotectionProxy, RouteUnavailable
from ams.pki import Issued
from ams.protector import Protector
from tests.conftest import rfh2
from tests.example_people import NAMES, POLICIES, keystore, make_people
from tests.mq_transports import Factory


@pytest.fixture(scope="module")
def people() -> dict[str, Issued]:
    return make_people()


def partner(connections: Factory, people: dict[str, Issued], name: str = "orders") -> ProtectedQueueManager:
    return ProtectedQueueManager(connections(name), keystore(people, name), POLICIES)


def gateway(qm: QueueManager, people: dict[str, Issued]) -> ProtectedQueueManager:
    return ProtectedQueueManager(qm, keystore(people, "gateway"), POLICIES)


def read_all(
    connections: Factory, people: dict[str, Issued], queue: str = "INTERNAL_IN"
) -> list[ams.mq.ProtectedMessage]:
    handle = ProtectedQueueManager(connections("alice"), keystore(people, "alice"), POLICIES).open(queue, input=True)
    out = []
    while True:
        try:
            out.append(handle.get())
        except ams.mq.NoMessageAvailable:
            return out


class Commits:
    """Counts MQCMIT calls on a connection."""

    def __init__(self, qm: QueueManager) -> None:
        self.count = 0
        genuine = qm.commit

        def counted() -> None:
            self.count += 1
            genuine()

        qm.commit = counted  # type: ignore[method-assign]


def test_a_batch_is_one_unit_of_work(connections: Factory, people: dict[str, Issued]) -> None:
    out = partner(connections, people).open("EXTERNAL_IN", output=True)
    for i in range(120):
        out.put(MQMD(), b"order %d" % i)
    qm = connections("gateway")
    commits = Commits(qm)
    events: list[ProxyEvent] = []
    proxy = ReprotectionProxy(
        gateway(qm, people), "EXTERNAL_IN", gateway(qm, people), "INTERNAL_IN", batch_size=50, on_event=events.append
    )
    stats = proxy.run()
    assert (stats.moved, commits.count) == (120, 3)  # 50 + 50 + 20
    assert [m.body for m in read_all(connections, people)] == [b"order %d" % i for i in range(120)]
    assert {e.outcome for e in events} == {"moved"} and len(events) == 120
    assert events[0].signer == NAMES["orders"] and (events[0].qop_in, events[0].qop_out) == ("PRIVACY", "PRIVACY")


def test_events_are_reported_only_once_their_unit_of_work_commits(
    connections: Factory, people: dict[str, Issued]
) -> None:
    partner(connections, people).open("EXTERNAL_IN", output=True).put(MQMD(), b"order")
    qm = connections("gateway")
    events: list[ProxyEvent] = []
    proxy = ReprotectionProxy(
        gateway(qm, people), "EXTERNAL_IN", gateway(qm, people), "INTERNAL_IN", batch_size=10, on_event=events.append
    )
    genuine = qm.commit

    def failing() -> None:
        raise ams.mq.MQError("MQCMIT failed", 2009)

    qm.commit = failing  # type: ignore[method-assign]
    with pytest.raises(RouteUnavailable, match="2009"):  # the route, not the message: the worker waits
        proxy.move_batch()
    assert events == [] and proxy.stats.moved == 0
    qm.commit = genuine  # type: ignore[method-assign]
    assert proxy.probe() is None
    proxy.move_batch()
    assert [e.outcome for e in events] == ["moved"]
    assert [m.body for m in read_all(connections, people)] == [b"order"]


def _poison(monkeypatch: pytest.MonkeyPatch) -> None:
    genuine = Protector.protect

    def buggy(self: Protector, queue: str, body: bytes, *args: object, **kwargs: object) -> ams.Protected:
        if b"poison" in bytes(body):
            raise KeyError("a bug on the way out")
        return genuine(self, queue, body, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Protector, "protect", buggy)


def test_a_poison_message_in_a_batch_never_moves_its_neighbours_aside(
    connections: Factory, people: dict[str, Issued], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Backing out a batch counts a backout for every message in it; the messages then move one
    per unit of work, so only the poison one reaches the threshold."""
    out = partner(connections, people).open("EXTERNAL_IN", output=True)
    bodies = [b"order %d" % i for i in range(10)]
    bodies[4] = b"order 4 (poison)"
    for body in bodies:
        out.put(MQMD(), body)
    _poison(monkeypatch)
    qm = connections("gateway")
    events: list[ProxyEvent] = []
    proxy = ReprotectionProxy(
        gateway(qm, people),
        "EXTERNAL_IN",
        gateway(qm, people),
        "INTERNAL_IN",
        batch_size=50,
        backout_threshold=3,
        on_event=events.append,
    )
    stats = proxy.run(limit=40)
    assert (stats.moved, stats.poison, stats.refused) == (9, 1, 0) and stats.failed == 3
    (poison,) = [e for e in events if e.outcome == "poison"]
    assert poison.level == logging.WARNING and PoisonMessageError.__name__ in poison.reason
    backed_out = [e for e in events if e.outcome == "backed_out"]
    # every backout line names its message: the whole first batch, then the poison one alone
    assert all(e.msg_id and e.level == logging.ERROR for e in backed_out)
    assert {e.msg_id for e in backed_out[1:]} == {poison.msg_id} and poison.msg_id in {e.msg_id for e in backed_out}
    assert [m.body for m in read_all(connections, people)] == [b for b in bodies if b"poison" not in b]
    assert connections("spy").depth(ERROR_QUEUE) == 1  # no BOQNAME: the error queue, MQDLH reason 2362


def test_what_travels_with_a_message(connections: Factory, people: dict[str, Issued]) -> None:
    folder = b"<usr><Colour>blue</Colour></usr>  "
    header = rfh2(folder)
    md = MQMD(
        format="MQHRF2  ",
        correl_id=b"C" * 24,
        reply_to_q="REPLIES",
        reply_to_qmgr="PARTNERQM",
        persistence=1,
        priority=7,
        expiry=36000,
    )
    done = partner(connections, people).open("EXTERNAL_IN", output=True).put(md, header + b"order")
    qm = connections("gateway")
    proxy = ReprotectionProxy(
        gateway(qm, people), "EXTERNAL_IN", gateway(qm, people), "INTERNAL_IN", signer_property="AMSOriginalSigner"
    )
    assert proxy.move_one()
    (got,) = read_all(connections, people)
    assert (got.md.msg_id, got.md.correl_id, got.md.reply_to_q.strip(), got.md.reply_to_qmgr.strip()) == (
        done.msg_id,
        b"C" * 24,
        "REPLIES",
        "PARTNERQM",
    )
    assert (got.md.persistence, got.md.priority, got.md.format) == (1, 7, "MQHRF2  ")
    assert 0 < got.md.expiry <= 36000
    # the proxy's property (the original signer) and the partner's, as properties: the queue manager
    # merges and re-renders the MQRFH2 headers (ams/mq/rfh2_render.py), so their bytes are its to choose
    properties = read_properties(got.md, got.body)
    assert properties.folders == {"usr": {"AMSOriginalSigner": NAMES["orders"], "Colour": "blue"}}
    assert (got.body[properties.payload_offset :], properties.format) == (b"order", "MQSTR   ")
    assert str(ams.DistinguishedName.from_x509(got.signer.subject)) == NAMES["gateway"]  # type: ignore[union-attr]


def test_a_refused_message_is_counted_and_the_batch_goes_on(connections: Factory, people: dict[str, Issued]) -> None:
    partner(connections, people).open("EXTERNAL_IN", output=True).put(MQMD(), b"order 1")
    partner(connections, people, "intruder").open("EXTERNAL_IN", output=True).put(MQMD(), b"pay me")
    partner(connections, people).open("EXTERNAL_IN", output=True).put(MQMD(), b"order 2")
    qm = connections("gateway")
    events: list[ProxyEvent] = []
    proxy = ReprotectionProxy(
        gateway(qm, people), "EXTERNAL_IN", gateway(qm, people), "INTERNAL_IN", batch_size=10, on_event=events.append
    )
    assert proxy.move_batch() == 3
    assert [e.outcome for e in events] == ["moved", "refused", "moved"]
    assert "UnauthorisedSignerError" in events[1].reason and "pay me" not in events[1].to_json()
    # the refusal names the unauthorised signer (from the error's signer field) and its level
    assert (events[1].signer, events[1].level, events[1].msg_id != "") == (NAMES["intruder"], logging.WARNING, True)
    assert events[0].level == logging.INFO and events[0].elapsed_ms > 0
    assert connections("spy").depth(ERROR_QUEUE) == 1


def test_each_event_names_its_own_messages_signer(connections: Factory, people: dict[str, Issued]) -> None:
    """The DN of the last signer is kept: a message from another signer must not be reported under it."""
    senders = ["orders", "orders", "invoices", "orders", "invoices", "invoices"]
    for index, name in enumerate(senders):
        partner(connections, people, name).open("EXTERNAL_IN", output=True).put(MQMD(), b"order %d" % index)
    qm = connections("gateway")
    events: list[ProxyEvent] = []
    proxy = ReprotectionProxy(
        gateway(qm, people), "EXTERNAL_IN", gateway(qm, people), "INTERNAL_IN", batch_size=10, on_event=events.append
    )
    assert proxy.move_batch() == len(senders)
    assert [e.signer for e in events] == [NAMES[name] for name in senders]


def test_without_a_listener_every_outcome_is_still_counted(connections: Factory, people: dict[str, Issued]) -> None:
    """Events are made only for someone to hear them; the counts and the refusals' reasons are kept either way."""
    partner(connections, people).open("EXTERNAL_IN", output=True).put(MQMD(), b"order 1")
    partner(connections, people, "intruder").open("EXTERNAL_IN", output=True).put(MQMD(), b"pay me")
    partner(connections, people).open("EXTERNAL_IN", output=True).put(MQMD(), b"order 2")
    qm = connections("gateway")
    proxy = ReprotectionProxy(gateway(qm, people), "EXTERNAL_IN", gateway(qm, people), "INTERNAL_IN", batch_size=10)
    assert proxy.move_batch() == 3
    assert (proxy.stats.moved, proxy.stats.refused, proxy.stats.handled) == (2, 1, 3)
    assert len(proxy.stats.reasons) == 1 and "UnauthorisedSignerError" in proxy.stats.reasons[0]
    assert [m.body for m in read_all(connections, people)] == [b"order 1", b"order 2"]


# -- two queue managers ------------------------------------------------------------------------------


def _two(tmp_path: Path) -> tuple[EmbeddedQueueManager, EmbeddedQueueManager]:
    partner_qm = EmbeddedQueueManager(tmp_path / "partner.sqlite", name="PARTNERQM", create=True)
    partner_qm.define_queue("EXTERNAL_IN")
    ours = EmbeddedQueueManager(tmp_path / "ours.sqlite", name="ORGQM", create=True)
    ours.define_queue("INTERNAL_IN")
    ours.define_queue("AMS.PROXY.LEDGER")
    return partner_qm, ours


@pytest.mark.parametrize("threshold", [None, 1])
def test_between_two_queue_managers_a_repeat_after_a_crash_is_not_put_again(
    tmp_path: Path, people: dict[str, Issued], threshold: int | None
) -> None:
    """Threshold 1: the repeat has reached its backout threshold, and is recognised all the same
    (the ledger is asked first), not moved to the backout queue as a poison message. The ledger
    needs no +get (`ams qm authorities --ledger` grants +put +browse +inq)."""
    partner_qm, ours = _two(tmp_path)
    ours.deny("AMS.PROXY.LEDGER", "get")
    sender = ProtectedQueueManager(partner_qm.connect("orders"), keystore(people, "orders"), POLICIES)
    for i in range(3):
        sender.open("EXTERNAL_IN", output=True).put(MQMD(), b"order %d" % i)
    source_qm, target_qm = partner_qm.connect("gateway"), ours.connect("gateway")
    proxy = ReprotectionProxy(
        gateway(source_qm, people),
        "EXTERNAL_IN",
        gateway(target_qm, people),
        "INTERNAL_IN",
        batch_size=3,
        ledger=DeliveryLedger(target_qm),
    )

    def crash() -> None:  # the target committed, then the process died before the source commit
        raise SystemExit("killed")

    source_qm.commit = crash  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        proxy.move_batch()
    source_qm.close()  # what the queue manager does for a dead connection: back out
    source_qm = partner_qm.connect("gateway again")
    events: list[ProxyEvent] = []
    again = ReprotectionProxy(
        gateway(source_qm, people),
        "EXTERNAL_IN",
        gateway(ours.connect("gateway again"), people),
        "INTERNAL_IN",
        batch_size=3,
        ledger=DeliveryLedger(ours.connect("ledger")),
        on_event=events.append,
        backout_threshold=threshold,
    )
    assert again.run().duplicates == 3 and [e.outcome for e in events] == ["duplicate"] * 3
    reader = ProtectedQueueManager(ours.connect("alice"), keystore(people, "alice"), POLICIES).open(
        "INTERNAL_IN", input=True
    )
    assert [reader.get().body for _ in range(3)] == [b"order 0", b"order 1", b"order 2"]
    with pytest.raises(ams.mq.NoMessageAvailable):
        reader.get()
    spy = partner_qm.connect("spy")
    assert spy.depth("EXTERNAL_IN") == 0 == spy.depth("SYSTEM.PROTECTION.ERROR.QUEUE")


def test_the_ledger_needs_the_same_bytes_not_only_the_msgid(tmp_path: Path, people: dict[str, Issued]) -> None:
    """An application may set MsgIds itself: a different message with a known MsgId is delivered."""
    _, ours = _two(tmp_path)
    ledger = DeliveryLedger(ours.connect("gateway"))
    ledger.record(b"M" * 24, b"first message")
    ledger.qm.commit()
    assert ledger.delivered(b"M" * 24, b"first message")
    assert not ledger.delivered(b"M" * 24, b"another message with the same MsgId")
    assert not ledger.delivered(b"N" * 24, b"first message") and not ledger.delivered(bytes(24), b"x")


def test_a_ledger_key_is_the_documented_digest_of_its_scope_msgid_and_bytes(tmp_path: Path) -> None:
    """Entries written by an earlier version must still be found: the key and the note keep their form."""
    _, ours = _two(tmp_path)

    def documented(scope: str, msg_id: bytes, body: bytes) -> bytes:
        parts = (scope.encode(), msg_id, body)
        return hashlib.sha256(b"".join(len(p).to_bytes(8, "big") + p for p in parts)).digest()[:24]

    ledger = DeliveryLedger(ours.connect("gateway"), scope='route "a" \u00e9')
    assert ledger.key(b"M" * 24, b"bytes") == documented('route "a" \u00e9', b"M" * 24, b"bytes")
    assert ledger.key(b"M" * 24, b"bytes") != documented("route b", b"M" * 24, b"bytes")  # another route's
    ledger.record(b"M" * 24, b"bytes")
    ledger.qm.commit()
    entry = ours.connect("spy").open("AMS.PROXY.LEDGER", browse=True).browse_first()
    assert entry.md.msg_id == documented('route "a" \u00e9', b"M" * 24, b"bytes")
    assert json.loads(entry.body) == {"scope": 'route "a" \u00e9', "source_msg_id": "4d" * 24}
    assert entry.body == json.dumps({"scope": 'route "a" \u00e9', "source_msg_id": "4d" * 24}).encode()


def test_the_ledger_is_for_two_queue_managers_only(connections: Factory, people: dict[str, Issued]) -> None:
    qm = connections("gateway")
    with pytest.raises(ams.errors.ConfigurationError, match="exactly once"):
        ReprotectionProxy(
            gateway(qm, people), "EXTERNAL_IN", gateway(qm, people), "INTERNAL_IN", ledger=DeliveryLedger(qm, "Q")
        )


def test_a_route_backout_queue_takes_the_poison(
    connections: Factory, people: dict[str, Issued], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    done = partner(connections, people).open("EXTERNAL_IN", output=True).put(MQMD(), b"poison order")
    _poison(monkeypatch)
    qm = connections("gateway")
    proxy = ReprotectionProxy(
        gateway(qm, people),
        "EXTERNAL_IN",
        gateway(qm, people),
        "INTERNAL_IN",
        backout_threshold=2,
        backout_queue="P.INT.BACKOUT",
    )
    with caplog.at_level("INFO", logger="ams"):
        stats = proxy.run(limit=10)
    assert (stats.failed, stats.poison, stats.refused) == (2, 1, 0) and PoisonMessageError.__name__ in stats.reasons[-1]
    # the library's own line: the move aside names the message, a WARNING as a refusal is
    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "ams.mq.protected"]
    assert [level for level, _ in records] == [logging.WARNING] and done.msg_id.hex() in records[0][1], records
    assert connections("spy").depth("P.INT.BACKOUT") == 1


def test_the_library_logs_refusals_through_the_ams_logger_without_payloads(
    connections: Factory, people: dict[str, Issued], caplog: pytest.LogCaptureFixture
) -> None:
    done = partner(connections, people, "intruder").open("EXTERNAL_IN", output=True).put(MQMD(), b"secret pay me")
    qm = connections("gateway")
    proxy = ReprotectionProxy(gateway(qm, people), "EXTERNAL_IN", gateway(qm, people), "INTERNAL_IN")
    with caplog.at_level("INFO", logger="ams"):
        proxy.run()
    (record,) = [r for r in caplog.records if r.name == "ams.mq.protected"]
    text = record.getMessage()
    assert done.msg_id.hex() in text and "EXTERNAL_IN" in text and "UnauthorisedSignerError" in text
    assert "secret" not in caplog.text


def test_a_message_sent_twice_on_purpose_is_delivered_twice(tmp_path: Path, people: dict[str, Issued]) -> None:
    """Same MsgId (set by the application) and same bytes, neither got before: the ledger is only
    asked about redeliveries, so both arrive."""
    partner_qm, ours = _two(tmp_path)
    partner_qm.define_queue("Q")
    ours.define_queue("NO.POLICY.Q")
    sender = partner_qm.connect("legacy")
    for _ in range(2):
        sender.put1("Q", MQMD(msg_id=b"A" * 24), b"same order")
    proxy = ReprotectionProxy(
        gateway(partner_qm.connect("gateway"), people),
        "Q",
        gateway(ours.connect("gateway"), people),
        "NO.POLICY.Q",
        ledger=DeliveryLedger(ours.connect("ledger")),
    )
    assert proxy.run().moved == 2
    assert ours.connect("spy").depth("NO.POLICY.Q") == 2


def test_a_target_that_refuses_puts_costs_its_messages_one_backout_at_most(
    connections: Factory, people: dict[str, Issued]
) -> None:
    if connections.manager is None:
        pytest.skip("denies an authority in the stand-in")
    partner(connections, people).open("EXTERNAL_IN", output=True).put(MQMD(), b"order")
    qm = connections("gateway")
    proxy = ReprotectionProxy(
        gateway(qm, people), "EXTERNAL_IN", gateway(qm, people), "INTERNAL_IN", backout_threshold=2
    )
    connections.manager.define_queue("INTERNAL_IN", put_inhibited=True)  # ALTER QLOCAL PUT(DISABLED)
    with pytest.raises(RouteUnavailable, match="2051"):
        proxy.move_batch()
    for _ in range(5):  # a worker probes while it waits: nothing is got, no backout is counted
        problem = proxy.probe()
        assert problem is not None and problem.reason == 2051
    connections.manager.define_queue("INTERNAL_IN")
    assert proxy.probe() is None
    assert proxy.run().moved == 1 and proxy.stats.refused == 0
    (got,) = read_all(connections, people)
    assert got.body == b"order" and connections("spy").depth(ERROR_QUEUE) == 0


def test_a_sender_cannot_pose_as_the_original_signer(connections: Factory, people: dict[str, Issued]) -> None:
    """An unsigned message carrying its own copy of the signer property is refused: MQ decides which of
    two same-named properties a reader sees, so the proxy's must be the only one
    (tests/security/test_proxy_property_attacks.py has the protected cases)."""
    forged = b"<usr><AMSOriginalSigner>CN=treasurer,O=AMS,C=GB</AMSOriginalSigner></usr>"
    header = rfh2(forged)
    connections("legacy").put1("NO.POLICY.Q", MQMD(format="MQHRF2  "), header + b"pay")
    connections("legacy").put1("NO.POLICY.Q", MQMD(format="MQSTR   "), b"plain")  # the twin: no such property
    qm = connections("gateway")
    events: list[ProxyEvent] = []
    proxy = ReprotectionProxy(
        gateway(qm, people),
        "NO.POLICY.Q",
        gateway(qm, people),
        "INTERNAL_IN",
        signer_property="AMSOriginalSigner",
        on_event=events.append,
        batch_size=10,
    )
    assert proxy.move_batch() == 2
    assert [e.outcome for e in events] == ["refused", "moved"] and "ForgedPropertyError" in events[0].reason
    (got,) = read_all(connections, people)
    first_folder = got.body[40 : 40 + struct.unpack("<i", got.body[36:40])[0]]
    assert first_folder.rstrip() == b"<usr><AMSOriginalSigner></AMSOriginalSigner></usr>"  # unsigned: empty
    assert got.body.endswith(b"plain") and connections("spy").depth(ERROR_QUEUE) == 1
