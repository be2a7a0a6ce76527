"""A new key and a PKCS#10 certificate request for a CA to sign (``ams keys request``).

The key is made in a file (mode 0600 from creation, encrypted unless asked otherwise) or on a
PKCS#11 token (made there, sensitive and not extractable; the request is signed on the token).
The request asks for the key usages AMS needs: digitalSignature and nonRepudiation to sign,
keyEncipherment to receive (``_trust.check_signer_usage``/``check_recipient_usage``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ams._files import PRIVATE_FILE_MODE, PUBLIC_FILE_MODE, check_absent, write_new_file
from ams.dn import DistinguishedName
from ams.errors import DistinguishedNameError, KeystoreError, UsageError
from ams.hazmat import der

MIN_KEY_SIZE = 2048
SHA256_WITH_RSA = "1.2.840.113549.1.1.11"
AMS_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=True,
    key_encipherment=True,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


def subject_name(dn: str) -> x509.Name:
    """The x509 name of ``dn`` (``CN=alice,O=AMS,C=GB``); a UsageError naming the DN when it cannot be read."""
    try:
        return DistinguishedName.parse(dn).to_x509()
    except (ValueError, DistinguishedNameError) as error:
        raise UsageError(
            f"--subject {dn!r} is not a distinguished name ({error}): write it as CN=alice,O=AMS,C=GB"
        ) from None


def check_key_size(bits: int) -> None:
    """AMS keys are RSA of 2048 bits or more, in whole bytes."""
    if bits < MIN_KEY_SIZE or bits % 8 or bits > 16384:
        raise UsageError(f"--key-size {bits}: expected an RSA size from {MIN_KEY_SIZE} to 16384 bits, a multiple of 8")


def request_for_file(
    subject: str, key_path: Path, csr_path: Path, *, bits: int = 3072, password: bytes | None
) -> x509.CertificateSigningRequest:
    """A new RSA key written to ``key_path`` (0600; encrypted when ``password``) and its CSR to ``csr_path``.

    Neither file may exist yet: nothing is overwritten, nothing is written when either exists.
    """
    check_key_size(bits)
    name = subject_name(subject)
    check_absent([key_path, csr_path])
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(name)
        .add_extension(AMS_KEY_USAGE, critical=True)
        .sign(key, hashes.SHA256())
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    write_new_file(key_path, pem, mode=PRIVATE_FILE_MODE, error=KeystoreError)
    write_new_file(csr_path, csr.public_bytes(serialization.Encoding.PEM), mode=PUBLIC_FILE_MODE, error=KeystoreError)
    return csr


def _extension_request() -> bytes:
    """The PKCS#9 extensionRequest attribute asking for :data:`AMS_KEY_USAGE` (critical)."""
    usage = der.tlv(0x30, der.oid("2.5.29.15") + der.tlv(0x01, b"\xff") + der.tlv(0x04, AMS_KEY_USAGE.public_bytes()))
    extensions = der.tlv(0x30, usage)
    return der.tlv(0x30, der.oid("1.2.840.113549.1.9.14") + der.tlv(0x31, extensions))


def signed_request(name: x509.Name, public: rsa.RSAPublicKey, key: rsa.RSAPrivateKey) -> x509.CertificateSigningRequest:
    """A PKCS#10 request (RFC 2986) for ``public`` signed by ``key``, which may live on a token.

    Built by hand because cryptography's builder signs only with its own key objects.
    """
    spki = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    info = der.tlv(0x30, der.integer(0) + name.public_bytes() + spki + der.tlv(0xA0, _extension_request()))
    signature = key.sign(info, padding.PKCS1v15(), hashes.SHA256())
    encoded = der.tlv(0x30, info + der.algorithm_identifier(SHA256_WITH_RSA) + der.tlv(0x03, b"\x00" + signature))
    csr = x509.load_der_x509_csr(encoded)
    if not csr.is_signature_valid:
        raise KeystoreError("the token's signature on the certificate request does not verify with its public key")
    return csr


def generate_on_token(session: Any, p11: Any, label: str, bits: int) -> tuple[Any, rsa.RSAPublicKey]:
    """An RSA key pair made on the token, labelled ``label``: the private half sensitive, never extractable."""
    check_key_size(bits)
    existing = list(session.get_objects({p11.Attribute.CLASS: p11.ObjectClass.PRIVATE_KEY, p11.Attribute.LABEL: label}))
    if existing:
        raise UsageError(f"the token already has a private key labelled {label!r}: choose another --label")
    identifier = label.encode("utf-8")
    public, private = session.generate_keypair(
        p11.KeyType.RSA,
        bits,
        label=label,
        id=identifier,
        store=True,
        private_template={p11.Attribute.SENSITIVE: True, p11.Attribute.EXTRACTABLE: False},
    )
    numbers = rsa.RSAPublicNumbers(
        int.from_bytes(bytes(public[p11.Attribute.PUBLIC_EXPONENT]), "big"),
        int.from_bytes(bytes(public[p11.Attribute.MODULUS]), "big"),
    )
    return private, numbers.public_key()


def request_on_token(
    settings: dict[str, str], pin: str | None, subject: str, label: str, csr_path: Path, *, bits: int = 3072
) -> x509.CertificateSigningRequest:
    """A new key pair made on the keystore.conf's PKCS#11 token, labelled ``label``, and its CSR
    (signed on the token) written to ``csr_path``, which must not exist yet."""
    from ams.keys.pkcs11 import TokenRsaPrivateKey, session_for

    check_key_size(bits)
    name = subject_name(subject)
    check_absent([csr_path])
    p11, session = session_for(settings, pin, rw=True)
    with session:
        private, public = generate_on_token(session, p11, label, bits)
        csr = signed_request(name, public, TokenRsaPrivateKey(p11, session, private, public, label))
    write_new_file(csr_path, csr.public_bytes(serialization.Encoding.PEM), mode=PUBLIC_FILE_MODE, error=KeystoreError)
    return csr


def pem_keystore_conf(key_path: Path, password: str | None) -> tuple[str, Path]:
    """The text of a keystore.conf for a key made by :func:`request_for_file`, and where its certificate will go
    (``alice.key.pem`` -> ``alice.pem``); the CA certificates go to ``trusted/`` beside it."""
    name = key_path.name
    stem = name[: -len(".key.pem")] + ".pem" if name.endswith(".key.pem") else name + ".cert.pem"
    certificate = key_path.with_name(stem)
    lines = [
        "# made by ams keys request: import the CA's certificate, then the one it issued (ams keys import-cert)",
        f"pem.private = {key_path.resolve()}",
        f"pem.public = {certificate.resolve()}",
        f"pem.certificates = {key_path.resolve().parent / 'trusted'}/",
    ]
    if password:
        lines.insert(2, f"pem.password = {password}")
    return "\n".join(lines) + "\n", certificate
