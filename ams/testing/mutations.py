"""Mutations of a protected message: each says what it changed and what a correct receiver must do.

A receiver that follows format.md must refuse some changes (a byte of an integrity or privacy
blob, origSize, the protection type...), must accept others with the payload intact (fields AMS
does not check: the policy name, reserved bytes, the dynamic-queue byte...), and may do either
where the format cannot tell (confidentiality has no MAC; another recipient's RecipientInfo is
not authenticated; a field a receiver may or may not validate)::

    message = ProtectedMessage.of(alice.protect("Q", body), body, "MQSTR", "Q")
    for change in field_changes(message):
        ...  # change.body, change.expect (REFUSE, ACCEPT or EITHER), change.description
    flipped = flip_bit(message, offset=200, bit=3, reader=bob_certificate)

``layout`` maps every byte of a protected message to the region it belongs to and what a
change there means. Nothing here needs keys: ``reader`` (the receiver's certificate) only tells
its own RecipientInfo from the others'.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator

import attrs
from cryptography import x509

from ams.algorithms import QoP
from ams.hazmat import mqheaders
from ams.hazmat.pdmq import KEY_REUSE_FLAG, V2_SIZE, PdmqHeader
from ams.message import Protected
from ams.mqconstants import MQCCSI_UTF8, MQENC_NATIVE

MUTATION_KINDS = ("flip", "truncate", "append", "field")


class Expect(enum.Enum):
    """What a correct receiver does with a mutated message."""

    REFUSE = "refuse"  # it must refuse the message
    ACCEPT = "accept"  # it must accept it and hand back the original payload (AMS does not check the change)
    EITHER = "either"  # the format cannot tell: no MAC, or a field a receiver may or may not validate


@attrs.frozen
class ProtectedMessage:
    """A protected body with what it was made from: the body before protection and its MQMD Format."""

    body: bytes
    format: str
    original: bytes
    original_format: str
    queue: str
    qop: QoP
    encoding: int = MQENC_NATIVE
    ccsid: int = MQCCSI_UTF8

    @classmethod
    def of(
        cls, protected: Protected, original: bytes, original_format: str, queue: str, *, encoding: int = MQENC_NATIVE
    ) -> ProtectedMessage:
        """The message ``Protector.protect(queue, original, original_format)`` returned."""
        return cls(protected.body, protected.format, original, original_format, queue, protected.qop, encoding)

    @property
    def payload(self) -> bytes:
        """The original payload: what followed the clear headers before protection."""
        chain = mqheaders.walk(self.original, self.original_format, self.encoding, self.ccsid)
        return self.original[chain.payload_offset :]


@attrs.frozen
class Mutation:
    """A changed copy of a protected message (``body``, with the MQMD ``format``) and what it means."""

    kind: str
    description: str
    expect: Expect
    body: bytes
    format: str
    offset: int | None = None

    @property
    def must_refuse(self) -> bool:
        """Whether a correct receiver must refuse the changed message."""
        return self.expect is Expect.REFUSE


@attrs.frozen
class Region:
    """Bytes ``[start, end)`` of a message: what they are and what changing one of them means."""

    start: int
    end: int
    name: str
    expect: Expect


@attrs.frozen
class Layout:
    """Where a protected message's parts are: clear headers, the PDMQ header, the blob's regions."""

    payload_offset: int
    format_offset: int | None
    header: PdmqHeader
    regions: tuple[Region, ...]

    @property
    def blob_offset(self) -> int:
        """Where the CMS blob starts."""
        return self.payload_offset + self.header.size

    def region_at(self, offset: int) -> Region:
        """The region holding byte ``offset``."""
        for region in self.regions:
            if region.start <= offset < region.end:
                return region
        raise IndexError(f"offset {offset} is outside the message ({self.regions[-1].end} bytes)")

    def count(self, expect: Expect) -> int:
        """How many bytes are in regions that expect ``expect`` of a change."""
        return sum(r.end - r.start for r in self.regions if r.expect is expect)

    def nth(self, expect: Expect, index: int) -> int:
        """The offset of the ``index``-th byte (modulo :meth:`count`) of the regions that expect ``expect``."""
        total = self.count(expect)
        if total == 0:
            raise ValueError(f"no byte of this message is in a region that expects {expect.value}")
        index %= total
        for region in self.regions:
            if region.expect is expect:
                if index < region.end - region.start:
                    return region.start + index
                index -= region.end - region.start
        raise AssertionError("unreachable: index < total")


# PDMQ fields: (offset, size, name, what a flipped bit there means); EMPTY and protType are decided per bit
_PDMQ_FIELDS: tuple[tuple[int, int, str, Expect], ...] = (
    (0, 4, "PDMQ StrucId", Expect.REFUSE),
    (4, 1, "PDMQ major version", Expect.REFUSE),
    (5, 1, "PDMQ minor version", Expect.EITHER),
    (6, 1, "PDMQ encoding", Expect.EITHER),
    (7, 1, "PDMQ dynamic-queue byte", Expect.ACCEPT),
    (8, 4, "PDMQ headerSize", Expect.REFUSE),
    (12, 4, "PDMQ dataOffset", Expect.REFUSE),
    (16, 4, "PDMQ protType", Expect.REFUSE),
    (20, 4, "PDMQ headerCCSID", Expect.EITHER),
    (24, 4, "PDMQ origSize", Expect.REFUSE),
    (28, 4, "PDMQ keyBlockSize", Expect.REFUSE),
    (32, 8, "PDMQ origFormat", Expect.EITHER),
    (40, 1, "PDMQ empty flag", Expect.EITHER),
    (41, 7, "PDMQ flags", Expect.ACCEPT),
    (48, 8, "PDMQ reserved", Expect.ACCEPT),
    (56, 48, "PDMQ policy name", Expect.ACCEPT),
    (104, 2, "PDMQ IVBlockSize", Expect.REFUSE),
    (106, 2, "PDMQ tagBlockSize", Expect.REFUSE),
    (108, 4, "PDMQ EncBlockSize", Expect.REFUSE),
)


def layout(message: ProtectedMessage, reader: x509.Certificate | None = None) -> Layout:
    """Map every byte of ``message`` to a region; ``reader`` is the receiver's certificate (privacy and
    confidentiality: another recipient's RecipientInfo can change unnoticed, the reader's cannot)."""
    body = message.body
    chain = mqheaders.walk(body, message.format, message.encoding, message.ccsid)
    start = chain.payload_offset
    header = PdmqHeader.unpack(body[start:])
    regions = list(_header_regions(chain))
    for offset, size, name, expect in _PDMQ_FIELDS:
        if offset + size > header.size:
            continue
        if name == "PDMQ keyBlockSize" and header.version == 2:
            name, expect = "PDMQ reserved (keyBlockSize in v3)", Expect.ACCEPT
        regions.append(Region(start + offset, start + offset + size, name, expect))
    regions += _blob_regions(body, start + header.size, header, reader)
    return Layout(start, chain.format_offset, header, tuple(regions))


def _header_regions(chain: mqheaders.HeaderChain) -> Iterator[Region]:
    if chain.format_offset is None:
        return
    clear = "clear header (not protected by AMS)"
    yield Region(0, chain.format_offset, clear, Expect.EITHER)
    blank = "the last clear header's Format (blank: it marks the payload as protected)"
    yield Region(chain.format_offset, chain.format_offset + 8, blank, Expect.REFUSE)
    if chain.format_offset + 8 < chain.payload_offset:
        yield Region(chain.format_offset + 8, chain.payload_offset, clear, Expect.EITHER)


def _blob_regions(body: bytes, start: int, header: PdmqHeader, reader: x509.Certificate | None) -> list[Region]:
    end = len(body)
    if header.qop is QoP.INTEGRITY:
        return [Region(start, end, "the SignedData (every byte is signed or checked)", Expect.REFUSE)]
    if header.qop is QoP.PRIVACY:
        return _split(start, end, _recipient_regions(body, start, end, reader, Expect.REFUSE), "the EnvelopedData")
    key_end = min(start + header.key_block_size, end)
    iv_end = min(key_end + header.iv_block_size, end)
    regions = _split(start, key_end, _recipient_regions(body, start, key_end, reader, Expect.EITHER), "the key block")
    regions.append(Region(key_end, iv_end, "the IV (confidentiality has no MAC)", Expect.EITHER))
    regions.append(Region(iv_end, end, "the ciphertext (confidentiality has no MAC)", Expect.EITHER))
    return [r for r in regions if r.start < r.end]


def _split(start: int, end: int, inner: list[Region], name: str) -> list[Region]:
    """``[start, end)`` as ``inner`` regions, the gaps between them named ``name`` (and expecting what
    the surrounding structure does: REFUSE for a privacy envelope, EITHER for a key block)."""
    surrounding = Expect.REFUSE if name == "the EnvelopedData" else Expect.EITHER
    out, position = [], start
    for region in sorted(inner, key=lambda r: r.start):
        if position < region.start:
            out.append(Region(position, region.start, name, surrounding))
        out.append(region)
        position = region.end
    if position < end:
        out.append(Region(position, end, name, surrounding))
    return out


def _recipient_regions(
    body: bytes, start: int, end: int, reader: x509.Certificate | None, structure: Expect
) -> list[Region]:
    """The RecipientInfos of the EnvelopedData in ``body[start:end]``: the reader's own parts must not
    change (REFUSE), another recipient's may change unnoticed (EITHER)."""
    try:
        infos = _recipient_infos(body, start, end)
    except (IndexError, ValueError):
        return []  # not DER we can walk: leave the whole structure to its surrounding expectation
    regions = []
    for number, (info_start, info_end, rid, key) in enumerate(infos, 1):
        mine = len(infos) == 1 if reader is None else _is_reader(body, rid, reader)
        if not mine:
            regions.append(Region(info_start, info_end, f"RecipientInfo {number} (another recipient's)", Expect.EITHER))
        elif structure is Expect.REFUSE:
            regions.append(Region(info_start, info_end, f"RecipientInfo {number} (the reader's)", Expect.REFUSE))
        else:  # a key block: only the reader's identifier and wrapped key are sure to be noticed
            parts = [(rid, "recipient identifier"), (key, "encryptedKey")]
            for (part_start, part_end), what in parts:
                regions.append(
                    Region(part_start, part_end, f"RecipientInfo {number} {what} (the reader's)", Expect.REFUSE)
                )
            regions += [
                Region(info_start, rid[0], f"RecipientInfo {number} (the reader's)", Expect.EITHER),
                Region(rid[1], key[0], f"RecipientInfo {number} key algorithm (the reader's)", Expect.EITHER),
            ]
    return [r for r in regions if r.start < r.end]


def _tlv(data: bytes, offset: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the definite-length DER element at ``offset``."""
    if offset + 2 > end:
        raise ValueError("truncated")
    first = data[offset + 1]
    start = offset + 2
    size = first
    if first & 0x80:
        count = first & 0x7F
        if not 0 < count <= 4:
            raise ValueError("length")
        size = int.from_bytes(data[start : start + count], "big")
        start += count
    if start + size > end:
        raise ValueError("overrun")
    return data[offset], start, start + size


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, element start, content start, element end) of each element in ``data[start:end]``."""
    out = []
    while start < end:
        tag, content, stop = _tlv(data, start, end)
        out.append((tag, start, content, stop))
        start = stop
    return out


def _recipient_infos(body: bytes, start: int, end: int) -> list[tuple[int, int, tuple[int, int], tuple[int, int]]]:
    """Each KeyTransRecipientInfo's span, its rid's span and its encryptedKey's span."""
    _, info_content, info_end = _tlv(body, start, end)  # ContentInfo
    [_, explicit] = _children(body, info_content, info_end)  # contentType, [0]
    [(_, _, enveloped_content, enveloped_end)] = _children(body, explicit[2], explicit[3])
    fields = _children(body, enveloped_content, enveloped_end)
    infos = next(f for f in fields[1:] if f[0] == 0x31)  # recipientInfos SET
    out = []
    for _, info_start, content, info_end in _children(body, infos[2], infos[3]):
        parts = _children(body, content, info_end)  # version, rid, keyEncryptionAlgorithm, encryptedKey
        out.append((info_start, info_end, (parts[1][1], parts[1][3]), (parts[-1][1], parts[-1][3])))
    return out


def _is_reader(body: bytes, rid: tuple[int, int], reader: x509.Certificate) -> bool:
    """Whether the RecipientIdentifier at ``rid`` names ``reader`` (issuer and serial, or key identifier)."""
    tag, content, end = _tlv(body, rid[0], rid[1])
    if tag == 0x80:  # [0] subjectKeyIdentifier
        try:
            ski = reader.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        except x509.ExtensionNotFound:
            return False
        return body[content:end] == ski
    (_, issuer_start, _, issuer_end), (_, _, serial_start, serial_end) = _children(body, content, end)
    serial = int.from_bytes(body[serial_start:serial_end], "big", signed=True)
    return body[issuer_start:issuer_end] == reader.issuer.public_bytes() and serial == reader.serial_number


# -- the mutations -----------------------------------------------------------------------------------------------------


def flip_bit(message: ProtectedMessage, offset: int, bit: int, *, reader: x509.Certificate | None = None) -> Mutation:
    """Bit ``bit`` (0-7) of byte ``offset`` flipped; the expectation follows the region (and, for the
    protType's key-reuse bit, the empty flag and the policy name, the new value)."""
    return _flip(message, layout(message, reader), offset, bit)


def _flip(message: ProtectedMessage, where: Layout, offset: int, bit: int) -> Mutation:
    region = where.region_at(offset)
    data = bytearray(message.body)
    data[offset] ^= 1 << bit
    expect = _flip_expectation(message, where, region, bytes(data))
    description = (
        f"flipped bit {bit} of byte {offset} ({region.name}): {message.body[offset]:#04x} -> {data[offset]:#04x}"
    )
    return Mutation("flip", description, expect, bytes(data), message.format, offset)


def _flip_expectation(message: ProtectedMessage, where: Layout, region: Region, data: bytes) -> Expect:
    start = where.payload_offset
    if region.name == "PDMQ protType":
        order = ">" if where.header.encoding == 1 else "<"
        (changed,) = struct.unpack_from(order + "i", data, start + 16)
        reuse_only = changed == where.header.prot_type ^ KEY_REUSE_FLAG
        return Expect.ACCEPT if reuse_only and where.header.version == 3 else Expect.REFUSE
    if region.name == "PDMQ empty flag":
        if data[start + 40] not in (0, 1):
            return Expect.EITHER
        return Expect.EITHER if message.payload in (b"", b"\x00") else Expect.REFUSE
    if region.name == "PDMQ policy name":
        try:
            data[start + 56 : start + V2_SIZE].rstrip(b"\x00").decode("utf-8")
        except UnicodeDecodeError:
            return Expect.EITHER  # a name that is not text: a receiver may refuse it
    return region.expect


def truncate(message: ProtectedMessage, length: int) -> Mutation:
    """The message cut to ``length`` bytes: refused when anything of the PDMQ header or blob is cut."""
    where = layout(message)
    expect = Expect.REFUSE if length < len(message.body) else Expect.ACCEPT
    description = f"truncated from {len(message.body):,} to {length:,} bytes"
    if length <= where.payload_offset:
        description += " (nothing left after the clear headers)"
    return Mutation("truncate", description, expect, message.body[:length], message.format, length)


def append(message: ProtectedMessage, extra: bytes = b"\x00") -> Mutation:
    """``extra`` appended to the blob: refused (the blob must be exactly its ContentInfo, or its v3 sizes)."""
    description = f"{len(extra)} byte(s) {extra[:8].hex()} appended after the blob"
    return Mutation("append", description, Expect.REFUSE, message.body + extra, message.format, len(message.body))


def field_changes(message: ProtectedMessage) -> list[Mutation]:
    """Each PDMQ field changed in a telling way, with what a receiver must do about it."""
    where = layout(message)
    header = where.header
    order = ">" if header.encoding == 1 else "<"
    changes: list[tuple[int, bytes, str, Expect]] = [
        (0, b"PDMX", "StrucId PDMQ -> PDMX (the message no longer looks protected)", Expect.REFUSE),
        (4, bytes([5 - header.version]), f"major version {header.version} -> {5 - header.version}", Expect.REFUSE),
        (7, b"\x01", "dynamic-queue byte 0 -> 1", Expect.ACCEPT),
        (
            24,
            struct.pack(order + "i", header.orig_size + 1),
            f"origSize {header.orig_size} -> {header.orig_size + 1}",
            Expect.REFUSE,
        ),
        (20, struct.pack(order + "i", 819), "headerCCSID 1208 -> 819", Expect.EITHER),
        (32, b"MQADMIN ", "origFormat -> MQADMIN (changes the Format handed back)", Expect.EITHER),
        (41, b"\x01", "flags byte 1 0 -> 1", Expect.ACCEPT),
        (48, b"RESERVED", "reserved bytes -> 'RESERVED'", Expect.ACCEPT),
        (56, b"ELSEWHERE.Q".ljust(48, b"\x00"), f"policy name {header.name!r} -> 'ELSEWHERE.Q'", Expect.ACCEPT),
    ]
    changes += _qop_changes(message, header, order)
    out = []
    for offset, value, description, expect in changes:
        data = bytearray(message.body)
        at = where.payload_offset + offset
        data[at : at + len(value)] = value
        out.append(Mutation("field", "PDMQ " + description, expect, bytes(data), message.format, at))
    swapped = attrs.evolve(header, encoding=3 - header.encoding).pack()
    body = message.body[: where.payload_offset] + swapped + message.body[where.blob_offset :]
    out.append(Mutation("field", "PDMQ header re-encoded in the other byte order", Expect.ACCEPT, body, message.format))
    return out


def _qop_changes(message: ProtectedMessage, header: PdmqHeader, order: str) -> list[tuple[int, bytes, str, Expect]]:
    """Changes to protType, the empty flag and the v3 sizes."""
    empty_expect = Expect.EITHER if message.payload in (b"", b"\x00") else Expect.REFUSE
    flag = b"\x00" if header.empty else b"\x01"
    out = [(40, flag, f"empty flag {int(header.empty)} -> {flag[0]}", empty_expect)]
    if header.version == 2:
        other = QoP.PRIVACY if header.qop is QoP.INTEGRITY else QoP.INTEGRITY
        out.append((16, struct.pack(order + "i", other.value), f"protType {header.qop} -> {other}", Expect.REFUSE))
        reuse = header.prot_type | KEY_REUSE_FLAG
        out.append(
            (
                16,
                struct.pack(order + "i", reuse),
                f"protType key-reuse flag set ({reuse:#x}) in a v2 header",
                Expect.REFUSE,
            )
        )
        return out
    out += [
        (16, struct.pack(order + "i", header.prot_type ^ KEY_REUSE_FLAG), "key-reuse flag toggled", Expect.ACCEPT),
        (16, struct.pack(order + "i", QoP.PRIVACY.value), "protType CONFIDENTIALITY -> PRIVACY", Expect.REFUSE),
        (28, struct.pack(order + "i", header.key_block_size + 1), "keyBlockSize + 1", Expect.REFUSE),
        (
            104,
            struct.pack(order + "h", 24 - header.iv_block_size),
            f"IVBlockSize {header.iv_block_size} -> {24 - header.iv_block_size}",
            Expect.REFUSE,
        ),
        (108, struct.pack(order + "i", header.enc_block_size + 1), "EncBlockSize + 1", Expect.REFUSE),
    ]
    return out


def refusing(
    message: ProtectedMessage, kind: str, index: int, bit: int = 0, *, reader: x509.Certificate | None = None
) -> Mutation:
    """A mutation a correct receiver must refuse, chosen deterministically by ``kind`` (one of
    :data:`MUTATION_KINDS`), ``index`` (any non-negative integer, taken modulo the choices) and ``bit``.

    ``flip`` flips a bit of a byte that must not change, ``truncate`` cuts the protected part,
    ``append`` adds bytes after the blob, ``field`` changes a PDMQ field that is checked.
    """
    if kind == "truncate":
        where = layout(message)
        protected = len(message.body) - where.payload_offset
        return truncate(message, where.payload_offset + index % protected)
    if kind == "append":
        return append(message, bytes([index % 256]) * (1 + bit % 8))
    if kind == "field":
        choices = [m for m in field_changes(message) if m.must_refuse]
        return choices[index % len(choices)]
    if kind != "flip":
        raise ValueError(f"mutation kind {kind!r}: expected one of {', '.join(MUTATION_KINDS)}")
    where = layout(message, reader)
    for step in range(where.count(Expect.REFUSE)):
        offset = where.nth(Expect.REFUSE, index + step)
        for tried in range(8):  # only the protType's key-reuse bit and the empty flag's other bits are not
            mutation = _flip(message, where, offset, (bit + tried) % 8)
            if mutation.must_refuse:
                return mutation
    raise ValueError("no byte of this message must be refused when changed")  # the PDMQ StrucId always must
