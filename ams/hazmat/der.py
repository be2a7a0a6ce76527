"""Just enough DER to write AMS's structures and read them strictly, with bounded work.

Writing frames payload-sized OCTET STRINGs with length prefixes, so that a 100 MB payload is
never copied by a generic encoder. Reading is strict (definite minimal lengths, single-byte
tags) and bounded: element counts, INTEGER and OBJECT IDENTIFIER sizes are limited before
anything is allocated, and no error text ever contains the bytes that were read (they may be
an attacker's, or decrypted).
"""

from __future__ import annotations

import functools

SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
OCTET_STRING = 0x04
OID = 0x06
NULL = b"\x05\x00"
CONTEXT_0_CONSTRUCTED = 0xA0
CONTEXT_0_PRIMITIVE = 0x80

Chunk = bytes | memoryview  # a piece of a message to write: bytes, or a view of a payload not copied


def length(size: int) -> bytes:
    """The DER length octets for ``size``: short form below 128, else minimal long form."""
    if size < 0x80:
        return bytes((size,))
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(octets),)) + octets


def header(tag: int, size: int) -> bytes:
    """The tag and length octets of a TLV whose content, ``size`` bytes, the caller writes after them."""
    return bytes((tag,)) + length(size)


def tlv(tag: int, content: bytes) -> bytes:
    """A complete TLV: ``tag``, the length of ``content``, ``content``."""
    return header(tag, len(content)) + content


@functools.lru_cache(maxsize=256)
def oid(dotted: str) -> bytes:
    """The DER OBJECT IDENTIFIER (tag and all) for a dotted OID such as ``1.2.840.113549.1.7.1``."""
    parts = [int(p) for p in dotted.split(".")]
    body = bytearray()
    for value in [parts[0] * 40 + parts[1], *parts[2:]]:
        chunk = [value & 0x7F]
        value >>= 7
        while value:
            chunk.append(0x80 | (value & 0x7F))
            value >>= 7
        body.extend(reversed(chunk))
    return tlv(OID, bytes(body))


def integer(value: int) -> bytes:
    """The DER INTEGER for ``value``: two's complement, in the fewest octets that keep its sign."""
    size = max(1, (value.bit_length() + 8) // 8)
    return tlv(INTEGER, value.to_bytes(size, "big", signed=True))


def algorithm_identifier(dotted: str, parameters: bytes | None = NULL) -> bytes:
    """An AlgorithmIdentifier SEQUENCE: the OID, then ``parameters`` (encoded; NULL by default, None for absent)."""
    return tlv(SEQUENCE, oid(dotted) + (parameters or b""))


class DerError(ValueError):
    """The bytes are not the strict DER this reader expects."""


# An INTEGER in AMS's structures is a version or a serial number (RFC 5280: at most 20 octets);
# larger ones are refused before Python turns them into numbers or text.
MAX_INTEGER_OCTETS = 32
MAX_OID_OCTETS = 64


def read_header(data: bytes | memoryview, offset: int = 0, end: int | None = None) -> tuple[int, int, int]:
    """(tag, content offset, content length) of the DER TLV at ``offset``.

    Strict: definite, minimal lengths and single-byte tags only, so that no bit of a header
    can change without the change being noticed.
    """
    stop = len(data) if end is None else end
    if offset + 2 > stop:
        raise DerError(f"truncated DER header at offset {offset}")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise DerError(f"high tag number at offset {offset}: AMS structures use none")
    first = data[offset + 1]
    start = offset + 2
    if first < 0x80:
        size = first
    elif first == 0x80:
        raise DerError(f"indefinite length at offset {offset}: AMS writes DER")
    else:
        count = first & 0x7F
        if count > 4 or start + count > stop:
            raise DerError(f"bad length at offset {offset}")
        size = int.from_bytes(data[start : start + count], "big")
        if data[start] == 0 or size < 0x80:
            raise DerError(f"non-minimal length encoding at offset {offset}")
        start += count
    if start + size > stop:
        raise DerError(f"DER value at offset {offset} runs {start + size - stop} bytes past its container")
    return tag, start, size


class Element:
    """One TLV inside a buffer: its tag, and views of its content and whole encoding (made on demand)."""

    __slots__ = ("_data", "_end", "_header", "_start", "tag")

    def __init__(self, tag: int, data: memoryview, header: int, start: int, end: int) -> None:
        self.tag = tag
        self._data = data
        self._header = header
        self._start = start
        self._end = end

    @property
    def content(self) -> memoryview:
        """The content octets, without tag and length."""
        return self._data[self._start : self._end]

    @property
    def offset(self) -> int:
        """Where the content octets start in the buffer that was read."""
        return self._start

    @property
    def encoded(self) -> memoryview:
        """The whole TLV: tag, length and content."""
        return self._data[self._header : self._end]

    def children(self, what: str) -> Reader:
        """A reader of the elements inside this one; DerError when the tag is not constructed."""
        if not self.tag & 0x20:
            raise DerError(f"{what}: expected a constructed value, found primitive tag {self.tag:#04x}")
        return Reader(self._data, what, self._start, self._end)

    def integer(self, what: str, max_octets: int = MAX_INTEGER_OCTETS) -> int:
        """The value of a minimal INTEGER of at most ``max_octets`` octets; DerError otherwise."""
        expect_tag(self, INTEGER, what)
        return decode_integer(self.content, what, max_octets)

    def oid(self, what: str) -> str:
        """The dotted value of an OBJECT IDENTIFIER (see :func:`decode_oid`); DerError otherwise."""
        expect_tag(self, OID, what)
        return decode_oid(bytes(self.content))

    def octets(self, what: str) -> memoryview:
        """The content of a primitive OCTET STRING (a view, not a copy); DerError for any other tag."""
        expect_tag(self, OCTET_STRING, what)
        return self.content


def decode_integer(data: bytes | memoryview, what: str, max_octets: int = MAX_INTEGER_OCTETS) -> int:
    """The value of an INTEGER's content octets: minimal, at most ``max_octets`` of them; DerError otherwise."""
    if len(data) > max_octets:
        raise DerError(f"{what}: INTEGER of {len(data)} octets; at most {max_octets} are accepted")
    if len(data) == 0 or (
        len(data) > 1 and ((data[0] == 0 and data[1] < 0x80) or (data[0] == 0xFF and data[1] >= 0x80))
    ):
        raise DerError(f"{what}: not a minimal DER INTEGER")
    return int.from_bytes(data, "big", signed=True)


def expect(data: bytes | memoryview, offset: int, stop: int, tag: int) -> tuple[int, int]:
    """(content start, content end) of the TLV at ``offset``, which must have ``tag`` and end by ``stop``.

    The same strict rules as :func:`read_header` (the short form inline, for the specialised
    readers' hot path); DerError otherwise.
    """
    if offset + 4 <= stop and data[offset] == tag:
        first = data[offset + 1]
        if first < 0x80:
            end = offset + 2 + first
            if end <= stop:
                return offset + 2, end
        elif first == 0x81:
            size = data[offset + 2]
            if size >= 0x80 and offset + 3 + size <= stop:
                return offset + 3, offset + 3 + size
        elif first == 0x82 and data[offset + 2]:
            end = offset + 4 + (data[offset + 2] << 8 | data[offset + 3])
            if end <= stop:
                return offset + 4, end
    found, start, size = read_header(data, offset, stop)
    if found != tag:
        raise DerError(f"expected tag {tag:#04x} at offset {offset}, found {found:#04x}")
    return start, start + size


def expect_tag(element: Element, tag: int, what: str) -> None:
    """DerError naming ``what`` unless ``element`` has tag ``tag``."""
    if element.tag != tag:
        raise DerError(f"{what}: expected tag {tag:#04x}, found {element.tag:#04x}")


class Reader:
    """Reads consecutive TLVs from part of a buffer; every read is checked, the end must be reached."""

    __slots__ = ("data", "offset", "stop", "what")

    def __init__(self, data: bytes | memoryview, what: str, start: int = 0, stop: int | None = None) -> None:
        self.data = data if isinstance(data, memoryview) else memoryview(data)
        self.offset = start
        self.stop = len(self.data) if stop is None else stop
        self.what = what

    def peek(self) -> int | None:
        """The tag of the next element, or None at the end; reads nothing."""
        return self.data[self.offset] if self.offset < self.stop else None

    def read(self, what: str, tag: int | None = None) -> Element:
        """The next element, strictly encoded, within the reader and with tag ``tag`` when given; DerError otherwise."""
        offset, data = self.offset, self.data
        if offset >= self.stop:
            raise DerError(f"{self.what}: {what} is missing")
        first = data[offset + 1] if offset + 1 < self.stop else 0x80
        found = data[offset]
        if first < 0x80 and found & 0x1F != 0x1F and offset + 2 + first <= self.stop:
            start, size = offset + 2, first  # the common short form, inline: this loop is the hot path
        else:
            found, start, size = read_header(data, offset, self.stop)
        if tag is not None and found != tag:
            raise DerError(f"{self.what}: {what} should have tag {tag:#04x}, found {found:#04x}")
        element = Element(found, data, offset, start, start + size)
        self.offset = start + size
        return element

    def optional(self, tag: int, what: str) -> Element | None:
        """The next element if its tag is ``tag``, else None (nothing read)."""
        return self.read(what, tag) if self.peek() == tag else None

    def end(self) -> None:
        """DerError unless every byte of the reader's range has been read."""
        if self.offset != self.stop:
            raise DerError(f"{self.what}: {self.stop - self.offset} unexpected bytes after its last field")

    def all(self, what: str, tag: int | None = None, *, limit: int = 256) -> list[Element]:
        """Every remaining element; more than ``limit`` is an error found after ``limit + 1`` reads."""
        out: list[Element] = []
        while self.offset < self.stop:
            if len(out) == limit:
                raise DerError(f"{self.what}: more than {limit} {what} elements; at most {limit} are accepted")
            out.append(self.read(what, tag))
        return out


_OID_CACHE: dict[bytes, str] = {}


def decode_oid(content: bytes) -> str:
    """The dotted form of an OBJECT IDENTIFIER's content octets: minimal, at most MAX_OID_OCTETS; DerError otherwise."""
    cached = _OID_CACHE.get(content)
    if cached is not None:
        return cached
    if len(content) > MAX_OID_OCTETS:
        raise DerError(f"OBJECT IDENTIFIER of {len(content)} octets; at most {MAX_OID_OCTETS} are accepted")
    if not content or content[-1] & 0x80 or content[0] == 0x80:
        raise DerError(f"malformed OBJECT IDENTIFIER ({len(content)} octets)")
    values = []
    value = 0
    for index, byte in enumerate(content):
        if value == 0 and byte == 0x80 and (index == 0 or not content[index - 1] & 0x80):
            raise DerError(f"non-minimal OBJECT IDENTIFIER ({len(content)} octets)")
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            values.append(value)
            value = 0
    first = values[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    dotted = ".".join(str(v) for v in head + values[1:])
    if len(_OID_CACHE) < 1024:
        _OID_CACHE[content] = dotted
    return dotted


def algorithm(element: Element, what: str) -> tuple[str, Element | None]:
    """An AlgorithmIdentifier: its OID and its parameters element (None when absent)."""
    expect_tag(element, SEQUENCE, what)
    fields = element.children(what)
    oid_value = fields.read("algorithm", OID).oid(what)
    parameters = fields.read("parameters") if fields.peek() is not None else None
    fields.end()
    return oid_value, parameters


def null_or_absent(parameters: Element | None, what: str) -> None:
    """DerError unless an AlgorithmIdentifier's parameters are NULL or absent (as digests' are, format.md §3)."""
    if parameters is not None and (parameters.tag != 0x05 or len(parameters.content) != 0):
        raise DerError(f"{what}: parameters must be NULL or absent, found tag {parameters.tag:#04x}")


def content_info(blob: bytes | memoryview, what: str) -> tuple[str, Element]:
    """The contentType and the [0] EXPLICIT content of a ContentInfo that fills ``blob``."""
    outer = Reader(blob, what)
    info = outer.read("ContentInfo", SEQUENCE)
    outer.end()
    fields = info.children("ContentInfo")
    content_type_oid = fields.read("contentType", OID).oid("contentType")
    explicit = fields.read("content", CONTEXT_0_CONSTRUCTED)
    fields.end()
    inner = explicit.children("ContentInfo content")
    content = inner.read("content")
    inner.end()
    return content_type_oid, content


def content_bounds(data: bytes | memoryview, content_type_oid: bytes) -> tuple[int, int]:
    """Where the content SEQUENCE's content octets lie in a ContentInfo that fills ``data`` and whose
    contentType is ``content_type_oid`` (its DER, tag and all): :func:`content_info`'s rules, for the
    specialised readers; DerError for anything else."""
    total = len(data)
    start, stop = expect(data, 0, total, SEQUENCE)
    position = start + len(content_type_oid)
    if stop != total or bytes(data[start:position]) != content_type_oid:
        raise DerError("not a ContentInfo of the expected type")
    explicit_start, explicit_stop = expect(data, position, stop, CONTEXT_0_CONSTRUCTED)
    content_start, content_stop = expect(data, explicit_start, explicit_stop, SEQUENCE)
    if explicit_stop != stop or content_stop != explicit_stop:
        raise DerError("not one ContentInfo")
    return content_start, content_stop


def content_type(blob: bytes | memoryview) -> tuple[str, int]:
    """The contentType OID of the ContentInfo at the start of ``blob`` and its encoded length."""
    _, start, size = read_header(blob, 0)
    if blob[0] != SEQUENCE:
        raise DerError(f"expected a ContentInfo SEQUENCE (tag 0x30), found tag {blob[0]:#04x}")
    oid_tag, oid_start, oid_size = read_header(blob, start, start + size)
    if oid_tag != OID:
        raise DerError(f"expected the contentType OID (tag 0x06), found tag {oid_tag:#04x}")
    return decode_oid(bytes(blob[oid_start : oid_start + oid_size])), start + size
