"""Small, cached readings of X.509 certificates that the CMS layers and the verifier share.

Certificates are immutable, so each reading is cached by certificate.
"""

from __future__ import annotations

import functools

from cryptography import x509

from ams.dn import DistinguishedName
from ams.hazmat import der


@functools.lru_cache(maxsize=512)
def subject_dn(certificate: x509.Certificate) -> DistinguishedName:
    """A certificate's subject as a DN."""
    return DistinguishedName.from_x509(certificate.subject)


@functools.lru_cache(maxsize=512)
def issuer_bytes(certificate: x509.Certificate) -> bytes:
    """The DER of a certificate's issuer Name."""
    return certificate.issuer.public_bytes()


@functools.lru_cache(maxsize=512)
def issuer_and_serial(certificate: x509.Certificate) -> bytes:
    """The DER IssuerAndSerialNumber that names ``certificate`` in a SignerInfo or RecipientInfo."""
    return der.tlv(der.SEQUENCE, issuer_bytes(certificate) + der.integer(certificate.serial_number))


def subject_key_identifier(certificate: x509.Certificate) -> bytes | None:
    """The subjectKeyIdentifier extension's value, if the certificate has one."""
    try:
        return certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


def key_usage(certificate: x509.Certificate) -> x509.KeyUsage | None:
    """The keyUsage extension, if present."""
    try:
        return certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def basic_constraints(certificate: x509.Certificate) -> x509.BasicConstraints | None:
    """The basicConstraints extension, if present."""
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None
