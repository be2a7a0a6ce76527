"""A sender who forges the re-protection proxy's signer property.

A route with ``signer_property`` tells readers on its far side who signed the original message,
in an MQRFH2 ``usr`` property. MQRFH2 headers travel in the clear, outside AMS's protection, so a
partner (or anyone on the way) can put a property of that name into the message. The proxy puts
its own in front, but which of two same-named properties a reader sees is the queue manager's to
decide when it re-renders the headers (PROPCTL: "the layout and number of MQRFH2 headers can
change"). So a message that already carries it is refused, as a message that fails AMS's checks
is: moved to the error queue, counted as refused, never delivered.
"""

from __future__ import annotations

import struct

import pytest

from ams.mq import MQMD
from ams.mq.properties import read_properties
from ams.mq.protected import ERROR_QUEUE
from ams.mq.proxy import ProxyEvent, ReprotectionProxy
from ams.pki import Issued
from tests.example_people import NAMES
from tests.mq_transports import Factory
from tests.test_proxy_mover import gateway, partner, people, read_all

__all__ = ["people"]  # the module-scoped fixture, shared with the mover's tests

PROPERTY = "AMSOriginalSigner"


def _rfh2(folders: bytes) -> bytes:
    folders += b" " * (-len(folders) % 4)
    header = struct.pack("<4siiii8sii", b"RFH ", 2, 36 + 4 + len(folders), 546, 1208, b"MQSTR   ", 0, 1208)
    return header + struct.pack("<i", len(folders)) + folders


def _route(connections: Factory, people: dict[str, Issued], events: list[ProxyEvent]) -> ReprotectionProxy:
    qm = connections("gateway")
    return ReprotectionProxy(
        gateway(qm, people),
        "EXTERNAL_IN",
        gateway(qm, people),
        "INTERNAL_IN",
        signer_property=PROPERTY,
        on_event=events.append,
        batch_size=10,
    )


FORGED = [
    pytest.param(f"<usr><{PROPERTY}>{NAMES['alice']}</{PROPERTY}></usr>".encode(), id="the same name"),
    pytest.param(f"<usr><{PROPERTY.lower()}>{NAMES['alice']}</{PROPERTY.lower()}></usr>".encode(), id="another case"),
    pytest.param(
        b"<usr>"
        + b"".join(b"<p%d>x</p%d>" % (n, n) for n in range(1000))
        + f"<{PROPERTY}>x</{PROPERTY}>".encode()
        + b"</usr>",
        id="behind 1,000 others",
    ),
]


@pytest.mark.parametrize("folders", FORGED)
def test_a_message_carrying_the_proxys_signer_property_is_refused(
    connections: Factory, people: dict[str, Issued], folders: bytes
) -> None:
    sender = partner(connections, people).open("EXTERNAL_IN", output=True)
    sender.put(MQMD(), b"order 1")
    sender.put(MQMD(format="MQHRF2  "), _rfh2(folders) + b"pay me")
    sender.put(MQMD(), b"order 2")
    events: list[ProxyEvent] = []
    assert _route(connections, people, events).move_batch() == 3
    assert [e.outcome for e in events] == ["moved", "refused", "moved"]
    assert "ForgedPropertyError" in events[1].reason and "pay me" not in events[1].to_json()
    delivered = read_all(connections, people)
    assert [m.body.endswith(b"order 1") or m.body.endswith(b"order 2") for m in delivered] == [True, True]
    assert connections("spy").depth(ERROR_QUEUE) == 1  # refused, not lost


@pytest.mark.parametrize(
    ("name_value_ccsid", "what_follows_ccsid"),
    [pytest.param(1208, 1200, id="UTF-8 folders, UTF-16 payload"), pytest.param(1200, 1208, id="UTF-16 folders")],
)
def test_the_property_is_found_in_the_folders_own_character_set(
    connections: Factory, people: dict[str, Issued], name_value_ccsid: int, what_follows_ccsid: int
) -> None:
    """NameValueData is in the header's NameValueCCSID; its CodedCharSetId describes what follows.
    Reading the folders by the latter hid a forged property behind a UTF-16 payload."""
    charset = "utf-16-le" if name_value_ccsid == 1200 else "utf-8"  # UTF-16 in the header's integer order
    folders = f"<usr><{PROPERTY}>{NAMES['alice']}</{PROPERTY}></usr>".encode(charset)
    folders += b" " * (-len(folders) % 4)
    header = struct.pack(
        "<4siiii8sii", b"RFH ", 2, 36 + 4 + len(folders), 546, what_follows_ccsid, b"MQSTR   ", 0, name_value_ccsid
    )
    sender = partner(connections, people).open("EXTERNAL_IN", output=True)
    sender.put(MQMD(format="MQHRF2  "), header + struct.pack("<i", len(folders)) + folders + "pay".encode("utf-16-be"))
    events: list[ProxyEvent] = []
    assert _route(connections, people, events).move_batch() == 1
    assert [e.outcome for e in events] == ["refused"] and "ForgedPropertyError" in events[0].reason
    assert read_all(connections, people) == [] and connections("spy").depth(ERROR_QUEUE) == 1


def test_its_twin_with_other_properties_is_delivered_with_one_signer(
    connections: Factory, people: dict[str, Issued]
) -> None:
    folders = b"<usr><Colour>blue</Colour><Signer>someone</Signer></usr>"
    partner(connections, people).open("EXTERNAL_IN", output=True).put(MQMD(format="MQHRF2  "), _rfh2(folders) + b"ok")
    events: list[ProxyEvent] = []
    assert _route(connections, people, events).move_batch() == 1
    assert [e.outcome for e in events] == ["moved"]
    (got,) = read_all(connections, people)
    assert got.body.count(f"<{PROPERTY}>".encode()) == 1  # after the queue manager re-rendered the headers
    properties = read_properties(got.md, got.body)
    assert properties.folders == {"usr": {PROPERTY: NAMES["orders"], "Colour": "blue", "Signer": "someone"}}
    assert got.body[properties.payload_offset :] == b"ok"


def test_a_route_without_the_property_lets_the_same_message_through(
    connections: Factory, people: dict[str, Issued]
) -> None:
    forged = _rfh2(f"<usr><{PROPERTY}>{NAMES['alice']}</{PROPERTY}></usr>".encode()) + b"order"
    partner(connections, people).open("EXTERNAL_IN", output=True).put(MQMD(format="MQHRF2  "), forged)
    qm = connections("gateway")
    proxy = ReprotectionProxy(gateway(qm, people), "EXTERNAL_IN", gateway(qm, people), "INTERNAL_IN")
    assert proxy.move_one()  # no property set by this route: nothing to pose as, and nothing refused
    (got,) = read_all(connections, people)
    assert got.body == forged
