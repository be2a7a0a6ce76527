"""Certificate validation: dates, key usage, and a chain to the receiver's trust anchors.

Trust anchors are the CA certificates of the receiver's keystore (basicConstraints cA=TRUE,
self-signed or not). An issuer must always be a CA, with keyCertSign where keyUsage is present.
Every CA of the keystore is an anchor, so a chain is the certificate and the CA that issued it:
there are no untrusted intermediates to walk (and so no path lengths to check). A self-signed
end-entity certificate is trusted only as itself (a pinned signer or recipient, when that exact
certificate is in the keystore), never as an issuer: otherwise a partner whose self-signed
certificate sits in the keystore could issue itself any name. There is no trust-on-first-use.

The same rules apply to recipients' certificates before anything is encrypted for them. Chains
are cached per certificate; dates are checked every time.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Sequence

import attrs
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from ams.dn import DistinguishedName
from ams.errors import (
    CertificateUsageError,
    CertificateValidityError,
    RecipientCertificateError,
    SecurityError,
    SignerCertificateError,
    UntrustedSignerError,
    summarise,
)
from ams.keys.keystore import Keystore, describe
from ams.keys.revocation import RevocationChecker

_CACHE_SIZE = 1024
Link = tuple[x509.Certificate, datetime.datetime, datetime.datetime]


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


def why_not_issuer(certificate: x509.Certificate) -> str | None:
    """Why ``certificate`` may not issue certificates (None when it may)."""
    if not is_ca(certificate):
        return "it is not a CA (basicConstraints cA=TRUE missing)"
    usage = _key_usage(certificate)
    if usage is not None and not usage.key_cert_sign:
        return "its keyUsage lacks keyCertSign"
    return None


def is_anchor(certificate: x509.Certificate) -> bool:
    """A keystore certificate that may anchor chains: a CA allowed to issue."""
    return why_not_issuer(certificate) is None


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


@attrs.frozen
class RecipientCertificate:
    """The certificate chosen for a recipient's DN, and until when its chain is valid."""

    certificate: x509.Certificate
    valid_until: datetime.datetime


class TrustValidator:
    """Validates signers' and recipients' certificates against one keystore's trust anchors."""

    def __init__(
        self,
        keystore: Keystore,
        *,
        skew: datetime.timedelta = datetime.timedelta(minutes=5),
        revocation: RevocationChecker | None = None,
        strict_dn: bool = False,
    ) -> None:
        self.keystore = keystore
        self.skew = skew
        self.revocation = revocation
        self.strict_dn = strict_dn
        # chains by certificate, with each link's validity window (the properties are slow), and
        # the (certificate, role) pairs whose key usage was checked
        self._chains: dict[x509.Certificate, tuple[Link, ...]] = {}
        self._usable: set[tuple[x509.Certificate, str]] = set()

    def authenticate(self, certificate: x509.Certificate, role: str = "signer") -> Sequence[x509.Certificate]:
        """The chain from ``certificate`` to an anchor, every issuer's signature verified.

        Only this makes a certificate's bytes trustworthy: a privacy receiver calls it before it
        says anything about a signer's certificate, because the inner signature does not cover
        the certificate (a changed ciphertext can alter it and leave that signature valid).
        """
        return [link for link, _, _ in self._chain(certificate, role)]

    def validate(
        self, certificate: x509.Certificate, at: datetime.datetime | None = None
    ) -> Sequence[x509.Certificate]:
        """Return the signer's chain from ``certificate`` to an anchor, or raise a SecurityError.

        The chain is authenticated first, then key usage, dates and revocation are checked.
        """
        when = at or datetime.datetime.now(datetime.UTC)
        chain = self._chain(certificate, "signer")
        self._check_usage(certificate, "signer")
        self._check_dates(chain, when, "signer")
        links = [link for link, _, _ in chain]
        if self.revocation is not None:
            for child, issuer in itertools.pairwise(links):
                self.revocation.check(child, issuer, when)
        return links

    def recipient(self, dn: DistinguishedName, at: datetime.datetime | None = None) -> RecipientCertificate:
        """The certificate to encrypt for ``dn``: of those with that DN, the newest valid one.

        Valid means as a signer's is valid: dates, a chain to an anchor, keyEncipherment. When
        none is, the error names the DN and why each candidate was refused.
        """
        when = at or datetime.datetime.now(datetime.UTC)
        candidates = self.keystore.find(dn, strict=self.strict_dn)
        if not candidates:
            self.keystore.recipient(dn, strict=self.strict_dn)  # raises RecipientNotFoundError, with near misses
        usable: list[RecipientCertificate] = []
        problems: list[str] = []
        for certificate in candidates:
            try:
                chain = self._chain(certificate, "recipient")
                self._check_usage(certificate, "recipient")
                self._check_dates(chain, when, "recipient")
            except SecurityError as error:
                problems.append(f"serial {certificate.serial_number:#x}: {error.message}")
                continue
            usable.append(RecipientCertificate(certificate, min(end for _, _, end in chain) + self.skew))
        if not usable:
            raise RecipientCertificateError(
                f"no usable certificate for recipient {dn} in {self.keystore.source}: {summarise(problems, 3)}. "
                "Nothing was encrypted for it: import a valid certificate of the recipient, issued by a CA "
                "in this keystore"
            )
        return max(usable, key=lambda found: found.certificate.not_valid_before_utc)

    def _check_dates(self, chain: Sequence[Link], when: datetime.datetime, role: str) -> None:
        for index, (link, not_before, not_after) in enumerate(chain):
            if not not_before - self.skew <= when <= not_after + self.skew:
                check_validity(link, when, self.skew, role if index == 0 else "issuing CA")

    def _check_usage(self, certificate: x509.Certificate, role: str) -> None:
        if (certificate, role) in self._usable:
            return
        if role == "signer":
            check_signer_usage(certificate)
        else:
            check_recipient_usage(certificate)
        if len(self._usable) >= _CACHE_SIZE:
            self._usable.clear()
        self._usable.add((certificate, role))

    def _chain(self, certificate: x509.Certificate, role: str) -> tuple[Link, ...]:
        chain = self._chains.get(certificate)
        if chain is None:
            chain = tuple((c, c.not_valid_before_utc, c.not_valid_after_utc) for c in self._build(certificate, role))
            if len(self._chains) >= _CACHE_SIZE:
                self._chains.clear()
            self._chains[certificate] = chain
        return chain

    def _build(self, certificate: x509.Certificate, role: str) -> tuple[x509.Certificate, ...]:
        subject = DistinguishedName.from_x509(certificate.subject)
        if not is_ca(certificate) and is_self_signed(certificate):
            if self.keystore.contains(certificate):
                return (certificate,)  # pinned: trusted as itself, never as an issuer
            raise UntrustedSignerError(
                f"{role} {subject} has a self-signed certificate that is not in {self.keystore.source}: a "
                "self-signed certificate is trusted only when that exact certificate is in the receiver's keystore"
            )
        refused: list[str] = []
        issuer = self._issuer_of(certificate, refused)
        if issuer is not None:
            return (certificate, issuer)
        anchors = [str(DistinguishedName.from_x509(c.subject)) for c in self.keystore.certificates if is_anchor(c)]
        because = f"; refused as issuers: {summarise(refused, 3)}" if refused else ""
        raise UntrustedSignerError(
            f"{role} {subject} (issued by {DistinguishedName.from_x509(certificate.issuer)}, serial "
            f"{certificate.serial_number:#x}) does not chain to a trust anchor in {self.keystore.source}{because}; "
            f"anchors there: {summarise(anchors)}. Add the issuing CA's certificate to the receiver's keystore "
            "if you trust it"
        )

    def _issuer_of(self, certificate: x509.Certificate, refused: list[str]) -> x509.Certificate | None:
        """A keystore certificate that issued ``certificate`` and may issue."""
        for candidate in self.keystore.by_subject(certificate.issuer):
            if candidate == certificate:
                continue
            try:
                certificate.verify_directly_issued_by(candidate)
            except (ValueError, TypeError, InvalidSignature):
                continue
            reason = why_not_issuer(candidate)
            if reason is not None:
                refused.append(f"{DistinguishedName.from_x509(candidate.subject)} ({reason})")
                continue
            return candidate
        return None
