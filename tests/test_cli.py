"""The `ams` command line: pki init, protect, unprotect, inspect, demo."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ams.cli.main import main


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    assert main(["pki", "init", str(root / "pki"), "--users", "alice,bob,carol"]) == 0
    policies = root / "policies"
    policies.mkdir()
    (policies / "q.spl").write_text(
        'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "CN=bob,O=AMS,C=GB" -a "CN=alice,O=AMS,C=GB"\n'
        "setmqspl -m QM -p INT.Q -s SHA512\n"
        'setmqspl -m QM -p CONF.Q -e AES128 -r "CN=bob,O=AMS,C=GB" -r "CN=carol,O=AMS,C=GB" -c 10\n'
        "setmqspl -m QM -p OLD.Q -s SHA1\n",
        encoding="utf-8",
    )
    (root / "in.txt").write_bytes(b"hello from the command line\n")
    return root


def _run(workspace: Path, user: str, *args: str) -> int:
    return main(
        [
            *args,
            "--policies",
            str(workspace / "policies"),
            "--keystore-conf",
            str(workspace / "pki" / user / "keystore.conf"),
        ]
    )


def test_pki_init_prints_each_dn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pki", "init", str(tmp_path), "--users", "dave,erin", "--organisation", "ACME"]) == 0
    out = capsys.readouterr().out
    assert "CN=dave,O=ACME,C=GB" in out and "CN=erin,O=ACME,C=GB" in out and "CN=AMS Test CA,O=ACME,C=GB" in out
    assert (tmp_path / "dave" / "keystore.conf").is_file() and (tmp_path / "ca" / "ca.key.pem").is_file()


@pytest.mark.parametrize("queue", ["PRIV.Q", "INT.Q", "CONF.Q"])
def test_protect_then_unprotect(workspace: Path, queue: str, capsys: pytest.CaptureFixture[str]) -> None:
    protected, plain = workspace / f"{queue}.ams", workspace / f"{queue}.out"
    assert _run(workspace, "alice", "protect", "-p", queue, "-i", str(workspace / "in.txt"), "-o", str(protected)) == 0
    assert protected.read_bytes()[:4] == b"PDMQ"
    fmt = workspace / f"{queue}.format"
    assert (
        _run(
            workspace, "bob", "unprotect", "-p", queue, "-i", str(protected), "-o", str(plain), "--format-out", str(fmt)
        )
        == 0
    )
    assert plain.read_bytes() == (workspace / "in.txt").read_bytes()
    assert fmt.read_bytes() == b"MQSTR   "  # the Format handed back: the PDMQ origFormat (no clear headers)
    assert f"unprotected from {queue}" in capsys.readouterr().err


def test_refusal_writes_nothing_and_explains(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    protected, plain = workspace / "carol.ams", workspace / "carol.out"
    assert (
        _run(workspace, "alice", "protect", "-p", "PRIV.Q", "-i", str(workspace / "in.txt"), "-o", str(protected)) == 0
    )
    capsys.readouterr()
    assert _run(workspace, "carol", "unprotect", "-p", "PRIV.Q", "-i", str(protected), "-o", str(plain)) == 3
    assert not plain.exists()
    err = capsys.readouterr().err
    assert "MQRC 2063" in err and "not_a_recipient" in err and "CN=bob,O=AMS,C=GB" in err


def test_configuration_errors_exit_2(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        _run(
            workspace,
            "alice",
            "protect",
            "-p",
            "OLD.Q",
            "-i",
            str(workspace / "in.txt"),
            "-o",
            str(workspace / "old.ams"),
        )
        == 2
    )
    assert "deprecated" in capsys.readouterr().err
    assert (
        main(
            [
                "protect",
                "-p",
                "Q",
                "--policies",
                str(workspace / "nope"),
                "--keystore-conf",
                str(workspace / "pki" / "alice" / "keystore.conf"),
            ]
        )
        == 2
    )


def test_inspect_json_and_text(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    protected = workspace / "inspect.ams"
    _run(workspace, "alice", "protect", "-p", "CONF.Q", "-i", str(workspace / "in.txt"), "-o", str(protected))
    capsys.readouterr()
    assert (
        main(
            [
                "inspect",
                "-i",
                str(protected),
                "--json",
                "--keystore-conf",
                str(workspace / "pki" / "alice" / "keystore.conf"),
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["qop"] == "CONFIDENTIALITY" and report["encryption_algorithm"] == "AES128"
    assert report["header"]["key_reuse_flag"] is True and report["header"]["orig_size"] == 28
    assert sorted(r["dn"] for r in report["recipients"]) == ["CN=bob,O=AMS,C=GB", "CN=carol,O=AMS,C=GB"]
    signed = workspace / "inspect-int.ams"
    _run(workspace, "alice", "protect", "-p", "INT.Q", "-i", str(workspace / "in.txt"), "-o", str(signed))
    capsys.readouterr()
    assert main(["inspect", "-i", str(signed)]) == 0
    text = capsys.readouterr().out
    assert "SHA512" in text and "CN=alice,O=AMS,C=GB" in text and "signing_time" in text


@pytest.mark.parametrize("where", ["repository", "elsewhere"])
def test_demo_runs_end_to_end(tmp_path: Path, where: str) -> None:
    ams_command = shutil.which("ams") or str(Path(sys.executable).parent / "ams")
    cwd = Path(__file__).parents[1] if where == "repository" else tmp_path
    result = subprocess.run([ams_command, "demo"], capture_output=True, text=True, cwd=cwd, check=False)
    assert result.returncode == 0, result.stderr
    assert "NotARecipientError" in result.stdout and "BadSignatureError" in result.stdout
    assert "carol's get failed with MQRC 2063" in result.stdout and "verdict:" in result.stdout
    assert "UNEXPECTEDLY" not in result.stdout
    # the worked example runs from the repository (./policies) and elsewhere (the examples installed with ams)
    assert "alice (finance) read" in result.stdout
    assert ("installed with ams" in result.stdout) is (where == "elsewhere")


def test_inspect_opens_privacy_for_a_recipient(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    protected = workspace / "inspect-priv.ams"
    _run(workspace, "alice", "protect", "-p", "PRIV.Q", "-i", str(workspace / "in.txt"), "-o", str(protected))
    capsys.readouterr()
    for user, opened in (("bob", True), ("carol", False)):
        conf = str(workspace / "pki" / user / "keystore.conf")
        assert main(["inspect", "-i", str(protected), "--json", "--keystore-conf", conf]) == 0
        report = json.loads(capsys.readouterr().out)
        assert ("signer" in report) is opened
        if opened:
            assert report["signer"]["subject"] == "CN=alice,O=AMS,C=GB" and report["signature_algorithm"] == "SHA256"


def test_the_checks_options_reach_the_protector(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--max-recipients, --strict-dn, --clock-skew and --crl change what unprotect accepts (each with its twin)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    conf_message = tmp_path / "conf.ams"
    source = str(workspace / "in.txt")
    assert _run(workspace, "alice", "protect", "-p", "CONF.Q", "-i", source, "-o", str(conf_message)) == 0
    assert _run(workspace, "bob", "unprotect", "-p", "CONF.Q", "-i", str(conf_message)) == 0
    assert _run(workspace, "bob", "unprotect", "-p", "CONF.Q", "-i", str(conf_message), "--max-recipients", "1") == 3
    assert "more than 1 RecipientInfo" in capsys.readouterr().err

    priv_message = tmp_path / "priv.ams"
    assert _run(workspace, "alice", "protect", "-p", "PRIV.Q", "-i", source, "-o", str(priv_message)) == 0
    strict = tmp_path / "strict"
    strict.mkdir()
    (strict / "q.spl").write_text(
        'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "CN=bob,O=AMS,C=GB" -a "cn=alice,o=ams,c=gb"\n'
    )
    keys = ["--keystore-conf", str(workspace / "pki" / "bob" / "keystore.conf"), "--policies", str(strict)]
    assert main(["unprotect", "-p", "PRIV.Q", "-i", str(priv_message), *keys]) == 0
    assert main(["unprotect", "-p", "PRIV.Q", "-i", str(priv_message), *keys, "--strict-dn"]) == 3
    assert "unauthorised_signer" in capsys.readouterr().err

    later = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=3000)).isoformat()
    args = ["unprotect", "-p", "PRIV.Q", "-i", str(priv_message), *keys[:2], "--policies", str(workspace / "policies")]
    assert main([*args, "--at", later]) == 3
    assert "certificate_validity" in capsys.readouterr().err
    assert main([*args, "--at", later, "--clock-skew", str(3000 * 86400)]) == 0

    ca_key = serialization.load_pem_private_key((workspace / "pki" / "ca" / "ca.key.pem").read_bytes(), None)
    assert isinstance(ca_key, rsa.RSAPrivateKey)
    ca = x509.load_pem_x509_certificate((workspace / "pki" / "ca" / "ca.pem").read_bytes())
    alice = x509.load_pem_x509_certificate((workspace / "pki" / "alice" / "alice.pem").read_bytes())
    now = datetime.datetime.now(datetime.UTC)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(now - datetime.timedelta(hours=1))
        .next_update(now + datetime.timedelta(days=1))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(alice.serial_number).revocation_date(now).build()
        )
        .sign(ca_key, hashes.SHA256())
    )
    (tmp_path / "ca.crl").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    capsys.readouterr()
    assert main([*args, "--crl", str(tmp_path / "ca.crl")]) == 3
    assert "certificate_revoked" in capsys.readouterr().err


def test_inspect_takes_the_check_options(workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """As every command that reads a keystore: --max-recipients bounds what is parsed, --strict-keystore refuses."""
    import os

    message = tmp_path / "conf.ams"
    _run(workspace, "alice", "protect", "-p", "CONF.Q", "-i", str(workspace / "in.txt"), "-o", str(message))
    assert main(["inspect", "-i", str(message), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["recipients"]) == 2
    assert main(["inspect", "-i", str(message), "--max-recipients", "1"]) == 3  # two RecipientInfos, one allowed
    assert "recipient" in capsys.readouterr().err.lower()
    conf = workspace / "pki" / "bob" / "keystore.conf"
    assert main(["inspect", "-i", str(message), "--keystore-conf", str(conf), "--strict-keystore"]) == 0
    capsys.readouterr()
    os.chmod(conf, 0o644)
    try:
        assert main(["inspect", "-i", str(message), "--keystore-conf", str(conf), "--strict-keystore"]) == 2
        assert "strict key hygiene" in capsys.readouterr().err
    finally:
        os.chmod(conf, 0o600)
