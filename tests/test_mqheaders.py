"""The clear MQ header chain: every format AMS leaves in the clear, both integer encodings,
ASCII and EBCDIC names; the last Format is blanked on protect and restored on unprotect."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings

import ams
import ams.errors
import ams.hazmat.pdmq
from ams.hazmat import mqheaders
from ams.testing.headers import ClearChain
from ams.testing.strategies import clear_chains, payloads
from tests.conftest import Pki, store

STRUC_IDS = {
    "MQHRF2": b"RFH ",
    "MQHRF": b"RFH ",
    "MQHMDE": b"MDE ",
    "MQHWIH": b"WIH ",
    "MQHREF": b"RMH ",
    "MQIMS": b"IIH ",
    "MQCICS": b"CIH ",
    "MQHDIST": b"DH  ",
    "MQDEAD": b"DLH ",
    "MQHEPCF": b"EPH ",
}
LITTLE, BIG = 546, 273


def header(kind: str, next_format: str, *, encoding: int, next_encoding: int, ebcdic: bool, extra: int = 12) -> bytes:
    """One clear header whose integers use ``encoding`` and whose names use ASCII or EBCDIC."""
    order = "<" if encoding & 0x0F == 2 else ">"
    charset = "cp500" if ebcdic else "ascii"
    struc_id = STRUC_IDS[kind].decode().encode(charset)
    fmt = next_format.ljust(8).encode(charset)
    ccsid = 500 if ebcdic else 1208
    if kind == "MQDEAD":
        body = struc_id + struct.pack(order + "ii", 1, 2063) + b"Q".ljust(48) + b"QM".ljust(48)
        body += struct.pack(order + "ii", next_encoding, ccsid) + fmt
        return body.ljust(172, b"\x00")
    length = 36 + extra
    body = struc_id + struct.pack(order + "iiii", 2, length, next_encoding, ccsid) + fmt
    return body.ljust(length, b"\x00")


def chain(kinds: list[str], final: str, encodings: list[int], ebcdic: list[bool]) -> bytes:
    out = b""
    for index, kind in enumerate(kinds):
        following = kinds[index + 1] if index + 1 < len(kinds) else final
        # each header is written in the encoding its predecessor announced
        out += header(
            kind, following, encoding=encodings[index], next_encoding=encodings[index + 1], ebcdic=ebcdic[index]
        )
    return out


@pytest.fixture(scope="module")
def handles(pki: Pki) -> tuple[ams.Protector, ams.Protector]:
    policies = store(f'setmqspl -m QM -p Q -s SHA256 -e AES256 -r "{pki.dn("bob")}"')
    return ams.Protector(pki.keystore("alice"), policies), ams.Protector(pki.keystore("bob"), policies)


@pytest.mark.parametrize("kind", sorted(STRUC_IDS))
@pytest.mark.parametrize("encoding", [LITTLE, BIG])
def test_each_clear_header_stays_clear(handles: tuple[ams.Protector, ams.Protector], kind: str, encoding: int) -> None:
    alice, bob = handles
    headers = header(kind, "MQSTR", encoding=encoding, next_encoding=encoding, ebcdic=False)
    body = headers + b"payload"
    walked = mqheaders.walk(body, kind, encoding)
    assert (walked.payload_offset, walked.last_format, walked.headers) == (len(headers), "MQSTR   ", (kind,))
    protected = alice.protect("Q", body, kind, encoding=encoding)
    assert walked.format_offset is not None
    assert protected.format == kind  # the MQMD keeps its Format; the header's is blanked
    assert protected.body[: len(headers) - (len(headers) - walked.format_offset)] == headers[: walked.format_offset]
    assert protected.body[walked.format_offset : walked.format_offset + 8] == b" " * 8
    assert protected.body[len(headers) : len(headers) + 4] == b"PDMQ"
    message = bob.unprotect("Q", protected.body, kind, encoding=encoding)
    assert (message.body, message.format) == (body, kind)


def test_ebcdic_names_are_blanked_and_restored_in_ebcdic(handles: tuple[ams.Protector, ams.Protector]) -> None:
    alice, bob = handles
    headers = header("MQHRF2", "MQSTR", encoding=BIG, next_encoding=BIG, ebcdic=True)
    body = headers + b"\xc8\x85\x93\x93\x96"  # 'Hello' in EBCDIC
    protected = alice.protect("Q", body, "MQHRF2", encoding=BIG, ccsid=500)
    assert protected.body[20:28] == b"\x40" * 8  # EBCDIC blanks
    assert ams.hazmat.pdmq.PdmqHeader.unpack(protected.body[len(headers) :]).orig_format == "MQSTR   "
    assert bob.unprotect("Q", protected.body, "MQHRF2", encoding=BIG, ccsid=500).body == body


def test_a_long_mixed_chain(handles: tuple[ams.Protector, ams.Protector]) -> None:
    alice, bob = handles
    kinds = ["MQHMDE", "MQHRF2", "MQDEAD", "MQHWIH", "MQCICS", "MQHEPCF"]
    encodings = [LITTLE, BIG, LITTLE, BIG, BIG, LITTLE, BIG]
    ebcdic = [False, True, False, True, False, False]
    headers = chain(kinds, "MQADMIN", encodings, ebcdic)
    body = headers + b"\x00\x01PCF-ish payload"
    walked = mqheaders.walk(body, "MQHMDE", LITTLE)
    assert walked.headers == tuple(kinds) and walked.last_format == "MQADMIN "
    protected = alice.protect("Q", body, "MQHMDE", encoding=LITTLE)
    assert bob.unprotect("Q", protected.body, "MQHMDE", encoding=LITTLE).body == body


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chained=clear_chains(max_headers=5), payload=payloads(max_size=200))
def test_chain_round_trip_property(
    handles: tuple[ams.Protector, ams.Protector], chained: ClearChain, payload: bytes
) -> None:
    """Realistic headers (MQRFH2 folders, MQCIH, MQIIH, MQDLH...) in both encodings, ASCII or EBCDIC names."""
    alice, bob = handles
    body = chained.message(payload)
    walked = mqheaders.walk(body, chained.mqmd_format, chained.mqmd_encoding)
    assert walked.headers == tuple(spec.kind for spec in chained.headers)
    protected = alice.protect("Q", body, chained.mqmd_format, encoding=chained.mqmd_encoding)
    message = bob.unprotect("Q", protected.body, protected.format, encoding=chained.mqmd_encoding)
    assert message.body == body
    assert message.format.ljust(8) == chained.mqmd_format.ljust(8)


@pytest.mark.parametrize(
    "damage,match",
    [
        (lambda h: b"XXXX" + h[4:], "StrucId"),
        (lambda h: h[:8] + struct.pack("<i", 10) + h[12:], "StrucLength 10"),
        (lambda h: h[:8] + struct.pack("<i", 9999) + h[12:], "StrucLength 9999"),
        (lambda h: h[:20], "truncated"),
    ],
)
def test_damaged_header_chain_is_refused(
    handles: tuple[ams.Protector, ams.Protector], damage: object, match: str
) -> None:
    alice, _ = handles
    good = header("MQHRF2", "MQSTR", encoding=LITTLE, next_encoding=LITTLE, ebcdic=False)
    with pytest.raises(ams.errors.MalformedMessageError, match=match):
        alice.protect("Q", damage(good) + b"payload", "MQHRF2")  # type: ignore[operator]


def test_formats_that_end_the_chain() -> None:
    for fmt in ("MQSTR", "MQXMIT", "MQADMIN", "", "MQEVENT", "MQPCF", "CUSTOM"):
        walked = mqheaders.walk(b"RFH \x00\x00\x00\x02payload", fmt)
        assert walked.payload_offset == 0 and walked.format_offset is None
