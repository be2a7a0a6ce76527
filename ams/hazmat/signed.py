"""CMS SignedData as AMS writes it (format.md §3): a writer and a strict parser. Syntax only.

Writing frames the payload with hand-built DER so that it is hashed once and copied once; the
small structures (signed attributes, SignerInfo) are built once per signer where possible.
Reading uses the strict DER reader in ``der``: every field is read strictly and nothing is
copied (the payload is a view into the message). Nothing here verifies a signature or trusts a
certificate: ``ams.verify`` does.
"""

from __future__ import annotations

import datetime

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ams.algorithms import SignatureAlgorithm
from ams.errors import (
    MalformedMessageError,
    UnsupportedAlgorithmError,
)
from ams.hazmat import der
from ams.hazmat.certificates import issuer_and_serial
from ams.hazmat.oids import (
    ID_CONTENT_TYPE,
    ID_DATA,
    ID_MESSAGE_DIGEST,
    ID_SIGNED_DATA,
    ID_SIGNING_TIME,
    RSA_ENCRYPTION,
)
from ams.limits import DEFAULT_LIMITS, Limits

Chunk = bytes | memoryview
_DER = serialization.Encoding.DER


def _signing_time(now: datetime.datetime) -> bytes:
    utc = now.astimezone(datetime.UTC)
    if 1950 <= utc.year < 2050:
        return der.tlv(0x17, utc.strftime("%y%m%d%H%M%SZ").encode())
    return der.tlv(0x18, utc.strftime("%Y%m%d%H%M%SZ").encode())


def _attribute(oid: str, value: bytes) -> bytes:
    return der.tlv(der.SEQUENCE, der.oid(oid) + der.tlv(der.SET, value))


class SignedDataWriter:
    """Everything about one signer's signature that does not change per message."""

    def __init__(
        self, certificate: x509.Certificate, private_key: rsa.RSAPrivateKey, algorithm: SignatureAlgorithm
    ) -> None:
        self.private_key = private_key
        self.algorithm = algorithm
        self._hash = algorithm.hash()
        digest_algorithm = der.algorithm_identifier(algorithm.oid)
        self._version_and_digests = der.integer(1) + der.tlv(der.SET, digest_algorithm)
        self._certificates = der.tlv(der.CONTEXT_0_CONSTRUCTED, certificate.public_bytes(_DER))
        self._signer_prefix = der.integer(1) + issuer_and_serial(certificate) + digest_algorithm
        self._signature_algorithm = der.algorithm_identifier(RSA_ENCRYPTION)
        self._content_type_attr = _attribute(ID_CONTENT_TYPE, der.oid(ID_DATA))
        self._data_oid = der.oid(ID_DATA)

    def content_parts(self, payload: Chunk, now: datetime.datetime | None = None) -> list[Chunk]:
        """The content octets of the SignedData SEQUENCE, as chunks (the payload not copied)."""
        digest = hashes.Hash(self._hash)
        digest.update(payload)
        attributes = sorted(
            [
                self._content_type_attr,
                _attribute(ID_SIGNING_TIME, _signing_time(now or datetime.datetime.now(datetime.UTC))),
                _attribute(ID_MESSAGE_DIGEST, der.tlv(der.OCTET_STRING, digest.finalize())),
            ]
        )
        attributes_content = b"".join(attributes)
        signature = self.private_key.sign(der.tlv(der.SET, attributes_content), padding.PKCS1v15(), self._hash)
        signer_info = der.tlv(
            der.SEQUENCE,
            self._signer_prefix
            + der.tlv(der.CONTEXT_0_CONSTRUCTED, attributes_content)
            + self._signature_algorithm
            + der.tlv(der.OCTET_STRING, signature),
        )
        octet_header = der.header(der.OCTET_STRING, len(payload))
        explicit_header = der.header(der.CONTEXT_0_CONSTRUCTED, len(octet_header) + len(payload))
        encap_length = len(self._data_oid) + len(explicit_header) + len(octet_header) + len(payload)
        tail = self._certificates + der.tlv(der.SET, signer_info)
        return [
            self._version_and_digests
            + der.header(der.SEQUENCE, encap_length)
            + self._data_oid
            + explicit_header
            + octet_header,
            payload,
            tail,
        ]

    def content_info(self, payload: Chunk, now: datetime.datetime | None = None) -> list[Chunk]:
        """A complete DER ContentInfo of type signedData (the Integrity blob), as chunks."""
        parts = self.content_parts(payload, now)
        inner = sum(len(p) for p in parts)
        signed_header = der.header(der.SEQUENCE, inner)
        oid = der.oid(ID_SIGNED_DATA)
        explicit = der.header(der.CONTEXT_0_CONSTRUCTED, len(signed_header) + inner)
        outer = der.header(der.SEQUENCE, len(oid) + len(explicit) + len(signed_header) + inner)
        return [outer + oid + explicit + signed_header + parts[0], *parts[1:]]


@attrs.frozen
class SignerInfo:
    """The one SignerInfo AMS writes, read strictly."""

    version: int
    issuer: bytes | None  # DER of the issuer Name (issuerAndSerialNumber), or None
    serial: int | None
    key_identifier: bytes | None  # subjectKeyIdentifier, or None
    digest_oid: str
    signed_attributes: memoryview | None  # the content octets of [0] IMPLICIT signedAttrs
    signature_oid: str
    signature: bytes


@attrs.frozen
class SignedContent:
    """A parsed SignedData, as it arrived (``ams.verify`` checks it)."""

    version: int
    digest_algorithm: SignatureAlgorithm
    digest_oids: tuple[str, ...]
    certificates: tuple[bytes, ...]
    content: memoryview
    signer_infos: tuple[SignerInfo, ...]


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


def parse_signed_data(encoded: bytes | memoryview, *, wrapped: bool, limits: Limits = DEFAULT_LIMITS) -> SignedContent:
    """Parse a ContentInfo(signedData) (``wrapped``) or a bare SignedData SEQUENCE, strictly.

    Syntax only: nothing is verified here (:meth:`ams.verify.Verifier.verify_signature` does). The
    payload is not copied: ``content`` is a view into ``encoded``. Element counts are bounded by
    ``limits``.
    """
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
    return SignedContent(version, algorithm, tuple(digest_oids), certificates, content, infos)


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


def _encapsulated_content(fields: der.Reader) -> tuple[str, memoryview]:
    """The encapContentInfo's eContentType and its attached eContent (a view); detached is refused."""
    encap = fields.read("encapContentInfo", der.SEQUENCE).children("encapContentInfo")
    econtent_type = encap.read("eContentType", der.OID).oid("eContentType")
    explicit = encap.optional(der.CONTEXT_0_CONSTRUCTED, "eContent")
    encap.end()
    if explicit is None:
        raise MalformedMessageError("the SignedData is detached (no eContent); AMS attaches the payload")
    inner = explicit.children("eContent")
    content = inner.read("eContent", der.OCTET_STRING).content
    inner.end()
    return econtent_type, content


def _certificates(fields: der.Reader, limits: Limits) -> tuple[bytes, ...]:
    """The DER of each certificate in the optional [0] certificates field (none when absent)."""
    certificates = fields.optional(der.CONTEXT_0_CONSTRUCTED, "certificates")
    if certificates is None:
        return ()
    found = certificates.children("certificates").all("certificate", der.SEQUENCE, limit=limits.certificates)
    return tuple(bytes(c.encoded) for c in found)
