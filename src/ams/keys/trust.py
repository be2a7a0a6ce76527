"""Signer certificate validation: dates, key usage, and a chain to the receiver's trust anchors.

Trust anchors are the CA certificates and the self-signed certificates of the receiver's
keystore. There is no trust-on-first-use: a signer that does not chain to one is refused.
Chains are cached by certificate fingerprint; dates are checked on every message.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from ams.dn import DistinguishedName
from ams.errors import (
    CertificateUsageError,
    CertificateValidityError,
    SignerCertificateError,
    UntrustedSignerError,
)
from ams.keys.keystore import Keystore, describe
from ams.keys.revocation import RevocationChecker

MAX_CHAIN_LENGTH = 8


def _basic_constraints(certificate: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def _key_usage(certificate: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def is_ca(certificate: x509.Certificate) -> bool:
    constraints = _basic_constraints(certificate)
    return constraints is not None and constraints.ca


def is_self_signed(certificate: x509.Certificate) -> bool:
    if certificate.issuer != certificate.subject:
        return False
    try:
        certificate.verify_directly_issued_by(certificate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def check_validity(certificate: x509.Certificate, at: datetime.datetime, skew: datetime.timedelta, role: str) -> None:
    if at + skew < certificate.not_valid_before_utc:
        raise CertificateValidityError(
            f"{role} certificate is not yet valid at {at:%Y-%m-%d %H:%M:%S} UTC: {describe(certificate)}; "
            "check the clocks of both machines or wait until the certificate's start date"
        )
    if at - skew > certificate.not_valid_after_utc:
        raise CertificateValidityError(
            f"{role} certificate expired before {at:%Y-%m-%d %H:%M:%S} UTC: {describe(certificate)}; "
            "the sender needs a renewed certificate"
        )


def check_signer_usage(certificate: x509.Certificate) -> None:
    """keyUsage, extendedKeyUsage, not a CA, RSA: what AMS requires of a signer."""
    subject = DistinguishedName.from_x509(certificate.subject)
    if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
        raise SignerCertificateError(
            f"signer {subject} has a {type(certificate.public_key()).__name__.lstrip('_')} key; "
            "AMS accepts RSA signers only"
        )
    if is_ca(certificate):
        raise CertificateUsageError(
            f"signer {subject} is a CA certificate (basicConstraints cA=TRUE); AMS signers must "
            "be end-entity certificates"
        )
    usage = _key_usage(certificate)
    if usage is not None and not (usage.digital_signature or usage.content_commitment):
        raise CertificateUsageError(
            f"signer {subject} has keyUsage without digitalSignature or nonRepudiation; a signing "
            "certificate needs one of them"
        )
    check_email_protection(certificate, "signer")


def check_email_protection(certificate: x509.Certificate, role: str) -> None:
    try:
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return
    if ExtendedKeyUsageOID.EMAIL_PROTECTION not in eku and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku:
        found = ", ".join(getattr(o, "_name", o.dotted_string) for o in eku)
        raise CertificateUsageError(
            f"{role} {DistinguishedName.from_x509(certificate.subject)} has extendedKeyUsage {found} "
            "without emailProtection, which AMS requires when the extension is present"
        )


def check_recipient_usage(certificate: x509.Certificate) -> None:
    subject = DistinguishedName.from_x509(certificate.subject)
    if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
        raise CertificateUsageError(
            f"recipient {subject} has a {type(certificate.public_key()).__name__.lstrip('_')} key; "
            "AMS encrypts for RSA recipients only"
        )
    usage = _key_usage(certificate)
    if usage is not None and not usage.key_encipherment:
        raise CertificateUsageError(
            f"recipient {subject} has keyUsage without keyEncipherment, so it cannot receive a "
            "wrapped message key: issue it a certificate with keyEncipherment"
        )
    check_email_protection(certificate, "recipient")


class TrustValidator:
    """Validates signer certificates against one keystore's trust anchors, with a cache."""

    def __init__(
        self,
        keystore: Keystore,
        *,
        skew: datetime.timedelta = datetime.timedelta(minutes=5),
        revocation: RevocationChecker | None = None,
    ) -> None:
        self.keystore = keystore
        self.skew = skew
        self.revocation = revocation
        # chains by certificate, with each link's validity window (read once: the properties are slow)
        self._chains: dict[
            x509.Certificate, tuple[tuple[x509.Certificate, datetime.datetime, datetime.datetime], ...]
        ] = {}

    def validate(
        self, certificate: x509.Certificate, at: datetime.datetime | None = None
    ) -> Sequence[x509.Certificate]:
        """Return the chain from ``certificate`` to an anchor, or raise a SecurityError."""
        when = at or datetime.datetime.now(datetime.UTC)
        chain = self._chains.get(certificate)
        if chain is None:
            check_signer_usage(certificate)
            chain = tuple((c, c.not_valid_before_utc, c.not_valid_after_utc) for c in self._build(certificate))
            if len(self._chains) >= 1024:
                self._chains.clear()
            self._chains[certificate] = chain
        for index, (link, not_before, not_after) in enumerate(chain):
            if not not_before - self.skew <= when <= not_after + self.skew:
                check_validity(link, when, self.skew, "signer" if index == 0 else "issuing CA")
        links = [link for link, _, _ in chain]
        if self.revocation is not None:
            for child, issuer in itertools.pairwise(links):
                self.revocation.check(child, issuer, when)
        return links

    def _build(self, certificate: x509.Certificate) -> tuple[x509.Certificate, ...]:
        chain = [certificate]
        current = certificate
        while len(chain) <= MAX_CHAIN_LENGTH:
            if self.keystore.contains(current) and (is_ca(current) or is_self_signed(current)):
                return tuple(chain)
            if is_self_signed(current):
                break  # self-signed but not in the keystore: untrusted
            issuer = self._issuer_of(current)
            if issuer is None:
                break
            chain.append(issuer)
            current = issuer
        anchors = [
            str(DistinguishedName.from_x509(c.subject))
            for c in self.keystore.certificates
            if is_ca(c) or is_self_signed(c)
        ]
        raise UntrustedSignerError(
            f"signer {DistinguishedName.from_x509(certificate.subject)} (issued by "
            f"{DistinguishedName.from_x509(certificate.issuer)}, serial {certificate.serial_number:#x}) "
            f"does not chain to a trust anchor in {self.keystore.source}; anchors there: "
            f"{', '.join(anchors) or 'none'}. Add the issuing CA's certificate to the receiver's keystore "
            "if you trust it"
        )

    def _issuer_of(self, certificate: x509.Certificate) -> x509.Certificate | None:
        for candidate in self.keystore.by_subject(certificate.issuer):
            if candidate == certificate:
                continue
            try:
                certificate.verify_directly_issued_by(candidate)
            except (ValueError, TypeError, InvalidSignature):
                continue
            if not is_ca(candidate) and not is_self_signed(candidate):
                raise UntrustedSignerError(
                    f"{DistinguishedName.from_x509(certificate.subject)} is issued by "
                    f"{DistinguishedName.from_x509(candidate.subject)}, which is not a CA "
                    "(basicConstraints cA=TRUE missing)"
                )
            usage = _key_usage(candidate)
            if usage is not None and not usage.key_cert_sign:
                raise UntrustedSignerError(
                    f"issuer {DistinguishedName.from_x509(candidate.subject)} has keyUsage without "
                    "keyCertSign, so it cannot issue certificates"
                )
            return candidate
        return None
