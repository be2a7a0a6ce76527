"""CMS EnvelopedData as AMS reads it (format.md §4-5): a strict parser, and a reader of AMS's shape. Syntax only.

:func:`parse_enveloped_data` reads a ContentInfo(envelopedData) without copies into an
:class:`EnvelopedContent`: the cipher, each RecipientInfo's identifier (the others' wrapped keys
are never read) and the still-encrypted content. The shape AMS writes is read in fewer steps by
:func:`read_ams_enveloped_data`, anything else by :func:`parse_enveloped_data_strictly`; both
give the same value or the same verdict.

The writer is :mod:`ams.hazmat.enveloped_writer`, CBC is :mod:`ams.hazmat.cbc`; their names are
importable from here too, as they were when this module held them.
"""

from __future__ import annotations

from typing import NamedTuple

import attrs
from cryptography import x509

from ams.algorithms import EncryptionAlgorithm
from ams.dn import DistinguishedName
from ams.errors import DistinguishedNameError, MalformedMessageError, UnsupportedAlgorithmError
from ams.hazmat import der
from ams.hazmat.cbc import CbcDecryptor as CbcDecryptor
from ams.hazmat.cbc import PayloadSizeError as PayloadSizeError
from ams.hazmat.cbc import PendingCiphertext as PendingCiphertext
from ams.hazmat.cbc import cbc_decrypt as cbc_decrypt
from ams.hazmat.cbc import cbc_encrypt as cbc_encrypt
from ams.hazmat.cbc import check_cbc_input as check_cbc_input
from ams.hazmat.cbc import unpadded as unpadded
from ams.hazmat.certificates import issuer_and_serial, issuer_bytes, subject_key_identifier
from ams.hazmat.enveloped_writer import RSA_ALGORITHM
from ams.hazmat.enveloped_writer import Recipient as Recipient
from ams.hazmat.enveloped_writer import build_enveloped_data as build_enveloped_data
from ams.hazmat.enveloped_writer import cipher_parameters as cipher_parameters
from ams.hazmat.enveloped_writer import enveloped_data_parts as enveloped_data_parts
from ams.hazmat.enveloped_writer import recipient_info as recipient_info
from ams.hazmat.oids import ID_ENVELOPED_DATA, RC2_PARAMETER_VERSION_128, RSA_ENCRYPTION
from ams.hazmat.recipient_layouts import (
    ENVELOPE_KEPT_SIZE,
    ENVELOPES,
    ENVELOPES_KEPT,
    LAYOUT_KEPT_SIZE,
    LAYOUTS,
    LAYOUTS_KEPT,
    RSA_KEY_PREFIX,
    EnvelopeLayout,
    RecipientsLayout,
    key_ranges,
)
from ams.limits import DEFAULT_LIMITS, Limits


@attrs.frozen
class RecipientRef:
    """Who a RecipientInfo is for: issuer and serial, or a subjectKeyIdentifier."""

    issuer: bytes | None  # DER of the issuer Name
    serial: int | None
    key_identifier: bytes | None

    def matches(self, certificate: x509.Certificate) -> bool:
        """Whether ``certificate`` is the one named: serial and issuer DER byte for byte, or the same key identifier."""
        if self.issuer is not None:
            if certificate.serial_number != self.serial:
                return False
            # byte-exact: the RecipientInfo is not signed, so no loose matching here
            return issuer_bytes(certificate) == self.issuer
        ski = subject_key_identifier(certificate)
        return ski is not None and ski == self.key_identifier

    def describe(self) -> str:
        """The reference in words, for error texts (a key identifier cut to 32 bytes of hex)."""
        if self.issuer is not None:
            try:
                issuer = str(DistinguishedName.from_der(self.issuer))
            except DistinguishedNameError:
                issuer = f"(an unparseable Name of {len(self.issuer)} bytes)"
            return f"issuer {issuer} serial {self.serial:#x}"
        identifier = self.key_identifier or b""
        shown = identifier[:32].hex() + ("..." if len(identifier) > 32 else "")
        return f"subjectKeyIdentifier {shown or '(empty)'}"


class EnvelopedContent(NamedTuple):
    """A parsed EnvelopedData: cipher, recipients and the still-encrypted content.

    Each RecipientInfo is kept as the exact DER of its recipient identifier (checked strictly:
    an issuerAndSerialNumber or a [0] subjectKeyIdentifier) and where its remaining fields lie;
    only the one this receiver uses is read in full. A named tuple, not a frozen attrs class: one
    is made per message read, and a frozen attrs instance costs a Python call per field to make.
    """

    algorithm: EncryptionAlgorithm
    content_type: str
    iv: bytes
    ciphertext: memoryview
    recipient_ids: tuple[bytes, ...]  # each RecipientInfo's rid, as it is encoded
    rests: tuple[tuple[int, int], ...]  # where each RecipientInfo's fields after the rid start and end in ``data``
    data: memoryview

    def recipient_refs(self) -> list[RecipientRef]:
        """Who each RecipientInfo is for, in the message's order."""
        return [_recipient_ref(rid) for rid in self.recipient_ids]

    def recipient_index(self, certificate: x509.Certificate) -> int | None:
        """Which RecipientInfo is for ``certificate`` (None when the message is not for it)."""
        return self.index_of(recipient_ids(certificate))

    def index_of(self, ids: tuple[bytes, ...]) -> int | None:
        """Which RecipientInfo names one of ``ids`` (:func:`recipient_ids` of a certificate), byte for byte."""
        for index, rid in enumerate(self.recipient_ids):
            if rid in ids:
                return index
        return None

    def wrapped_key(self, index: int) -> bytes:
        """The encryptedKey of one RecipientInfo; only this one is read in full (the others are never used)."""
        start, stop = self.rests[index]
        rest = self.data[start:stop]
        # AMS's rsaEncryption (NULL parameters) and a short encryptedKey, recognised by their bytes
        # (the length octets too must be there: a RecipientInfo that ends inside them is the strict reader's)
        head = len(RSA_ALGORITHM) + 4
        if len(rest) > head and bytes(rest[: head - 2]) == RSA_KEY_PREFIX:
            size = rest[head - 2] << 8 | rest[head - 1]
            if size >= 0x100 and head + size == len(rest):
                return bytes(rest[head:])
        return _wrapped_key(der.Reader(self.data, "KeyTransRecipientInfo", start, stop))

    def decrypt(self, key: bytes, *, what: str, headroom: int = 0, into: memoryview | None = None) -> memoryview:
        """The content decrypted with ``key`` (see :func:`cbc_decrypt`); DecryptionError on a bad length or padding."""
        return cbc_decrypt(self.algorithm, key, self.iv, self.ciphertext, what=what, headroom=headroom, into=into)


def recipient_ids(certificate: x509.Certificate) -> tuple[bytes, ...]:
    """The recipient identifiers that name ``certificate``: its issuerAndSerialNumber and, when it
    has one, its [0] subjectKeyIdentifier, as DER (a RecipientInfo is not signed: only exact bytes match)."""
    ski = subject_key_identifier(certificate)
    by_issuer = issuer_and_serial(certificate)
    return (by_issuer,) if ski is None else (by_issuer, der.tlv(der.CONTEXT_0_PRIMITIVE, ski))


def _recipient_ref(rid: bytes) -> RecipientRef:
    """The RecipientRef of a recipient identifier the parser already checked."""
    element = der.Reader(rid, "rid").read("rid")
    if element.tag == der.CONTEXT_0_PRIMITIVE:
        return RecipientRef(None, None, bytes(element.content))
    parts = element.children("issuerAndSerialNumber")
    issuer = bytes(parts.read("issuer", der.SEQUENCE).encoded)
    return RecipientRef(issuer, parts.read("serialNumber", der.INTEGER).integer("serialNumber"), None)


def parse_enveloped_data(encoded: bytes | memoryview, *, limits: Limits = DEFAULT_LIMITS) -> EnvelopedContent:
    """Parse a ContentInfo(envelopedData) with key-transport recipients, strictly, without copies.

    Syntax only; at most ``limits.recipients`` RecipientInfos are read. The shape AMS writes is read
    by :func:`read_ams_enveloped_data`, anything else by :func:`parse_enveloped_data_strictly`;
    both give the same value or the same verdict.
    """
    found = read_ams_enveloped_data(encoded, limits=limits)
    return found if found is not None else parse_enveloped_data_strictly(encoded, limits=limits)


def parse_enveloped_data_strictly(encoded: bytes | memoryview, *, limits: Limits = DEFAULT_LIMITS) -> EnvelopedContent:
    """The general strict reader behind :func:`parse_enveloped_data`: every field read in full."""
    data = encoded if isinstance(encoded, memoryview) else memoryview(encoded)
    try:
        content_type, enveloped = der.content_info(data, "the EnvelopedData ContentInfo")
        if content_type != ID_ENVELOPED_DATA:
            raise MalformedMessageError(
                f"expected a ContentInfo of type envelopedData ({ID_ENVELOPED_DATA}), found {content_type}"
            )
        der.expect_tag(enveloped, der.SEQUENCE, "EnvelopedData")
        fields = enveloped.children("EnvelopedData")
        version = fields.read("version", der.INTEGER).integer("EnvelopedData version")
        if fields.peek() == der.CONTEXT_0_CONSTRUCTED:
            raise der.DerError("EnvelopedData has originatorInfo, which AMS does not write")
        rids: list[bytes] = []
        rests: list[tuple[int, int]] = []
        all_v0 = True
        infos = fields.read("recipientInfos", der.SET).children("recipientInfos")
        for choice in infos.all("RecipientInfo", limit=limits.recipients):
            if choice.tag != der.SEQUENCE:
                raise UnsupportedAlgorithmError(
                    f"RecipientInfo with tag {choice.tag:#04x}: AMS uses key transport (RSA) only"
                )
            rid, rest, ktri_version = _key_trans(choice)
            all_v0 = all_v0 and ktri_version == 0
            rids.append(rid)
            rests.append((rest.offset, rest.stop))
        eci = fields.read("encryptedContentInfo", der.SEQUENCE).children("encryptedContentInfo")
        inner_type = eci.read("contentType", der.OID).oid("contentType")
        oid, parameters = der.algorithm(eci.read("contentEncryptionAlgorithm", der.SEQUENCE), "cipher")
        encrypted = eci.optional(der.CONTEXT_0_PRIMITIVE, "encryptedContent")
        eci.end()
        if encrypted is None:
            raise MalformedMessageError("the EnvelopedData has no encryptedContent (primitive [0])")
        if fields.peek() is not None:
            raise der.DerError("EnvelopedData has unprotectedAttrs, which AMS does not write")
        # RFC 5652 6.1: version 0 when every RecipientInfo is v0 and there are no extras, else 2
        expected_version = 0 if all_v0 else 2
        if version != expected_version:
            raise MalformedMessageError(f"EnvelopedData version {version}: expected {expected_version}")
    except der.DerError as error:
        raise MalformedMessageError(f"cannot parse the EnvelopedData: {error}") from None
    algorithm = EncryptionAlgorithm.from_oid(oid)
    if algorithm is None:
        raise UnsupportedAlgorithmError(
            f"content encryption algorithm {oid} is not one AMS defines (RC2, DES, 3DES, AES128, AES256)"
        )
    iv = _iv(algorithm, parameters)
    return EnvelopedContent(algorithm, inner_type, iv, encrypted.content, tuple(rids), tuple(rests), data)


def _key_trans(choice: der.Element) -> tuple[bytes, der.Reader, int]:
    """The recipient identifier (its DER) and version of a KeyTransRecipientInfo; the rest is read on use."""
    fields = choice.children("KeyTransRecipientInfo")
    version = fields.read("version", der.INTEGER).integer("KeyTransRecipientInfo version")
    rid = fields.read("rid")
    if rid.tag == der.SEQUENCE:
        parts = rid.children("issuerAndSerialNumber")
        parts.read("issuer", der.SEQUENCE)
        parts.read("serialNumber", der.INTEGER).integer("serialNumber")
        parts.end()
        expected = 0
    elif rid.tag == der.CONTEXT_0_PRIMITIVE:
        expected = 2
    else:
        raise der.DerError(f"KeyTransRecipientInfo rid has tag {rid.tag:#04x}")
    if version != expected:
        raise der.DerError(f"KeyTransRecipientInfo version {version}: expected {expected} for its rid")
    return bytes(rid.encoded), fields, version


def _wrapped_key(fields: der.Reader) -> bytes:
    """keyEncryptionAlgorithm (rsaEncryption, NULL) and the encryptedKey of a KeyTransRecipientInfo."""
    try:
        oid, parameters = der.algorithm(fields.read("keyEncryptionAlgorithm", der.SEQUENCE), "keyEncryptionAlgorithm")
        if oid != RSA_ENCRYPTION:
            raise UnsupportedAlgorithmError(
                f"key encryption algorithm {oid}: AMS uses rsaEncryption ({RSA_ENCRYPTION}, PKCS#1 v1.5)"
            )
        der.null_or_absent(parameters, "keyEncryptionAlgorithm")
        wrapped = bytes(fields.read("encryptedKey", der.OCTET_STRING).content)
        fields.end()
    except der.DerError as error:
        raise MalformedMessageError(f"cannot parse the KeyTransRecipientInfo: {error}") from None
    return wrapped


def _iv(algorithm: EncryptionAlgorithm, parameters: der.Element | None) -> bytes:
    what = f"{algorithm} parameters"
    try:
        if parameters is None:
            raise der.DerError("absent")
        if algorithm is EncryptionAlgorithm.RC2 and parameters.tag == der.SEQUENCE:
            fields = parameters.children(what)
            if fields.peek() == der.INTEGER:
                version = fields.read("rc2ParameterVersion").integer(what)
                if version != RC2_PARAMETER_VERSION_128:
                    raise UnsupportedAlgorithmError(
                        f"RC2 parameter version {version}: only 128-bit RC2 (version 58) is supported"
                    )
            iv = bytes(fields.read("iv", der.OCTET_STRING).content)
            fields.end()
        else:
            iv = bytes(parameters.octets(what))
    except der.DerError as error:
        raise MalformedMessageError(f"cannot read the {what}: {error}") from None
    if len(iv) != algorithm.spec.block_size:
        raise MalformedMessageError(
            f"{algorithm} IV: expected {algorithm.spec.block_size} bytes in the algorithm parameters, found {len(iv)}"
        )
    return iv


# -- the specialised reader: the shape AMS writes, in fewer steps -------------------------------

_ENVELOPED_DATA_TYPE = der.oid(ID_ENVELOPED_DATA)
_V0 = b"\x02\x01\x00"
# the OID TLV of each cipher whose parameters are an OCTET STRING IV (RC2's are not: the strict reader's)
_CIPHER_OIDS = {
    der.oid(a.spec.oid): a for a in EncryptionAlgorithm if a not in (EncryptionAlgorithm.NONE, EncryptionAlgorithm.RC2)
}
_CHECKED_RIDS: set[bytes] = set()  # issuerAndSerialNumbers already found well formed, byte for byte
_CHECKED_RIDS_KEPT = 4096
_CHECKED_RID_SIZE = 1024  # a larger rid (a sender's choice) is checked each time, never kept: at most 4 MiB is


def read_ams_enveloped_data(encoded: bytes | memoryview, *, limits: Limits = DEFAULT_LIMITS) -> EnvelopedContent | None:
    """The EnvelopedData of the shape AMS writes (format.md §4-5), or None for any other input.

    Version 0, version 0 KeyTransRecipientInfos by issuer and serial (at most ``limits.recipients``),
    a cipher whose parameters are its IV, the encrypted content, nothing else: each checked as the
    strict reader checks it, so that a value returned here is the one
    :func:`parse_enveloped_data_strictly` returns. Anything else, valid or not, is None.
    """
    data = encoded if isinstance(encoded, memoryview) else memoryview(encoded)
    layout = ENVELOPES.get(len(data))
    if layout is not None and layout.matches(data, limits.recipients):
        iv_start, iv_stop = layout.iv
        iv, ciphertext = bytes(data[iv_start:iv_stop]), data[layout.content_start :]
        return EnvelopedContent(layout.algorithm, layout.content_type, iv, ciphertext, layout.rids, layout.rests, data)
    try:
        start, stop = der.content_bounds(data, _ENVELOPED_DATA_TYPE)
        if bytes(data[start : start + 3]) != _V0:
            return None
        set_start, set_stop = der.expect(data, start + 3, stop, der.SET)
        found = _recipients(data, set_start, set_stop, limits.recipients)
        eci_start, eci_stop = der.expect(data, set_stop, stop, der.SEQUENCE)
        type_start, type_stop = der.expect(data, eci_start, eci_stop, der.OID)
        inner_type = der.decode_oid(bytes(data[type_start:type_stop]))
        algorithm_start, algorithm_stop = der.expect(data, type_stop, eci_stop, der.SEQUENCE)
        oid_stop = der.expect(data, algorithm_start, algorithm_stop, der.OID)[1]
        algorithm = _CIPHER_OIDS.get(bytes(data[algorithm_start:oid_stop]))
        iv_start, iv_stop = der.expect(data, oid_stop, algorithm_stop, der.OCTET_STRING)
        content_start, content_stop = der.expect(data, algorithm_stop, eci_stop, der.CONTEXT_0_PRIMITIVE)
    except der.DerError:
        return None
    if (
        found is None
        or algorithm is None
        or iv_stop != algorithm_stop
        or iv_stop - iv_start != algorithm.spec.block_size
        or content_stop != eci_stop
        or eci_stop != stop
    ):
        return None
    rids, rests = found
    keys = key_ranges(data, rests)
    if keys is not None and content_start <= ENVELOPE_KEPT_SIZE:
        if len(ENVELOPES) >= ENVELOPES_KEPT:
            ENVELOPES.clear()
        read = (algorithm, inner_type, (iv_start, iv_stop), content_start)
        ENVELOPES[len(data)] = EnvelopeLayout(data, [*keys, (iv_start, iv_stop), (content_start, stop)], read, found)
    iv, ciphertext = bytes(data[iv_start:iv_stop]), data[content_start:content_stop]
    return EnvelopedContent(algorithm, inner_type, iv, ciphertext, rids, rests, data)


def _recipients(
    data: memoryview, position: int, stop: int, limit: int
) -> tuple[tuple[bytes, ...], tuple[tuple[int, int], ...]] | None:
    """:func:`_read_recipients`, or the same answer from the layout of the last RecipientInfos SET of
    this length that it read, when these public bytes match it everywhere but in the wrapped keys."""
    layout = LAYOUTS.get(stop - position)
    if layout is not None:
        found = layout.match(data, position, stop, limit)
        if found is not None:
            return found
    found = _read_recipients(data, position, stop, limit)
    if found is not None and stop - position <= LAYOUT_KEPT_SIZE:
        layout = RecipientsLayout.of(data, position, stop, found)
        if layout is not None:
            if len(LAYOUTS) >= LAYOUTS_KEPT:
                LAYOUTS.clear()
            LAYOUTS[stop - position] = layout
    return found


def _read_recipients(
    data: memoryview, position: int, stop: int, limit: int
) -> tuple[tuple[bytes, ...], tuple[tuple[int, int], ...]] | None:
    """Version 0 KeyTransRecipientInfos by issuer and serial, from ``position`` to ``stop``: each rid
    and where the fields after it lie; None for anything else (or more than ``limit``)."""
    rids: list[bytes] = []
    rests: list[tuple[int, int]] = []
    region = bytes(data[position:stop])  # one copy of the SET: bytes index and slice faster than a view
    at, end = 0, len(region)
    while at < end:
        info_start, info_stop = der.expect(region, at, end, der.SEQUENCE)
        if len(rids) == limit or not region.startswith(_V0, info_start):
            return None
        rid_stop = der.expect(region, info_start + 3, info_stop, der.SEQUENCE)[1]
        rid = region[info_start + 3 : rid_stop]
        if rid not in _CHECKED_RIDS:
            _check_rid(rid)
        rids.append(rid)
        rests.append((position + rid_stop, position + info_stop))
        at = info_stop
    return (tuple(rids), tuple(rests)) if rids else None


def _check_rid(rid: bytes) -> None:
    """An issuerAndSerialNumber as the strict reader requires it (a Name SEQUENCE, then a minimal
    INTEGER of at most 32 octets, filling it); remembered once it passed. DerError otherwise."""
    start, stop = der.expect(rid, 0, len(rid), der.SEQUENCE)
    issuer_stop = der.expect(rid, start, stop, der.SEQUENCE)[1]
    serial_start, serial_stop = der.expect(rid, issuer_stop, stop, der.INTEGER)
    if serial_stop != stop:
        raise der.DerError("not an issuerAndSerialNumber")
    der.decode_integer(rid[serial_start:serial_stop], "serialNumber")
    if len(rid) > _CHECKED_RID_SIZE:
        return
    if len(_CHECKED_RIDS) >= _CHECKED_RIDS_KEPT:
        _CHECKED_RIDS.clear()
    _CHECKED_RIDS.add(rid)
