"""The chain of MQ headers that AMS leaves in the clear (format.md §1).

A message body may start with headers such as an MQRFH2, each naming the Format of what
follows. AMS protects only the bytes after the last recognised header, blanks the last Format
and keeps the original in the PDMQ header. This module walks that chain without copying.
"""

from __future__ import annotations

import functools
import struct

import attrs

from ams.errors import MalformedMessageError
from ams.mqconstants import MQCCSI_UTF8, MQDLH_LENGTH, MQENC_NATIVE, integer_order

# Format name -> accepted StrucIds (ASCII).
CLEAR_HEADERS: dict[str, tuple[bytes, ...]] = {
    "MQHRF2": (b"RFH ",),
    "MQHRF": (b"RFH ",),
    "MQHMDE": (b"MDE ",),
    "MQHWIH": (b"WIH ",),
    "MQHREF": (b"RMH ",),
    "MQIMS": (b"IIH ",),
    "MQCICS": (b"CIH ",),
    "MQHDIST": (b"DH  ",),
    "MQDEAD": (b"DLH ",),
    "MQHEPCF": (b"EPH ",),
}
# Offsets of Encoding (CodedCharSetId follows it) and Format: the common layout, and MQDLH's own.
_COMMON_OFFSETS = (12, 20)
_DLH_OFFSETS = (108, 116)  # after StrucId, Version, Reason, DestQName, DestQMgrName


def decode_format(raw: bytes) -> tuple[str, str]:
    """A Format field as text, with the charset it was written in (``ascii`` or ``cp500``)."""
    if raw != b"\x40" * 8 and all(0x20 <= b < 0x7F for b in raw):
        return raw.decode("ascii"), "ascii"
    text = raw.decode("cp500")
    if not all(" " <= c < "\x7f" for c in text):
        # the bytes are not quoted: a Format field that is not text may well be payload (format.md §1)
        raise MalformedMessageError(f"the Format field ({len(raw)} bytes) is neither ASCII nor EBCDIC text")
    return text, "cp500"


def describe_bytes(data: bytes | memoryview) -> str:
    """Whether ``data`` (the few bytes where a StrucId was expected) is printable text, in words: the
    one fact an error text gives about bytes that may be a message's payload, never the bytes."""
    raw = bytes(data)
    if raw and all(0x20 <= b < 0x7F for b in raw):
        kind = "printable ASCII"
    elif raw and all(" " <= c < "\x7f" for c in raw.decode("cp500")):
        kind = "printable EBCDIC"
    else:
        kind = "not printable text"
    return f"the first {len(raw)} are {kind}"


def encode_format(name: str, charset: str) -> bytes:
    """A Format field: ``name`` blank-padded or cut to 8 characters, in ``charset`` (``ascii`` or ``cp500``)."""
    return name.ljust(8)[:8].encode(charset)


@attrs.frozen
class HeaderChain:
    """Where the clear headers end and what the last Format field says.

    ``format_offset`` is the offset in the body of the last header's Format field, or None when
    the last Format is the MQMD's own.
    """

    payload_offset: int
    last_format: str
    format_charset: str
    format_offset: int | None
    encoding: int
    ccsid: int
    headers: tuple[str, ...]


def walk(
    body: bytes | memoryview, mqmd_format: str, encoding: int = MQENC_NATIVE, ccsid: int = MQCCSI_UTF8
) -> HeaderChain:
    """Follow the Format chain from the MQMD through every recognised clear header."""
    fmt = mqmd_format.ljust(8)[:8]
    if fmt.rstrip() not in CLEAR_HEADERS:
        return _no_headers(fmt, encoding, ccsid)
    charset = "ascii"
    format_offset: int | None = None
    offset = 0
    names: list[str] = []
    while fmt.rstrip() in CLEAR_HEADERS:
        name = fmt.rstrip()
        if len(body) - offset < 36:
            raise MalformedMessageError(
                f"{name} header at offset {offset} is truncated: {len(body) - offset} bytes left"
            )
        struc_id = bytes(body[offset : offset + 4])
        expected = CLEAR_HEADERS[name]
        if struc_id not in expected and struc_id.decode("cp500", "replace").encode("ascii", "replace") not in expected:
            # what was found is not quoted: when it is no header it is the start of the payload
            raise MalformedMessageError(
                f"Format {name} at offset {offset} should start a header with StrucId "
                f"{expected[0].decode('ascii')!r}, but the {len(body) - offset} bytes there do not "
                f"({describe_bytes(struc_id)})"
            )
        order = integer_order(encoding)
        if name == "MQDEAD":
            length = MQDLH_LENGTH
            enc_off, fmt_off = _DLH_OFFSETS
        else:
            (length,) = struct.unpack_from(order + "i", body, offset + 8)
            enc_off, fmt_off = _COMMON_OFFSETS
        if length < fmt_off + 8 or offset + length > len(body):
            raise MalformedMessageError(
                f"{name} header at offset {offset} has StrucLength {length}; expected at least "
                f"{fmt_off + 8} and at most {len(body) - offset} (the bytes left)"
            )
        encoding, ccsid = struct.unpack_from(order + "ii", body, offset + enc_off)
        format_offset = offset + fmt_off
        fmt, charset = decode_format(bytes(body[format_offset : format_offset + 8]))
        names.append(name)
        offset += length
    return HeaderChain(offset, fmt, charset, format_offset, encoding, ccsid, tuple(names))


@functools.lru_cache(maxsize=64)
def _no_headers(fmt: str, encoding: int, ccsid: int) -> HeaderChain:
    """The chain of a body whose MQMD Format names no clear header (the same value every time)."""
    return HeaderChain(0, fmt, "ascii", None, encoding, ccsid, ())
