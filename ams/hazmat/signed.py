"""CMS SignedData as AMS reads it (format.md §3): a strict parser, and a reader of AMS's shape. Syntax only.

Reading uses the strict DER reader in ``der``: every field is read strictly and nothing is
copied (the payload is a view into the message). The shape AMS (and IBM's clients) write is
read first by a specialised reader that checks the same rules with fewer steps and gives up
(None) on anything else, for the general reader to judge; the two agree on every input the
tests' fuzzers produce. Nothing here verifies a signature or trusts a certificate:
``ams.verify`` does. The writer is :mod:`ams.hazmat.signed_writer` (:class:`SignedDataWriter`
is importable from here too, as it was when this module held it).
"""

from __future__ import annotations

import datetime
from typing import NamedTuple

from ams.algorithms import RSA_WITH_DIGEST, SignatureAlgorithm
from ams.errors import (
    MalformedMessageError,
    UnsupportedAlgorithmError,
)
from ams.hazmat import der
from ams.hazmat.der import Chunk as Chunk
from ams.hazmat.oids import (
    ID_DATA,
    ID_SIGNED_DATA,
    ID_SIGNING_TIME,
    RSA_ENCRYPTION,
)
from ams.hazmat.signed_writer import SignedDataWriter as SignedDataWriter
from ams.limits import DEFAULT_LIMITS, Limits


class SignerInfo(NamedTuple):
    """The one SignerInfo AMS writes, read strictly.

    A named tuple, not a frozen attrs class: one is made per message read, and a frozen attrs
    instance costs a Python call per field to make (a tuple's fields cannot be reassigned either).
    """

    version: int
    issuer: bytes | None  # DER of the issuer Name (issuerAndSerialNumber), or None
    serial: int | None
    key_identifier: bytes | None  # subjectKeyIdentifier, or None
    digest_oid: str
    signed_attributes: memoryview | None  # the content octets of [0] IMPLICIT signedAttrs
    signature_oid: str
    signature: bytes


class SignedContent(NamedTuple):
    """A parsed SignedData, as it arrived (``ams.verify`` checks it); a named tuple, as SignerInfo."""

    version: int
    digest_algorithm: SignatureAlgorithm
    digest_oids: tuple[str, ...]
    certificates: tuple[bytes, ...]
    content: memoryview
    signer_infos: tuple[SignerInfo, ...]
    content_offset: int = 0  # where ``content`` starts in the bytes that were parsed


def signing_time(info: SignerInfo) -> datetime.datetime | None:
    """The signingTime signed attribute (for ``ams inspect``); None when absent.

    The attributes are the sender's bytes: anything malformed is a MalformedMessageError.
    """
    if info.signed_attributes is None:
        return None
    try:
        for attribute in der.Reader(info.signed_attributes, "signedAttrs").all(
            "attribute", der.SEQUENCE, limit=DEFAULT_LIMITS.signed_attributes
        ):
            fields = attribute.children("attribute")
            if fields.read("attrType", der.OID).oid("attrType") != ID_SIGNING_TIME:
                continue
            value = fields.read("attrValues", der.SET).children("attrValues").read("time")
            return _decode_time(value)
    except der.DerError as error:
        raise MalformedMessageError(f"cannot read the signed attributes: {error}") from None
    return None


def _decode_time(value: der.Element) -> datetime.datetime:
    """A UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), as RFC 5280 restricts them."""
    raw = bytes(value.content)
    if value.tag == 0x17 and len(raw) == 13:
        year = int(raw[:2]) if raw[:2].isdigit() else -1
        raw = (b"19" if year >= 50 else b"20") + raw
    elif value.tag != 0x18 or len(raw) != 15:
        raise der.DerError(f"signingTime: expected UTCTime or GeneralizedTime, found tag {value.tag:#04x}")
    if not (raw[:14].isdigit() and raw[14:] == b"Z"):
        raise der.DerError("signingTime is not of the form YYYYMMDDHHMMSSZ")
    try:
        return datetime.datetime.strptime(raw.decode("ascii"), "%Y%m%d%H%M%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        raise der.DerError("signingTime is not a valid date and time") from None


def _signer_info(element: der.Element) -> SignerInfo:
    """One SignerInfo, read strictly: identified by issuer and serial or by [0] key identifier, no unsignedAttrs."""
    fields = element.children("SignerInfo")
    version = fields.read("version", der.INTEGER).integer("SignerInfo version")
    sid = fields.read("sid")
    issuer = serial = key_identifier = None
    if sid.tag == der.SEQUENCE:
        parts = sid.children("issuerAndSerialNumber")
        issuer = bytes(parts.read("issuer", der.SEQUENCE).encoded)
        serial = parts.read("serialNumber", der.INTEGER).integer("serialNumber")
        parts.end()
    elif sid.tag == der.CONTEXT_0_PRIMITIVE:
        key_identifier = bytes(sid.content)
    else:
        raise der.DerError(f"SignerInfo sid has tag {sid.tag:#04x}; expected issuerAndSerialNumber or [0]")
    digest_oid, digest_parameters = der.algorithm(fields.read("digestAlgorithm", der.SEQUENCE), "digestAlgorithm")
    der.null_or_absent(digest_parameters, "digestAlgorithm")
    attributes = fields.optional(der.CONTEXT_0_CONSTRUCTED, "signedAttrs")
    signature_oid, signature_parameters = der.algorithm(
        fields.read("signatureAlgorithm", der.SEQUENCE), "signatureAlgorithm"
    )
    der.null_or_absent(signature_parameters, "signatureAlgorithm")
    signature = bytes(fields.read("signature", der.OCTET_STRING).content)
    if fields.peek() is not None:
        raise der.DerError("SignerInfo has unsignedAttrs, which AMS does not write")
    return SignerInfo(
        version,
        issuer,
        serial,
        key_identifier,
        digest_oid,
        attributes.content if attributes is not None else None,
        signature_oid,
        signature,
    )


def parse_signed_data(
    encoded: bytes | memoryview, *, wrapped: bool, limits: Limits = DEFAULT_LIMITS, templates: bool = True
) -> SignedContent:
    """Parse a ContentInfo(signedData) (``wrapped``) or a bare SignedData SEQUENCE, strictly.

    Syntax only: nothing is verified here (:meth:`ams.verify.Verifier.verify_signature` does). The
    payload is not copied: ``content`` is a view into ``encoded``. Element counts are bounded by
    ``limits``. The shape AMS writes is read by :func:`read_ams_signed_data` (``templates``: see
    there), anything else by :func:`parse_signed_data_strictly`; both give the same value or the
    same verdict.
    """
    found = read_ams_signed_data(encoded, wrapped=wrapped, templates=templates)
    return found if found is not None else parse_signed_data_strictly(encoded, wrapped=wrapped, limits=limits)


def parse_signed_data_strictly(
    encoded: bytes | memoryview, *, wrapped: bool, limits: Limits = DEFAULT_LIMITS
) -> SignedContent:
    """The general strict reader behind :func:`parse_signed_data`: any SignedData CMS allows that
    AMS can read, every field read in full, element counts bounded by ``limits``."""
    try:
        fields = _signed_data(encoded, wrapped).children("SignedData")
        version = fields.read("version", der.INTEGER).integer("SignedData version")
        digest_oids = _digest_oids(fields, limits)
        econtent_type, content = _encapsulated_content(fields)
        certificates = _certificates(fields, limits)
        if fields.peek() == 0xA1:
            fields.read("crls")  # revocation data in the message is not used: trust comes from the receiver
        infos = tuple(
            _signer_info(e)
            for e in fields.read("signerInfos", der.SET)
            .children("signerInfos")
            .all("SignerInfo", der.SEQUENCE, limit=limits.signer_infos)
        )
        fields.end()
    except der.DerError as error:
        raise MalformedMessageError(f"cannot parse the SignedData: {error}") from None
    if econtent_type != ID_DATA:
        raise MalformedMessageError(f"expected eContentType id-data ({ID_DATA}), found {econtent_type}")
    oid = infos[0].digest_oid if infos else (digest_oids[0] if digest_oids else "none")
    algorithm = SignatureAlgorithm.from_oid(oid)
    if algorithm is None:
        raise UnsupportedAlgorithmError(
            f"digest algorithm {oid} is not one AMS defines (MD5, SHA1, SHA256, SHA384, SHA512)"
        )
    return SignedContent(version, algorithm, tuple(digest_oids), certificates, content.content, infos, content.offset)


def _signed_data(encoded: bytes | memoryview, wrapped: bool) -> der.Element:
    """The SignedData SEQUENCE: the content of a ContentInfo(signedData), or all of ``encoded``."""
    if wrapped:
        content_type, signed = der.content_info(encoded, "the SignedData ContentInfo")
        if content_type != ID_SIGNED_DATA:
            raise MalformedMessageError(
                f"expected a ContentInfo of type signedData ({ID_SIGNED_DATA}), found {content_type}"
            )
    else:
        outer = der.Reader(encoded, "SignedData")
        signed = outer.read("SignedData", der.SEQUENCE)
        outer.end()
    der.expect_tag(signed, der.SEQUENCE, "SignedData")
    return signed


def _digest_oids(fields: der.Reader, limits: Limits) -> list[str]:
    """The digestAlgorithms SET: each OID, with NULL or absent parameters."""
    identifiers = fields.read("digestAlgorithms", der.SET).children("digestAlgorithms")
    digest_oids = []
    for identifier in identifiers.all("digest", limit=limits.digest_algorithms):
        oid, parameters = der.algorithm(identifier, "digestAlgorithms")
        der.null_or_absent(parameters, "digestAlgorithms")
        digest_oids.append(oid)
    return digest_oids


def _encapsulated_content(fields: der.Reader) -> tuple[str, der.Element]:
    """The encapContentInfo's eContentType and its attached eContent OCTET STRING; detached is refused."""
    encap = fields.read("encapContentInfo", der.SEQUENCE).children("encapContentInfo")
    econtent_type = encap.read("eContentType", der.OID).oid("eContentType")
    explicit = encap.optional(der.CONTEXT_0_CONSTRUCTED, "eContent")
    encap.end()
    if explicit is None:
        raise MalformedMessageError("the SignedData is detached (no eContent); AMS attaches the payload")
    inner = explicit.children("eContent")
    content = inner.read("eContent", der.OCTET_STRING)
    inner.end()
    return econtent_type, content


def _certificates(fields: der.Reader, limits: Limits) -> tuple[bytes, ...]:
    """The DER of each certificate in the optional [0] certificates field (none when absent)."""
    certificates = fields.optional(der.CONTEXT_0_CONSTRUCTED, "certificates")
    if certificates is None:
        return ()
    found = certificates.children("certificates").all("certificate", der.SEQUENCE, limit=limits.certificates)
    return tuple(bytes(c.encoded) for c in found)


# -- the specialised reader: the shape AMS writes, in fewer steps -------------------------------


def _algorithm_identifiers(oids: list[str]) -> dict[bytes, str]:
    """Each OID's AlgorithmIdentifier DER with NULL and with absent parameters, mapped to the OID."""
    found = {der.algorithm_identifier(oid): oid for oid in oids}
    found.update({der.algorithm_identifier(oid, None): oid for oid in oids})
    return found


_DIGEST_IDS = _algorithm_identifiers([a.oid for a in SignatureAlgorithm if a is not SignatureAlgorithm.NONE])
_DIGEST_SETS = {der.tlv(der.SET, identifier): oid for identifier, oid in _DIGEST_IDS.items()}
_SIGNATURE_IDS = _algorithm_identifiers([RSA_ENCRYPTION, *RSA_WITH_DIGEST])
_SIGNED_DATA_TYPE = der.oid(ID_SIGNED_DATA)
_DATA_TYPE = der.oid(ID_DATA)
_VERSIONS = {b"\x02\x01\x01": 1, b"\x02\x01\x03": 3}


def read_ams_signed_data(encoded: bytes | memoryview, *, wrapped: bool, templates: bool = True) -> SignedContent | None:
    """The SignedData of the shape AMS writes (format.md §3), or None for any other input.

    One digest algorithm of AMS's, id-data attached, at most one certificate, no CRLs, one
    SignerInfo (issuer and serial or a key identifier) with AMS's algorithms: each checked as
    the strict reader checks it, so that a value returned here is the one
    :func:`parse_signed_data_strictly` returns. Anything else, valid or not, is None: the
    strict reader decides it. ``templates``: recognise the bytes after the payload by the last
    ones read of that length, and remember these; off for decrypted bytes, on which no state
    (and so no timing) of the receiver may depend.
    """
    data = encoded if isinstance(encoded, memoryview) else memoryview(encoded)
    try:
        start, stop = _signed_data_bounds(data, wrapped)
        return _read_signed_fields(data, start, stop, templates)
    except der.DerError:
        return None


def read_ams_signed_content(data: memoryview, start: int) -> SignedContent | None:
    """:func:`read_ams_signed_data` (``wrapped`` False, ``templates`` False) for a SignedData SEQUENCE
    whose header, the ``start`` bytes before its content, the caller wrote itself (the privacy
    content, which AMS encrypts without it): the content to the end of ``data`` is read, in full."""
    try:
        return _read_signed_fields(data, start, len(data), False)
    except der.DerError:
        return None


def _constant(data: memoryview, offset: int, expected: bytes) -> int:
    """The offset after ``expected``, which must be the bytes at ``offset``; DerError otherwise."""
    end = offset + len(expected)
    if bytes(data[offset:end]) != expected:
        raise der.DerError("not the shape AMS writes")
    return end


def _signed_data_bounds(data: memoryview, wrapped: bool) -> tuple[int, int]:
    """Where the SignedData SEQUENCE's content lies: inside a ContentInfo filling ``data``, or filling it."""
    if wrapped:
        return der.content_bounds(data, _SIGNED_DATA_TYPE)
    start, stop = der.expect(data, 0, len(data), der.SEQUENCE)
    if stop != len(data):
        raise der.DerError("not one SignedData")
    return start, stop


def _read_signed_fields(data: memoryview, position: int, stop: int, templates: bool) -> SignedContent:
    """The SignedData's fields, from its content at ``position`` to ``stop``."""
    version, digest_oid, content_start, content_stop = read_ams_signed_head(data, position, stop)
    certificates, info, algorithm = read_ams_signed_tail(data, content_stop, stop, templates)
    content = data[content_start:content_stop]
    return SignedContent(version, algorithm, (digest_oid,), certificates, content, (info,), content_start)


def read_ams_signed_head(data: memoryview, position: int, stop: int) -> tuple[int, str, int, int]:
    """The fields of a SignedData of the shape AMS writes that come before the payload, from its
    content at ``position`` (version, digestAlgorithms, the encapContentInfo's framing): the version,
    the digest OID, and where the eContent OCTET STRING's content starts and stops (the payload
    ends the encapContentInfo). Reads only the framing's bytes (``stop`` bounds the lengths), so
    ``data`` may hold the framing alone: a byte it lacks is an IndexError. DerError for any other shape.
    """
    version = _VERSIONS.get(bytes(data[position : position + 3]))
    set_stop = der.expect(data, position + 3, stop, der.SET)[1]
    digest_oid = _DIGEST_SETS.get(bytes(data[position + 3 : set_stop]))
    if version is None or digest_oid is None:
        raise der.DerError("not the shape AMS writes")
    encap_start, encap_stop = der.expect(data, set_stop, stop, der.SEQUENCE)
    explicit_start, explicit_stop = der.expect(data, _constant(data, encap_start, _DATA_TYPE), encap_stop, 0xA0)
    content_start, content_stop = der.expect(data, explicit_start, explicit_stop, der.OCTET_STRING)
    if content_stop != explicit_stop or explicit_stop != encap_stop:
        raise der.DerError("not the shape AMS writes")
    return version, digest_oid, content_start, content_stop


def read_ams_signed_tail(
    data: memoryview, position: int, stop: int, templates: bool
) -> tuple[tuple[bytes, ...], SignerInfo, SignatureAlgorithm]:
    """The fields of a SignedData of the shape AMS writes after the payload, from ``position`` to
    ``stop`` (its certificate and one SignerInfo), and the SignerInfo's digest algorithm; DerError
    for any other shape. ``templates``: see :func:`read_ams_signed_data`."""
    if not templates:  # decrypted bytes: read in full, nothing kept
        certificates, info, _, _ = _read_trailer(data, position, stop)
    else:
        trailer = _TRAILERS.get(stop - position)
        found = trailer.match(data, position) if trailer is not None else None
        if found is None:
            trailer = _Trailer.read(data, position, stop)
            found = trailer.certificates, trailer.info
            if stop - position <= _TRAILER_KEPT_SIZE:
                if len(_TRAILERS) >= _TRAILERS_KEPT:
                    _TRAILERS.clear()
                _TRAILERS[stop - position] = trailer.template()
        certificates, info = found
    algorithm = SignatureAlgorithm.from_oid(info.digest_oid)
    if algorithm is None:
        raise der.DerError("not a digest AMS defines")
    return certificates, info, algorithm


class _Trailer:
    """The bytes after the payload of a SignedData (its certificate and SignerInfo) that this reader
    read, kept as a template: a trailer with the same bytes everywhere but in the signed attributes'
    content and the signature value (which no reader interprets) reads the same, so it is
    recognised by two comparisons instead of being read again."""

    __slots__ = ("attributes_size", "certificates", "info", "middle", "prefix")

    def __init__(self, prefix: bytes, attributes_size: int, middle: bytes, found: tuple[tuple[bytes, ...], SignerInfo]):
        self.prefix = prefix  # from the certificates field to the signed attributes' content
        self.attributes_size = attributes_size
        self.middle = middle  # from the signed attributes' end to the signature's content
        self.certificates, self.info = found

    @classmethod
    def read(cls, data: memoryview, start: int, stop: int) -> _Trailer:
        """The certificates field and the one SignerInfo from ``start`` to ``stop``, read in full."""
        certificates, info, attributes_start, attributes_stop = _read_trailer(data, start, stop)
        signature_start = stop - len(info.signature)
        prefix, middle = bytes(data[start:attributes_start]), bytes(data[attributes_stop:signature_start])
        return cls(prefix, attributes_stop - attributes_start, middle, (certificates, info))

    def template(self) -> _Trailer:
        """This trailer as it is kept: without the view of the signed attributes, which would hold the
        whole message (and its buffer, which could then not be resized) for as long as it is kept."""
        info = self.info._replace(signed_attributes=None)
        return _Trailer(self.prefix, self.attributes_size, self.middle, (self.certificates, info))

    def match(self, data: memoryview, start: int) -> tuple[tuple[bytes, ...], SignerInfo] | None:
        """The certificates and SignerInfo of the trailer at ``start`` (of this template's length), if
        it fits this template; None otherwise."""
        attributes_start = start + len(self.prefix)
        middle_start = attributes_start + self.attributes_size
        signature_start = middle_start + len(self.middle)
        if (
            bytes(data[start:attributes_start]) != self.prefix
            or bytes(data[middle_start:signature_start]) != self.middle
        ):
            return None
        info = self.info
        return self.certificates, SignerInfo(
            info.version,
            info.issuer,
            info.serial,
            info.key_identifier,
            info.digest_oid,
            data[attributes_start:middle_start],
            info.signature_oid,
            bytes(data[signature_start : signature_start + len(info.signature)]),
        )


def _read_trailer(data: memoryview, start: int, stop: int) -> tuple[tuple[bytes, ...], SignerInfo, int, int]:
    """The certificates field and the one SignerInfo from ``start`` to ``stop``, read in full, and
    where the signed attributes' content starts and ends."""
    position = start
    certificates: tuple[bytes, ...] = ()
    if position < stop and data[position] == der.CONTEXT_0_CONSTRUCTED:
        certificates_start, certificates_stop = der.expect(data, position, stop, der.CONTEXT_0_CONSTRUCTED)
        if der.expect(data, certificates_start, certificates_stop, der.SEQUENCE)[1] != certificates_stop:
            raise der.DerError("not one certificate")
        position, certificates = certificates_stop, (bytes(data[certificates_start:certificates_stop]),)
    infos_start, infos_stop = der.expect(data, position, stop, der.SET)
    info_start, info_stop = der.expect(data, infos_start, infos_stop, der.SEQUENCE)
    if info_stop != infos_stop or infos_stop != stop:
        raise der.DerError("not one SignerInfo")
    info, attributes_start, attributes_stop = _read_signer_info(data, info_start, info_stop)
    return certificates, info, attributes_start, attributes_stop


_TRAILERS_KEPT = 64  # a few senders' worth, each about the size of its certificate
_TRAILER_KEPT_SIZE = 16 * 1024  # larger trailers (a sender's choice) are read, never kept: at most 1 MiB is
_TRAILERS: dict[int, _Trailer] = {}  # by length: the template read last


def _read_signer_info(data: memoryview, position: int, stop: int) -> tuple[SignerInfo, int, int]:
    """One SignerInfo of the shape AMS writes, from its content at ``position`` to ``stop``, and
    where its signed attributes' content starts and ends."""
    # one copy of the SignerInfo (a few hundred bytes): bytes index and slice faster than a view,
    # and its fields are copied out anyway; the signed attributes stay a view of ``data``
    region = bytes(data[position:stop])
    end = stop - position  # the bound as given (a byte beyond ``data`` is an IndexError, as on the view)
    version = _VERSIONS.get(region[:3])
    if version is None or end < 4:
        raise der.DerError("not the shape AMS writes")
    issuer = serial = key_identifier = None
    if region[3] == der.SEQUENCE:
        sid_start, sid_stop = der.expect(region, 3, end, der.SEQUENCE)
        issuer_stop = der.expect(region, sid_start, sid_stop, der.SEQUENCE)[1]
        serial_start, serial_stop = der.expect(region, issuer_stop, sid_stop, der.INTEGER)
        if serial_stop != sid_stop:
            raise der.DerError("not the shape AMS writes")
        issuer = region[sid_start:issuer_stop]
        serial = der.decode_integer(region[serial_start:serial_stop], "serialNumber")
    else:
        sid_start, sid_stop = der.expect(region, 3, end, der.CONTEXT_0_PRIMITIVE)
        key_identifier = region[sid_start:sid_stop]
    digest_stop = der.expect(region, sid_stop, end, der.SEQUENCE)[1]
    digest_oid = _DIGEST_IDS.get(region[sid_stop:digest_stop])
    attributes_start, attributes_stop = der.expect(region, digest_stop, end, der.CONTEXT_0_CONSTRUCTED)
    signature_stop = der.expect(region, attributes_stop, end, der.SEQUENCE)[1]
    signature_oid = _SIGNATURE_IDS.get(region[attributes_stop:signature_stop])
    value_start, value_stop = der.expect(region, signature_stop, end, der.OCTET_STRING)
    if digest_oid is None or signature_oid is None or value_stop != end:
        raise der.DerError("not the shape AMS writes")
    attributes_start += position
    attributes_stop += position
    info = SignerInfo(
        version,
        issuer,
        serial,
        key_identifier,
        digest_oid,
        data[attributes_start:attributes_stop],
        signature_oid,
        region[value_start:value_stop],
    )
    return info, attributes_start, attributes_stop
