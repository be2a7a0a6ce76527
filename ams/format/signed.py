"""CMS SignedData as AMS writes it (AMS-FORMAT section 3), and its verification.

Writing frames the payload with hand-built DER so that it is hashed once and copied once; the
small structures (signed attributes, SignerInfo) are built once per identity where possible.
Reading uses the strict DER reader in ``der``: every field AMS defines is checked, nothing is
copied (the payload is a view into the message), and the signed attributes are verified exactly
as they were sent.
"""

from __future__ import annotations

import datetime
import functools
import warnings
from collections.abc import Callable

import attrs
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.utils import CryptographyDeprecationWarning

from ams.algorithms import RSA_WITH_DIGEST, SignatureAlgorithm
from ams.dn import DistinguishedName
from ams.errors import (
    BadSignatureError,
    MalformedMessageError,
    SignerCertificateError,
    UnsupportedAlgorithmError,
)
from ams.format import der
from ams.format.limits import DEFAULT_LIMITS, Limits
from ams.format.oids import (
    ID_CONTENT_TYPE,
    ID_DATA,
    ID_MESSAGE_DIGEST,
    ID_SIGNED_DATA,
    ID_SIGNING_TIME,
    RSA_ENCRYPTION,
)
from ams.keys.keystore import Identity

Chunk = bytes | memoryview
_DER = serialization.Encoding.DER


@functools.lru_cache(maxsize=512)
def subject_dn(certificate: x509.Certificate) -> DistinguishedName:
    """A certificate's subject as a DN (cached: certificates are immutable)."""
    return DistinguishedName.from_x509(certificate.subject)


@functools.lru_cache(maxsize=512)
def issuer_bytes(certificate: x509.Certificate) -> bytes:
    """The DER of a certificate's issuer Name (cached: certificates are immutable)."""
    return certificate.issuer.public_bytes()


@functools.lru_cache(maxsize=512)
def issuer_and_serial(certificate: x509.Certificate) -> bytes:
    return der.tlv(der.SEQUENCE, issuer_bytes(certificate) + der.integer(certificate.serial_number))


def _signing_time(now: datetime.datetime) -> bytes:
    utc = now.astimezone(datetime.UTC)
    if 1950 <= utc.year < 2050:
        return der.tlv(0x17, utc.strftime("%y%m%d%H%M%SZ").encode())
    return der.tlv(0x18, utc.strftime("%Y%m%d%H%M%SZ").encode())


def _attribute(oid: str, value: bytes) -> bytes:
    return der.tlv(der.SEQUENCE, der.oid(oid) + der.tlv(der.SET, value))


class SignedDataWriter:
    """Everything about one identity's signature that does not change per message."""

    def __init__(self, identity: Identity, algorithm: SignatureAlgorithm) -> None:
        self.identity = identity
        self.algorithm = algorithm
        self._hash = algorithm.hash()
        digest_algorithm = der.algorithm_identifier(algorithm.oid)
        certificate = identity.certificate.public_bytes(_DER)
        self._version_and_digests = der.integer(1) + der.tlv(der.SET, digest_algorithm)
        self._certificates = der.tlv(der.CONTEXT_0_CONSTRUCTED, certificate)
        self._signer_prefix = der.integer(1) + issuer_and_serial(identity.certificate) + digest_algorithm
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
        signature = self.identity.private_key.sign(der.tlv(der.SET, attributes_content), padding.PKCS1v15(), self._hash)
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
    """A parsed SignedData: what the receiver checks, in the order it checks it."""

    version: int
    digest_algorithm: SignatureAlgorithm
    digest_oids: tuple[str, ...]
    certificates: tuple[bytes, ...]
    content: memoryview
    signer_infos: tuple[SignerInfo, ...]

    def signer_certificate(self, load: Callable[[bytes], x509.Certificate]) -> x509.Certificate:
        if len(self.certificates) != 1:
            raise SignerCertificateError(
                f"expected exactly one certificate (the signer's) in the SignedData, found "
                f"{len(self.certificates)}: IBM AMS writes the signer's certificate only"
            )
        return load(self.certificates[0])

    def verify(self, certificate: x509.Certificate) -> None:
        """Check that ``certificate`` made the one SignerInfo's signature over this content."""
        if len(self.signer_infos) != 1:
            raise SignerCertificateError(f"expected exactly one SignerInfo, found {len(self.signer_infos)}")
        info = self.signer_infos[0]
        _check_sid(info, certificate)
        # RFC 5652 5.1/5.3: v1 with issuerAndSerialNumber, v3 with subjectKeyIdentifier
        expected_version = 1 if info.issuer is not None else 3
        if info.version != expected_version or self.version != expected_version:
            raise MalformedMessageError(
                f"SignedData/SignerInfo versions {self.version}/{info.version}: expected "
                f"{expected_version}/{expected_version} for this signer identifier"
            )
        algorithm = self.digest_algorithm
        if self.digest_oids != (algorithm.oid,):
            raise MalformedMessageError(
                f"SignedData digestAlgorithms {list(self.digest_oids)}: expected exactly the signer's "
                f"{algorithm} ({algorithm.oid})"
            )
        if info.signature_oid != RSA_ENCRYPTION and RSA_WITH_DIGEST.get(info.signature_oid) is not algorithm:
            raise UnsupportedAlgorithmError(
                f"signature algorithm {info.signature_oid}: expected rsaEncryption ({RSA_ENCRYPTION}) with "
                f"digest {algorithm}, as AMS writes"
            )
        public_key = certificate.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise SignerCertificateError("the signer's certificate does not hold an RSA key")
        try:
            if info.signed_attributes is None:
                public_key.verify(info.signature, bytes(self.content), padding.PKCS1v15(), algorithm.hash())
                return
            content_type, digest_value = _signed_attributes(info.signed_attributes)
            if content_type != ID_DATA:
                raise BadSignatureError(f"signed contentType {content_type} differs from the content's {ID_DATA}")
            digest = hashes.Hash(algorithm.hash())
            digest.update(self.content)
            if digest.finalize() != digest_value:
                raise BadSignatureError(
                    f"message digest mismatch: the content was changed after {subject_dn(certificate)} signed it"
                )
            signed_bytes = der.header(der.SET, len(info.signed_attributes)) + info.signed_attributes
            public_key.verify(info.signature, signed_bytes, padding.PKCS1v15(), algorithm.hash())
        except InvalidSignature:
            raise BadSignatureError(
                f"the signature does not verify with the certificate of {subject_dn(certificate)} (serial "
                f"{certificate.serial_number:#x}): the message or its signed attributes were changed"
            ) from None


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


def _signed_attributes(content: memoryview) -> tuple[str, bytes]:
    """contentType and messageDigest from the signed attributes (each exactly once, one value)."""
    found: dict[str, der.Element] = {}
    limits = DEFAULT_LIMITS
    try:
        for attribute in der.Reader(content, "signedAttrs").all(
            "attribute", der.SEQUENCE, limit=limits.signed_attributes
        ):
            fields = attribute.children("attribute")
            oid = fields.read("attrType", der.OID).oid("attrType")
            values = fields.read("attrValues", der.SET).children("attrValues").all(
                "value", limit=limits.attribute_values
            )
            fields.end()
            if oid in (ID_CONTENT_TYPE, ID_MESSAGE_DIGEST):
                if oid in found or len(values) != 1:
                    raise BadSignatureError(f"signed attribute {oid} must appear once with one value")
                found[oid] = values[0]
        if ID_CONTENT_TYPE not in found or ID_MESSAGE_DIGEST not in found:
            raise BadSignatureError("signed attributes lack contentType or messageDigest, which CMS requires")
        return found[ID_CONTENT_TYPE].oid("contentType"), bytes(found[ID_MESSAGE_DIGEST].octets("messageDigest"))
    except der.DerError as error:
        raise BadSignatureError(f"cannot read the signed attributes: {error}") from None


def _check_sid(info: SignerInfo, certificate: x509.Certificate) -> None:
    if info.issuer is not None:
        if info.issuer == issuer_bytes(certificate) and info.serial == certificate.serial_number:
            return
        raise SignerCertificateError(
            f"the SignerInfo names serial {info.serial:#x} but the certificate carried is "
            f"{DistinguishedName.from_x509(certificate.subject)} serial {certificate.serial_number:#x}"
        )
    try:
        ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        ski = None
    if ski is None or info.key_identifier != ski:
        raise SignerCertificateError("the SignerInfo's subjectKeyIdentifier does not match the certificate carried")


def _signer_info(element: der.Element) -> SignerInfo:
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
    encoded: bytes | memoryview, *, wrapped: bool, limits: Limits = DEFAULT_LIMITS
) -> SignedContent:
    """Parse a ContentInfo(signedData) (``wrapped``) or a bare SignedData SEQUENCE, strictly.

    Syntax only: nothing is verified here (see :meth:`SignedContent.verify`). The payload is not
    copied: ``content`` is a view into ``encoded``. Element counts are bounded by ``limits``.
    """
    try:
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
        fields = signed.children("SignedData")
        version = fields.read("version", der.INTEGER).integer("SignedData version")
        digest_oids = []
        for identifier in (
            fields.read("digestAlgorithms", der.SET)
            .children("digestAlgorithms")
            .all("digest", limit=limits.digest_algorithms)
        ):
            oid, parameters = der.algorithm(identifier, "digestAlgorithms")
            der.null_or_absent(parameters, "digestAlgorithms")
            digest_oids.append(oid)
        encap = fields.read("encapContentInfo", der.SEQUENCE).children("encapContentInfo")
        econtent_type = encap.read("eContentType", der.OID).oid("eContentType")
        explicit = encap.optional(der.CONTEXT_0_CONSTRUCTED, "eContent")
        encap.end()
        if explicit is None:
            raise MalformedMessageError("the SignedData is detached (no eContent); AMS attaches the payload")
        inner = explicit.children("eContent")
        content = inner.read("eContent", der.OCTET_STRING).content
        inner.end()
        certificates = fields.optional(der.CONTEXT_0_CONSTRUCTED, "certificates")
        certificate_ders = tuple(
            bytes(c.encoded)
            for c in (
                certificates.children("certificates").all("certificate", der.SEQUENCE, limit=limits.certificates)
                if certificates
                else []
            )
        )
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
    return SignedContent(version, algorithm, tuple(digest_oids), certificate_ders, content, infos)


def load_certificate(encoded: bytes) -> x509.Certificate:
    """A certificate carried in a message, parsed in full now so that damage fails here, typed.

    Also refused: signature BIT STRINGs with unused bits (cryptography would ignore them, so
    they could change unnoticed) and serial numbers that are not positive (RFC 5280).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)  # refused by the checks instead
            certificate = x509.load_der_x509_certificate(encoded)
            certificate.public_key()
            _ = certificate.extensions, certificate.signature_hash_algorithm
            _ = certificate.issuer, certificate.subject, certificate.not_valid_after_utc
            serial = certificate.serial_number
        fields = der.Reader(encoded, "Certificate").read("Certificate", der.SEQUENCE).children("Certificate")
        fields.read("tbsCertificate", der.SEQUENCE)
        fields.read("signatureAlgorithm", der.SEQUENCE)
        unused_bits = bytes(fields.read("signatureValue", 0x03).content[:1])
    except Exception as error:  # cryptography raises ValueError, UnsupportedAlgorithm and others
        raise MalformedMessageError(f"the signer certificate cannot be parsed ({type(error).__name__})") from None
    if unused_bits != b"\x00":
        raise MalformedMessageError("the signer certificate's signature BIT STRING has unused bits")
    if serial <= 0:
        raise MalformedMessageError("the signer certificate's serial number is not positive (RFC 5280)")
    if serial.bit_length() > 8 * der.MAX_INTEGER_OCTETS:
        raise MalformedMessageError(f"the signer certificate's serial number is over {der.MAX_INTEGER_OCTETS} octets")
    return certificate
