"""The certificate rules AMS applies, as functions: key usage per role, dates, and the chain.

Trust anchors are the CA certificates of the receiver's keystore (basicConstraints cA=TRUE,
self-signed or not). An issuer must always be a CA, with keyCertSign where keyUsage is present.
Every CA of the keystore is an anchor, so a chain is the certificate and the CA that issued it:
there are no untrusted intermediates to walk. But the constraints that the keystore's CAs above
that one placed on it still bind (name constraints, path lengths, RFC 5280, see ``ams._paths``),
so the path on up through the keystore is checked too, as ``openssl verify`` checks it. A self-signed
end-entity certificate is trusted only as itself (a pinned signer or recipient, when that exact
certificate is in the keystore), never as an issuer: otherwise a partner whose self-signed
certificate sits in the keystore could issue itself any name. There is no trust-on-first-use.

``ams.verify.Verifier`` applies these with its caches.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from ams._paths import check_path
from ams.dn import DistinguishedName
from ams.errors import (
    CertificatePathError,
    CertificateUsageError,
    CertificateValidityError,
    SecurityError,
    SignerCertificateError,
    UntrustedSignerError,
    summarise,
)
from ams.hazmat.certificates import basic_constraints, key_usage, subject_dn
from ams.keys.keystore import Keystore, describe


def is_ca(certificate: x509.Certificate) -> bool:
    constraints = basic_constraints(certificate)
    return constraints is not None and constraints.ca


def why_not_issuer(certificate: x509.Certificate) -> str | None:
    """Why ``certificate`` may not issue certificates (None when it may)."""
    if not is_ca(certificate):
        return "it is not a CA (basicConstraints cA=TRUE missing)"
    usage = key_usage(certificate)
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


def _require_rsa(certificate: x509.Certificate, role: str, error: type[SecurityError]) -> DistinguishedName:
    """The certificate's subject, when its key is RSA (AMS's only kind); ``error`` naming the kind if not."""
    subject = DistinguishedName.from_x509(certificate.subject)
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise error(f"{role} {subject} has a {type(key).__name__.lstrip('_')} key; AMS accepts RSA {role}s only")
    return subject


def check_signer_usage(certificate: x509.Certificate) -> None:
    """keyUsage, extendedKeyUsage, not a CA, RSA: what AMS requires of a signer."""
    subject = _require_rsa(certificate, "signer", SignerCertificateError)
    if is_ca(certificate):
        raise CertificateUsageError(
            f"signer {subject} is a CA certificate (basicConstraints cA=TRUE); AMS signers must "
            "be end-entity certificates"
        )
    usage = key_usage(certificate)
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
    """keyUsage keyEncipherment (when present), extendedKeyUsage, RSA: what AMS requires of a recipient."""
    subject = _require_rsa(certificate, "recipient", CertificateUsageError)
    usage = key_usage(certificate)
    if usage is not None and not usage.key_encipherment:
        raise CertificateUsageError(
            f"recipient {subject} has keyUsage without keyEncipherment, so it cannot receive a "
            "wrapped message key: issue it a certificate with keyEncipherment"
        )
    check_email_protection(certificate, "recipient")


def check_usage(certificate: x509.Certificate, role: str) -> None:
    """What AMS requires of a signer's (``role`` "signer") or a recipient's certificate."""
    if role == "signer":
        check_signer_usage(certificate)
    else:
        check_recipient_usage(certificate)


MAX_PATH = 8  # certificates in a path, end entity and anchor included (cryptography's default depth too)
_MAX_PATHS = 16  # paths up through the keystore's CAs tried for one certificate


def build_chain(keystore: Keystore, certificate: x509.Certificate, role: str) -> tuple[x509.Certificate, ...]:
    """``certificate`` and the keystore CA that issued it (or the certificate alone when pinned),
    every signature verified; UntrustedSignerError naming the anchors there otherwise.

    The path on up, through the keystore CAs that certified that CA (to a self-signed one), must
    obey RFC 5280's rules too (:func:`ams._paths.check_path`): the name constraints and path
    lengths of every CA above apply, a lower CA being in the keystore does not lift them. The
    first issuer with such a path is used; CertificatePathError from the first path tried if none.
    """
    subject = subject_dn(certificate)
    if not is_ca(certificate) and is_self_signed(certificate):
        if keystore.contains(certificate):
            check_path((certificate,), role)
            return (certificate,)  # pinned: trusted as itself, never as an issuer
        raise UntrustedSignerError(
            f"{role} {subject} has a self-signed certificate that is not in {keystore.source}: a "
            "self-signed certificate is trusted only when that exact certificate is in the receiver's keystore"
        )
    refused: list[str] = []
    broken: CertificatePathError | None = None
    for issuer in _issuers_of(keystore, certificate, refused):
        for path in _paths_up(keystore, (certificate, issuer)):
            try:
                check_path(path, role)
            except CertificatePathError as error:
                broken = broken or error
                continue
            return (certificate, issuer)
    if broken is not None:
        raise broken
    anchors = [str(subject_dn(c)) for c in keystore.certificates if is_anchor(c)]
    because = f"; refused as issuers: {summarise(refused, 3)}" if refused else ""
    raise UntrustedSignerError(
        f"{role} {subject} (issued by {DistinguishedName.from_x509(certificate.issuer)}, serial "
        f"{certificate.serial_number:#x}) does not chain to a trust anchor in {keystore.source}{because}; "
        f"anchors there: {summarise(anchors)}. Add the issuing CA's certificate to the receiver's keystore "
        "if you trust it"
    )


def _paths_up(keystore: Keystore, start: tuple[x509.Certificate, ...]) -> Iterator[tuple[x509.Certificate, ...]]:
    """``start`` extended through the keystore CAs that issued its top, every way there is, until a
    self-signed CA or one whose issuer the keystore lacks (at most MAX_PATH long, _MAX_PATHS paths)."""
    stack = [start]
    found = 0
    while stack and found < _MAX_PATHS:
        path = stack.pop()
        top = path[-1]
        parents = []
        if len(path) < MAX_PATH and not is_self_signed(top):
            parents = [p for p in _issuers_of(keystore, top, []) if p not in path]
        if not parents:
            found += 1
            yield path
        stack.extend((*path, parent) for parent in reversed(parents))


def _issuers_of(keystore: Keystore, certificate: x509.Certificate, refused: list[str]) -> Iterator[x509.Certificate]:
    """The keystore certificates that issued ``certificate`` and may issue (``refused`` gets the others)."""
    for candidate in keystore.by_subject(certificate.issuer):
        if candidate == certificate:
            continue
        try:
            certificate.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        reason = why_not_issuer(candidate)
        if reason is not None:
            refused.append(f"{subject_dn(candidate)} ({reason})")
            continue
        yield candidate
