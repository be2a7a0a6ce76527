"""PKCS#11 identities against a real SoftHSM2 token: the private key never leaves the token."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

import ams
import ams.errors
from tests.conftest import Pki, store
from tests.softhsm import LIBRARY, PIN, requires_softhsm

pkcs11 = pytest.importorskip("pkcs11", reason="python-pkcs11 is not installed (the pkcs11 extra)")
pytestmark = requires_softhsm


def test_token_identity_signs_and_decrypts_on_the_token(token: Path, pki: Pki) -> None:
    with ams.Keystore.from_conf(token) as keystore:
        _sign_and_decrypt(keystore, pki)


def _sign_and_decrypt(keystore: ams.Keystore, pki: Pki) -> None:
    assert keystore.identity is not None and str(keystore.identity.dn) == "CN=hsm-user,O=AMS,C=GB"
    with pytest.raises(ams.errors.KeystoreError, match="never leaves its PKCS#11 token"):
        keystore.identity.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    policies = store(
        f'setmqspl -m QM -p OUT.Q -s SHA256 -e AES256 -r "{pki.dn("bob")}"',
        'setmqspl -m QM -p IN.Q -s SHA512 -e AES256 -r "CN=hsm-user,O=AMS,C=GB"',
    )
    hsm = ams.Protector(keystore, policies)
    sent = hsm.protect("OUT.Q", b"signed on the token").body
    assert ams.Protector(pki.keystore("bob"), policies).unprotect("OUT.Q", sent).signer_dn == keystore.identity.dn
    alice = pki.keystore("alice")
    alice_knows_hsm = ams.Keystore(alice.identity, [*alice.certificates, keystore.identity.certificate])
    incoming = ams.Protector(alice_knows_hsm, policies).protect("IN.Q", b"for the token").body
    assert hsm.unprotect("IN.Q", incoming).body == b"for the token"
    assert hsm.stats.rsa_private_operations == 1
    with pytest.raises(ams.errors.NotARecipientError):
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
        with pytest.raises(ams.errors.KeystoreError, match=match):
            ams.Keystore.from_conf(bad)
