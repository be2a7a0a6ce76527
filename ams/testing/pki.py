"""A throwaway PKI for tests: a CA, users, keystore.conf files, and broken certificates on request.

Built on :mod:`ams.pki` (whose functions are re-exported here, so tests need one import)::

    from ams.testing.pki import CertificateFault, ThrowawayPki

    pki = ThrowawayPki()                                   # CA, alice..erin, a foreign CA and mallory
    alice = ams.Protector(pki.keystore("alice"), policies)
    expired = pki.faulty(CertificateFault.EXPIRED)         # an Issued: key and certificate
    conf = pki.write_keystore(tmp_path / "bob", "bob", crl=True)   # keystore.conf, PKCS#12, CRL

For tests and demos only: keys are made on the spot and passwords are random. The CA is valid
from 2000 for a hundred years, so that certificates can have expired long ago. Nothing here
needs Hypothesis or pytest.
"""

from __future__ import annotations

import datetime
import enum
import secrets
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from ams._files import PRIVATE_FILE_MODE, PUBLIC_FILE_MODE, make_private_directory, write_new_file
from ams.dn import DistinguishedName
from ams.errors import KeystoreError, UsageError
from ams.keys.keystore import Identity, Keystore
from ams.pki import (
    GeneratedPki,
    Issued,
    certificate_builder,
    init_pki,
    issue,
    make_ca,
    new_key,
    user_dn,
    write_pem,
    write_user_keystore,
)

__all__ = [
    "DEFAULT_USERS",
    "LONG_AGO",
    "CertificateFault",
    "GeneratedPki",
    "Issued",
    "ThrowawayPki",
    "init_pki",
    "issue",
    "make_ca",
    "new_key",
    "pem",
    "self_signed",
    "user_dn",
    "write_pem",
    "write_user_keystore",
]

LONG_AGO = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
DEFAULT_USERS = ("alice", "bob", "carol", "dave", "erin")
_DAY = datetime.timedelta(days=1)


class CertificateFault(enum.Enum):
    """A way for a certificate to break AMS's rules (format.md §6, §9), for :meth:`ThrowawayPki.faulty`."""

    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    REVOKED = "revoked"
    NO_KEY_ENCIPHERMENT = "no-key-encipherment"
    NO_DIGITAL_SIGNATURE = "no-digital-signature"
    CA_CERTIFICATE = "ca-certificate"
    WRONG_EXTENDED_KEY_USAGE = "wrong-extended-key-usage"
    SELF_SIGNED = "self-signed"
    UNTRUSTED_ISSUER = "untrusted-issuer"

    @property
    def description(self) -> str:
        """What is wrong with such a certificate, in words."""
        return _DESCRIPTIONS[self]

    @property
    def refused_as_signer(self) -> bool:
        """Whether a receiver must refuse a message signed with such a certificate (REVOKED: when it checks a CRL)."""
        return self is not CertificateFault.NO_KEY_ENCIPHERMENT

    @property
    def refused_as_recipient(self) -> bool:
        """Whether a sender must refuse to encrypt for such a certificate, once it is in the sender's keystore
        (where a self-signed one is pinned, and trusted as itself)."""
        return self in _REFUSED_RECIPIENTS


_REFUSED_RECIPIENTS = frozenset(
    {
        CertificateFault.EXPIRED,
        CertificateFault.NOT_YET_VALID,
        CertificateFault.NO_KEY_ENCIPHERMENT,
        CertificateFault.WRONG_EXTENDED_KEY_USAGE,
        CertificateFault.UNTRUSTED_ISSUER,
    }
)
_DESCRIPTIONS = {
    CertificateFault.EXPIRED: "expired 30 days ago",
    CertificateFault.NOT_YET_VALID: "valid only from 30 days from now",
    CertificateFault.REVOKED: "revoked by the CA's CRL",
    CertificateFault.NO_KEY_ENCIPHERMENT: "keyUsage without keyEncipherment (cannot receive a message key)",
    CertificateFault.NO_DIGITAL_SIGNATURE: "keyUsage without digitalSignature or nonRepudiation (cannot sign)",
    CertificateFault.CA_CERTIFICATE: "a CA certificate (basicConstraints cA=TRUE) used as an end entity",
    CertificateFault.WRONG_EXTENDED_KEY_USAGE: "extendedKeyUsage serverAuth and clientAuth, without emailProtection",
    CertificateFault.SELF_SIGNED: "self-signed, and not in the receiver's keystore",
    CertificateFault.UNTRUSTED_ISSUER: "issued by a CA outside the receiver's trust anchors",
}


def _usage(*, sign: bool, encipher: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=sign,
        key_encipherment=encipher,
        data_encipherment=encipher,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def self_signed(dn: str, key: rsa.RSAPrivateKey | None = None, *, days: int = 825) -> Issued:
    """A self-signed end-entity certificate for ``dn`` with AMS's key usages (not a CA)."""
    key = key or new_key()
    start = datetime.datetime.now(datetime.UTC) - _DAY
    name = DistinguishedName.parse(dn).to_x509()
    certificate = (
        certificate_builder(name, name, key.public_key(), start, start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(sign=True, encipher=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, certificate)


def pem(*certificates: x509.Certificate) -> bytes:
    """The certificates as one PEM bundle."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def _private_pem(key: rsa.RSAPrivateKey, password: str | None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


class ThrowawayPki:
    """A CA and users (``CN=name,O=AMS,C=GB`` unless ``users`` maps names to DNs), a foreign CA
    with its own user ``mallory``, and certificates that break each rule on request.

    Keys are ``key_bits`` RSA keys made when the PKI is; certificates from :meth:`faulty` share
    one spare key, which keeps a test that needs many of them fast.
    """

    def __init__(
        self,
        users: Iterable[str] | Mapping[str, str] = DEFAULT_USERS,
        *,
        organisation: str = "AMS",
        ca_dn: str = "CN=Test CA,O=AMS,C=GB",
        key_bits: int = 2048,
    ) -> None:
        self.organisation = organisation
        self.key_bits = key_bits
        names = dict(users) if isinstance(users, Mapping) else {u: user_dn(u, organisation) for u in users}
        self.ca = make_ca(ca_dn, key=new_key(key_bits), not_before=LONG_AGO, days=365 * 100)
        self.users: dict[str, Issued] = {name: issue(self.ca, dn, key=new_key(key_bits)) for name, dn in names.items()}
        self.foreign_ca = make_ca("CN=Foreign CA,O=ELSEWHERE,C=US", key=new_key(key_bits))
        self.mallory = issue(self.foreign_ca, "CN=mallory,O=ELSEWHERE,C=US", key=new_key(key_bits))
        self.revoked: dict[int, datetime.datetime] = {}  # serial -> revocation date, for crl()
        self._spare: rsa.RSAPrivateKey | None = None

    def __repr__(self) -> str:
        return f"ThrowawayPki({self.ca.dn}, users {', '.join(self.users)})"

    @property
    def spare_key(self) -> rsa.RSAPrivateKey:
        """The key every :meth:`faulty` certificate shares (made on first use)."""
        if self._spare is None:
            self._spare = new_key(self.key_bits)
        return self._spare

    def issued(self, name: str) -> Issued:
        """A user's key and certificate; ``mallory`` is the foreign CA's user."""
        if name == "mallory" and name not in self.users:
            return self.mallory
        try:
            return self.users[name]
        except KeyError:
            raise UsageError(
                f"no user {name!r} in this test PKI: expected one of {', '.join(self.users)} or mallory; "
                "add it with add_user()"
            ) from None

    def dn(self, name: str) -> str:
        """A user's DN as text (``CN=name,O=AMS,C=GB``)."""
        return str(self.issued(name).dn)

    def add_user(self, name: str, dn: str | None = None, **options: object) -> Issued:
        """Issue a certificate for a new user (``options`` as for :func:`ams.pki.issue`) and keep it."""
        issued = self.issue(dn or user_dn(name, self.organisation), **options)
        self.users[name] = issued
        return issued

    def issue(self, dn: str, **options: object) -> Issued:
        """A certificate from this PKI's CA (``options`` as for :func:`ams.pki.issue`; a new key unless ``key=``)."""
        if "key" not in options:
            options["key"] = new_key(self.key_bits)
        return issue(self.ca, dn, **options)  # type: ignore[arg-type]

    def faulty(self, fault: CertificateFault, dn: str | None = None) -> Issued:
        """A certificate with ``fault`` (for ``dn``, default ``CN=<fault>,O=<organisation>,C=GB``).

        REVOKED certificates are listed by :meth:`crl` from then on.
        """
        dn = dn or user_dn(fault.value, self.organisation)
        key = self.spare_key
        now = datetime.datetime.now(datetime.UTC)
        if fault is CertificateFault.EXPIRED:
            return issue(self.ca, dn, key=key, not_before=now - 400 * _DAY, not_after=now - 30 * _DAY)
        if fault is CertificateFault.NOT_YET_VALID:
            return issue(self.ca, dn, key=key, not_before=now + 30 * _DAY, days=365)
        if fault is CertificateFault.NO_KEY_ENCIPHERMENT:
            return issue(self.ca, dn, key=key, key_usage=_usage(sign=True, encipher=False))
        if fault is CertificateFault.NO_DIGITAL_SIGNATURE:
            return issue(self.ca, dn, key=key, key_usage=_usage(sign=False, encipher=True))
        if fault is CertificateFault.CA_CERTIFICATE:
            return issue(self.ca, dn, key=key, ca_flag=True)
        if fault is CertificateFault.WRONG_EXTENDED_KEY_USAGE:
            wrong = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
            return issue(self.ca, dn, key=key, extended_key_usage=wrong)
        if fault is CertificateFault.SELF_SIGNED:
            return self_signed(dn, key)
        if fault is CertificateFault.UNTRUSTED_ISSUER:
            return issue(self.foreign_ca, dn, key=key)
        revoked = issue(self.ca, dn, key=key)
        self.revoked[revoked.certificate.serial_number] = now - datetime.timedelta(hours=1)
        return revoked

    def crl(
        self, *, last_update: datetime.datetime | None = None, next_update: datetime.datetime | None = None
    ) -> x509.CertificateRevocationList:
        """The CA's CRL listing every certificate :meth:`faulty` revoked (valid from an hour ago for a week)."""
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.ca.certificate.subject)
            .last_update(last_update or now - datetime.timedelta(hours=1))
            .next_update(next_update or now + 7 * _DAY)
        )
        for serial, when in self.revoked.items():
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
            )
        return builder.sign(self.ca.key, hashes.SHA256())

    def keystore(self, name: str, *, extra: Sequence[Issued] = ()) -> Keystore:
        """``name``'s keystore in memory: its identity, the CA, every other user's certificate and ``extra``.

        A name that is not a user's gets mallory's identity (from the foreign CA).
        """
        me = self.users.get(name, self.mallory)
        others = [self.ca.certificate] + [u.certificate for n, u in self.users.items() if n != name]
        others += [e.certificate for e in extra]
        return Keystore(Identity(me.certificate, me.key), others, source=f"{name}'s test keystore")

    def write_keystore(
        self,
        directory: str | Path,
        name: str,
        *,
        kind: str = "pkcs12",
        extra: Sequence[Issued] = (),
        crl: bool = False,
        password: str | None = None,
    ) -> Path:
        """Write ``name``'s keystore and a keystore.conf for it into ``directory``; return the keystore.conf.

        ``kind`` is ``pkcs12`` (a password-protected PKCS#12 holding the key, the CA and the other
        users' certificates) or ``pem`` (an encrypted key, its certificate and a bundle of the
        others, or an unencrypted key when ``password`` is ``""``). ``crl`` adds ``crl.file`` with
        the CA's current :meth:`crl`. Files are new (never overwritten), keys and keystore.conf 0600.
        """
        root = Path(directory)
        me = self.issued(name)
        others = [self.ca.certificate] + [u.certificate for n, u in self.users.items() if n != name]
        others += [e.certificate for e in extra]
        secret = secrets.token_urlsafe(18) if password is None else password
        lines = ""
        if kind == "pkcs12":
            conf = write_user_keystore(root, name, me, others, password=secret or None)
        elif kind == "pem":
            conf = self._write_pem_files(root, name, me, others, secret)
        else:
            raise UsageError(f"keystore kind {kind!r}: expected 'pkcs12' or 'pem'")
        if crl:
            write_new_file(root / "ca.crl", self.crl().public_bytes(serialization.Encoding.PEM), mode=PUBLIC_FILE_MODE)
            lines += "crl.file = ca.crl\n"
        if lines:
            with conf.open("a", encoding="utf-8") as file:
                file.write(lines)
        return conf

    def _write_pem_files(self, root: Path, name: str, me: Issued, others: list[x509.Certificate], secret: str) -> Path:
        make_private_directory(root, follow_symlink=True, error=KeystoreError)
        write_new_file(root / f"{name}.key.pem", _private_pem(me.key, secret), mode=PRIVATE_FILE_MODE)
        write_new_file(root / f"{name}.pem", pem(me.certificate), mode=PUBLIC_FILE_MODE)
        write_new_file(root / "certificates.pem", pem(*others), mode=PUBLIC_FILE_MODE)
        text = f"pem.private = {name}.key.pem\npem.public = {name}.pem\npem.certificates = certificates.pem\n"
        if secret:
            text += f"pem.password = {secret}\n"
        conf = root / "keystore.conf"
        write_new_file(conf, text.encode("utf-8"), mode=PRIVATE_FILE_MODE)
        return conf

    def write_ca(self, path: str | Path) -> Path:
        """The CA's certificate as PEM at ``path`` (a new file)."""
        target = Path(path)
        write_new_file(target, pem(self.ca.certificate), mode=PUBLIC_FILE_MODE)
        return target
