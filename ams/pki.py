"""A throwaway test PKI: a CA and RSA users with the key usages AMS needs.

For demos and tests only: keys are generated on the spot, passwords are random, and the
CA key is written next to its certificate so that tests can issue more certificates.
"""

from __future__ import annotations

import datetime
import re
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID

from ams._files import (
    PRIVATE_FILE_MODE,
    PUBLIC_FILE_MODE,
    check_absent,
    make_private_directory,
    write_new_file,
)
from ams.dn import DistinguishedName
from ams.errors import KeystoreError, UsageError

_ONE_DAY = datetime.timedelta(days=1)


def new_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """A fresh RSA private key of ``bits`` bits, public exponent 65537."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@attrs.frozen
class Issued:
    """A key and the certificate issued for it."""

    key: rsa.RSAPrivateKey = attrs.field(repr=False)
    certificate: x509.Certificate

    @property
    def dn(self) -> DistinguishedName:
        """The certificate's subject."""
        return DistinguishedName.from_x509(self.certificate.subject)


def _name(dn: str | x509.Name) -> x509.Name:
    return dn if isinstance(dn, x509.Name) else DistinguishedName.parse(dn).to_x509()


def certificate_builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: rsa.RSAPublicKey,
    start: datetime.datetime,
    end: datetime.datetime,
    serial: int | None = None,
) -> x509.CertificateBuilder:
    """A certificate's names, key, serial (random by default) and validity, for extensions to follow."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
    )


def make_ca(
    dn: str | x509.Name = "CN=AMS Test CA,O=AMS,C=GB",
    *,
    key: rsa.RSAPrivateKey | None = None,
    not_before: datetime.datetime | None = None,
    days: int = 3650,
    path_length: int | None = None,
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> Issued:
    """A self-signed CA for ``dn``: basicConstraints CA, keyUsage keyCertSign and cRLSign, SHA-256.

    Valid for ``days`` from ``not_before`` (default: a day ago); a new 2048-bit key unless ``key`` is given.
    ``path_length`` goes into its basicConstraints; ``extensions`` adds (extension, critical) pairs
    (a nameConstraints on the anchor itself, say).
    """
    key = key or new_key()
    start = not_before or datetime.datetime.now(datetime.UTC) - _ONE_DAY
    name = _name(dn)
    builder = (
        certificate_builder(name, name, key.public_key(), start, start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
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
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return Issued(key, builder.sign(key, hashes.SHA256()))


def issue(
    ca: Issued,
    dn: str | x509.Name,
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
    path_length: int | None = None,
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> Issued:
    """An end-entity certificate for ``dn`` with AMS's key usages (all overridable for tests).

    ``dn`` is DN text, or an x509 Name taken exactly as it is (spaces, string types). With
    ``ca_flag`` it is a CA certificate instead (keyCertSign, ``path_length`` in its
    basicConstraints). ``extensions`` adds (extension, critical) pairs: a nameConstraints,
    a subjectAltName, or one no one knows.
    """
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
        certificate_builder(_name(dn), ca.certificate.subject, key.public_key(), start, end, serial)
        .add_extension(x509.BasicConstraints(ca=ca_flag, path_length=path_length if ca_flag else None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    if extended_key_usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(extended_key_usage)), critical=False)
    if ocsp_url:
        access = x509.AccessDescription(
            x509.oid.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url)
        )
        builder = builder.add_extension(x509.AuthorityInformationAccess([access]), critical=False)
    return Issued(key, builder.sign(ca.key, hashes.SHA256()))


def user_dn(user: str, organisation: str = "AMS", country: str = "GB") -> str:
    """The DN the test PKI gives ``user``: ``CN=user,O=organisation,C=country``."""
    return f"CN={user},O={organisation},C={country}"


def _key_path(path: Path) -> Path:
    """``x.pem`` -> ``x.key.pem`` (any other name gets ``.key.pem`` appended, never the certificate's own name)."""
    name = path.name
    return path.with_name(name[: -len(".pem")] + ".key.pem" if name.endswith(".pem") else name + ".key.pem")


def write_pem(path: Path, issued: Issued, password: bytes | None = None) -> None:
    """The certificate at ``path`` (mode 0644) and its key next to it as ``*.key.pem`` (mode 0600).

    Both files must not exist yet: an existing file or symbolic link is refused with
    :class:`~ams.errors.UsageError`, never overwritten or followed (see :mod:`ams._files`).
    """
    key_path = _key_path(path)
    check_absent([key_path, path])
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    key = issued.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    write_new_file(key_path, key, mode=PRIVATE_FILE_MODE, error=KeystoreError)
    certificate = issued.certificate.public_bytes(serialization.Encoding.PEM)
    write_new_file(path, certificate, mode=PUBLIC_FILE_MODE, error=KeystoreError)


# a user name becomes a directory, file names, the PKCS#12 friendly name, a keystore.conf line and CN=
_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _check_user_name(user: str) -> None:
    if not _USER_NAME.fullmatch(user):
        raise UsageError(
            f"user name {user!r} cannot be used: expected 1 to 64 letters, digits, '_', '.' or '-', starting with "
            "a letter or digit (it names the user's directory and files and goes into keystore.conf and CN=); "
            "choose another name"
        )


def _keystore_files(directory: Path, user: str) -> tuple[Path, Path, Path]:
    """The PKCS#12, certificate and keystore.conf :func:`write_user_keystore` writes."""
    return directory / f"{user}.p12", directory / f"{user}.pem", directory / "keystore.conf"


def write_user_keystore(
    directory: Path, user: str, issued: Issued, others: Iterable[x509.Certificate], *, password: str | None = None
) -> Path:
    """``directory/user.p12`` (password-protected) and ``directory/keystore.conf`` pointing at it.

    Also ``directory/user.pem``, the user's certificate. ``directory`` is created (mode 0700) if
    missing. The PKCS#12 and keystore.conf (which holds the password) get mode 0600, the
    certificate 0644, from creation on and whatever the umask. None of the three may exist yet:
    an existing file or symbolic link is refused with :class:`~ams.errors.UsageError` before
    anything is written; other file-system failures raise :class:`~ams.errors.KeystoreError`.
    """
    _check_user_name(user)
    store, certificate, conf = _keystore_files(directory, user)
    make_private_directory(directory, follow_symlink=True, error=KeystoreError)
    check_absent([store, certificate, conf])
    secret = password or secrets.token_urlsafe(18)
    bundle = pkcs12.serialize_key_and_certificates(
        user.encode(),
        issued.key,
        issued.certificate,
        list(others),
        serialization.BestAvailableEncryption(secret.encode()),
    )
    write_new_file(store, bundle, mode=PRIVATE_FILE_MODE, error=KeystoreError)
    pem = issued.certificate.public_bytes(serialization.Encoding.PEM)
    write_new_file(certificate, pem, mode=PUBLIC_FILE_MODE, error=KeystoreError)
    text = (
        f"# AMS keystore for {issued.dn} (test PKI; keep this file private)\n"
        f"pkcs12.keystore = {store.name}\n"
        f"pkcs12.keystore_pass = {secret}\n"
        f"pkcs12.certificate = {user}\n"
    )
    write_new_file(conf, text.encode("utf-8"), mode=PRIVATE_FILE_MODE, error=KeystoreError)
    return conf


@attrs.frozen
class GeneratedPki:
    """What :func:`init_pki` made: the CA and each user's certificate and keystore.conf."""

    ca: Issued
    users: dict[str, Issued]
    keystores: dict[str, Path]


def init_pki(directory: str | Path, users: Sequence[str], *, organisation: str = "AMS") -> GeneratedPki:
    """``DIR/ca/ca.pem`` and ``ca.key.pem``; per user ``DIR/<user>/keystore.conf`` and a PKCS#12.

    ``DIR`` may exist (it may be a symbolic link the caller chose); the ``ca`` and user
    directories inside it are created with mode 0700 and must not be symbolic links. Every file
    is created new, with its final mode (0600 for keys, PKCS#12 files and keystore.conf, 0644 for
    certificates): if any of them already exists, nothing is generated or written and
    :class:`~ams.errors.UsageError` names it. Other file-system failures raise
    :class:`~ams.errors.KeystoreError` naming the path.
    """
    for user in users:
        _check_user_name(user)
        if user.lower() == "ca":
            raise UsageError(f"user name {user!r} cannot be used: DIR/ca holds the CA; choose another name")
    root = Path(directory)
    make_private_directory(root, follow_symlink=True, error=KeystoreError)
    make_private_directory(root / "ca", error=KeystoreError)
    for user in users:
        make_private_directory(root / user, error=KeystoreError)
    ca_pem = root / "ca" / "ca.pem"
    # refuse before the (slow) key generation, and before anything is half-written
    check_absent([ca_pem, _key_path(ca_pem), *(path for user in users for path in _keystore_files(root / user, user))])
    ca = make_ca(f"CN=AMS Test CA,O={organisation},C=GB")
    write_pem(ca_pem, ca)
    issued = {user: issue(ca, user_dn(user, organisation)) for user in users}
    keystores = {}
    for user, mine in issued.items():
        others = [ca.certificate] + [o.certificate for u, o in issued.items() if u != user]
        keystores[user] = write_user_keystore(root / user, user, mine, others)
    return GeneratedPki(ca, issued, keystores)
