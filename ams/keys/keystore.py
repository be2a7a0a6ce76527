"""The keystore, a plain container: this identity's key and certificate, trust anchors and
recipients' certificates, with lookups by fingerprint, subject and DN.

Loading (IBM's ``keystore.conf``, PKCS#12, PEM, PKCS#11) lives in ``ams.keys.loading``; the
classmethods here call it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from ams.dn import DistinguishedName, by_closeness
from ams.errors import RecipientNotFoundError
from ams.keys.revocation_settings import RevocationSettings


def describe(certificate: x509.Certificate) -> str:
    """Subject, issuer, serial and validity of a certificate, for error messages."""
    return (
        f"subject {DistinguishedName.from_x509(certificate.subject)}, issuer "
        f"{DistinguishedName.from_x509(certificate.issuer)}, serial {certificate.serial_number:#x}, "
        f"valid {certificate.not_valid_before_utc:%Y-%m-%d %H:%M:%S} to "
        f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC"
    )


def fingerprint(certificate: x509.Certificate) -> bytes:
    """The SHA-256 of a certificate's DER: how the keystore tells certificates apart."""
    return certificate.fingerprint(hashes.SHA256())


@attrs.frozen
class Identity:
    """The local user: an RSA private key and its certificate."""

    certificate: x509.Certificate
    private_key: rsa.RSAPrivateKey = attrs.field(repr=False)
    # Implicit rejection: a failed RSA unwrap goes on with a key derived from the ciphertext and
    # this secret, so the failure looks like any other (see ams.keys.unwrap). Never leaves memory.
    rejection_secret: bytes = attrs.field(factory=lambda: os.urandom(32), repr=False, eq=False)

    @property
    def dn(self) -> DistinguishedName:
        """The certificate's subject."""
        return DistinguishedName.from_x509(self.certificate.subject)

    @property
    def key_size(self) -> int:
        """The private key's modulus size in bits."""
        return self.private_key.key_size


class Keystore:
    """An identity (optional: a sender of confidentiality-only messages needs none) and the
    certificates it trusts or sends to."""

    def __init__(
        self,
        identity: Identity | None,
        certificates: Iterable[x509.Certificate] = (),
        *,
        source: str = "keystore",
    ) -> None:
        self.identity = identity
        self.source = source
        self.findings: list[str] = []  # key-hygiene findings made while loading (never secrets)
        self.settings: dict[str, str] = {}  # keystore.conf settings other than passwords
        self.revocation: RevocationSettings | None = None  # what keystore.conf configures
        unique: dict[bytes, x509.Certificate] = {}
        if identity is not None:
            unique[fingerprint(identity.certificate)] = identity.certificate
        for certificate in certificates:
            unique.setdefault(fingerprint(certificate), certificate)
        self.certificates: tuple[x509.Certificate, ...] = tuple(unique.values())
        self._fingerprints = frozenset(unique)
        self._by_subject: dict[bytes, list[x509.Certificate]] = {}
        for certificate in self.certificates:
            self._by_subject.setdefault(certificate.subject.public_bytes(), []).append(certificate)

    def close(self) -> None:
        """Release what the keystore holds open (a PKCS#11 token session); harmless otherwise."""
        close = getattr(self.identity.private_key, "close", None) if self.identity else None
        if callable(close):
            close()

    def __enter__(self) -> Keystore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        who = self.identity.dn if self.identity else "no identity"
        return f"Keystore({self.source}: {who}, {len(self.certificates)} certificates)"

    # -- loading (ams.keys.loading) ---------------------------------------------------------------

    @classmethod
    def from_pkcs12(
        cls, path: str | Path, password: str | bytes | None, *, certificate: str | None = None, strict: bool = False
    ) -> Keystore:
        """A PKCS#12 file with one private key, its certificate and other certificates (its CA
        certificates are trusted: a file another local user may write or owns warns; ``strict``
        refuses it)."""
        from ams.keys.loading import load_pkcs12

        return load_pkcs12(path, password, certificate=certificate, strict=strict)

    @classmethod
    def from_pem(
        cls,
        *,
        private: str | Path | None,
        public: str | Path | None,
        password: str | bytes | None = None,
        certificates: Sequence[str | Path] = (),
        strict: bool = False,
    ) -> Keystore:
        """PEM files: a private key, its certificate, and bundles or directories of others (trusted:
        a file another local user may write or owns warns; ``strict`` refuses it)."""
        from ams.keys.loading import load_pem

        return load_pem(private=private, public=public, password=password, certificates=certificates, strict=strict)

    @classmethod
    def from_conf(cls, path: str | Path | None = None, *, strict: bool = False) -> Keystore:
        """IBM's keystore.conf (default ``$MQS_KEYSTORE_CONF``, else ``~/.mqs/keystore.conf``).

        Unencrypted or group/world-readable key files and a readable plain-text password warn
        (``AmsSecurityWarning``); ``strict`` refuses them.
        """
        from ams.keys.loading import load_conf

        return load_conf(path, strict=strict)

    # -- lookups ------------------------------------------------------------------------------

    def contains(self, certificate: x509.Certificate) -> bool:
        """Whether this very certificate (same SHA-256 fingerprint) is in the keystore."""
        return fingerprint(certificate) in self._fingerprints

    def by_subject(self, name: x509.Name) -> list[x509.Certificate]:
        """The certificates whose subject has exactly the DER of ``name`` (how issuers are found)."""
        return list(self._by_subject.get(name.public_bytes(), ()))

    def find(self, dn: DistinguishedName, *, strict: bool = False) -> list[x509.Certificate]:
        """The certificates whose subject matches ``dn`` (see :meth:`DistinguishedName.matches`), in keystore order."""
        return [c for c in self.certificates if DistinguishedName.from_x509(c.subject).matches(dn, strict=strict)]

    def recipient(self, dn: DistinguishedName, *, strict: bool = True) -> x509.Certificate:
        """The certificate a policy's recipient DN names, compared exactly as IBM documents for
        recipient DNs (and as protect chooses them); a clear error with near misses if none.
        ``strict=False`` compares as IBM's Java client compares signers (case and spacing)."""
        found = self.find(dn, strict=strict)
        if found:
            return found[0]
        subjects = [DistinguishedName.from_x509(certificate.subject) for certificate in self.certificates]
        near = [
            f"{subject} ({'; '.join(reasons)})"
            for subject in by_closeness(dn, subjects)
            if len(reasons := subject.differences(dn)) <= 2
        ]
        hint = f"; nearest: {', '.join(near)}" if near else ""
        raise RecipientNotFoundError(
            f"no certificate for recipient {dn} in {self.source} ({len(self.certificates)} "
            f"certificates){hint}: add the recipient's certificate to this keystore or fix the DN "
            "in the policy"
        )
