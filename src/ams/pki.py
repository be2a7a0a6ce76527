"""A throwaway test PKI: a CA and RSA users with the key usages AMS needs.

For demos and tests only: keys are generated on the spot, passwords are random, and the
CA key is written next to its certificate so that tests can issue more certificates.
"""

from __future__ import annotations

import datetime
import os
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID

from ams.dn import DistinguishedName

_ONE_DAY = datetime.timedelta(days=1)


def new_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@attrs.frozen
class Issued:
    """A key and the certificate issued for it."""

    key: rsa.RSAPrivateKey = attrs.field(repr=False)
    certificate: x509.Certificate

    @property
    def dn(self) -> DistinguishedName:
        return DistinguishedName.from_x509(self.certificate.subject)


def _name(dn: str) -> x509.Name:
    return DistinguishedName.parse(dn).to_x509()


def make_ca(
    dn: str = "CN=AMS Test CA,O=AMS,C=GB",
    *,
    key: rsa.RSAPrivateKey | None = None,
    not_before: datetime.datetime | None = None,
    days: int = 3650,
) -> Issued:
    key = key or new_key()
    start = not_before or datetime.datetime.now(datetime.UTC) - _ONE_DAY
    name = _name(dn)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, certificate)


def issue(
    ca: Issued,
    dn: str,
    *,
    key: rsa.RSAPrivateKey | None = None,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    days: int = 825,
    key_usage: x509.KeyUsage | None = None,
    extended_key_usage: Sequence[x509.ObjectIdentifier] | None = (ExtendedKeyUsageOID.EMAIL_PROTECTION,),
    ca_flag: bool = False,
    serial: int | None = None,
    ocsp_url: str | None = None,
) -> Issued:
    """An end-entity certificate for ``dn`` with AMS's key usages (all overridable for tests)."""
    key = key or new_key()
    start = not_before or datetime.datetime.now(datetime.UTC) - _ONE_DAY
    end = not_after or start + datetime.timedelta(days=days)
    usage = key_usage or x509.KeyUsage(
        digital_signature=True,
        content_commitment=True,
        key_encipherment=True,
        data_encipherment=True,
        key_agreement=False,
        key_cert_sign=ca_flag,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(dn))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca_flag, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if extended_key_usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(extended_key_usage)), critical=False)
    if ocsp_url:
        access = x509.AccessDescription(
            x509.oid.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url)
        )
        builder = builder.add_extension(x509.AuthorityInformationAccess([access]), critical=False)
    return Issued(key, builder.sign(ca.key, hashes.SHA256()))


def user_dn(user: str, organisation: str = "AMS", country: str = "GB") -> str:
    return f"CN={user},O={organisation},C={country}"


def write_pem(path: Path, issued: Issued, password: bytes | None = None) -> None:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    path.write_bytes(issued.certificate.public_bytes(serialization.Encoding.PEM))
    key_path = path.with_name(path.name.replace(".pem", ".key.pem"))
    key_path.write_bytes(
        issued.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    os.chmod(key_path, 0o600)


def write_user_keystore(
    directory: Path, user: str, issued: Issued, others: Iterable[x509.Certificate], *, password: str | None = None
) -> Path:
    """``directory/user.p12`` (password-protected) and ``directory/keystore.conf`` pointing at it."""
    directory.mkdir(parents=True, exist_ok=True)
    secret = password or secrets.token_urlsafe(18)
    bundle = pkcs12.serialize_key_and_certificates(
        user.encode(),
        issued.key,
        issued.certificate,
        list(others),
        serialization.BestAvailableEncryption(secret.encode()),
    )
    store = directory / f"{user}.p12"
    store.write_bytes(bundle)
    os.chmod(store, 0o600)
    (directory / f"{user}.pem").write_bytes(issued.certificate.public_bytes(serialization.Encoding.PEM))
    conf = directory / "keystore.conf"
    conf.write_text(
        f"# AMS keystore for {issued.dn} (test PKI; keep this file private)\n"
        f"pkcs12.keystore = {store.name}\n"
        f"pkcs12.keystore_pass = {secret}\n"
        f"pkcs12.certificate = {user}\n",
        encoding="utf-8",
    )
    os.chmod(conf, 0o600)
    return conf


@attrs.frozen
class GeneratedPki:
    """What :func:`init_pki` made: the CA and each user's certificate and keystore.conf."""

    ca: Issued
    users: dict[str, Issued]
    keystores: dict[str, Path]


def init_pki(directory: str | Path, users: Sequence[str], *, organisation: str = "AMS") -> GeneratedPki:
    """``DIR/ca/ca.pem`` and ``ca.key.pem``; per user ``DIR/<user>/keystore.conf`` and a PKCS#12."""
    root = Path(directory)
    (root / "ca").mkdir(parents=True, exist_ok=True)
    ca = make_ca(f"CN=AMS Test CA,O={organisation},C=GB")
    write_pem(root / "ca" / "ca.pem", ca)
    issued = {user: issue(ca, user_dn(user, organisation)) for user in users}
    keystores = {}
    for user, mine in issued.items():
        others = [ca.certificate] + [o.certificate for u, o in issued.items() if u != user]
        keystores[user] = write_user_keystore(root / user, user, mine, others)
    return GeneratedPki(ca, issued, keystores)
