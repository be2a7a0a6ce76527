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


def check_strict(data: bytes | memoryview, offset: int = 0, end: int | None = None, depth: int = 0) -> None:
    """Refuse BER leniencies in the structure (not the primitive contents) of ``data``.

    AMS writes DER. Parsers accept non-minimal lengths, empty INTEGERs and the like, which
    would let a changed bit in an unsigned field (a version, a length) go unnoticed; walking
    the headers once is cheap, because primitive contents such as the payload are skipped.
    """
    stop = len(data) if end is None else end
    if depth > 32:
        raise ValueError("DER nested more than 32 levels")
    while offset < stop:
        if offset + 2 > stop:
            raise ValueError(f"truncated DER header at offset {offset}")
        tag = data[offset]
        if tag & 0x1F == 0x1F:
            raise ValueError(f"high tag number at offset {offset}: AMS structures use none")
        first = data[offset + 1]
        start = offset + 2
        if first < 0x80:
            size = first
        elif first == 0x80:
            raise ValueError(f"indefinite length at offset {offset}: AMS writes DER")
        else:
            count = first & 0x7F
            if count > 4 or start + count > stop:
                raise ValueError(f"bad length at offset {offset}")
            raw = bytes(data[start : start + count])
            size = int.from_bytes(raw, "big")
            if raw[0] == 0 or size < 0x80:
                raise ValueError(f"non-minimal length encoding at offset {offset}")
            start += count
        if start + size > stop:
            raise ValueError(f"value at offset {offset} runs {start + size - stop} bytes past its container")
        if tag & 0x20:
            check_strict(data, start, start + size, depth + 1)
        elif tag == INTEGER:
            if size == 0 or (
                size > 1
                and ((data[start] == 0 and data[start + 1] < 0x80) or (data[start] == 0xFF and data[start + 1] >= 0x80))
            ):
                raise ValueError(f"non-minimal INTEGER at offset {offset}")
        elif tag == 0x05 and size != 0:
            raise ValueError(f"NULL with content at offset {offset}")
        elif tag == 0x01 and (size != 1 or data[start] not in (0, 0xFF)):
            raise ValueError(f"non-DER BOOLEAN at offset {offset}")
        offset = start + size
