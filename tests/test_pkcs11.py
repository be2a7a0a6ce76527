"""PKCS#11 identities against a real SoftHSM2 token: the private key never leaves the token."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import ams
from ams.pki import issue
from tests.conftest import Pki, store

pkcs11 = pytest.importorskip("pkcs11", reason="python-pkcs11 is not installed (the pkcs11 extra)")
LIBRARIES = ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"]
LIBRARY = next((path for path in LIBRARIES if os.path.exists(path)), None)
pytestmark = pytest.mark.skipif(
    LIBRARY is None or shutil.which("softhsm2-util") is None, reason="SoftHSM2 is not installed (Debian softhsm2)"
)
PIN = "4321"


@pytest.fixture(scope="module")
def token(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh SoftHSM2 token with an RSA key made on the token and its certificate beside it."""
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    (root / "softhsm2.conf").write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n")
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(root / "softhsm2.conf")
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", "ams-token", "--pin", PIN, "--so-pin", "8765"],
        check=True,
        capture_output=True,
    )
    library = pkcs11.lib(LIBRARY)
    with library.get_token(token_label="ams-token").open(user_pin=PIN, rw=True) as session:
        public, _private = session.generate_keypair(
            pkcs11.KeyType.RSA,
            2048,
            label="hsm-user",
            id=b"\x01",
            store=True,
            private_template={pkcs11.Attribute.SENSITIVE: True, pkcs11.Attribute.EXTRACTABLE: False},
        )
        numbers = rsa.RSAPublicNumbers(
            int.from_bytes(bytes(public[pkcs11.Attribute.PUBLIC_EXPONENT]), "big"),
            int.from_bytes(bytes(public[pkcs11.Attribute.MODULUS]), "big"),
        )
        # a certificate for the token's key, signed by the test CA: only the public key leaves the token
        holder = _PublicOnly(numbers.public_key())
        certificate = issue(pki.ca, "CN=hsm-user,O=AMS,C=GB", key=holder).certificate  # type: ignore[arg-type]
        session.create_object(
            {
                pkcs11.Attribute.CLASS: pkcs11.ObjectClass.CERTIFICATE,
                pkcs11.Attribute.CERTIFICATE_TYPE: pkcs11.CertificateType.X_509,
                pkcs11.Attribute.LABEL: "hsm-user",
                pkcs11.Attribute.ID: b"\x01",
                pkcs11.Attribute.TOKEN: True,
                pkcs11.Attribute.VALUE: certificate.public_bytes(serialization.Encoding.DER),
                pkcs11.Attribute.SUBJECT: certificate.subject.public_bytes(),
                pkcs11.Attribute.ISSUER: certificate.issuer.public_bytes(),
            }
        )
    others = root / "others.pem"
    others.write_bytes(
        b"".join(
            c.public_bytes(serialization.Encoding.PEM)
            for c in [pki.ca.certificate, *(u.certificate for u in pki.users.values())]
        )
    )
    conf = root / "keystore.conf"
    conf.write_text(
        f"pkcs11.library = {LIBRARY}\npkcs11.token = ams-token\npkcs11.token_pin = {PIN}\n"
        f"pkcs11.certificate = hsm-user\npkcs11.secondary_keystore = {others}\n"
    )
    os.chmod(conf, 0o600)
    yield conf
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


class _PublicOnly:
    """Just enough of a key for CertificateBuilder.public_key(): the token's public half."""

    def __init__(self, public: rsa.RSAPublicKey) -> None:
        self._public = public

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public


def test_token_identity_signs_and_decrypts_on_the_token(token: Path, pki: Pki) -> None:
    with ams.Keystore.from_conf(token) as keystore:
        _sign_and_decrypt(keystore, pki)


def _sign_and_decrypt(keystore: ams.Keystore, pki: Pki) -> None:
    assert keystore.identity is not None and str(keystore.identity.dn) == "CN=hsm-user,O=AMS,C=GB"
    with pytest.raises(ams.KeystoreError, match="never leaves its PKCS#11 token"):
        keystore.identity.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    policies = store(
        f'setmqspl -m QM -p OUT.Q -s SHA256 -e AES256 -r "{pki.dn("bob")}"',
        'setmqspl -m QM -p IN.Q -s SHA512 -e AES256 -r "CN=hsm-user,O=AMS,C=GB"',
    )
    hsm = ams.Protector(keystore, policies)
    sent = hsm.protect("OUT.Q", b"signed on the token")
    assert ams.Protector(pki.keystore("bob"), policies).unprotect("OUT.Q", sent).signer_dn == keystore.identity.dn
    alice = pki.keystore("alice")
    alice_knows_hsm = ams.Keystore(alice.identity, [*alice.certificates, keystore.identity.certificate])
    incoming = ams.Protector(alice_knows_hsm, policies).protect("IN.Q", b"for the token")
    assert hsm.unprotect("IN.Q", incoming).body == b"for the token"
    assert hsm.stats.rsa_private_operations == 1
    with pytest.raises(ams.NotARecipientError):
        hsm.unprotect("OUT.Q", sent)  # encrypted for bob, not for the token


def test_the_key_on_the_token_is_not_extractable(token: Path) -> None:
    library = pkcs11.lib(LIBRARY)
    with library.get_token(token_label="ams-token").open(user_pin=PIN) as session:
        key = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label="hsm-user")
        assert key[pkcs11.Attribute.SENSITIVE] and not key[pkcs11.Attribute.EXTRACTABLE]


def test_token_errors_name_what_to_fix(token: Path, tmp_path: Path) -> None:
    text = token.read_text()
    for old, new, match in [
        (f"pkcs11.token_pin = {PIN}", "pkcs11.token_pin = 0000", "wrong PIN"),
        ("pkcs11.token = ams-token", "pkcs11.token = nowhere", "no PKCS#11 token labelled 'nowhere'"),
        ("pkcs11.certificate = hsm-user", "pkcs11.certificate = someone", "no private key labelled 'someone'"),
    ]:
        bad = tmp_path / "bad.conf"
        bad.write_text(text.replace(old, new))
        os.chmod(bad, 0o600)
        with pytest.raises(ams.KeystoreError, match=match):
            ams.Keystore.from_conf(bad)
