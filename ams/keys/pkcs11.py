"""PKCS#11 identities: the private key stays on the token; AMS signs and unwraps through it.

keystore.conf keys (IBM's): ``pkcs11.library`` (the module's .so), ``pkcs11.token`` (token label),
``pkcs11.token_pin``, ``pkcs11.certificate`` (label of the key and certificate on the token), and
``pkcs11.secondary_keystore`` (a PEM bundle or directory with trust anchors and recipients'
certificates; certificates stored on the token are read too). Needs the ``pkcs11`` extra
(python-pkcs11), imported only when a keystore.conf names a token.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, NoReturn

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import Encoding

from ams.errors import KeystoreError


def _library() -> ModuleType:
    try:
        return importlib.import_module("pkcs11")
    except ImportError:
        raise KeystoreError(
            "keystore.conf names a PKCS#11 token, which needs python-pkcs11: pip install 'ams[pkcs11]'"
        ) from None


_SIGN_MECHANISMS = {
    "md5": "MD5_RSA_PKCS",
    "sha1": "SHA1_RSA_PKCS",
    "sha256": "SHA256_RSA_PKCS",
    "sha384": "SHA384_RSA_PKCS",
    "sha512": "SHA512_RSA_PKCS",
}


class TokenRsaPrivateKey(rsa.RSAPrivateKey):
    """An RSA private key on a PKCS#11 token: sign (PKCS#1 v1.5) and decrypt run on the token."""

    def __init__(self, library: ModuleType, session: Any, key: Any, public: rsa.RSAPublicKey, label: str) -> None:
        self._library = library
        self._session = session  # kept open for the key's lifetime
        self._key = key
        self._public = public
        self.label = label

    def __repr__(self) -> str:
        return f"TokenRsaPrivateKey({self.label!r}, {self.key_size} bits, on the token)"

    def close(self) -> None:
        """End the token session (the last one closed logs the user out)."""
        self._session.close()

    def sign(self, data: bytes, padding: padding.AsymmetricPadding, algorithm: Any) -> bytes:
        """Sign ``data`` on the token (RSA PKCS#1 v1.5 with ``algorithm``); KeystoreError for any other scheme.

        Other paddings and prehashed data are refused: AMS signs the data itself with PKCS#1 v1.5.
        """
        if not isinstance(padding, _PKCS1v15) or isinstance(algorithm, Prehashed):
            raise KeystoreError("a PKCS#11 AMS key signs with RSA PKCS#1 v1.5 over the data only")
        mechanism = getattr(self._library.Mechanism, _SIGN_MECHANISMS[algorithm.name])
        return bytes(self._key.sign(bytes(data), mechanism=mechanism))

    def decrypt(self, ciphertext: bytes, padding: padding.AsymmetricPadding) -> bytes:
        """Unwrap RSAES-PKCS1-v1_5 ``ciphertext`` on the token; ValueError when the token cannot.

        Any other padding is a KeystoreError.
        """
        if not isinstance(padding, _PKCS1v15):
            raise KeystoreError("a PKCS#11 AMS key decrypts with RSA PKCS#1 v1.5 only")
        try:
            return bytes(self._key.decrypt(bytes(ciphertext), mechanism=self._library.Mechanism.RSA_PKCS))
        except self._library.PKCS11Error as error:
            raise ValueError(f"the token could not decrypt: {type(error).__name__}") from None

    @property
    def key_size(self) -> int:
        """The modulus size in bits, from the certificate's public key."""
        return self._public.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        """The public key of the certificate on the token, checked to match the private key."""
        return self._public

    def private_numbers(self) -> NoReturn:
        """Always KeystoreError: the private key never leaves the token."""
        raise KeystoreError(f"the private key {self.label!r} never leaves its PKCS#11 token")

    def private_bytes(self, *args: object, **kwargs: object) -> NoReturn:
        """Always KeystoreError: the private key never leaves the token."""
        raise KeystoreError(f"the private key {self.label!r} never leaves its PKCS#11 token")

    def __copy__(self) -> TokenRsaPrivateKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> TokenRsaPrivateKey:
        return self


_PKCS1v15 = padding.PKCS1v15


def open_session(library_path: str, token_label: str, pin: str | None, *, rw: bool = False) -> tuple[ModuleType, Any]:
    """python-pkcs11 and a session logged in to the token labelled ``token_label``."""
    p11 = _library()
    try:
        library = p11.lib(library_path)
        token = library.get_token(token_label=token_label)
        try:
            session = token.open(user_pin=pin, rw=rw)
        except p11.UserAlreadyLoggedIn:
            # another session of this process is logged in already: the login is per application
            session = token.open(rw=rw)
    except p11.NoSuchToken:
        raise KeystoreError(f"no PKCS#11 token labelled {token_label!r} in {library_path} (pkcs11.token)") from None
    except p11.PinIncorrect:
        raise KeystoreError(f"PKCS#11 token {token_label!r}: wrong PIN (pkcs11.token_pin)") from None
    except (OSError, RuntimeError, p11.PKCS11Error) as error:
        raise KeystoreError(f"cannot open PKCS#11 token {token_label!r} with {library_path}: {error}") from None
    return p11, session


def open_token(
    library_path: str, token_label: str, pin: str | None, label: str | None
) -> tuple[TokenRsaPrivateKey, x509.Certificate, list[x509.Certificate]]:
    """The private key and certificate labelled ``label`` on the token, and the token's other certificates."""
    p11, session = open_session(library_path, token_label, pin)
    certificates = []
    for item in session.get_objects({p11.Attribute.CLASS: p11.ObjectClass.CERTIFICATE}):
        certificates.append(
            (item[p11.Attribute.LABEL], x509.load_der_x509_certificate(bytes(item[p11.Attribute.VALUE])))
        )
    keys = [k[p11.Attribute.LABEL] for k in session.get_objects({p11.Attribute.CLASS: p11.ObjectClass.PRIVATE_KEY})]
    chosen = label if label is not None else (keys[0] if len(keys) == 1 else None)
    if chosen is None or chosen not in keys:
        found = ", ".join(repr(k) for k in keys) or "none"
        raise KeystoreError(
            f"PKCS#11 token {token_label!r} has no private key labelled {label!r} (pkcs11.certificate); "
            f"its keys: {found}"
        )
    own = [c for lbl, c in certificates if lbl == chosen]
    if not own:
        raise KeystoreError(f"PKCS#11 token {token_label!r} has no certificate labelled {chosen!r} for its key")
    certificate = own[0]
    public = certificate.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise KeystoreError(f"the certificate {chosen!r} on token {token_label!r} is not RSA; AMS uses RSA keys only")
    key = session.get_key(object_class=p11.ObjectClass.PRIVATE_KEY, label=chosen)
    modulus = int.from_bytes(bytes(key[p11.Attribute.MODULUS]), "big")
    if modulus != public.public_numbers().n:
        raise KeystoreError(
            f"the key {chosen!r} on token {token_label!r} does not belong to the certificate with the same label"
        )
    others = [c for lbl, c in certificates if lbl != chosen]
    return TokenRsaPrivateKey(p11, session, key, public, chosen), certificate, others


def session_for(settings: dict[str, str], pin: str | None, *, rw: bool = False) -> tuple[ModuleType, Any]:
    """A session on the token a keystore.conf's pkcs11.library and pkcs11.token name."""
    if "pkcs11.token" not in settings:
        raise KeystoreError("pkcs11.token (the token's label) is needed with pkcs11.library")
    return open_session(settings["pkcs11.library"], settings["pkcs11.token"], pin, rw=rw)


def store_certificate_for_key(settings: dict[str, str], pin: str | None, certificate: x509.Certificate) -> str | None:
    """Store ``certificate`` on the token beside the private key it belongs to; that key's label, or None
    when no key on the token matches (the certificate is then someone else's)."""
    public = certificate.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        return None
    p11, session = session_for(settings, pin, rw=True)
    with session:
        keys = list(session.get_objects({p11.Attribute.CLASS: p11.ObjectClass.PRIVATE_KEY}))
        for key in keys:
            if int.from_bytes(bytes(key[p11.Attribute.MODULUS]), "big") != public.public_numbers().n:
                continue
            label = key[p11.Attribute.LABEL]
            same = {p11.Attribute.CLASS: p11.ObjectClass.CERTIFICATE, p11.Attribute.LABEL: label}
            if list(session.get_objects(same)):
                raise KeystoreError(
                    f"the token already holds a certificate labelled {label!r} for this key: to renew, delete it "
                    "with the token's tools (pkcs11-tool --delete-object --type cert --label LABEL) and import again"
                )
            session.create_object(
                {
                    p11.Attribute.CLASS: p11.ObjectClass.CERTIFICATE,
                    p11.Attribute.CERTIFICATE_TYPE: p11.CertificateType.X_509,
                    p11.Attribute.LABEL: label,
                    p11.Attribute.ID: key[p11.Attribute.ID],
                    p11.Attribute.TOKEN: True,
                    p11.Attribute.VALUE: certificate.public_bytes(Encoding.DER),
                    p11.Attribute.SUBJECT: certificate.subject.public_bytes(),
                    p11.Attribute.ISSUER: certificate.issuer.public_bytes(),
                }
            )
            return str(label)
    return None


__all__ = ["TokenRsaPrivateKey", "open_session", "open_token", "session_for", "store_certificate_for_key"]
