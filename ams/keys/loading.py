"""Loading keystores: IBM's keystore.conf, PKCS#12, PEM and PKCS#11 tokens (the file edge of ``ams.keys``).

``Keystore.from_conf``, ``from_pkcs12`` and ``from_pem`` call these. Every failure is a
:class:`~ams.errors.KeystoreError` that names the file (and the keystore.conf line), never a
password or a line that may hold one.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from ams._files import read_bounded
from ams.dn import DistinguishedName
from ams.errors import KeystoreError
from ams.keys import hygiene
from ams.keys.keystore import Identity, Keystore
from ams.keys.revocation_settings import RevocationSettings
from ams.limits import DEFAULT_LIMITS


def _subject(certificate: x509.Certificate) -> str:
    """A certificate's subject for an error text, even when cryptography cannot read it."""
    try:
        return str(DistinguishedName.from_x509(certificate.subject))
    except ValueError:
        return "(a certificate whose subject cannot be read)"


def _read_file(path: str | Path, what: str) -> bytes:
    """A file's bytes, bounded (:attr:`ams.Limits.file_size`); an unreadable file, a FIFO, a device,
    one too large, or a path no file can have, is a KeystoreError naming it."""
    return read_bounded(path, what, limit=DEFAULT_LIMITS.file_size, error=KeystoreError)


def _rsa_identity(key: object, certificate: x509.Certificate, source: str) -> Identity:
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeystoreError(
            f"{source}: the private key for {_subject(certificate)} is "
            f"{type(key).__name__.lstrip('_')}, but AMS supports RSA keys only: issue an RSA "
            "certificate (2048 bits or more) for this identity"
        )
    try:
        public = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise KeystoreError(
            f"{source}: the public key of the certificate {_subject(certificate)} cannot be read: AMS needs an RSA "
            "certificate (2048 bits or more) for this identity"
        ) from None
    if not isinstance(public, rsa.RSAPublicKey) or public.public_numbers() != key.public_key().public_numbers():
        raise KeystoreError(
            f"{source}: the private key does not belong to the certificate "
            f"{_subject(certificate)}: check that the key and certificate "
            "files are a pair"
        )
    return Identity(certificate, key)


def load_pkcs12(
    path: str | Path, password: str | bytes | None, *, certificate: str | None = None, strict: bool = False
) -> Keystore:
    """A PKCS#12 file with one private key, its certificate and other certificates.

    Its CA certificates are trust anchors: a file (or directory holding it) that another local
    user may write or owns warns (:class:`~ams.keys.hygiene.PlantableTrustWarning`); ``strict``
    refuses it.
    """
    source = str(path)
    trust = hygiene.check_trusted(
        [Path(path)], "the PKCS#12 keystore, whose CA certificates are trust anchors,", strict=strict
    )
    data = _read_file(path, "PKCS#12 keystore")
    secret = password.encode() if isinstance(password, str) else password
    try:
        bundle = pkcs12.load_pkcs12(data, secret)
    except (ValueError, TypeError):
        raise KeystoreError(
            f"cannot open PKCS#12 keystore {source!r}: wrong password (pkcs12.keystore_pass) or not a PKCS#12 file"
        ) from None
    except UnsupportedAlgorithm:
        raise KeystoreError(
            f"cannot open PKCS#12 keystore {source!r}: it is protected or holds a key with an algorithm this "
            "cryptography library does not support: re-export it with AES (for example openssl pkcs12 -export "
            "-keypbe AES-256-CBC -certpbe AES-256-CBC)"
        ) from None
    if bundle.key is None or bundle.cert is None:
        raise KeystoreError(
            f"PKCS#12 keystore {source!r} holds no private key with its certificate: export the "
            "identity with its key (for example openssl pkcs12 -export -inkey KEY -in CERT)"
        )
    names = [c.friendly_name.decode("utf-8", "replace") for c in [bundle.cert] if c.friendly_name]
    if certificate is not None and certificate not in names:
        found = ", ".join(repr(n) for n in names) or "no friendly name"
        raise KeystoreError(
            f"PKCS#12 keystore {source!r} has no private key labelled {certificate!r} "
            f"(pkcs12.certificate); its key is labelled {found}"
        )
    identity = _rsa_identity(bundle.key, bundle.cert.certificate, source)
    keystore = _assembled(identity, [c.certificate for c in bundle.additional_certs], source)
    keystore.findings = trust
    return keystore


def _assembled(identity: Identity | None, certificates: list[x509.Certificate], source: str) -> Keystore:
    try:
        return Keystore(identity, certificates, source=source)
    except ValueError as error:  # cryptography reads a certificate's names only when asked
        raise KeystoreError(f"{source}: a certificate it holds cannot be read: {error}") from None


def load_pem(
    *,
    private: str | Path | None,
    public: str | Path | None,
    password: str | bytes | None = None,
    certificates: Sequence[str | Path] = (),
    strict: bool = False,
) -> Keystore:
    """PEM files: a private key, its certificate, and bundles or directories of others.

    The certificate files and directories are trusted: one (or a directory holding it) that
    another local user may write or owns warns (:class:`~ams.keys.hygiene.PlantableTrustWarning`);
    ``strict`` refuses it.
    """
    trust = hygiene.check_trusted([Path(public)] if public is not None else [], "the certificate file", strict=strict)
    trust += hygiene.check_trusted([Path(c) for c in certificates], "the trusted certificates", strict=strict)
    identity = None
    if private is not None or public is not None:
        if private is None or public is None:
            raise KeystoreError("PEM keystore needs both pem.private (the key) and pem.public (its certificate)")
        secret = password.encode() if isinstance(password, str) else password
        data = _read_file(private, "private key")
        try:
            key = serialization.load_pem_private_key(data, secret)
        except (ValueError, TypeError) as error:
            raise KeystoreError(f"cannot load private key {str(private)!r}: {error} (check pem.password)") from None
        except UnsupportedAlgorithm:
            raise KeystoreError(
                f"cannot load private key {str(private)!r}: its key type or encryption is not supported; AMS "
                "needs an RSA key (encrypt it with openssl pkcs8 -topk8 -v2 aes-256-cbc)"
            ) from None
        own = load_certificates(public)
        if not own:
            raise KeystoreError(f"no certificate in {str(public)!r} (pem.public)")
        identity = _rsa_identity(key, own[0], str(private))
        extra = own[1:]
    else:
        extra = []
    others = list(extra)
    for location in certificates:
        others.extend(load_certificates(location))
    keystore = _assembled(identity, others, str(private or (certificates[0] if certificates else "pem")))
    keystore.findings = trust
    return keystore


def load_conf(path: str | Path | None = None, *, strict: bool = False) -> Keystore:
    """IBM's keystore.conf (default ``$MQS_KEYSTORE_CONF``, else ``~/.mqs/keystore.conf``).

    Unencrypted or group/world-readable key files and a readable plain-text password warn
    (``AmsSecurityWarning``); ``strict`` refuses them.
    """
    conf_path = Path(path) if path is not None else default_conf_path()
    if path is None and not conf_path.exists():
        raise KeystoreError(missing_default_conf())
    settings = read_keystore_conf(conf_path)
    check_keys(settings)
    base = conf_path.parent

    def resolve(value: str) -> Path:
        candidate = Path(os.path.expanduser(value))
        return candidate if candidate.is_absolute() else base / candidate

    has_password = any(k.endswith(("_pass", ".password", "token_pin")) for k in settings)
    findings = hygiene.check_conf_file(conf_path, has_password, strict=strict)
    findings += _trust_findings(settings, conf_path, resolve, strict)
    keystore = _from_settings(settings, conf_path, resolve, strict, findings)
    keystore.findings = [*findings, *keystore.findings]
    keystore.settings = {k: v for k, v in settings.items() if not k.endswith(("_pass", "password", "pin"))}
    try:
        keystore.revocation = RevocationSettings.from_conf(settings, base)
    except KeystoreError as error:
        key = error.message.split(" ", 1)[0]
        raise KeystoreError(f"{settings.where(key)}: {error.message}") from None
    except (ValueError, TypeError):  # a safety net: RevocationSettings names the key itself where it can
        raise KeystoreError(
            f"{conf_path}: the revocation settings (revocation.fail, crl.file, ocsp.*) cannot be read: check "
            "their values against the README's keystore.conf section"
        ) from None
    return keystore


# the settings that name what this keystore trusts: CA certificates (anchors) and CRLs
# (load_pkcs12 and load_pem check the keystore and certificate files they are given)
_TRUSTED_SETTINGS = {
    "pkcs11.secondary_keystore": "the trusted certificates (pkcs11.secondary_keystore)",
    "pkcs11.library": "the PKCS#11 library (pkcs11.library), which runs inside this process,",
}


def _trust_findings(
    settings: dict[str, str], conf_path: Path, resolve: Callable[[str], Path], strict: bool
) -> list[str]:
    """Trust a local user could plant: keystore.conf itself (it names everything trusted), the
    files and directories of certificates, and the CRLs, each with the directory holding it."""
    findings = hygiene.check_trusted([conf_path], "keystore.conf, which names every trusted file,", strict=strict)
    for key, what in _TRUSTED_SETTINGS.items():
        locations = [resolve(v.strip()) for v in settings.get(key, "").split(",") if v.strip()]
        findings += hygiene.check_trusted(locations, what, strict=strict)
    crl_files = [resolve(v.strip()) for v in settings.get("crl.file", "").split(",") if v.strip()]
    findings += hygiene.check_trusted(crl_files, "the CRL file (crl.file)", strict=strict)
    return findings


def _from_settings(
    settings: dict[str, str],
    conf_path: Path,
    resolve: Callable[[str], Path],
    strict: bool,
    findings: list[str],
) -> Keystore:
    for prefix in ("pkcs12", "jks", "jceks"):
        if f"{prefix}.keystore" in settings:
            store = resolve(settings[f"{prefix}.keystore"])
            password = _password(settings, f"{prefix}.keystore_pass", conf_path)
            if prefix != "pkcs12":
                _refuse_java_keystore(store, prefix)
                key_pass = _password(settings, f"{prefix}.key_pass", conf_path)
                if key_pass is not None and key_pass != password:
                    raise KeystoreError(
                        f"{conf_path}: {prefix}.key_pass differs from {prefix}.keystore_pass; a PKCS#12 keystore "
                        "has one password here: re-export it with the key and the store under the same password"
                    )
            findings += hygiene.check_key_file(store, encrypted=bool(password), strict=strict)
            return load_pkcs12(store, password, certificate=settings.get(f"{prefix}.certificate"), strict=strict)
    if "pem.private" in settings or "pem.public" in settings or "pem.certificates" in settings:
        private = resolve(settings["pem.private"]) if "pem.private" in settings else None
        if private is not None and _is_file(private):
            findings += hygiene.check_key_file(
                private, encrypted=hygiene.pem_key_is_encrypted(_read_file(private, "private key")), strict=strict
            )
        return load_pem(
            private=private,
            public=resolve(settings["pem.public"]) if "pem.public" in settings else None,
            password=_password(settings, "pem.password", conf_path),
            certificates=[resolve(v.strip()) for v in settings.get("pem.certificates", "").split(",") if v.strip()],
            strict=strict,
        )
    if "pkcs11.library" in settings:
        from ams.keys.pkcs11 import open_token

        for required in ("pkcs11.token",):
            if required not in settings:
                raise KeystoreError(f"{conf_path}: {required} is needed with pkcs11.library")
        key, certificate, on_token = open_token(
            settings["pkcs11.library"],
            settings["pkcs11.token"],
            _password(settings, "pkcs11.token_pin", conf_path),
            settings.get("pkcs11.certificate"),
        )
        others = list(on_token)
        for location in settings.get("pkcs11.secondary_keystore", "").split(","):
            if location.strip():
                others.extend(load_certificates(resolve(location.strip())))
        return Keystore(Identity(certificate, key), others, source=f"PKCS#11 token {settings['pkcs11.token']}")
    if "cms.keystore" in settings:
        raise KeystoreError(
            f"{conf_path}: cms.keystore (a GSKit .kdb) cannot be read here: export the identity and "
            "certificates to PKCS#12 with runmqakm -cert -export -db KEY.kdb -stashed -label LABEL "
            "-target KEY.p12 -target_type pkcs12 -target_pw PASSWORD, then use pkcs12.keystore"
        )
    raise KeystoreError(f"{conf_path}: no keystore configured: expected pkcs12.keystore or pem.private/pem.public")


def _refuse_java_keystore(path: Path, kind: str) -> None:
    """jks./jceks. keystores are read when the file is really PKCS#12 (keytool's default since Java 9)."""
    magic = _read_file(path, f"{kind} keystore")[:4]
    if magic in (b"\xfe\xed\xfe\xed", b"\xce\xce\xce\xce"):
        raise KeystoreError(
            f"{path} is a genuine {'JKS' if magic[0] == 0xFE else 'JCEKS'} keystore, which Python cannot read: convert "
            f"it with keytool -importkeystore -srckeystore {path} -srcstoretype {kind} -destkeystore "
            f"{path.with_suffix('.p12')} -deststoretype pkcs12, then point {kind}.keystore (or pkcs12.keystore) at it"
        )


def default_conf_path() -> Path:
    """The keystore.conf read when none is named: ``$MQS_KEYSTORE_CONF`` or ``~/.mqs/keystore.conf`` (format.md §9)."""
    override = os.environ.get("MQS_KEYSTORE_CONF")
    if override:
        return Path(override)
    return Path.home() / ".mqs" / "keystore.conf"


def default_conf_tried() -> str:
    """The places a keystore.conf is looked for when none is named, and what was found there."""
    override = os.environ.get("MQS_KEYSTORE_CONF")
    if override:
        return f"$MQS_KEYSTORE_CONF ({override}), which does not exist"
    return f"$MQS_KEYSTORE_CONF (not set), then {Path.home() / '.mqs' / 'keystore.conf'}, which does not exist"


def missing_default_conf() -> str:
    """Why no keystore.conf was found where none was named: every path tried, and how to name one."""
    return (
        f"no keystore.conf was named and none was found: tried {default_conf_tried()}. Name one with "
        f"--keystore-conf FILE (Keystore.from_conf(FILE)), set MQS_KEYSTORE_CONF=FILE, or create "
        f"{default_conf_path()}; `ams pki init DIR` makes test identities, each with DIR/<user>/keystore.conf"
    )


# every key this library reads, and IBM's keys it accepts without using them (IBM's runtime reads
# them: proxies, caches, LDAP CRLs); anything else is a typo until shown otherwise, since a
# misspelt key is silently a missing one (ocsp.enabel would switch revocation checks off)
KNOWN_KEYS = frozenset(
    [f"{kind}.{key}" for kind in ("pkcs12", "jks", "jceks") for key in ("keystore", "keystore_pass", "certificate")]
    + ["jks.key_pass", "jceks.key_pass", "pem.private", "pem.public", "pem.password", "pem.certificates"]
    + ["pkcs11.library", "pkcs11.token", "pkcs11.token_pin", "pkcs11.certificate", "pkcs11.secondary_keystore"]
    + ["cms.keystore", "cms.certificate", "crl.file", "revocation.fail"]
    + [f"ocsp.{key}" for key in ("enable", "url", "nonce", "timeout", "max_response_size", "max_age")]
)
IBM_ONLY_KEYS = frozenset(
    {
        "jks.provider", "jceks.provider", "ocsp.http.get", "ocsp.cache_size", "ocsp.unknown", "ocsp.check",
        "ocsp.http.proxy.host", "ocsp.http.proxy.port", "ocsp.nonce.generation", "ocsp.nonce.check", "ocsp.nonce.size",
        "crl.enable", "crl.cdp", "crl.ldap.host", "crl.ldap.port", "crl.ldap.user", "crl.ldap.pass",
        "crl.ldap.cache.lifetime", "crl.ldap.version", "crl.http.proxy.host", "crl.http.proxy.port",
    }
)  # fmt: skip


_KEY_NAME = re.compile(r"[A-Za-z0-9_]{1,40}(?:\.[A-Za-z0-9_]{1,40}){0,4}")


def check_keys(settings: ConfSettings) -> None:
    """KeystoreError for the first key that is neither this library's nor IBM's, naming its line and the
    closest known key."""
    for key in settings:
        if key in KNOWN_KEYS or key in IBM_ONLY_KEYS:
            continue
        if not _KEY_NAME.fullmatch(key):  # not shown: text before '=' that is no key name may be a password
            raise KeystoreError(
                f"{settings.where(key)}: the text before '=' is not a key name (letters, digits, '.', '_'; not shown, "
                "it may hold a password): expected 'key = value' with a key such as pkcs12.keystore"
            )
        close = difflib.get_close_matches(key, sorted(KNOWN_KEYS), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(sorted(KNOWN_KEYS))}."
        raise KeystoreError(
            f"{settings.where(key)}: unknown key {key!r}: {hint} Correct it or remove it (a misspelt key would "
            "silently be a missing one)"
        )


class ConfSettings(dict[str, str]):
    """keystore.conf settings, with the line each came from (for errors that name file and line)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.lines: dict[str, int] = {}

    def where(self, key: str) -> str:
        """``file:line`` of the line that set ``key``, or the file alone when no line did."""
        return f"{self.path}:{self.lines[key]}" if key in self.lines else str(self.path)


_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE_BREAK_BYTES = re.compile(rb"\r\n|\r|\n")
_BOM = "\ufeff"


def read_keystore_conf(path: Path) -> ConfSettings:
    """``key = value`` lines; prefixes case-insensitive; a duplicate key is an error.

    Whatever the file holds, only KeystoreError is raised; no error quotes a line (it may hold a
    password).
    """
    data = _read_file(path, "keystore.conf")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        where = len(_LINE_BREAK_BYTES.split(data[: error.start]))
        raise KeystoreError(
            f"{path}:{where}: not UTF-8 text (byte {error.start + 1} of the file cannot be decoded; the line is not "
            "shown, it may hold a password): save keystore.conf as UTF-8"
        ) from None
    settings = ConfSettings(path)
    for number, raw in enumerate(_LINE_BREAK.split(text.removeprefix(_BOM)), start=1):
        if "\x00" in raw:
            raise KeystoreError(f"{path}:{number}: the line holds a NUL character; keystore.conf is text: remove it")
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, equals, value = line.partition("=")
        if not equals:
            # the line is not echoed: it may hold a password written with the wrong separator
            raise KeystoreError(f"{path}:{number}: expected 'key = value', found a line without '='")
        key = key.strip()
        prefix, dot, rest = key.partition(".")
        key = f"{prefix.lower()}{dot}{rest}" if dot else key.lower()
        if key in settings:
            raise KeystoreError(f"{path}:{number}: duplicate key {key!r}: IBM treats this as an error; keep one")
        settings[key] = value.strip()
        settings.lines[key] = number
    return settings


def _password(settings: dict[str, str], key: str, path: Path) -> str | None:
    value = settings.get(key)
    if value is not None and value.startswith("<AMS>"):
        raise KeystoreError(
            f"{path}: {key} is an <AMS>-protected password, which only IBM's runtime can read: "
            "put the password in plain text in a file only this user can read (chmod 600)"
        )
    return value


def load_certificates(location: str | Path) -> list[x509.Certificate]:
    """Certificates from a PEM bundle, a DER file, or every such file in a directory."""
    path = Path(location)
    try:
        is_directory = path.is_dir()
        children = sorted(path.iterdir()) if is_directory else []
    except OSError as error:
        raise KeystoreError(f"cannot read certificates from {str(path)!r}: {error.strerror or error}") from None
    if is_directory:
        found: list[x509.Certificate] = []
        for child in children:
            if _is_file(child) and child.suffix.lower() in (".pem", ".crt", ".cer", ".der"):
                found.extend(load_certificates(child))
        return found
    data = _read_file(path, "certificates from")
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data) if b"CERTIFICATE-----" in data else []
        return [x509.load_der_x509_certificate(data)]
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise KeystoreError(f"cannot parse certificates in {str(path)!r}: {error}") from None


def _is_file(path: Path) -> bool:
    """Path.is_file(), False too where it would raise (a name too long, a directory not searchable)."""
    try:
        return path.is_file()
    except OSError:
        return False
