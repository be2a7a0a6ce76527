"""Checking a SignedData: the certificate it carries, and the one signature over its content.

The rules of format.md §3 as a receiver applies them: exactly one certificate and one
SignerInfo, versions that fit the signer identifier, digestAlgorithms holding exactly the
signer's digest, an RSA signature over the signed attributes as they were sent (or over the
content when there are none), and a messageDigest that matches the content.

A certificate a message carries is parsed once into a :class:`CarriedCertificate` with the
facts these checks read (the verifier caches it by its exact bytes). The signed attributes AMS
writes (contentType, signingTime, messageDigest, in DER order) are recognised by their fixed
bytes around the time and the digest; any other set is read by the general reader.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TypeVar

import attrs
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.utils import CryptographyDeprecationWarning

from ams.algorithms import RSA_WITH_DIGEST
from ams.errors import BadSignatureError, MalformedMessageError, SignerCertificateError, UnsupportedAlgorithmError
from ams.hazmat import der
from ams.hazmat.certificates import issuer_bytes, subject_dn, subject_key_identifier
from ams.hazmat.oids import ID_CONTENT_TYPE, ID_DATA, ID_MESSAGE_DIGEST, ID_SIGNING_TIME, RSA_ENCRYPTION
from ams.hazmat.signed import SignedContent, SignerInfo
from ams.limits import DEFAULT_LIMITS

T = TypeVar("T")
_PKCS1 = padding.PKCS1v15()  # stateless: one for every signature


@attrs.frozen
class CarriedCertificate:
    """A certificate as a message carries it, parsed in full, with what the signature checks read."""

    certificate: x509.Certificate
    encoded: bytes
    issuer: bytes  # the DER of the issuer Name
    serial: int
    key_identifier: bytes | None
    public_key: rsa.RSAPublicKey | None  # None when the key is not RSA (refused when it is used)

    @classmethod
    def of(cls, certificate: x509.Certificate, encoded: bytes | None = None) -> CarriedCertificate:
        """The facts of an already parsed certificate."""
        key = certificate.public_key()
        return cls(
            certificate,
            encoded if encoded is not None else certificate.public_bytes(serialization.Encoding.DER),
            issuer_bytes(certificate),
            certificate.serial_number,
            subject_key_identifier(certificate),
            key if isinstance(key, rsa.RSAPublicKey) else None,
        )


def carried_certificate(encoded: bytes) -> CarriedCertificate:
    """:func:`load_certificate`, with the facts the signature checks read."""
    return CarriedCertificate.of(load_certificate(encoded), encoded)


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


def signer_certificate(signed: SignedContent, load: Callable[[bytes], T]) -> T:
    """The one certificate a SignedData must carry (IBM's reader refuses none or several), loaded."""
    if len(signed.certificates) != 1:
        raise SignerCertificateError(
            f"expected exactly one certificate (the signer's) in the SignedData, found {len(signed.certificates)}: "
            "IBM AMS writes the signer's certificate only"
        )
    return load(signed.certificates[0])


def verify_signed_data(signed: SignedContent, certificate: x509.Certificate | CarriedCertificate) -> None:
    """Check that ``certificate`` made the one SignerInfo's signature over this content."""
    carried = certificate if isinstance(certificate, CarriedCertificate) else CarriedCertificate.of(certificate)
    info = _only_signer_info(signed, carried)
    algorithm = signed.digest_algorithm
    public_key = carried.public_key
    if public_key is None:
        raise SignerCertificateError("the signer's certificate does not hold an RSA key")
    hash_algorithm = algorithm.hash()
    try:
        if info.signed_attributes is None:
            public_key.verify(info.signature, bytes(signed.content), _PKCS1, hash_algorithm)
            return
        content_type, digest_value = _signed_attributes(info.signed_attributes)
        if content_type != ID_DATA:
            raise BadSignatureError(f"signed contentType {content_type} differs from the content's {ID_DATA}")
        digest = hashes.Hash(hash_algorithm)
        digest.update(signed.content)
        if digest.finalize() != digest_value:
            raise BadSignatureError(
                f"message digest mismatch: the content was changed after {subject_dn(carried.certificate)} signed it"
            )
        signed_bytes = b"\x31" + der.length(len(info.signed_attributes)) + info.signed_attributes  # SET OF
        public_key.verify(info.signature, signed_bytes, _PKCS1, hash_algorithm)
    except InvalidSignature:
        raise BadSignatureError(
            f"the signature does not verify with the certificate of {subject_dn(carried.certificate)} (serial "
            f"{carried.serial:#x}): the message or its signed attributes were changed"
        ) from None


def _only_signer_info(signed: SignedContent, certificate: CarriedCertificate) -> SignerInfo:
    """The one SignerInfo, naming ``certificate``, with the versions and algorithms AMS writes."""
    if len(signed.signer_infos) != 1:
        raise SignerCertificateError(f"expected exactly one SignerInfo, found {len(signed.signer_infos)}")
    info = signed.signer_infos[0]
    if info.issuer is None or info.issuer != certificate.issuer or info.serial != certificate.serial:
        _check_sid(info, certificate)  # the usual match inline (a call fewer); any other case judged there
    # RFC 5652 5.1/5.3: v1 with issuerAndSerialNumber, v3 with subjectKeyIdentifier
    expected_version = 1 if info.issuer is not None else 3
    if info.version != expected_version or signed.version != expected_version:
        raise MalformedMessageError(
            f"SignedData/SignerInfo versions {signed.version}/{info.version}: expected "
            f"{expected_version}/{expected_version} for this signer identifier"
        )
    algorithm = signed.digest_algorithm
    if signed.digest_oids != (algorithm.oid,):
        raise MalformedMessageError(
            f"SignedData digestAlgorithms {list(signed.digest_oids)}: expected exactly the signer's "
            f"{algorithm} ({algorithm.oid})"
        )
    if info.signature_oid != RSA_ENCRYPTION and RSA_WITH_DIGEST.get(info.signature_oid) is not algorithm:
        raise UnsupportedAlgorithmError(
            f"signature algorithm {info.signature_oid}: expected rsaEncryption ({RSA_ENCRYPTION}) with "
            f"digest {algorithm}, as AMS writes"
        )
    return info


def _attribute(oid: str, value_tag: int, value_size: int) -> bytes:
    """The bytes of a one-value attribute up to its value's content octets."""
    value_header = der.header(value_tag, value_size)
    values = der.header(der.SET, len(value_header) + value_size) + value_header
    return der.header(der.SEQUENCE, len(der.oid(oid)) + len(values) + value_size) + der.oid(oid) + values


def _attribute_layouts() -> dict[int, list[tuple[bytes, int, bytes]]]:
    """AMS's signed attributes (contentType id-data, signingTime, messageDigest, in DER order) by
    total length: the bytes before the time's content, its size, the bytes between it and the digest."""
    content_type = der.tlv(der.SEQUENCE, der.oid(ID_CONTENT_TYPE) + der.tlv(der.SET, der.oid(ID_DATA)))
    layouts: dict[int, list[tuple[bytes, int, bytes]]] = {}
    for time_tag, time_size in ((0x17, 13), (0x18, 15)):
        for digest_size in (16, 20, 32, 48, 64):
            before = content_type + _attribute(ID_SIGNING_TIME, time_tag, time_size)
            between = _attribute(ID_MESSAGE_DIGEST, der.OCTET_STRING, digest_size)
            total = len(before) + time_size + len(between) + digest_size
            layouts.setdefault(total, []).append((before, time_size, between))
    return layouts


_ATTRIBUTE_LAYOUTS = _attribute_layouts()


def _signed_attributes(content: memoryview) -> tuple[str, bytes]:
    """contentType and messageDigest from the signed attributes (each exactly once, one value).

    AMS's three attributes are recognised by their fixed bytes: everything but the time's and the
    digest's content octets, which the general reader does not interpret either.
    """
    for before, time_size, between in _ATTRIBUTE_LAYOUTS.get(len(content), ()):
        middle = len(before) + time_size
        digest_start = middle + len(between)
        if bytes(content[: len(before)]) == before and bytes(content[middle:digest_start]) == between:
            return ID_DATA, bytes(content[digest_start:])
    return _signed_attributes_strictly(content)


def _signed_attributes_strictly(content: memoryview) -> tuple[str, bytes]:
    """The general reader of :func:`_signed_attributes`, for any set of signed attributes."""
    found: dict[str, der.Element] = {}
    limits = DEFAULT_LIMITS
    try:
        for attribute in der.Reader(content, "signedAttrs").all(
            "attribute", der.SEQUENCE, limit=limits.signed_attributes
        ):
            fields = attribute.children("attribute")
            oid = fields.read("attrType", der.OID).oid("attrType")
            values = (
                fields.read("attrValues", der.SET).children("attrValues").all("value", limit=limits.attribute_values)
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


def _check_sid(info: SignerInfo, certificate: CarriedCertificate) -> None:
    if info.issuer is not None:
        if info.issuer == certificate.issuer and info.serial == certificate.serial:
            return
        raise SignerCertificateError(
            f"the SignerInfo names serial {info.serial:#x} but the certificate carried is "
            f"{subject_dn(certificate.certificate)} serial {certificate.serial:#x}"
        )
    ski = certificate.key_identifier
    if ski is None or info.key_identifier != ski:
        raise SignerCertificateError("the SignerInfo's subjectKeyIdentifier does not match the certificate carried")
