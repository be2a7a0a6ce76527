"""The PDMQ header: written big-endian, read in both encodings, malformed fields refused."""

from __future__ import annotations

import struct

import attrs
import pytest
from hypothesis import given

import ams
import ams.errors
from ams.hazmat.pdmq import PdmqHeader, looks_protected
from ams.testing.strategies import pdmq_headers


@given(pdmq_headers())
def test_pack_unpack_round_trip(header: PdmqHeader) -> None:
    packed = header.pack()
    assert len(packed) == header.size and looks_protected(packed)
    assert PdmqHeader.unpack(packed) == header


def test_both_encodings_carry_the_same_values() -> None:
    header = PdmqHeader(ams.QoP.PRIVACY, 47, "MQSTR", "PRIV.Q")
    big, little = header.pack(), attrs.evolve(header, encoding=2).pack()
    assert big[8:12] == b"\x00\x00\x00\x68" and little[8:12] == b"\x68\x00\x00\x00"
    assert attrs.evolve(PdmqHeader.unpack(little), encoding=1) == PdmqHeader.unpack(big)


def _bad(offset: int, value: bytes, base: bytes | None = None) -> bytes:
    data = bytearray(base or PdmqHeader(ams.QoP.INTEGRITY, 5, "MQSTR", "Q").pack())
    data[offset : offset + len(value)] = value
    return bytes(data)


V3 = PdmqHeader(
    ams.QoP.CONFIDENTIALITY, 5, "MQSTR", "Q", key_block_size=300, iv_block_size=16, enc_block_size=16
).pack()


@pytest.mark.parametrize(
    "data,match",
    [
        (b"PDMQ" + bytes(50), "truncated"),
        (_bad(0, b"PDMX"), "StrucId"),
        (_bad(4, b"\x04"), "version"),
        (_bad(5, b"\x01"), "version"),
        (_bad(6, b"\x03"), "headerEncoding"),
        (_bad(8, struct.pack(">i", 112)), "headerSize"),
        (_bad(12, struct.pack(">i", 100)), "dataOffset"),
        (_bad(16, struct.pack(">i", 64)), "protType"),
        (_bad(16, struct.pack(">i", 0x24)), "protType"),
        (_bad(20, struct.pack(">i", 819)), "headerCCSID"),
        (_bad(24, struct.pack(">i", 0)), "origSize"),
        (_bad(24, struct.pack(">i", -5)), "origSize"),
        (_bad(40, b"\x02"), "flag"),
        (_bad(32, b"\xff\xfe"), "origFormat"),
        (_bad(4, b"\x03", V3[:104]), "truncated"),
        (_bad(16, struct.pack(">i", 4), V3), "protType"),
        (_bad(104, struct.pack(">h", 12), V3), "IVBlockSize"),
        (_bad(106, struct.pack(">h", 16), V3), "tagBlockSize"),
        (_bad(28, struct.pack(">i", 0), V3), "keyBlockSize"),
        (_bad(108, struct.pack(">i", 0), V3), "EncBlockSize"),
    ],
)
def test_malformed_headers_are_refused(data: bytes, match: str) -> None:
    with pytest.raises(ams.errors.MalformedMessageError, match=match):
        PdmqHeader.unpack(data)


def test_looks_protected_needs_pdmq_and_104_bytes() -> None:
    assert not looks_protected(b"PDMQ" + bytes(99))
    assert looks_protected(b"PDMQ" + bytes(100))
    assert not looks_protected(b"XDMQ" + bytes(100))
