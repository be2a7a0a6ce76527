"""What survives a put and a get of MQRFH2 property folders, over every transport (issue 18, item 10).

IBM MQ keeps a message's properties, not its MQRFH2 bytes, and renders them again for a get
("PROPCTL queue options": "the layout and number of MQRFH2 headers" can change). The embedded
queue manager models the harsher reading of IBM's documentation (ams/mq/rfh2_render.py): headers
merged into one, folders in MQ's order, of two same-named elements only the one closest to the head.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from ams.mq import MQMD, ProtectedQueueManager
from ams.mq.ledger import DeliveryLedger
from ams.mq.properties import _leading_rfh2, read_properties
from ams.mq.proxy import ProxyEvent, ReprotectionProxy
from ams.pki import Issued
from tests.example_people import NAMES, POLICIES, keystore
from tests.mq_transports import Factory
from tests.test_proxy_mover import _two, gateway, people

__all__ = ["people"]  # the module-scoped fixture, shared with the mover's tests

RFH2 = "MQHRF2  "


def rfh2(*folders: bytes, next_format: bytes = b"MQSTR   ") -> bytes:
    """One MQRFH2 (little-endian, as MQENC_NATIVE on x86) with one NameValueData per folder."""
    data = b""
    for folder in folders:
        folder += b" " * (-len(folder) % 4)
        data += struct.pack("<i", len(folder)) + folder
    return struct.pack("<4siiii8sii", b"RFH ", 2, 36 + len(data), 546, 1208, next_format, 0, 1208) + data


def put_and_get(connections: Factory, body: bytes, queue: str = "Q") -> tuple[MQMD, bytes]:
    connections("sender").put1(queue, MQMD(format=RFH2), body)
    got = connections("receiver").open(queue, input=True).get()
    return got.md, got.body


def folder_names(md: MQMD, body: bytes) -> list[str]:
    return [text.split(b">")[0].lstrip(b"<").decode() for header in _leading_rfh2(md, body) for text in header.texts]


def test_two_same_named_properties_leave_the_one_closest_to_the_head(connections: Factory) -> None:
    first = rfh2(b"<usr><Amount>1</Amount><Amount>2</Amount></usr>", next_format=RFH2.encode())
    second = rfh2(b"<usr><Amount>3</Amount><Payee>bob</Payee></usr>")
    md, body = put_and_get(connections, first + second + b"pay")
    properties = read_properties(md, body)
    assert properties.folders == {"usr": {"Amount": "1", "Payee": "bob"}}
    assert body.count(b"<Amount>") == 1 and len(_leading_rfh2(md, body)) == 1  # merged into one MQRFH2
    assert (body[properties.payload_offset :], properties.format, md.format) == (b"pay", "MQSTR   ", RFH2)


def test_properties_of_different_names_all_survive(connections: Factory) -> None:
    """The twin: names that differ (in case too, as MQ's property names do) are all kept, in order."""
    put = rfh2(b"<usr><Amount>1</Amount><amount>2</amount><Note dt='string'>a &amp; b</Note></usr>")
    md, body = put_and_get(connections, put + b"pay")
    assert read_properties(md, body).folders == {"usr": {"Amount": "1", "amount": "2", "Note": "a & b"}}
    assert body.index(b"<Amount>") < body.index(b"<amount>") < body.index(b"<Note")


def test_folders_come_in_mqs_order_whatever_the_order_put(connections: Factory) -> None:
    put = rfh2(
        b"<usr><A>1</A></usr>",
        b"<app><X>2</X></app>",
        b"<jms><Dst>queue:///Q</Dst></jms>",
        b"<mcd><Msd>jms_bytes</Msd></mcd>",
    )
    md, body = put_and_get(connections, put + b"pay")
    assert folder_names(md, body) == ["mcd", "jms", "usr", "app"]
    assert read_properties(md, body).folders["app"] == {"X": "2"}


def test_every_get_of_a_message_receives_the_same_bytes(connections: Factory) -> None:
    """A message backed out and got again, as the proxy's ledger sees a redelivery, and a message
    got and put again: the rendering is the same, so the ledger's key (the bytes as got) matches."""
    put = rfh2(b"<usr><B>2</B><A>1</A><B>3</B></usr>", next_format=RFH2.encode()) + rfh2(b"<mcd><Msd>x</Msd></mcd>")
    connections("sender").put1("Q", MQMD(format=RFH2), put + b"pay")
    qm = connections("receiver")
    handle = qm.open("Q", input=True)
    first = handle.get(syncpoint=True)
    qm.backout()
    again = handle.get(syncpoint=True)
    assert (again.md.backout_count, again.body) == (1, first.body) and first.body != put + b"pay"
    ledger = DeliveryLedger(connections("ledger"), "T.DISC")
    assert ledger.key(first.md.msg_id, first.body) == ledger.key(again.md.msg_id, again.body)
    qm.commit()
    assert put_and_get(connections, again.body)[1] == again.body


def test_a_header_that_is_not_xml_is_left_as_put(connections: Factory) -> None:
    put = rfh2(b"<usr><A>1</usr>", next_format=RFH2.encode()) + rfh2(b"<usr><A>2</A></usr>")
    assert put_and_get(connections, put + b"pay")[1] == put + b"pay"


def test_a_hostile_nesting_is_left_as_put(connections: Factory) -> None:
    """Rendering walks the elements: a folder nested 100,000 deep is not re-rendered (nor does the
    put fail); its twin 30 deep is."""
    deep = b"<usr>" + b"<g>" * 100_000 + b"x" + b"</g>" * 100_000 + b"</usr>"
    put = rfh2(deep, next_format=RFH2.encode()) + rfh2(b"<usr><A>1</A><A>2</A></usr>")
    assert put_and_get(connections, put + b"pay", "T.HUGE")[1] == put + b"pay"
    shallow = rfh2(b"<usr>" + b"<g>" * 30 + b"x" + b"</g>" * 30 + b"</usr>", next_format=RFH2.encode())
    md, body = put_and_get(connections, shallow + rfh2(b"<usr><A>1</A><A>2</A></usr>") + b"pay")
    assert len(_leading_rfh2(md, body)) == 1 and body.count(b"<A>") == 1


def test_a_redelivery_after_re_rendering_is_still_recognised_by_the_ledger(
    tmp_path: Path, people: dict[str, Issued]
) -> None:
    """Two queue managers, a crash between the target's commit and the source's: the message (two
    MQRFH2 headers, a duplicate property) got again is recognised, not delivered twice."""
    partner_qm, ours = _two(tmp_path)
    sender = ProtectedQueueManager(partner_qm.connect("orders"), keystore(people, "orders"), POLICIES)
    headers = rfh2(b"<usr><Ref>1</Ref><Ref>2</Ref></usr>", next_format=RFH2.encode()) + rfh2(b"<mcd><Msd>x</Msd></mcd>")
    sender.open("EXTERNAL_IN", output=True).put(MQMD(format=RFH2), headers + b"order")

    def route(name: str, events: list[ProxyEvent]) -> ReprotectionProxy:
        target = ours.connect(name)
        return ReprotectionProxy(
            gateway(partner_qm.connect(name), people),
            "EXTERNAL_IN",
            gateway(target, people),
            "INTERNAL_IN",
            ledger=DeliveryLedger(target),  # in the unit of work of the target's puts
            signer_property="AMSOriginalSigner",
            on_event=events.append,
        )

    crashed = route("gateway", [])

    def crash() -> None:  # the target committed, then the process died before the source commit
        raise SystemExit("killed")

    crashed.source.commit = crash  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        crashed.move_batch()
    crashed.source.close()  # what the queue manager does for a dead connection: back out
    events: list[ProxyEvent] = []
    assert route("gateway again", events).run().duplicates == 1 and [e.outcome for e in events] == ["duplicate"]
    reader = ProtectedQueueManager(ours.connect("alice"), keystore(people, "alice"), POLICIES).open(
        "INTERNAL_IN", input=True
    )
    got = reader.get()
    properties = read_properties(got.md, got.body)
    assert properties.folders == {"mcd": {"Msd": "x"}, "usr": {"AMSOriginalSigner": NAMES["orders"], "Ref": "1"}}
    assert got.body.count(b"<AMSOriginalSigner>") == 1 and got.body[properties.payload_offset :] == b"order"
    assert ours.connect("spy").depth("INTERNAL_IN") == 0


def test_reading_properties_takes_the_one_closest_to_the_head() -> None:
    """``read_properties`` (``ams get --json``, the proxy's checks) follows IBM's rule on headers no
    queue manager has re-rendered yet: the first of two same-named elements is the property."""
    body = rfh2(b"<usr><A>1</A><A>2</A></usr>", next_format=RFH2.encode()) + rfh2(b"<usr><A>3</A><B>4</B></usr>")
    assert read_properties(MQMD(format=RFH2), body + b"pay").folders == {"usr": {"A": "1", "B": "4"}}


def test_an_mqrfh2_behind_another_format_is_left_as_put(connections: Factory) -> None:
    """A body that starts like an MQRFH2 under a Format that does not say so is data, not a header:
    put and got byte for byte (rerender looks no further than the Format, as MQ reads the chain)."""
    body = rfh2(b"<usr><Amount>1</Amount><Amount>2</Amount></usr>") + b"pay"
    connections("sender").put1("Q", MQMD(format="MQSTR   "), body)
    got = connections("receiver").open("Q", input=True).get()
    assert (got.md.format, got.body) == ("MQSTR   ", body)


def test_the_same_bytes_under_mqhrf2_are_rendered_again(connections: Factory) -> None:
    """The twin: the same body under Format MQHRF2 is a header, re-rendered (one Amount left)."""
    body = rfh2(b"<usr><Amount>1</Amount><Amount>2</Amount></usr>") + b"pay"
    md, got = put_and_get(connections, body)
    assert got != body and got.count(b"<Amount>") == 1 and md.format == RFH2
