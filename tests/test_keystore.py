"""Keystores: keystore.conf, PKCS#12 and PEM, recipient lookup by DN, RSA only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import ams
import ams.errors
from ams.pki import init_pki, issue, write_user_keystore
from tests.conftest import Pki


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("pki")
    return root, init_pki(root, ["alice", "bob"])


def test_pki_init_writes_a_working_keystore_conf(made: tuple[Path, object]) -> None:
    root, _ = made
    keystore = ams.Keystore.from_conf(root / "alice" / "keystore.conf")
    assert keystore.identity is not None and str(keystore.identity.dn) == "CN=alice,O=AMS,C=GB"
    bob = keystore.recipient(ams.DistinguishedName.parse("CN=bob,O=AMS,C=GB"))
    assert str(ams.DistinguishedName.from_x509(bob.subject)) == "CN=bob,O=AMS,C=GB"
    loose = ams.DistinguishedName.parse("cn=BOB,o=ams,c=gb")  # a recipient DN must match exactly
    with pytest.raises(ams.errors.RecipientNotFoundError, match="differ only in case"):
        keystore.recipient(loose)
    assert keystore.recipient(loose, strict=False) == bob
    assert (root / "ca" / "ca.pem").is_file() and (root / "ca" / "ca.key.pem").is_file()
    assert os.stat(root / "alice" / "alice.p12").st_mode & 0o077 == 0
    assert "keystore_pass" not in repr(keystore) and "pass" not in repr(keystore.identity)


def test_environment_variable_names_the_default(made: tuple[Path, object], monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = made
    monkeypatch.setenv("MQS_KEYSTORE_CONF", str(root / "bob" / "keystore.conf"))
    assert str(ams.Keystore.from_conf().identity.dn) == "CN=bob,O=AMS,C=GB"  # type: ignore[union-attr]
    monkeypatch.delenv("MQS_KEYSTORE_CONF")
    monkeypatch.setenv("HOME", str(root / "nowhere"))
    with pytest.raises(ams.errors.KeystoreError) as caught:
        ams.Keystore.from_conf()
    # every place tried, and how to name one
    home = root / "nowhere" / ".mqs" / "keystore.conf"
    assert f"tried $MQS_KEYSTORE_CONF (not set), then {home}, which does not exist" in caught.value.message
    assert "--keystore-conf FILE" in caught.value.message and "ams pki init DIR" in caught.value.message
    monkeypatch.setenv("MQS_KEYSTORE_CONF", str(root / "typo" / "keystore.conf"))
    with pytest.raises(ams.errors.KeystoreError, match=r"tried \$MQS_KEYSTORE_CONF \(.*typo/keystore\.conf\), which"):
        ams.Keystore.from_conf()


def test_the_cli_names_the_default_places_it_tried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ams.cli.main import main

    monkeypatch.delenv("MQS_KEYSTORE_CONF", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "q.spl").write_text("setmqspl -m QM -p Q -s SHA256 -a CN=alice\n", encoding="utf-8")
    (tmp_path / "in").write_bytes(b"x")
    common = ["--policies", str(tmp_path / "policies"), "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out")]
    assert main(["protect", "-p", "Q", *common]) == 2
    error = capsys.readouterr().err
    assert f"tried $MQS_KEYSTORE_CONF (not set), then {tmp_path}/.mqs/keystore.conf, which does not exist" in error
    assert "no keystore.conf has no identity" not in error
    # twin: a queue without a policy needs no keystore at all
    assert main(["protect", "-p", "OTHER.Q", *common]) == 0


def test_an_unknown_key_is_named_with_the_closest_known_one(made: tuple[Path, object], tmp_path: Path) -> None:
    root, _ = made
    store = root / "alice" / "alice.p12"
    typo = _conf(tmp_path / "typo.conf", f"pkcs12.keystor = {store}\npkcs12.keystore_pass = x\n")
    with pytest.raises(
        ams.errors.KeystoreError, match=r"typo\.conf:1: unknown key 'pkcs12.keystor': did you mean 'pkcs12.keystore'\?"
    ):
        ams.Keystore.from_conf(typo)
    off = _conf(tmp_path / "off.conf", f"pkcs12.keystore = {store}\nocsp.enabel = true\n")
    with pytest.raises(
        ams.errors.KeystoreError, match=r"off\.conf:2: unknown key 'ocsp.enabel': did you mean 'ocsp.enable'"
    ):
        ams.Keystore.from_conf(off)
    hidden = _conf(tmp_path / "hidden.conf", f"pkcs12.keystore = {store}\npkcs12.keystore_pass hunter2 = x\n")
    with pytest.raises(
        ams.errors.KeystoreError, match=r"hidden\.conf:2: the text before '=' is not a key name"
    ) as caught:
        ams.Keystore.from_conf(hidden)
    assert "hunter2" not in str(caught.value)
    # twin: IBM's own keys that this library does not use are accepted
    password = next(
        line.split("=", 1)[1].strip()
        for line in (root / "alice" / "keystore.conf").read_text().splitlines()
        if line.startswith("pkcs12.keystore_pass")
    )
    ibm = _conf(
        tmp_path / "ibm.conf",
        f"pkcs12.keystore = {store}\npkcs12.keystore_pass = {password}\nocsp.http.proxy.host = proxy\n",
    )
    assert ams.Keystore.from_conf(ibm).identity is not None


def _conf(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    os.chmod(path, 0o600)  # a keystore.conf with a password is for its owner only
    return path


def test_conf_rules(made: tuple[Path, object], tmp_path: Path) -> None:
    root, _ = made
    store = root / "alice" / "alice.p12"
    password = next(
        line.split("=", 1)[1].strip()
        for line in (root / "alice" / "keystore.conf").read_text().splitlines()
        if line.startswith("pkcs12.keystore_pass")
    )
    ok = _conf(tmp_path / "ok.conf", f"PKCS12.keystore = {store}\nPkcs12.keystore_pass = {password}\n")
    assert ams.Keystore.from_conf(ok).identity is not None
    duplicate = _conf(tmp_path / "dup.conf", f"pkcs12.keystore = {store}\nPKCS12.keystore = {store}\n")
    with pytest.raises(ams.errors.KeystoreError, match=r"dup\.conf:2: duplicate key 'pkcs12.keystore'"):
        ams.Keystore.from_conf(duplicate)
    with pytest.raises(ams.errors.KeystoreError, match="wrong password"):
        ams.Keystore.from_conf(_conf(tmp_path / "pw.conf", f"pkcs12.keystore = {store}\npkcs12.keystore_pass = nope\n"))
    with pytest.raises(ams.errors.KeystoreError, match="runmqakm"):
        ams.Keystore.from_conf(_conf(tmp_path / "cms.conf", "cms.keystore = /var/mqm/key\n"))
    with pytest.raises(ams.errors.KeystoreError, match="<AMS>-protected"):
        ams.Keystore.from_conf(
            _conf(tmp_path / "ams.conf", f"pkcs12.keystore = {store}\npkcs12.keystore_pass = <AMS>xyz\n")
        )
    with pytest.raises(ams.errors.KeystoreError, match=r"junk\.conf:2: expected 'key = value'") as caught:
        ams.Keystore.from_conf(_conf(tmp_path / "junk.conf", "# a comment\npkcs12.keystore_pass: hunter2\n"))
    assert "hunter2" not in str(caught.value)  # a password written with the wrong separator is not echoed
    with pytest.raises(ams.errors.KeystoreError, match="labelled 'bob'"):
        ams.Keystore.from_conf(
            _conf(
                tmp_path / "label.conf",
                f"pkcs12.keystore = {store}\npkcs12.keystore_pass = {password}\npkcs12.certificate = bob\n",
            )
        )
    with pytest.raises(ams.errors.KeystoreError, match="no keystore configured"):
        ams.Keystore.from_conf(_conf(tmp_path / "empty.conf", "# nothing\n"))


def test_pem_keystore(pki: Pki, tmp_path: Path) -> None:
    alice = pki.users["alice"]
    (tmp_path / "alice.pem").write_bytes(alice.certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "alice.key.pem").write_bytes(
        alice.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    os.chmod(tmp_path / "alice.key.pem", 0o600)
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    (trusted / "ca.pem").write_bytes(pki.ca.certificate.public_bytes(serialization.Encoding.PEM))
    (trusted / "bob.crt").write_bytes(pki.users["bob"].certificate.public_bytes(serialization.Encoding.DER))
    conf = _conf(
        tmp_path / "keystore.conf",
        "pem.private = alice.key.pem\npem.public = alice.pem\npem.password = s3cret\npem.certificates = trusted\n",
    )
    keystore = ams.Keystore.from_conf(conf)
    assert len(keystore.certificates) == 3
    policies = ams.PolicyStore.of(
        ams.Policy.from_setmqspl(f'setmqspl -m QM -p Q -s SHA256 -e AES256 -r "{pki.dn("bob")}"')
    )
    data = ams.Protector(keystore, policies).protect("Q", b"pem").body
    assert ams.Protector(pki.keystore("bob"), policies).unprotect("Q", data).body == b"pem"
    with pytest.raises(ams.errors.KeystoreError, match=r"pem\.password"):
        ams.Keystore.from_conf(_conf(tmp_path / "nopw.conf", "pem.private = alice.key.pem\npem.public = alice.pem\n"))
    with pytest.raises(ams.errors.KeystoreError, match=r"does not belong"):
        (tmp_path / "bob.pem").write_bytes(pki.users["bob"].certificate.public_bytes(serialization.Encoding.PEM))
        (tmp_path / "alice.key.pem").chmod(0o600)
        ams.Keystore.from_conf(
            _conf(tmp_path / "mix.conf", "pem.private = alice.key.pem\npem.public = bob.pem\npem.password = s3cret\n")
        )


def test_non_rsa_identity_is_refused_by_name(pki: Pki, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    issued = issue(pki.ca, "CN=ecuser,O=AMS,C=GB", key=key)  # type: ignore[arg-type]
    conf = write_user_keystore(tmp_path, "ecuser", issued, [pki.ca.certificate])
    with pytest.raises(ams.errors.KeystoreError, match=r"CN=ecuser,O=AMS,C=GB.*RSA keys only"):
        ams.Keystore.from_conf(conf)


def test_recipient_lookup_reports_near_misses(pki: Pki) -> None:
    keystore = pki.keystore("alice")
    with pytest.raises(ams.errors.RecipientNotFoundError) as caught:
        keystore.recipient(ams.DistinguishedName.parse("CN=bob,O=AMZ,C=GB"))
    assert "CN=bob,O=AMS,C=GB" in str(caught.value) and "add the recipient's certificate" in str(caught.value)
