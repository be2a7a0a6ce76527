"""What a keystore gives: its identity, trusted CAs and other certificates, with their dates (``ams keys list``)."""

from __future__ import annotations

import datetime

import attrs
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from ams._trust import is_anchor
from ams.dn import DistinguishedName
from ams.keys.keystore import Keystore, fingerprint

EXPIRY_WARNING = datetime.timedelta(days=30)  # as `ams doctor` warns


def key_description(certificate: x509.Certificate) -> str:
    """``RSA 3072``, ``EC secp256r1``, ``Ed25519``...: the certificate's public key type and size."""
    try:
        public = certificate.public_key()
    except ValueError:
        return "unreadable key"
    if isinstance(public, rsa.RSAPublicKey):
        return f"RSA {public.key_size}"
    if isinstance(public, ec.EllipticCurvePublicKey):
        return f"EC {public.curve.name}"
    if isinstance(public, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return type(public).__name__.removesuffix("PublicKey")
    return type(public).__name__.lstrip("_")


def validity(certificate: x509.Certificate, now: datetime.datetime) -> tuple[str, str | None]:
    """``("valid" | "expiring" | "expired" | "not yet valid", warning or None)`` at ``now``."""
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if now > end:
        return "expired", f"expired on {end:%Y-%m-%d %H:%M} UTC: renew it (ams keys request) or remove it"
    if now < start:
        return "not yet valid", f"not valid before {start:%Y-%m-%d %H:%M} UTC: check this machine's clock"
    if end - now <= EXPIRY_WARNING:
        days = (end - now).days
        return "expiring", f"expires on {end:%Y-%m-%d} UTC, in {days} days: request its renewal now"
    return "valid", None


@attrs.frozen
class Entry:
    """One certificate of a keystore, as ``ams keys list`` shows it."""

    role: str  # "identity", "trusted CA" or "certificate" (a recipient's or a signer's)
    subject: str
    issuer: str
    serial: int
    key: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    status: str
    warning: str | None
    sha256: str

    def as_json(self) -> dict[str, object]:
        """The entry as JSON values (dates in ISO 8601, the serial in hex)."""
        return {
            "role": self.role,
            "subject": self.subject,
            "issuer": self.issuer,
            "serial": f"{self.serial:#x}",
            "key": self.key,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "status": self.status,
            "warning": self.warning,
            "sha256": self.sha256,
        }


def entry(certificate: x509.Certificate, role: str, now: datetime.datetime) -> Entry:
    """The listing of one certificate in ``role``."""
    status, warning = validity(certificate, now)
    return Entry(
        role=role,
        subject=str(DistinguishedName.from_x509(certificate.subject)),
        issuer=str(DistinguishedName.from_x509(certificate.issuer)),
        serial=certificate.serial_number,
        key=key_description(certificate),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        status=status,
        warning=warning,
        sha256=fingerprint(certificate).hex(":").upper(),
    )


def inventory(keystore: Keystore, now: datetime.datetime | None = None) -> list[Entry]:
    """The identity first, then the trusted CAs, then the other certificates by subject DN."""
    when = now or datetime.datetime.now(datetime.UTC)
    own = keystore.identity.certificate if keystore.identity else None
    found = [entry(own, "identity", when)] if own is not None else []
    others = [c for c in keystore.certificates if c is not own]
    cas = [entry(c, "trusted CA", when) for c in others if is_anchor(c)]
    rest = [entry(c, "certificate", when) for c in others if not is_anchor(c)]
    return found + sorted(cas, key=lambda e: e.subject) + sorted(rest, key=lambda e: (e.subject, e.not_before))
