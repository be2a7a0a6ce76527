"""Just enough DER to frame large payloads without re-encoding them.

asn1crypto builds and parses the small structures; the payload-sized OCTET STRINGs are framed
here with length prefixes so that a 100 MB payload is never copied by a generic encoder.
"""

from __future__ import annotations

SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
OCTET_STRING = 0x04
OID = 0x06
NULL = b"\x05\x00"
CONTEXT_0_CONSTRUCTED = 0xA0
CONTEXT_0_PRIMITIVE = 0x80


def length(size: int) -> bytes:
    if size < 0x80:
        return bytes((size,))
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(octets),)) + octets


def header(tag: int, size: int) -> bytes:
    return bytes((tag,)) + length(size)


def tlv(tag: int, content: bytes) -> bytes:
    return header(tag, len(content)) + content


def oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    body = bytearray()
    for index, value in enumerate([parts[0] * 40 + parts[1], *parts[2:]]):
        del index
        chunk = [value & 0x7F]
        value >>= 7
        while value:
            chunk.append(0x80 | (value & 0x7F))
            value >>= 7
        body.extend(reversed(chunk))
    return tlv(OID, bytes(body))


def integer(value: int) -> bytes:
    size = max(1, (value.bit_length() + 8) // 8)
    return tlv(INTEGER, value.to_bytes(size, "big", signed=True))


def algorithm_identifier(dotted: str, parameters: bytes | None = NULL) -> bytes:
    return tlv(SEQUENCE, oid(dotted) + (parameters or b""))


def read_header(data: bytes | memoryview, offset: int = 0) -> tuple[int, int, int]:
    """(tag, content offset, content length) of the definite-length TLV at ``offset``."""
    if offset + 2 > len(data):
        raise ValueError("truncated DER header")
    tag = data[offset]
    first = data[offset + 1]
    offset += 2
    if first < 0x80:
        size = first
    elif first == 0x80:
        raise ValueError("indefinite length where definite length is required")
    else:
        count = first & 0x7F
        if count > 8 or offset + count > len(data):
            raise ValueError("bad DER length")
        size = int.from_bytes(bytes(data[offset : offset + count]), "big")
        offset += count
    if offset + size > len(data):
        raise ValueError(f"DER value of {size} bytes runs past the end ({len(data) - offset} left)")
    return tag, offset, size


def content_type(blob: bytes | memoryview) -> tuple[str, int]:
    """The contentType OID of a ContentInfo and the ContentInfo's total encoded length."""
    from asn1crypto.core import ObjectIdentifier

    tag, start, size = read_header(blob, 0)
    if tag != SEQUENCE:
        raise ValueError(f"expected a ContentInfo SEQUENCE (tag 0x30), found tag {tag:#04x}")
    oid_tag, oid_start, oid_size = read_header(blob, start)
    if oid_tag != OID:
        raise ValueError(f"expected the contentType OID (tag 0x06), found tag {oid_tag:#04x}")
    dotted = ObjectIdentifier.load(bytes(blob[start : oid_start + oid_size])).dotted
    return str(dotted), start + size
