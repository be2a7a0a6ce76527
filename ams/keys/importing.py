"""Certificates and PKCS#12 identities into the store a keystore.conf names (``ams keys import-*``).

Where they go: for PEM keystores the first entry of ``pem.certificates`` (a directory gets one
file per certificate, a file is appended to), and ``pem.public`` for this identity's own
certificate (a CA's reply to ``ams keys request``); for PKCS#11 the first entry of
``pkcs11.secondary_keystore``, and the token itself for its key's certificate; for PKCS#12 the
file itself, rewritten under its password. What is imported must be new (a duplicate is
refused) and, unless it is a CA certificate (a trust anchor, imported with its fingerprint
shown for an out-of-band check), must chain to a CA already trusted there: the same rule the
receiver applies to every signer.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from ams._files import PRIVATE_FILE_MODE, PUBLIC_FILE_MODE, replace_file, write_new_file
from ams._trust import build_chain, is_anchor, is_self_signed
from ams.dn import DistinguishedName
from ams.errors import KeystoreError, SecurityError
from ams.keys.inventory import validity
from ams.keys.keystore import Keystore, fingerprint
from ams.keys.loading import ConfSettings, _is_file, _password, _read_file, load_certificates, read_keystore_conf

_NOT_CERTIFICATES = {
    b"CERTIFICATE REQUEST": "a certificate request (CSR): send it to your CA and import the certificate it returns",
    b"PRIVATE KEY": "a private key: a key comes with its certificate as a PKCS#12 (ams keys import-p12)",
    b"PKCS7": "a PKCS#7 bundle: convert it with openssl pkcs7 -print_certs -in FILE -out FILE.pem",
    b"X509 CRL": "a CRL: name it in keystore.conf as crl.file",
}


def read_pkcs12(path: Path) -> bytes:
    """The bytes of a PKCS#12 file to import; a KeystoreError naming it when it cannot be read."""
    return _read_file(path, "PKCS#12")


def read_certificates(path: Path) -> list[x509.Certificate]:
    """The certificates of a PEM bundle or a DER file; anything else is a KeystoreError saying what it is."""
    data = _read_file(path, "certificate file")
    if b"-----BEGIN" in data:
        for marker, what in _NOT_CERTIFICATES.items():
            found = b"-----BEGIN " + marker in data or (marker == b"PRIVATE KEY" and b"PRIVATE KEY-----" in data)
            if found and b"-----BEGIN CERTIFICATE-----" not in data:
                raise KeystoreError(f"{path} holds {what}; nothing was imported")
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise KeystoreError(
            f"{path} is not an X.509 certificate: expected PEM (-----BEGIN CERTIFICATE-----) or DER, found "
            f"{len(data)} bytes of something else; nothing was imported"
        ) from None


@attrs.define
class Store:
    """The files (or token) a keystore.conf keeps its certificates in."""

    conf: Path
    settings: ConfSettings
    kind: str  # "pem", "pkcs12" or "pkcs11"

    @classmethod
    def of(cls, conf: Path) -> Store:
        """The store ``conf`` names; a KeystoreError when it names none this command can write."""
        settings = read_keystore_conf(conf)
        # the order ams.keys.loading reads them in
        if "pkcs12.keystore" in settings:
            return cls(conf, settings, "pkcs12")
        if any(k.startswith("pem.") for k in settings):
            return cls(conf, settings, "pem")
        if "pkcs11.library" in settings:
            return cls(conf, settings, "pkcs11")
        raise KeystoreError(
            f"{conf}: no keystore to import into: expected pem.private/pem.public/pem.certificates, pkcs12.keystore "
            "or pkcs11.library (jks, jceks and cms keystores are converted first: see the README's keystore.conf)"
        )

    def path(self, key: str) -> Path | None:
        """The file a setting names, relative to the keystore.conf; None when it is not set."""
        value = self.settings.get(key)
        if value is None:
            return None
        candidate = Path(value).expanduser()
        return candidate if candidate.is_absolute() else self.conf.parent / candidate

    def certificate_locations(self) -> list[Path]:
        """``pem.certificates`` or ``pkcs11.secondary_keystore``, in order."""
        key = "pkcs11.secondary_keystore" if self.kind == "pkcs11" else "pem.certificates"
        values = [v.strip() for v in self.settings.get(key, "").split(",") if v.strip()]
        return [p if p.is_absolute() else self.conf.parent / p for p in (Path(v).expanduser() for v in values)]

    def password(self, key: str) -> str | None:
        """A password setting (``<AMS>``-protected ones are refused with the reason)."""
        return _password(self.settings, key, self.conf)

    def certificates(self) -> list[x509.Certificate]:
        """Every certificate the store holds now (missing files count as empty)."""
        found: list[x509.Certificate] = []
        for location in self.certificate_locations():
            if location.exists():
                found.extend(load_certificates(location))
        public = self.path("pem.public") if self.kind == "pem" else None
        if public is not None and _is_file(public):
            found.extend(load_certificates(public))
        if self.kind == "pkcs12":
            store = self.path("pkcs12.keystore")
            if store is not None and _is_file(store):
                _key, own, cas = self._pkcs12(store)
                found.extend([c for c in [own] if c is not None] + cas)
        return found

    def _pkcs12(self, store: Path) -> tuple[object, x509.Certificate | None, list[x509.Certificate]]:
        secret = self.password("pkcs12.keystore_pass")
        try:
            return pkcs12.load_key_and_certificates(
                _read_file(store, "PKCS#12 keystore"), secret.encode() if secret else None
            )
        except ValueError:
            raise KeystoreError(
                f"cannot open PKCS#12 keystore {store}: wrong password (pkcs12.keystore_pass)"
            ) from None


def check_trusted(certificate: x509.Certificate, trusted: Sequence[x509.Certificate], source: str) -> None:
    """``certificate`` chains to a CA among ``trusted`` (or is one, or is self-signed: then it is trusted as
    itself only, as the receiver trusts a self-signed certificate that is in its keystore): a KeystoreError
    naming its issuer otherwise."""
    if is_anchor(certificate) or is_self_signed(certificate):
        return
    try:
        build_chain(Keystore(None, trusted, source=source), certificate, "certificate")
    except SecurityError as error:
        raise KeystoreError(
            f"{error.message} (ams keys import-cert CA.pem, after checking its fingerprint); nothing was imported"
        ) from None


def _label(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    common = str(names[0].value) if names else "certificate"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", common)[:64] + f"-{certificate.serial_number:x}"[:17]


def add_to_locations(store: Store, certificate: x509.Certificate) -> Path:
    """Write ``certificate`` to the first certificate location; the file it went to."""
    locations = store.certificate_locations()
    key = "pkcs11.secondary_keystore" if store.kind == "pkcs11" else "pem.certificates"
    if not locations:
        raise KeystoreError(
            f"{store.conf} names no certificate store ({key}): add '{key} = trusted/' to it and import again"
        )
    target = locations[0]
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    if target.is_dir() or store.settings[key].split(",")[0].strip().endswith("/"):
        target.mkdir(mode=0o755, parents=True, exist_ok=True)
        written = target / f"{_label(certificate)}.pem"
        write_new_file(written, pem, mode=PUBLIC_FILE_MODE, error=KeystoreError)
        return written
    existing = _read_file(target, "certificate bundle") if target.exists() else b""
    separator = b"" if not existing or existing.endswith(b"\n") else b"\n"
    replace_file(target, existing + separator + pem, mode=PUBLIC_FILE_MODE, error=KeystoreError)
    return target


def describe_import(certificate: x509.Certificate, role: str, where: Path | str, now: datetime.datetime) -> str:
    """One line saying what was imported where, with the fingerprint of a trust anchor and any date warning."""
    subject = DistinguishedName.from_x509(certificate.subject)
    line = f"imported {role} {subject} (serial {certificate.serial_number:#x}) into {where}"
    if role != "certificate" and role != "identity":
        line += f"; SHA-256 {fingerprint(certificate).hex(':').upper()}: check it with the CA out of band"
    _, warning = validity(certificate, now)
    return line + (f"; warning: {warning}" if warning else "")


def matches_key(certificate: x509.Certificate, key: object) -> bool:
    """Whether ``certificate`` holds the public half of the RSA private key ``key``."""
    try:
        public = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return False
    return (
        isinstance(key, rsa.RSAPrivateKey)
        and isinstance(public, rsa.RSAPublicKey)
        and public.public_numbers() == key.public_key().public_numbers()
    )


def write_private_pem(path: Path, key: rsa.RSAPrivateKey, password: str | None) -> None:
    """``key`` as PKCS#8 PEM at a new ``path``, mode 0600, encrypted under ``password`` when given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    )
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    write_new_file(path, data, mode=PRIVATE_FILE_MODE, error=KeystoreError)


def _own_key_target(store: Store, certificate: x509.Certificate) -> Path | None:
    """``pem.public`` when ``certificate`` belongs to ``pem.private`` (a CA's reply to a request), else None."""
    private, public = store.path("pem.private"), store.path("pem.public")
    if store.kind != "pem" or private is None or not _is_file(private):
        return None
    secret = store.password("pem.password")
    try:
        key = serialization.load_pem_private_key(
            _read_file(private, "private key"), secret.encode() if secret else None
        )
    except (ValueError, TypeError):
        raise KeystoreError(
            f"cannot load private key {private} to compare it with the certificate: check pem.password"
        ) from None
    if not matches_key(certificate, key):
        return None
    if public is None:
        raise KeystoreError(f"{store.conf}: the certificate is for pem.private's key, but pem.public is not set")
    if public.exists():
        raise KeystoreError(
            f"pem.public {public} already exists: to renew this identity, move it aside and import again; "
            "nothing was imported"
        )
    return public


def import_certificates(store: Store, certificates: Sequence[x509.Certificate], now: datetime.datetime) -> list[str]:
    """Import each certificate (trust anchors first), checked as the module says; a line per certificate."""
    present = store.certificates()
    known = {fingerprint(c) for c in present}
    done: list[str] = []
    for certificate in sorted(certificates, key=lambda c: not is_anchor(c)):
        subject = DistinguishedName.from_x509(certificate.subject)
        if fingerprint(certificate) in known and len(certificates) > 1:
            done.append(f"skipped {subject} (serial {certificate.serial_number:#x}): already in {store.conf}'s store")
            continue
        if fingerprint(certificate) in known:
            raise KeystoreError(
                f"{subject} (serial {certificate.serial_number:#x}) is already in the store of {store.conf}: "
                "nothing was imported for it"
            )
        check_trusted(certificate, present, str(store.conf))
        if store.kind == "pkcs11" and not is_anchor(certificate):
            from ams.keys.pkcs11 import store_certificate_for_key

            label = store_certificate_for_key(store.settings, store.password("pkcs11.token_pin"), certificate)
            if label is not None:
                done.append(describe_import(certificate, "identity", f"the token (label {label!r})", now))
                present.append(certificate)
                known.add(fingerprint(certificate))
                continue
        own = None if is_anchor(certificate) else _own_key_target(store, certificate)
        if own is not None:
            write_new_file(own, certificate.public_bytes(serialization.Encoding.PEM), mode=PUBLIC_FILE_MODE)
            done.append(describe_import(certificate, "identity", own, now))
        elif store.kind == "pkcs12":
            done.append(describe_import(certificate, _role(certificate), _add_to_pkcs12(store, certificate), now))
        else:
            done.append(describe_import(certificate, _role(certificate), add_to_locations(store, certificate), now))
        present.append(certificate)
        known.add(fingerprint(certificate))
    return done


def _role(certificate: x509.Certificate) -> str:
    if is_anchor(certificate):
        return "trusted CA"
    return "self-signed certificate (trusted as itself)" if is_self_signed(certificate) else "certificate"


def _add_to_pkcs12(store: Store, certificate: x509.Certificate) -> Path:
    path = store.path("pkcs12.keystore")
    assert path is not None  # Store.of chose pkcs12 because it is set
    key, own, cas = store._pkcs12(path)
    secret = store.password("pkcs12.keystore_pass")
    if not isinstance(key, rsa.RSAPrivateKey) or own is None or not secret:
        raise KeystoreError(
            f"{path} cannot take more certificates here: it needs its RSA key, certificate and a password "
            "(pkcs12.keystore_pass)"
        )
    _write_pkcs12(path, store.settings.get("pkcs12.certificate"), key, own, [*cas, certificate], secret, replace=True)
    return path


def _write_pkcs12(
    path: Path,
    name: str | None,
    key: rsa.RSAPrivateKey,
    certificate: x509.Certificate,
    cas: Sequence[x509.Certificate],
    password: str,
    *,
    replace: bool,
) -> None:
    friendly = (name or _label(certificate)).encode()
    encryption = serialization.BestAvailableEncryption(password.encode())
    data = pkcs12.serialize_key_and_certificates(friendly, key, certificate, list(cas), encryption)
    (replace_file if replace else write_new_file)(path, data, mode=PRIVATE_FILE_MODE, error=KeystoreError)


def import_pkcs12(store: Store, data: bytes, password: str, now: datetime.datetime) -> list[str]:
    """A PKCS#12 identity (RSA key, certificate, CA chain) as this store's identity; a line per item."""
    try:
        key, certificate, cas = pkcs12.load_key_and_certificates(data, password.encode())
    except ValueError:
        raise KeystoreError(
            "cannot open the PKCS#12: wrong password, or not a PKCS#12 file; nothing was imported"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey) or certificate is None or not matches_key(certificate, key):
        raise KeystoreError(
            "the PKCS#12 holds no RSA private key with its certificate: export the identity with its key "
            "(openssl pkcs12 -export -inkey KEY -in CERT -certfile CA); nothing was imported"
        )
    check_trusted(certificate, [*store.certificates(), *(c for c in cas if is_anchor(c))], "the PKCS#12 and the store")
    subject = DistinguishedName.from_x509(certificate.subject)
    if store.kind == "pkcs12":
        path = store.path("pkcs12.keystore")
        secret = store.password("pkcs12.keystore_pass")
        if path is None or not secret:
            raise KeystoreError(f"{store.conf}: pkcs12.keystore and pkcs12.keystore_pass are needed to import into")
        name = store.settings.get("pkcs12.certificate")
        _write_pkcs12(path, name, key, certificate, cas, secret, replace=False)
        return [describe_import(c, "trusted CA", path, now) for c in cas] + [
            describe_import(certificate, "identity", path, now)
        ]
    if store.kind == "pkcs11":
        raise KeystoreError(
            f"{store.conf} names a PKCS#11 token: a key is made on the token (ams keys request --label) rather "
            f"than imported into it; {subject} was not imported"
        )
    private, public = store.path("pem.private"), store.path("pem.public")
    if private is None or public is None:
        raise KeystoreError(f"{store.conf}: pem.private and pem.public name where the identity goes: set both")
    for existing in (private, public):
        if existing.exists():
            raise KeystoreError(f"{existing} exists already: this keystore has an identity; nothing was imported")
    secret = store.password("pem.password")
    if not secret:
        raise KeystoreError(f"{store.conf}: set pem.password (chmod 600 the file): the key is written encrypted")
    present = {fingerprint(c) for c in store.certificates()}
    new_cas = [c for c in cas if is_anchor(c) and fingerprint(c) not in present]
    done = import_certificates(store, new_cas, now) if new_cas else []
    write_private_pem(private, key, secret)
    write_new_file(public, certificate.public_bytes(serialization.Encoding.PEM), mode=PUBLIC_FILE_MODE)
    return [*done, describe_import(certificate, "identity", f"{private} and {public}", now)]
