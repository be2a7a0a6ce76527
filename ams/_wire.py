"""The one wire parser: a message body and its MQMD Format, Encoding and CCSID in, a value out.

Everything that reads a protected message (the Protector, ``inspect``, ``ams errors explain``,
the demo) reads it through :func:`parse`: the clear header chain, whether the payload is
protected, the PDMQ header and its QoP, and views of the CMS parts, with every public,
structural check made once (format.md §1-5). No key is used and nothing is verified here.
"""

from __future__ import annotations

from collections.abc import Sequence, Sized
from typing import NamedTuple

from ams.algorithms import QoP
from ams.errors import HeaderContentMismatchError, MalformedMessageError
from ams.hazmat import der, mqheaders, pdmq
from ams.hazmat.cbc import PendingCiphertext
from ams.hazmat.enveloped import EnvelopedContent, parse_enveloped_data, read_ams_enveloped_data
from ams.hazmat.oids import ID_DATA, ID_ENVELOPED_DATA, ID_SIGNED_DATA
from ams.hazmat.pdmq import V3_SIZE, PdmqHeader, looks_protected
from ams.hazmat.signed import Chunk, SignedContent, parse_signed_data, read_ams_signed_data
from ams.limits import DEFAULT_LIMITS, Limits
from ams.mqconstants import MQCCSI_UTF8, MQENC_NATIVE, MQFMT_NONE

# the ContentInfo type each QoP's blob (or confidentiality's key block) must hold
_CONTENT_TYPES = {QoP.INTEGRITY: ID_SIGNED_DATA, QoP.PRIVACY: ID_ENVELOPED_DATA, QoP.CONFIDENTIALITY: ID_ENVELOPED_DATA}


class Confidential(NamedTuple):
    """The three parts of a confidentiality blob (format.md §5)."""

    key_block: memoryview
    iv: bytes
    ciphertext: memoryview


class Wire(NamedTuple):
    """A message body as it arrived. ``header`` is None when the payload is not protected.

    A named tuple rather than an attrs class: one is made per message, and a tuple is made in a
    fifth of the time (the small-message cost is mostly such Python calls)."""

    body: memoryview
    format: str
    chain: mqheaders.HeaderChain
    header: PdmqHeader | None
    limits: Limits = DEFAULT_LIMITS

    @property
    def qop(self) -> QoP:
        return self.header.qop if self.header is not None else QoP.NONE

    @property
    def payload(self) -> memoryview:
        """What follows the clear headers: the PDMQ header and blob, or the unprotected payload."""
        return self.body[self.chain.payload_offset :]

    @property
    def blob(self) -> memoryview:
        """The CMS blob after the PDMQ header."""
        header = self.header if self.header is not None else self._protected()
        return self.body[self.chain.payload_offset + header.size :]

    def unprotected_reason(self) -> str:
        """What was found where a PDMQ header was expected, for the error that says so: public,
        structural facts only (the Format, the payload's length), never a byte of the payload."""
        if self.chain.last_format != MQFMT_NONE:
            return f"Format {self.chain.last_format.strip()!r}"
        return f"a blank Format but no PDMQ header: {pdmq.unprotected_reason(self.payload)}"

    def signed_data(self) -> SignedContent:
        """Integrity: the SignedData the blob holds, parsed strictly (nothing verified)."""
        self._expect_qop(QoP.INTEGRITY)
        blob = self.blob
        found = read_ams_signed_data(blob, wrapped=True)  # AMS's shape: one ContentInfo(signedData), filling the blob
        if found is not None:
            return found
        _expect_content_info(blob, QoP.INTEGRITY)
        return parse_signed_data(blob, wrapped=True, limits=self.limits)

    def enveloped_data(self) -> EnvelopedContent:
        """Privacy: the EnvelopedData the blob holds, which must carry signedData."""
        if self.header is None or self.header.qop is not QoP.PRIVACY:  # the check inline: a call fewer
            self._expect_qop(QoP.PRIVACY)
        blob = self.blob
        envelope = read_ams_enveloped_data(blob, limits=self.limits)  # AMS's shape: one ContentInfo, filling the blob
        if envelope is None:
            _expect_content_info(blob, QoP.PRIVACY)
            envelope = parse_enveloped_data(blob, limits=self.limits)
        if envelope.content_type != ID_SIGNED_DATA:
            raise HeaderContentMismatchError(
                f"PDMQ header says PRIVACY, so the envelope must hold signedData ({ID_SIGNED_DATA}); "
                f"it holds {envelope.content_type}"
            )
        return envelope

    def confidential(self) -> Confidential:
        """Confidentiality: key block, IV and ciphertext, whose sizes must add up to the blob."""
        header = self.header
        if header is None or header.qop is not QoP.CONFIDENTIALITY:  # the check inline: a call fewer
            header = self._expect_qop(QoP.CONFIDENTIALITY)
        blob = self.body[self.chain.payload_offset + V3_SIZE :]
        expected = header.key_block_size + header.iv_block_size + header.enc_block_size
        if expected != len(blob):
            raise MalformedMessageError(
                f"PDMQ v3 sizes keyBlock {header.key_block_size} + IV {header.iv_block_size} + "
                f"ciphertext {header.enc_block_size} = {expected} bytes, but {len(blob)} follow the header"
            )
        iv_end = header.key_block_size + header.iv_block_size
        return Confidential(blob[: header.key_block_size], bytes(blob[header.key_block_size : iv_end]), blob[iv_end:])

    def key_block(self, parts: Confidential) -> EnvelopedContent:
        """The EnvelopedData of a confidentiality key block, which must carry id-data and match the IV."""
        envelope = read_ams_enveloped_data(parts.key_block, limits=self.limits)
        if envelope is None:
            _expect_content_info(parts.key_block, QoP.CONFIDENTIALITY)
            envelope = parse_enveloped_data(parts.key_block, limits=self.limits)
        if envelope.content_type != ID_DATA:
            raise HeaderContentMismatchError(
                f"the CONFIDENTIALITY key block must hold id-data ({ID_DATA}), found {envelope.content_type}"
            )
        return envelope

    def restore(self, content: bytes | memoryview) -> tuple[bytes, str]:
        """The original body and MQMD Format: origFormat goes back where protect took it from."""
        header = self.header if self.header is not None else self._protected()
        chain = self.chain
        if chain.format_offset is None:
            return bytes(content), header.orig_format
        original = mqheaders.encode_format(header.orig_format, chain.format_charset)
        view = self.body
        return (
            b"".join(
                [view[: chain.format_offset], original, view[chain.format_offset + 8 : chain.payload_offset], content]
            ),
            self.format,
        )

    def restore_into(self, content: bytes | memoryview, into: memoryview | None, offset: int) -> tuple[memoryview, str]:
        """:meth:`restore` without copying the payload: ``content`` itself when no clear header precedes
        it; otherwise the clear headers (their last Format put back) written into ``into`` just before
        ``content``, which starts at ``offset`` there (-1: it is elsewhere, so it is copied in after them)."""
        header = self._protected()
        chain = self.chain
        if chain.format_offset is None:
            return memoryview(content), header.orig_format
        if into is None:
            raise ValueError("clear headers need a buffer to be put back into")
        size = chain.payload_offset
        if offset < size:
            into[size : size + len(content)] = content
            offset = size
        start = offset - size
        into[start:offset] = self.body[:size]
        into[start + chain.format_offset : start + chain.format_offset + 8] = mqheaders.encode_format(
            header.orig_format, chain.format_charset
        )
        return into[start : offset + len(content)], self.format

    def _protected(self) -> PdmqHeader:
        if self.header is None:
            raise MalformedMessageError(f"the message is not protected: {self.unprotected_reason()}")
        return self.header

    def _expect_qop(self, qop: QoP) -> PdmqHeader:
        header = self._protected()
        if header.qop is not qop:
            raise MalformedMessageError(f"the message is {header.qop}, not {qop}")
        return header


def parse(
    body: bytes | memoryview,
    format: str = MQFMT_NONE,
    *,
    encoding: int = MQENC_NATIVE,
    ccsid: int = MQCCSI_UTF8,
    limits: Limits = DEFAULT_LIMITS,
) -> Wire:
    """Walk the clear headers and, when the payload is protected, read its PDMQ header."""
    view = memoryview(body)
    chain = mqheaders.walk(view, format, encoding, ccsid)
    payload = view[chain.payload_offset :]
    protected = chain.last_format == MQFMT_NONE and looks_protected(payload)
    return Wire(view, format, chain, PdmqHeader.unpack(payload) if protected else None, limits)


def assemble(body: bytes | memoryview, chain: mqheaders.HeaderChain, protected: list[bytes | memoryview]) -> bytes:
    """The protected body: the clear headers with the last Format blanked, then ``protected``."""
    if chain.format_offset is None:
        return b"".join(protected)
    view = memoryview(body)
    blank = mqheaders.encode_format(MQFMT_NONE, chain.format_charset)
    rest = view[chain.format_offset + 8 : chain.payload_offset]
    head: list[bytes | memoryview] = [view[: chain.format_offset], blank, rest]
    return b"".join([*head, *protected])


def assembled_size(chain: mqheaders.HeaderChain, protected: Sequence[Sized]) -> int:
    """How long :func:`assemble_into` makes the protected body."""
    return (chain.payload_offset if chain.format_offset is not None else 0) + sum(len(p) for p in protected)


def assemble_into(
    body: bytes | memoryview,
    chain: mqheaders.HeaderChain,
    protected: Sequence[Chunk | PendingCiphertext],
    out: memoryview,
) -> memoryview:
    """:func:`assemble` into ``out``, each part written once where it stays; the view written."""
    position = 0
    if chain.format_offset is not None:
        view = memoryview(body)
        out[: chain.payload_offset] = view[: chain.payload_offset]
        out[chain.format_offset : chain.format_offset + 8] = mqheaders.encode_format(MQFMT_NONE, chain.format_charset)
        position = chain.payload_offset
    for part in protected:
        end = position + len(part)
        if isinstance(part, PendingCiphertext):
            part.write_into(out[position:end])
        else:
            out[position:end] = part
        position = end
    return out[:position]


def _expect_content_info(blob: memoryview, qop: QoP) -> None:
    """``blob`` is exactly one ContentInfo of the type ``qop`` carries."""
    expected = _CONTENT_TYPES[qop]
    try:
        found, length = der.content_type(blob)
    except ValueError as error:
        raise MalformedMessageError(f"the {qop} blob after the PDMQ header is not a DER ContentInfo: {error}") from None
    if found != expected:
        raise HeaderContentMismatchError(
            f"PDMQ header says {qop}, which carries a ContentInfo of type {expected}, but the blob holds {found}"
        )
    if length != len(blob):
        extra = len(blob) - length
        raise MalformedMessageError(f"{extra} unexpected bytes after the {qop} ContentInfo ({length} bytes)")
