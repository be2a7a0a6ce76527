"""CMS SignedData as AMS writes it (AMS-FORMAT section 3), and its verification.

Writing frames the payload with hand-built DER so that it is hashed once and copied once; the
small structures (signed attributes, SignerInfo) are built once per identity where possible.
Reading uses asn1crypto, which keeps the original bytes so that the signed attributes are
verified exactly as they were sent.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ams.algorithms import RSA_WITH_DIGEST, SignatureAlgorithm
from ams.dn import DistinguishedName
from ams.errors import (
    BadSignatureError,
    MalformedMessageError,
    SignerCertificateError,
    UnsupportedAlgorithmError,
)
from ams.format import der
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


def issuer_and_serial(certificate: x509.Certificate) -> bytes:
    return der.tlv(der.SEQUENCE, certificate.issuer.public_bytes() + der.integer(certificate.serial_number))


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

    def content_info(self, payload: Chunk, now: datetime.datetime | None = None) -> bytes:
        """A complete DER ContentInfo of type signedData (the Integrity blob)."""
        parts = self.content_parts(payload, now)
        inner = sum(len(p) for p in parts)
        signed_header = der.header(der.SEQUENCE, inner)
        oid = der.oid(ID_SIGNED_DATA)
        explicit = der.header(der.CONTEXT_0_CONSTRUCTED, len(signed_header) + inner)
        outer = der.header(der.SEQUENCE, len(oid) + len(explicit) + len(signed_header) + inner)
        return b"".join([outer, oid, explicit, signed_header, *parts])


@attrs.frozen
class SignedContent:
    """A parsed SignedData: what the receiver checks, in the order it checks it."""

    digest_algorithm: SignatureAlgorithm
    certificates: tuple[bytes, ...]
    content: bytes
    signed: asn1_cms.SignedData = attrs.field(repr=False)

    def signer_certificate(self, load: Callable[[bytes], x509.Certificate]) -> x509.Certificate:
        if len(self.certificates) != 1:
            raise SignerCertificateError(
                f"expected exactly one certificate (the signer's) in the SignedData, found "
                f"{len(self.certificates)}: IBM AMS writes the signer's certificate only"
            )
        return load(self.certificates[0])

    def verify(self, certificate: x509.Certificate) -> None:
        """Check that ``certificate`` made the one SignerInfo's signature over this content."""
        try:
            self._verify(certificate)
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise MalformedMessageError(f"cannot parse the SignerInfo: {error}") from None

    def _verify(self, certificate: x509.Certificate) -> None:
        infos = self.signed["signer_infos"]
        if len(infos) != 1:
            raise SignerCertificateError(f"expected exactly one SignerInfo, found {len(infos)}")
        info = infos[0]
        _check_sid(info["sid"], certificate)
        expected_version = 1 if info["sid"].name == "issuer_and_serial_number" else 3
        check_version(info["version"], expected_version, "SignerInfo")
        # RFC 5652 5.1: v3 when the SignerInfo is v3 (subjectKeyIdentifier), else v1 for id-data
        check_version(self.signed["version"], expected_version, "SignedData")
        algorithm = self.digest_algorithm
        listed = [d["algorithm"].dotted for d in self.signed["digest_algorithms"]]
        if listed != [algorithm.oid]:
            raise MalformedMessageError(
                f"SignedData digestAlgorithms {listed}: expected exactly the signer's {algorithm} ({algorithm.oid})"
            )
        for identifier in (*self.signed["digest_algorithms"], info["digest_algorithm"], info["signature_algorithm"]):
            check_null_parameters(identifier)
        signature_oid = info["signature_algorithm"]["algorithm"].dotted
        if signature_oid != RSA_ENCRYPTION and RSA_WITH_DIGEST.get(signature_oid) is not algorithm:
            raise UnsupportedAlgorithmError(
                f"signature algorithm {signature_oid}: expected rsaEncryption ({RSA_ENCRYPTION}) with "
                f"digest {algorithm}, as AMS writes"
            )
        info_digest = SignatureAlgorithm.from_oid(info["digest_algorithm"]["algorithm"].dotted)
        if info_digest is not algorithm:
            raise UnsupportedAlgorithmError(
                f"SignerInfo digest algorithm {info['digest_algorithm']['algorithm'].dotted} differs "
                f"from the SignedData's {algorithm}"
            )
        public_key = certificate.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise SignerCertificateError("the signer's certificate does not hold an RSA key")
        signature = info["signature"].native
        attributes = info["signed_attrs"]
        content_type = self.signed["encap_content_info"]["content_type"].dotted
        try:
            if attributes.native is None or len(attributes) == 0:
                public_key.verify(signature, self.content, padding.PKCS1v15(), algorithm.hash())
                return
            found_type = _attribute_value(attributes, ID_CONTENT_TYPE)
            found_digest = _attribute_value(attributes, ID_MESSAGE_DIGEST)
            if found_type is None or found_digest is None:
                raise BadSignatureError("signed attributes lack contentType or messageDigest, which CMS requires")
            if found_type.dotted != content_type:
                raise BadSignatureError(
                    f"signed contentType {found_type.dotted} differs from the content's {content_type}"
                )
            digest = hashes.Hash(algorithm.hash())
            digest.update(self.content)
            if digest.finalize() != found_digest.native:
                raise BadSignatureError(
                    f"message digest mismatch: the content was changed after "
                    f"{DistinguishedName.from_x509(certificate.subject)} signed it"
                )
            signed_bytes = der.tlv(der.SET, attributes.contents)
            public_key.verify(signature, signed_bytes, padding.PKCS1v15(), algorithm.hash())
        except InvalidSignature:
            raise BadSignatureError(
                f"the signature does not verify with the certificate of "
                f"{DistinguishedName.from_x509(certificate.subject)} (serial "
                f"{certificate.serial_number:#x}): the message or its signed attributes were changed"
            ) from None


def check_version(value: Any, expected: int, what: str) -> None:
    """A CMS version field: a universal INTEGER with the value RFC 5652 prescribes here."""
    if value.class_ != 0 or value.tag != 2 or value.native != f"v{expected}":
        raise MalformedMessageError(f"{what} version {value.native!r}: expected v{expected}")


def check_null_parameters(identifier: Any) -> None:
    """Digest and RSA algorithm identifiers carry NULL or no parameters; anything else is damage."""
    encoded = identifier["parameters"].dump()
    if encoded not in (b"", der.NULL):
        raise MalformedMessageError(
            f"algorithm {identifier['algorithm'].dotted} has parameters {encoded.hex()}; expected NULL or none"
        )


def _attribute_value(attributes: asn1_cms.CMSAttributes, oid: str) -> Any:
    for attribute in attributes:
        if attribute["type"].dotted == oid:
            values = attribute["values"]
            if len(values) != 1:
                raise BadSignatureError(f"signed attribute {oid} must have exactly one value, found {len(values)}")
            return values[0]
    return None


def _check_sid(sid: asn1_cms.SignerIdentifier, certificate: x509.Certificate) -> None:
    if sid.name == "issuer_and_serial_number":
        issuer = sid.chosen["issuer"].dump()
        serial = sid.chosen["serial_number"].native
        if issuer == certificate.issuer.public_bytes() and serial == certificate.serial_number:
            return
        raise SignerCertificateError(
            f"the SignerInfo names serial {serial:#x} but the certificate carried is "
            f"{DistinguishedName.from_x509(certificate.subject)} serial {certificate.serial_number:#x}"
        )
    try:
        ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        ski = None
    if ski is not None and sid.chosen.native == ski:
        return
    raise SignerCertificateError("the SignerInfo's subjectKeyIdentifier does not match the certificate carried")


def parse_signed_data(encoded: bytes, *, wrapped: bool) -> SignedContent:
    """Parse a ContentInfo(signedData) (``wrapped``) or a bare SignedData SEQUENCE."""
    try:
        der.check_strict(encoded)
        if wrapped:
            info = asn1_cms.ContentInfo.load(encoded, strict=True)
            if info["content_type"].dotted != ID_SIGNED_DATA:
                raise MalformedMessageError(
                    f"expected a ContentInfo of type signedData ({ID_SIGNED_DATA}), found {info['content_type'].dotted}"
                )
            signed = info["content"]
        else:
            signed = asn1_cms.SignedData.load(encoded, strict=True)
        digests = signed["digest_algorithms"]
        encap = signed["encap_content_info"]
        econtent_type = encap["content_type"].dotted
        content = encap["content"]
        certificates = signed["certificates"]
        certificate_ders = tuple(c.chosen.dump() for c in certificates) if certificates.native is not None else ()
        infos = signed["signer_infos"]
        _ = infos.native, digests.native  # parse the small structures fully now: damage fails here
        info_digest = infos[0]["digest_algorithm"]["algorithm"].dotted if len(infos) else None
        body = bytes(content) if content.native is not None else b""
    except MalformedMessageError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
        raise MalformedMessageError(f"cannot parse the SignedData: {error}") from None
    if econtent_type != ID_DATA:
        raise MalformedMessageError(f"expected eContentType id-data ({ID_DATA}), found {econtent_type}")
    if content.native is None:
        raise MalformedMessageError("the SignedData is detached (no eContent); AMS attaches the payload")
    oid = info_digest or (digests[0]["algorithm"].dotted if len(digests) else "none")
    algorithm = SignatureAlgorithm.from_oid(oid)
    if algorithm is None:
        raise UnsupportedAlgorithmError(
            f"digest algorithm {oid} is not one AMS defines (MD5, SHA1, SHA256, SHA384, SHA512)"
        )
    return SignedContent(algorithm, certificate_ders, body, signed)


def signed_data_from_content_octets(plaintext: Sequence[Chunk] | bytes) -> bytes:
    """Put the SEQUENCE tag and length back in front of SignedData content octets."""
    data = plaintext if isinstance(plaintext, bytes) else b"".join(plaintext)
    return der.header(der.SEQUENCE, len(data)) + data
