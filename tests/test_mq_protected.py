"""Protected queues end to end: every QoP through put and get, the error queue byte by byte,
syncpoint, one-shot puts, properties in the clear, browse, tolerate, policies from the queue manager."""

from __future__ import annotations

import struct

import attrs
import pytest

import ams
import ams.errors
from ams.mq import MQMD, NoMessageAvailable, ProtectedQueueManager
from ams.mq.dlh import MQDLH
from ams.mq.mqmd import md_with
from ams.mq.properties import read_properties
from ams.mq.protected import ERROR_QUEUE, policies_from_queue_manager, write_policies_to_queue_manager
from tests.conftest import Pki, rfh2, store
from tests.mq_transports import Factory


@pytest.fixture
def policies(pki: Pki) -> ams.PolicyStore:
    return store(
        f'setmqspl -m QM -p P.INT -s SHA256 -a "{pki.dn("alice")}"',
        f'setmqspl -m QM -p P.PRIV -s SHA256 -e AES256 -r "{pki.dn("bob")}" -a "{pki.dn("alice")}"',
        f'setmqspl -m QM -p P.CONF -e AES128 -r "{pki.dn("bob")}" -c 5',
        "setmqspl -m QM -p P.TOL -s SHA256 -t 1",
    )


def manager(factory: Factory, pki: Pki, name: str, policies: ams.PolicyStore) -> ProtectedQueueManager:
    return ProtectedQueueManager(factory(name), pki.keystore(name), policies)


@pytest.mark.parametrize(
    "queue,qop", [("P.INT", ams.QoP.INTEGRITY), ("P.PRIV", ams.QoP.PRIVACY), ("P.CONF", ams.QoP.CONFIDENTIALITY)]
)
def test_every_qop_through_put_and_get(
    connections: Factory, pki: Pki, policies: ams.PolicyStore, queue: str, qop: ams.QoP
) -> None:
    alice = manager(connections, pki, "alice", policies)
    md = MQMD(format="MQSTR   ", correl_id=b"C" * 24)
    put = alice.open(queue, output=True).put(md, b"payload for bob")
    assert md.format == "MQSTR   "  # the caller's MQMD is left as it was given
    assert put.format == " " * 8  # on the queue: Format blanked, PDMQ + CMS follow
    raw = connections("spy").open(queue, browse=True).browse_first()
    assert raw.body[:4] == b"PDMQ" and (b"payload for bob" in raw.body) is (qop is ams.QoP.INTEGRITY)
    got = manager(connections, pki, "bob", policies).open(queue, input=True).get()
    assert (got.body, got.md.format, got.qop, got.md.correl_id) == (b"payload for bob", "MQSTR   ", qop, b"C" * 24)


@pytest.mark.parametrize("keep_msg_id", [True, False])
def test_forward_puts_a_got_message_with_its_descriptor(
    connections: Factory, pki: Pki, policies: ams.PolicyStore, keep_msg_id: bool
) -> None:
    """As a proxy forwards: the descriptor travels, its BackoutCount does not, and the MsgId is kept or new."""
    alice = manager(connections, pki, "alice", policies)
    got = MQMD(format="MQSTR   ", msg_id=b"M" * 24, correl_id=b"C" * 24, backout_count=3, reply_to_q="REPLIES")
    done = alice.open("P.INT", output=True).forward(got, b"forwarded", keep_msg_id=keep_msg_id)
    assert got.backout_count == 3 and got.msg_id == b"M" * 24  # the caller's MQMD is left as it was
    read = manager(connections, pki, "bob", policies).open("P.INT", input=True).get()
    assert (read.body, read.md.format, read.md.correl_id, read.md.reply_to_q) == (
        b"forwarded",
        "MQSTR   ",
        b"C" * 24,
        "REPLIES",
    )
    assert read.md.backout_count == 0 and read.md.msg_id == done.msg_id
    assert (read.md.msg_id == b"M" * 24) is keep_msg_id  # a new MsgId, from the queue manager, when not kept
    assert any(read.md.msg_id)


def test_md_with_is_evolve_and_refuses_what_evolve_refuses() -> None:
    md = MQMD(format="MQSTR   ", msg_id=b"M" * 24, priority=7, put_appl_name="app")
    assert md_with(md, format="MQHRF2  ", backout_count=2) == attrs.evolve(md, format="MQHRF2  ", backout_count=2)
    assert md_with(md) == md and md_with(md) is not md
    with pytest.raises(TypeError, match="formats"):
        md_with(md, formats="MQHRF2  ")


def test_refused_get_moves_the_message_to_the_error_queue_field_by_field(
    connections: Factory, pki: Pki, policies: ams.PolicyStore
) -> None:
    alice = manager(connections, pki, "alice", policies)
    original = MQMD(format="MQSTR   ", encoding=273, ccsid=819)
    stamped = alice.open("P.PRIV", output=True).put(original, b"not for carol")
    raw_on_queue = connections("spy").open("P.PRIV", browse=True).browse_first().body
    carol = manager(connections, pki, "carol", policies)
    with pytest.raises(ams.errors.NotARecipientError) as caught:
        carol.open("P.PRIV", input=True).get()
    assert caught.value.reason == 2063 and ERROR_QUEUE in caught.value.__notes__[0]
    spy = connections("spy2")
    assert spy.depth("P.PRIV") == 0
    moved = spy.open(ERROR_QUEUE, input=True).get()
    md = moved.md
    assert (md.format, md.persistence, md.encoding, md.ccsid) == ("MQDEAD  ", 1, 273, 819)
    body = moved.body
    assert len(body) == 172 + len(raw_on_queue) and body[172:] == raw_on_queue  # still protected
    assert body[:4] == b"DLH " and struct.unpack(">ii", body[4:12]) == (1, 2063)  # big-endian: encoding 273
    assert body[12:60].rstrip() == b"P.PRIV"
    assert body[60:108].rstrip() == spy.name.encode()
    assert struct.unpack(">ii", body[108:116]) == (273, 819)
    assert body[116:124] == b" " * 8  # the failed message's Format: blank, as AMS left it
    assert struct.unpack(">i", body[124:128])[0] == stamped.put_appl_type
    assert body[128:156].rstrip() == stamped.put_appl_name.encode()  # "alice" on every transport here
    assert body[156:164] == stamped.put_date.encode() and body[164:172] == stamped.put_time.encode()
    assert MQDLH.unpack(body, 273).dest_q_name == "P.PRIV"


def test_backout_returns_a_refused_message_and_its_error_queue_copy_goes(
    connections: Factory, pki: Pki, policies: ams.PolicyStore
) -> None:
    manager(connections, pki, "alice", policies).open("P.PRIV", output=True).put(MQMD(), b"x")
    carol = manager(connections, pki, "carol", policies)
    with pytest.raises(ams.errors.NotARecipientError):
        carol.open("P.PRIV", input=True).get(syncpoint=True)
    spy = connections("spy")
    # both inside carol's unit of work: CURDEPTH counts her uncommitted put (as MQ's does), no one can get it
    assert spy.depth("P.PRIV") == 0 and spy.depth(ERROR_QUEUE) == 1
    with pytest.raises(NoMessageAvailable):
        spy.open(ERROR_QUEUE, input=True).get()
    carol.backout()
    assert spy.depth("P.PRIV") == 1 and spy.depth(ERROR_QUEUE) == 0
    bob = manager(connections, pki, "bob", policies)
    message = bob.open("P.PRIV", input=True).get(syncpoint=True)
    assert message.body == b"x" and message.md.backout_count == 1
    bob.commit()


def test_committed_refusal_lands_on_the_error_queue(connections: Factory, pki: Pki, policies: ams.PolicyStore) -> None:
    manager(connections, pki, "alice", policies).open("P.PRIV", output=True).put(MQMD(), b"x")
    carol = manager(connections, pki, "carol", policies)
    with pytest.raises(ams.errors.NotARecipientError):
        carol.open("P.PRIV", input=True).get(syncpoint=True)
    carol.commit()
    assert connections("spy").depth(ERROR_QUEUE) == 1


def test_browse_never_moves_a_message(connections: Factory, pki: Pki, policies: ams.PolicyStore) -> None:
    manager(connections, pki, "alice", policies).open("P.PRIV", output=True).put(MQMD(), b"x")
    carol = manager(connections, pki, "carol", policies).open("P.PRIV", browse=True)
    with pytest.raises(ams.errors.NotARecipientError):
        carol.browse_first()
    spy = connections("spy")
    assert spy.depth("P.PRIV") == 1 and spy.depth(ERROR_QUEUE) == 0
    assert manager(connections, pki, "bob", policies).open("P.PRIV", browse=True).browse_first().body == b"x"


def test_one_shot_puts_never_reuse_a_key(connections: Factory, pki: Pki, policies: ams.PolicyStore) -> None:
    alice = manager(connections, pki, "alice", policies)
    handle = alice.open("P.CONF", output=True)
    handle.put(MQMD(), b"a")
    handle.put(MQMD(), b"b")
    alice.put1("P.CONF", MQMD(), b"c")
    alice.put1("P.CONF", MQMD(), b"d")
    spy = connections("spy").open("P.CONF", browse=True)
    blocks = []
    message = spy.browse_first()
    while True:
        size = struct.unpack(">i", message.body[28:32])[0]
        blocks.append(message.body[112 : 112 + size])
        try:
            message = spy.browse_next()
        except NoMessageAvailable:
            break
    assert blocks[0] == blocks[1] and len({blocks[0], blocks[2], blocks[3]}) == 3
    bob = manager(connections, pki, "bob", policies).open("P.CONF", input=True)
    assert [bob.get().body for _ in range(4)] == [b"a", b"b", b"c", b"d"]


def test_properties_in_mqrfh2_survive(connections: Factory, pki: Pki, policies: ams.PolicyStore) -> None:
    """The MQRFH2 stays in the clear in front of the PDMQ header, its properties readable; its bytes
    are the queue manager's to re-render (here, the 34-byte folder comes back padded to 32)."""
    folder = b"<usr><Colour>blue</Colour></usr>  "
    header = rfh2(folder)
    md = MQMD(format="MQHRF2  ", encoding=546, ccsid=1208)
    manager(connections, pki, "alice", policies).open("P.PRIV", output=True).put(md, header + b"body")
    raw = connections("spy").open("P.PRIV", browse=True).browse_first()
    clear = read_properties(raw.md, raw.body)
    assert raw.md.format == "MQHRF2  " and (clear.folders, clear.format) == ({"usr": {"Colour": "blue"}}, " " * 8)
    assert raw.body[clear.payload_offset : clear.payload_offset + 4] == b"PDMQ"
    with pytest.raises(ams.errors.NotARecipientError):
        manager(connections, pki, "carol", policies).open("P.PRIV", input=True).get()
    moved = connections("spy2").open(ERROR_QUEUE, input=True).get()
    assert moved.body[172:] == raw.body and moved.body[116:124] == b"MQHRF2  "
    manager(connections, pki, "alice", policies).open("P.PRIV", output=True).put(md, header + b"body")
    got = manager(connections, pki, "bob", policies).open("P.PRIV", input=True).get()
    properties = read_properties(got.md, got.body)
    assert (properties.folders, properties.format) == ({"usr": {"Colour": "blue"}}, "MQSTR   ")
    assert got.body[properties.payload_offset :] == b"body" and got.md.format == "MQHRF2  "


def test_tolerate_and_unprotected_queues(connections: Factory, pki: Pki, policies: ams.PolicyStore) -> None:
    plain = connections("legacy")
    plain.put1("P.TOL", MQMD(), b"from a legacy app")
    plain.put1("P.INT", MQMD(), b"also legacy")
    bob = manager(connections, pki, "bob", policies)
    tolerated = bob.open("P.TOL", input=True).get()
    assert (tolerated.body, tolerated.qop) == (b"from a legacy app", ams.QoP.NONE)
    with pytest.raises(ams.errors.NotProtectedError):
        bob.open("P.INT", input=True).get()
    assert connections("spy").depth(ERROR_QUEUE) == 1
    bob.open("NO.POLICY.Q", output=True).put(MQMD(), b"clear")
    assert connections("spy2").open("NO.POLICY.Q", input=True).get().body == b"clear"


def test_system_queues_are_never_protected(connections: Factory, pki: Pki) -> None:
    everything = store(f'setmqspl -m QM -p SYSTEM.ADMIN.COMMAND.QUEUE -s SHA256 -e AES256 -r "{pki.dn("bob")}"')
    alice = ProtectedQueueManager(connections("alice"), pki.keystore("alice"), everything)
    alice.open("SYSTEM.ADMIN.COMMAND.QUEUE", output=True).put(MQMD(), b"clear")
    assert connections("spy").open("SYSTEM.ADMIN.COMMAND.QUEUE", input=True).get().body == b"clear"


def test_open_fails_naming_a_missing_recipient(connections: Factory, pki: Pki) -> None:
    missing = store('setmqspl -m QM -p P.MISSING -s SHA256 -e AES256 -r "CN=nobody,O=AMS,C=GB"')
    with pytest.raises(ams.errors.RecipientNotFoundError, match="CN=nobody,O=AMS,C=GB"):
        ProtectedQueueManager(connections("alice"), pki.keystore("alice"), missing).open("P.MISSING", output=True)


def test_policies_from_the_queue_managers_policy_queue(
    connections: Factory, pki: Pki, policies: ams.PolicyStore
) -> None:
    admin = connections("admin")
    write_policies_to_queue_manager(admin, policies)
    assert policies_from_queue_manager(connections("reader")) == dict(policies)
    alice = ProtectedQueueManager(connections("alice"), pki.keystore("alice"))  # no store: the QM's policies
    alice.open("P.PRIV", output=True).put(MQMD(), b"policy from the QM")
    bob = ProtectedQueueManager(connections("bob"), pki.keystore("bob"))
    assert bob.open("P.PRIV", input=True).get().body == b"policy from the QM"
    changed = dict(policies)
    changed["P.PRIV"] = attrs.evolve(policies["P.PRIV"], signers=())
    write_policies_to_queue_manager(admin, changed)
    assert policies_from_queue_manager(connections("reader2"))["P.PRIV"].signers == ()
