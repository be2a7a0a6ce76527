"""CMS EnvelopedData as AMS writes it (format.md §4-5). Syntax only.

One KeyTransRecipientInfo per recipient (issuer and serial, RSAES-PKCS1-v1_5), a fresh
content key and IV, and the content encrypted with CBC and PKCS#7 padding
(:class:`~ams.hazmat.cbc.PendingCiphertext`, computed after the DER around it is laid out).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ams.algorithms import EncryptionAlgorithm
from ams.dn import DistinguishedName
from ams.errors import UnsupportedAlgorithmError
from ams.hazmat import der
from ams.hazmat.cbc import PendingCiphertext
from ams.hazmat.certificates import issuer_and_serial
from ams.hazmat.der import Chunk
from ams.hazmat.oids import ID_ENVELOPED_DATA, RC2_PARAMETER_VERSION_128, RSA_ENCRYPTION

RSA_ALGORITHM = der.algorithm_identifier(RSA_ENCRYPTION)  # rsaEncryption with NULL parameters
_PKCS1 = padding.PKCS1v15()  # stateless: one for every key wrapped


def cipher_parameters(algorithm: EncryptionAlgorithm, iv: bytes) -> bytes:
    """The content-encryption algorithm's DER parameters (format.md §4): the IV; for RC2, version 58 and the IV."""
    if algorithm is EncryptionAlgorithm.RC2:
        return der.tlv(der.SEQUENCE, der.integer(RC2_PARAMETER_VERSION_128) + der.tlv(der.OCTET_STRING, iv))
    return der.tlv(der.OCTET_STRING, iv)


def recipient_info(certificate: x509.Certificate, key: bytes) -> bytes:
    """A version 0 KeyTransRecipientInfo for ``certificate``: ``key`` wrapped with RSAES-PKCS1-v1_5.

    UnsupportedAlgorithmError when the certificate's key is not RSA.
    """
    return Recipient.of(certificate).info(key)


class Recipient:
    """What a KeyTransRecipientInfo for one certificate needs, made once: its RSA key and the DER
    before the wrapped key (version, issuer and serial, rsaEncryption)."""

    __slots__ = ("certificate", "prefix", "public_key")

    def __init__(self, certificate: x509.Certificate, public_key: rsa.RSAPublicKey, prefix: bytes) -> None:
        self.certificate = certificate
        self.public_key = public_key
        self.prefix = prefix

    @classmethod
    def of(cls, certificate: x509.Certificate) -> Recipient:
        """The recipient ``certificate`` names; UnsupportedAlgorithmError when its key is not RSA."""
        public_key = certificate.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise UnsupportedAlgorithmError(
                f"recipient {DistinguishedName.from_x509(certificate.subject)} has no RSA key; "
                "AMS wraps keys with RSA only"
            )
        return cls(certificate, public_key, der.integer(0) + issuer_and_serial(certificate) + RSA_ALGORITHM)

    def info(self, key: bytes) -> bytes:
        """The KeyTransRecipientInfo carrying ``key`` wrapped for this recipient."""
        wrapped = self.public_key.encrypt(key, _PKCS1)
        return der.tlv(der.SEQUENCE, self.prefix + der.tlv(der.OCTET_STRING, wrapped))


def build_enveloped_data(
    recipients: Sequence[x509.Certificate | Recipient],
    algorithm: EncryptionAlgorithm,
    content_type: str,
    plaintext: Sequence[Chunk],
    *,
    key: bytes | None = None,
) -> tuple[list[Chunk], bytes]:
    """A DER ContentInfo(envelopedData), as chunks to join once, and its content key.

    ``recipients`` are certificates, or :class:`Recipient` values made from them once.
    """
    (framing, ciphertext), content_key = enveloped_data_parts(recipients, algorithm, content_type, plaintext, key=key)
    return [framing, ciphertext.compute()], content_key


def enveloped_data_parts(
    recipients: Sequence[x509.Certificate | Recipient],
    algorithm: EncryptionAlgorithm,
    content_type: str,
    plaintext: Sequence[Chunk],
    *,
    key: bytes | None = None,
) -> tuple[tuple[bytes, PendingCiphertext], bytes]:
    """:func:`build_enveloped_data` with the ciphertext not yet computed: the DER before it, the
    ciphertext to come (it ends the ContentInfo), and the content key."""
    spec = algorithm.spec
    content_key = key if key is not None else os.urandom(spec.key_size)
    iv = os.urandom(spec.block_size)
    infos = sorted((r if isinstance(r, Recipient) else Recipient.of(r)).info(content_key) for r in recipients)
    ciphertext = PendingCiphertext(algorithm, content_key, iv, plaintext)
    size = len(ciphertext)
    algorithm_id = der.algorithm_identifier(spec.oid, cipher_parameters(algorithm, iv))
    content_header = der.header(der.CONTEXT_0_PRIMITIVE, size)
    eci_prefix = der.oid(content_type) + algorithm_id + content_header
    eci_header = der.header(der.SEQUENCE, len(eci_prefix) + size)
    before = der.integer(0) + der.tlv(der.SET, b"".join(infos)) + eci_header + eci_prefix
    enveloped_header = der.header(der.SEQUENCE, len(before) + size)
    explicit_header = der.header(der.CONTEXT_0_CONSTRUCTED, len(enveloped_header) + len(before) + size)
    type_oid = der.oid(ID_ENVELOPED_DATA)
    outer = der.header(der.SEQUENCE, len(type_oid) + len(explicit_header) + len(enveloped_header) + len(before) + size)
    return (outer + type_oid + explicit_header + enveloped_header + before, ciphertext), content_key
