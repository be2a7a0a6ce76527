"""`ams doctor` and key hygiene: each finding has its clean twin."""

from __future__ import annotations

import datetime
import json
import os
import warnings
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import ams
import ams.errors
from ams.cli.main import main
from ams.doctor import Finding, diagnose
from ams.pki import GeneratedPki, init_pki, issue, write_user_keystore
from tests.conftest import store


@pytest.fixture
def made(tmp_path: Path) -> GeneratedPki:
    return init_pki(tmp_path / "pki", ["alice", "bob"])


# every test keystore.conf has one, as IBM's do, in a file only its owner reads
PLAIN_PASSWORD = (
    "warning",
    "holds a plain-text password (as IBM's keystore.conf does); its mode (0600) lets only its owner read it",
)


def levels(findings: list[Finding]) -> list[tuple[str, str]]:
    """The findings other than the plain-text password every test keystore.conf holds."""
    return [(f.level, f.problem) for f in findings if (f.level, f.problem) != PLAIN_PASSWORD]


def test_a_clean_keystore_and_policies_have_no_findings(made: GeneratedPki) -> None:
    policies = store('setmqspl -m QM -p Q -s SHA512 -e AES256 -r "CN=bob,O=AMS,C=GB" -a "CN=alice,O=AMS,C=GB"')
    findings = diagnose(made.keystores["alice"], policies)
    assert [(f.level, f.problem) for f in findings] == [PLAIN_PASSWORD]
    assert "chmod" not in findings[0].fix  # the file is 0600 already: nothing to change in its mode


def test_missing_recipient_with_near_miss(made: GeneratedPki, capsys: pytest.CaptureFixture[str]) -> None:
    policies = made.keystores["alice"].parent.parent / "policies"
    policies.mkdir()
    (policies / "q.spl").write_text('setmqspl -m QM -p Q -s SHA256 -e AES256 -r "CN=bob,O=AMS,C=US"\n')
    assert main(["doctor", "--keystore-conf", str(made.keystores["alice"]), "--policies", str(policies)]) == 1
    out = capsys.readouterr().out
    assert "ERROR   Q recipient CN=bob,O=AMS,C=US" in out and "nearest: CN=bob,O=AMS,C=GB" in out
    assert "fix: import the recipient's certificate" in out and "1 error, " in out
    args = ["doctor", "--keystore-conf", str(made.keystores["alice"]), "--policies", str(policies), "--json"]
    assert main(args) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["errors"], report["warnings"]) == (1, len(report["findings"]) - 1)
    (error,) = [f for f in report["findings"] if f["level"] == "error"]
    assert set(error) == {"level", "subject", "problem", "fix"} and "CN=bob,O=AMS,C=US" in error["subject"]
    # the clean twin: a policy the keystore can serve has no error, and exits 0
    (policies / "q.spl").write_text('setmqspl -m QM -p Q -s SHA256 -e AES256 -r "CN=bob,O=AMS,C=GB"\n')
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["errors"] == 0


def test_own_certificate_expiring_weak_usage_and_untrusted(tmp_path: Path, made: GeneratedPki) -> None:
    now = datetime.datetime.now(datetime.UTC)
    soon = issue(
        made.ca,
        "CN=soon,O=AMS,C=GB",
        not_before=now - datetime.timedelta(days=300),
        not_after=now + datetime.timedelta(days=10),
    )
    conf = write_user_keystore(tmp_path / "soon", "soon", soon, [made.ca.certificate])
    found = levels(diagnose(conf, store("setmqspl -m QM -p Q -s SHA256")))
    assert found == [("warning", f"expires on {soon.certificate.not_valid_after_utc:%Y-%m-%d}, within 30 days")]
    sign_only = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
    no_encipher = issue(made.ca, "CN=signer,O=AMS,C=GB", key_usage=sign_only)
    conf = write_user_keystore(tmp_path / "signer", "signer", no_encipher, [made.ca.certificate])
    found = levels(diagnose(conf, store('setmqspl -m QM -p Q -e AES256 -r "CN=signer,O=AMS,C=GB"')))
    assert found and found[0][0] == "error" and "keyEncipherment" in found[0][1]
    foreign = ams.pki.make_ca("CN=Elsewhere CA,O=X,C=US")
    stray = issue(foreign, "CN=stray,O=AMS,C=GB")
    conf = write_user_keystore(tmp_path / "stray", "stray", stray, [made.ca.certificate])
    found = levels(diagnose(conf, store("setmqspl -m QM -p Q -s SHA256")))
    assert any(level == "error" and "does not validate here" in problem for level, problem in found)


def test_signers_no_anchor_could_validate(tmp_path: Path, made: GeneratedPki) -> None:
    foreign = ams.pki.make_ca("CN=Partner CA,O=P,C=US")
    partner = issue(foreign, "CN=partner,O=P,C=US")
    alice = made.users["alice"]
    conf = write_user_keystore(tmp_path / "a", "alice", alice, [made.ca.certificate, partner.certificate])
    found = levels(diagnose(conf, store('setmqspl -m QM -p Q -s SHA256 -a "CN=partner,O=P,C=US"')))
    assert any(level == "error" and "would never validate here" in problem for level, problem in found)
    conf = write_user_keystore(
        tmp_path / "b", "alice", alice, [made.ca.certificate, partner.certificate, foreign.certificate]
    )
    assert levels(diagnose(conf, store('setmqspl -m QM -p Q -s SHA256 -a "CN=partner,O=P,C=US"'))) == []


def test_the_fix_for_a_signer_that_never_validates_follows_what_failed(tmp_path: Path, made: GeneratedPki) -> None:
    """No path to an anchor: add the CA; a path that breaks a name constraint: adding CAs cannot help."""
    permitted = x509.DirectoryName(x509.Name.from_rfc4514_string("O=P,C=US"))
    constrained = ams.pki.make_ca(
        "CN=Partner CA,O=P,C=US", extensions=[(x509.NameConstraints([permitted], None), True)]
    )
    outsider = issue(constrained, "CN=partner,O=Elsewhere,C=US")
    alice = made.users["alice"]
    policy = store('setmqspl -m QM -p Q -s SHA256 -a "CN=partner,O=Elsewhere,C=US"')
    conf = write_user_keystore(tmp_path / "a", "alice", alice, [made.ca.certificate, outsider.certificate])
    (missing,) = [f for f in diagnose(conf, policy) if "would never validate here" in f.problem]
    assert "add the signer's issuing CA" in missing.fix
    trusted = [made.ca.certificate, outsider.certificate, constrained.certificate]
    conf = write_user_keystore(tmp_path / "b", "alice", alice, trusted)
    (broken,) = [f for f in diagnose(conf, policy) if "would never validate here" in f.problem]
    assert "name" in broken.problem.lower() and "adding CAs will not help" in broken.fix


def test_duplicate_dns_and_a_queue_without_policy(tmp_path: Path, made: GeneratedPki) -> None:
    twin = issue(made.ca, "CN=bob,O=AMS,C=GB")
    conf = write_user_keystore(
        tmp_path, "alice", made.users["alice"], [made.ca.certificate, made.users["bob"].certificate, twin.certificate]
    )
    found = levels(diagnose(conf, store(), queue="NOPOLICY.Q"))
    assert ("warning", "has no policy: messages on it are sent and read in the clear (IBM AMS does the same)") in found
    assert any("2 certificates share this DN" in problem for _, problem in found)


def test_key_hygiene_warns_and_strict_refuses(tmp_path: Path, made: GeneratedPki) -> None:
    bob = made.users["bob"]
    (tmp_path / "bob.pem").write_bytes(bob.certificate.public_bytes(serialization.Encoding.PEM))
    key = tmp_path / "bob.key.pem"
    key.write_bytes(
        bob.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    os.chmod(key, 0o644)
    conf = tmp_path / "keystore.conf"
    conf.write_text("pem.private = bob.key.pem\npem.public = bob.pem\n")
    with pytest.warns(ams.errors.AmsSecurityWarning) as caught:
        keystore = ams.Keystore.from_conf(conf)
    messages = [str(w.message) for w in caught]
    assert any("readable by group or others (mode 0644)" in m for m in messages)
    assert any("is not encrypted" in m for m in messages) and len(keystore.findings) == 2
    with pytest.raises(ams.errors.KeystoreError, match="strict key hygiene"):
        ams.Keystore.from_conf(conf, strict=True)
    key.write_bytes(
        bob.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
        )
    )
    os.chmod(key, 0o600)
    conf.write_text("pem.private = bob.key.pem\npem.public = bob.pem\npem.password = pw\n")
    os.chmod(conf, 0o600)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ams.Keystore.from_conf(conf, strict=True).findings == []
    os.chmod(conf, 0o644)
    with pytest.raises(ams.errors.KeystoreError, match="plain-text password and is readable"):
        ams.Keystore.from_conf(conf, strict=True)
    with pytest.warns(ams.errors.AmsSecurityWarning):
        readable = ams.Keystore.from_conf(conf)
    assert "pw" not in repr(readable) and "password" not in str(readable.settings)


def test_java_keystores(tmp_path: Path, made: GeneratedPki) -> None:
    p12 = made.keystores["alice"].parent / "alice.p12"
    password = next(
        line.split("=", 1)[1].strip()
        for line in made.keystores["alice"].read_text().splitlines()
        if line.startswith("pkcs12.keystore_pass")
    )
    conf = tmp_path / "jks.conf"
    conf.write_text(f"jks.keystore = {p12}\njks.keystore_pass = {password}\njks.certificate = alice\n")
    os.chmod(conf, 0o600)
    assert str(ams.Keystore.from_conf(conf).identity.dn) == "CN=alice,O=AMS,C=GB"  # type: ignore[union-attr]
    real_jks = tmp_path / "real.jks"
    real_jks.write_bytes(b"\xfe\xed\xfe\xed" + bytes(60))
    conf.write_text(f"jks.keystore = {real_jks}\njks.keystore_pass = x\n")
    with pytest.raises(ams.errors.KeystoreError, match="keytool -importkeystore"):
        ams.Keystore.from_conf(conf)
    conf.write_text(f"jceks.keystore = {p12}\njceks.keystore_pass = {password}\njceks.key_pass = other\n")
    with pytest.raises(ams.errors.KeystoreError, match="key_pass differs"):
        ams.Keystore.from_conf(conf)


def test_a_readable_keystore_conf_with_a_password_is_an_error_with_its_command(made: GeneratedPki) -> None:
    conf = made.keystores["alice"]
    os.chmod(conf, 0o644)
    findings = diagnose(conf, store())
    readable = [f for f in findings if f.subject == str(conf)]
    assert [(f.level, f.problem, f.fix) for f in readable] == [
        ("error", "holds a plain-text password and is readable by group or others (mode 0644)", f"chmod 600 {conf}")
    ]
    os.chmod(conf, 0o600)  # twin: the same file for its owner only is the one warning, with no chmod
    assert [f.level for f in diagnose(conf, store()) if f.subject == str(conf)] == ["warning"]


def test_a_readable_private_key_is_an_error_with_its_command(tmp_path: Path, made: GeneratedPki) -> None:
    bob = made.users["bob"]
    (tmp_path / "bob.pem").write_bytes(bob.certificate.public_bytes(serialization.Encoding.PEM))
    key = tmp_path / "bob.key.pem"
    encrypted = serialization.BestAvailableEncryption(b"pw")
    key.write_bytes(bob.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encrypted))
    conf = tmp_path / "keystore.conf"
    conf.write_text("pem.private = bob.key.pem\npem.public = bob.pem\npem.password = pw\n")
    os.chmod(conf, 0o600)
    os.chmod(key, 0o640)
    hygiene = [f for f in diagnose(conf, store()) if f.subject == "key hygiene"]
    assert [(f.level, f.fix) for f in hygiene] == [("error", f"chmod 600 {key}")]
    assert "(mode 0640)" in hygiene[0].problem
    os.chmod(key, 0o600)
    assert [f for f in diagnose(conf, store()) if f.subject == "key hygiene"] == []
    # the check options apply: --strict-keystore makes the finding the one error
    os.chmod(key, 0o644)
    strict = diagnose(conf, store(), strict=True)
    assert [f.level for f in strict] == ["error"] and "strict key hygiene" in strict[0].problem


SWAPPED = 'setmqspl -m QM -p PAY.Q -s SHA256 -e AES256 -a "CN=bob,O=AMS,C=GB" -r "CN=alice,O=AMS,C=GB"'
RIGHT = 'setmqspl -m QM -p PAY.Q -s SHA256 -e AES256 -a "CN=alice,O=AMS,C=GB" -r "CN=bob,O=AMS,C=GB"'


def test_a_policy_swapped_for_the_sender_is_found(made: GeneratedPki, capsys: pytest.CaptureFixture[str]) -> None:
    """Both lists filled, so setmqspl accepts it and protect succeeds; the receiver would refuse every message."""
    alice = made.keystores["alice"]
    found = levels(diagnose(alice, store(SWAPPED), role="send"))
    assert [level for level, _ in found] == ["error"]
    assert "CN=alice,O=AMS,C=GB is not an authorised signer (-a) of PAY.Q" in found[0][1]
    assert "-r and -a look swapped" in found[0][1]
    fix = next(f.fix for f in diagnose(alice, store(SWAPPED), role="send") if f.subject == "PAY.Q")
    assert "setmqspl -m QMGR -p PAY.Q -s SHA256 -e AES256 -a CN=alice,O=AMS,C=GB -r CN=bob,O=AMS,C=GB" in fix
    # without a role it is a warning: bob's certificate is here, as a recipient's would be
    assert [level for level, _ in levels(diagnose(alice, store(SWAPPED)))] == ["warning"]
    # twins: the right policy has no finding for the sender, nor for the receiver
    assert levels(diagnose(alice, store(RIGHT), role="send")) == []
    assert levels(diagnose(alice, store(RIGHT))) == []
    assert levels(diagnose(made.keystores["bob"], store(RIGHT), role="receive")) == []


def test_a_policy_swapped_for_the_receiver_is_found_through_the_cli(
    made: GeneratedPki, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = made.keystores["bob"].parent.parent / "policies"
    policies.mkdir()
    (policies / "pay.spl").write_text(SWAPPED + "\n")
    argv = ["doctor", "--keystore-conf", str(made.keystores["bob"]), "--policies", str(policies)]
    assert main([*argv, "--role", "receive", "--clock-skew", "60", "--strict-dn"]) == 1
    out = capsys.readouterr().out
    assert "CN=bob,O=AMS,C=GB is not a recipient (-r) of PAY.Q: it cannot decrypt" in out
    assert "-r and -a look swapped" in out


def test_doctor_takes_the_check_options(made: GeneratedPki, capsys: pytest.CaptureFixture[str]) -> None:
    """--clock-skew and the others, as every command that reads a keystore (README)."""
    future = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=10)
    soon = issue(made.ca, "CN=early,O=AMS,C=GB", not_before=future)
    conf = write_user_keystore(made.keystores["alice"].parent.parent / "early", "early", soon, [made.ca.certificate])
    policies = conf.parent / "policies"
    policies.mkdir()
    (policies / "q.spl").write_text("setmqspl -m QM -p Q -s SHA256\n")
    argv = ["doctor", "--keystore-conf", str(conf), "--policies", str(policies)]
    assert main([*argv, "--clock-skew", "900"]) == 0  # ten minutes early, within 15 minutes of skew
    capsys.readouterr()
    assert main(argv) == 1  # twin: the default 5 minutes
    assert "does not validate here" in capsys.readouterr().out
    (policies / "q.spl").write_text("setmqspl -m QM -p Q -s SHA1\n")
    assert main([*argv, "--clock-skew", "900"]) == 1
    assert "names deprecated SHA1" in capsys.readouterr().out
    assert main([*argv, "--clock-skew", "900", "--allow-deprecated"]) == 0
