"""``ams keys``: a key and a request signed by an openssl-made CA, imported, listed and used to
protect and unprotect; and the refusals (an untrusted CA, garbage, duplicates, expired certificates)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import ams
from ams.cli.main import main
from ams.keys import load_certificates
from tests.conftest import needs_openssl, store
from tests.softhsm import requires_softhsm

pytestmark = needs_openssl
PASSPHRASE = "correct horse battery"
CA_CONF = """[ ca ]
default_ca = local
[ local ]
database = {root}/index.txt
new_certs_dir = {root}
serial = {root}/serial
default_md = sha256
policy = anything
copy_extensions = copy
unique_subject = no
[ anything ]
commonName = supplied
organizationName = optional
organizationalUnitName = optional
countryName = optional
"""


def openssl(*args: str | Path) -> str:
    """Run the openssl command line; its standard output."""
    result = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


@attrs.frozen
class OpensslCa:
    """A CA made by ``openssl req -x509``, which signs requests with ``openssl x509 -req`` or ``openssl ca``."""

    root: Path

    @classmethod
    def make(cls, root: Path, name: str) -> OpensslCa:
        root.mkdir(parents=True)
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", root / "ca.key", "-out", root / "ca.pem",
                "-subj", f"/C=GB/O=AMS/CN={name}", "-days", "3650",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
        (root / "index.txt").write_text("")
        (root / "serial").write_text("1000\n")
        (root / "ca.cnf").write_text(CA_CONF.format(root=root))
        return cls(root)

    @property
    def certificate(self) -> Path:
        """The CA's certificate (PEM)."""
        return self.root / "ca.pem"

    def sign(self, csr: Path, out: Path) -> Path:
        """``openssl x509 -req``: the request's subject and extensions, valid for a year."""
        openssl("x509", "-req", "-in", csr, "-CA", self.certificate, "-CAkey", self.root / "ca.key",
                "-CAcreateserial", "-days", "365", "-copy_extensions", "copy", "-out", out)  # fmt: skip
        return out

    def sign_expired(self, csr: Path, out: Path) -> Path:
        """``openssl ca`` with dates in the past: a certificate that expired in 2021."""
        openssl("ca", "-batch", "-config", self.root / "ca.cnf", "-cert", self.certificate,
                "-keyfile", self.root / "ca.key", "-in", csr, "-out", out, "-notext", "-preserveDN",
                "-startdate", "20200101000000Z", "-enddate", "20210101000000Z")  # fmt: skip
        return out


@pytest.fixture(scope="module")
def cas(tmp_path_factory: pytest.TempPathFactory) -> tuple[OpensslCa, OpensslCa]:
    """Our CA, and another the keystore never trusts."""
    root = tmp_path_factory.mktemp("openssl-cas")
    return OpensslCa.make(root / "ours", "Our CA"), OpensslCa.make(root / "theirs", "Their CA")


def run(*args: str | Path) -> int:
    """``ams keys ARGS``; the exit status."""
    return main(["keys", *map(str, args)])


def request(directory: Path, name: str, monkeypatch: pytest.MonkeyPatch, *extra: str) -> Path:
    """``ams keys request`` for CN=name with a keystore.conf beside the key; the keystore.conf."""
    monkeypatch.setenv("AMS_KEY_PASSWORD", PASSPHRASE)
    directory.mkdir(exist_ok=True)
    status = run("request", "--subject", f"CN={name},O=AMS,C=GB", "--out-key", directory / f"{name}.key.pem",
                 "--out-csr", directory / f"{name}.csr", "--key-size", "2048",
                 "--write-conf", directory / "keystore.conf", *extra)  # fmt: skip
    assert status == 0
    return directory / "keystore.conf"


def test_a_request_signed_by_an_openssl_ca_is_imported_listed_and_protects(
    cas: tuple[OpensslCa, OpensslCa],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ours, _ = cas
    conf = request(tmp_path, "alice", monkeypatch)
    key, csr = tmp_path / "alice.key.pem", tmp_path / "alice.csr"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in key.read_bytes()
    assert "verify OK" in subprocess.run(["openssl", "req", "-verify", "-noout", "-in", csr], capture_output=True,
                                         text=True, check=True).stderr  # fmt: skip
    assert PASSPHRASE not in capsys.readouterr().out
    signed = ours.sign(csr, tmp_path / "alice-signed.pem")
    assert run("import-cert", ours.certificate, "--keystore-conf", conf) == 0
    chain = tmp_path / "alice-chain.pem"  # as many CAs return it: the certificate and the CA's
    chain.write_bytes(signed.read_bytes() + ours.certificate.read_bytes())
    assert run("import-cert", chain, "--keystore-conf", conf) == 0
    imported = capsys.readouterr().out
    assert "imported identity CN=alice,O=AMS,C=GB" in imported and "skipped CN=Our CA,O=AMS,C=GB" in imported
    assert run("list", "--keystore-conf", conf, "--json") == 0
    listed = json.loads(capsys.readouterr().out)["certificates"]
    issued = x509.load_pem_x509_certificate(signed.read_bytes())
    assert [(c["role"], c["subject"], c["status"]) for c in listed] == [
        ("identity", "CN=alice,O=AMS,C=GB", "valid"),
        ("trusted CA", "CN=Our CA,O=AMS,C=GB", "valid"),
    ]
    assert listed[0]["serial"] == f"{issued.serial_number:#x}" and listed[0]["key"] == "RSA 2048"
    assert listed[0]["issuer"] == "CN=Our CA,O=AMS,C=GB"
    assert listed[0]["not_after"] == issued.not_valid_after_utc.isoformat()
    policies = store('setmqspl -m QM -p PAY.Q -s SHA256 -e AES256 -a "CN=alice,O=AMS,C=GB" -r "CN=alice,O=AMS,C=GB"')
    with ams.Keystore.from_conf(conf, strict=True) as keystore:
        protector = ams.Protector(keystore, policies)
        message = protector.unprotect("PAY.Q", protector.protect("PAY.Q", b"pay 10 GBP").body)
    assert message.body == b"pay 10 GBP" and str(message.signer_dn) == "CN=alice,O=AMS,C=GB"


def test_a_certificate_from_an_untrusted_ca_is_refused(
    cas: tuple[OpensslCa, OpensslCa],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ours, theirs = cas
    conf = request(tmp_path, "alice", monkeypatch)
    assert run("import-cert", ours.certificate, "--keystore-conf", conf) == 0
    wrong = theirs.sign(tmp_path / "alice.csr", tmp_path / "alice-theirs.pem")
    capsys.readouterr()
    assert run("import-cert", wrong, "--keystore-conf", conf) == 2
    error = capsys.readouterr().err
    assert "issued by CN=Their CA,O=AMS,C=GB" in error and "does not chain to a trust anchor" in error
    assert "nothing was imported" in error and not (tmp_path / "alice.pem").exists()
    # a partner's certificate from the untrusted CA is refused the same way; from ours it is taken
    other = request(tmp_path / "bob", "bob", monkeypatch)
    assert run("import-cert", theirs.sign(tmp_path / "bob" / "bob.csr", tmp_path / "bob-theirs.pem"),
               "--keystore-conf", conf) == 2  # fmt: skip
    assert (
        run("import-cert", ours.sign(tmp_path / "bob" / "bob.csr", tmp_path / "bob.pem"), "--keystore-conf", conf) == 0
    )
    assert other.exists() and len(list((tmp_path / "trusted").glob("*.pem"))) == 2


def test_garbage_requests_keys_and_duplicates_are_refused(
    cas: tuple[OpensslCa, OpensslCa],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ours, _ = cas
    conf = request(tmp_path, "alice", monkeypatch)
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(os.urandom(600))
    for path, expected in [
        (garbage, "is not an X.509 certificate: expected PEM (-----BEGIN CERTIFICATE-----) or DER, found 600 bytes"),
        (tmp_path / "alice.csr", "holds a certificate request (CSR): send it to your CA"),
        (tmp_path / "alice.key.pem", "holds a private key"),
    ]:
        assert run("import-cert", path, "--keystore-conf", conf) == 2
        assert expected in capsys.readouterr().err
    der = tmp_path / "ca.der"
    openssl("x509", "-in", ours.certificate, "-outform", "DER", "-out", der)
    assert run("import-cert", der, "--keystore-conf", conf) == 0
    capsys.readouterr()
    assert run("import-cert", ours.certificate, "--keystore-conf", conf) == 2  # the same certificate, as PEM
    assert "CN=Our CA,O=AMS,C=GB (serial" in capsys.readouterr().err
    assert len(list((tmp_path / "trusted").iterdir())) == 1
    # a self-signed partner certificate is pinned, trusted as itself (never as an issuer), its fingerprint shown
    pinned = tmp_path / "partner.pem"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", tmp_path / "partner.key", "-out", pinned,
            "-subj", "/CN=partner/O=PARTNER/C=US", "-days", "30", "-addext", "basicConstraints=critical,CA:FALSE",
            "-addext", "keyUsage=critical,digitalSignature,keyEncipherment")  # fmt: skip
    capsys.readouterr()
    assert run("import-cert", pinned, "--keystore-conf", conf) == 0
    assert "self-signed certificate (trusted as itself) C=US,O=PARTNER,CN=partner" in capsys.readouterr().out
    keystore = ams.Keystore(None, load_certificates(tmp_path / "trusted"))  # what pem.certificates gives
    chosen = ams.Verifier(keystore).recipient(ams.DistinguishedName.parse("C=US,O=PARTNER,CN=partner"))
    assert chosen.certificate == x509.load_pem_x509_certificate(pinned.read_bytes())


def test_request_refuses_what_it_cannot_do_safely(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    request(tmp_path, "alice", monkeypatch)
    before = (tmp_path / "alice.key.pem").read_bytes()
    again: list[str | Path] = ["request", "--subject", "CN=alice,O=AMS,C=GB", "--out-csr", tmp_path / "new.csr"]
    assert run(*again, "--out-key", tmp_path / "alice.key.pem") == 2  # never overwrites a key
    assert (tmp_path / "alice.key.pem").read_bytes() == before and not (tmp_path / "new.csr").exists()
    assert run(*again, "--out-key", tmp_path / "small.key.pem", "--key-size", "1024") == 2
    assert "expected an RSA size from 2048" in capsys.readouterr().err
    assert run("request", "--subject", "alice", "--out-csr", tmp_path / "x.csr", "--out-key", tmp_path / "x.pem") == 2
    assert "is not a distinguished name" in capsys.readouterr().err
    monkeypatch.delenv("AMS_KEY_PASSWORD")
    assert run(*again, "--out-key", tmp_path / "bob.key.pem") == 2  # no passphrase, no terminal to ask
    assert "set AMS_KEY_PASSWORD" in capsys.readouterr().err and not (tmp_path / "bob.key.pem").exists()
    assert run(*again, "--out-key", tmp_path / "bob.key.pem", "--no-encrypt") == 0
    assert b"-----BEGIN PRIVATE KEY-----" in (tmp_path / "bob.key.pem").read_bytes()


def test_an_expired_certificate_is_flagged_in_the_list(
    cas: tuple[OpensslCa, OpensslCa],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ours, _ = cas
    conf = request(tmp_path, "alice", monkeypatch)
    assert run("import-cert", ours.certificate, "--keystore-conf", conf) == 0
    assert (
        run("import-cert", ours.sign(tmp_path / "alice.csr", tmp_path / "alice-signed.pem"), "--keystore-conf", conf)
        == 0
    )
    old = request(tmp_path / "old", "oldpartner", monkeypatch)
    expired = ours.sign_expired(tmp_path / "old" / "oldpartner.csr", tmp_path / "old.pem")
    assert run("import-cert", expired, "--keystore-conf", conf) == 0
    assert "warning: expired on 2021-01-01" in capsys.readouterr().out
    assert run("list", "--keystore-conf", conf) == 1
    captured = capsys.readouterr()
    assert "certificate: CN=oldpartner,O=AMS,C=GB" in captured.out and "(expired)" in captured.out
    assert "expired on 2021-01-01 00:00 UTC" in captured.err and old.exists()
    assert run("list", "--keystore-conf", conf, "--json") == 1
    statuses = {c["subject"]: c["status"] for c in json.loads(capsys.readouterr().out)["certificates"]}
    assert statuses == {
        "CN=alice,O=AMS,C=GB": "valid",
        "CN=Our CA,O=AMS,C=GB": "valid",
        "CN=oldpartner,O=AMS,C=GB": "expired",
    }


def test_a_pkcs12_from_openssl_is_imported_with_its_password_from_the_environment(
    cas: tuple[OpensslCa, OpensslCa],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ours, _ = cas
    made = request(tmp_path / "made", "carol", monkeypatch, "--no-encrypt")
    signed = ours.sign(made.parent / "carol.csr", tmp_path / "carol.pem")
    bundle = tmp_path / "carol.p12"
    openssl("pkcs12", "-export", "-inkey", made.parent / "carol.key.pem", "-in", signed, "-certfile", ours.certificate,
            "-out", bundle, "-passout", "pass:p12-secret",
            "-keypbe", "AES-256-CBC", "-certpbe", "AES-256-CBC")  # fmt: skip
    dave = request(tmp_path / "dave", "dave", monkeypatch)
    partner = ours.sign(dave.parent / "dave.csr", tmp_path / "dave.pem")
    confs = {
        "pem": [
            "pem.private = carol.key.pem",
            "pem.public = carol.pem",
            "pem.password = pem-secret",
            "pem.certificates = t/",
        ],
        "pkcs12": ["pkcs12.keystore = carol.p12", "pkcs12.keystore_pass = store-secret", "pkcs12.certificate = carol"],
    }
    for kind, lines in confs.items():
        text = "\n".join(lines) + "\n"
        conf = tmp_path / kind / "keystore.conf"
        conf.parent.mkdir()
        conf.write_text(text)
        conf.chmod(0o600)
        monkeypatch.setenv("AMS_P12_PASSWORD", "wrong")
        assert run("import-p12", bundle, "--keystore-conf", conf) == 2
        assert "wrong password" in capsys.readouterr().err
        monkeypatch.setenv("AMS_P12_PASSWORD", "p12-secret")
        assert run("import-p12", bundle, "--keystore-conf", conf) == 0
        output = capsys.readouterr()
        assert "imported identity CN=carol,O=AMS,C=GB" in output.out and "secret" not in output.out + output.err
        with ams.Keystore.from_conf(conf, strict=True) as keystore:
            assert keystore.identity is not None and str(keystore.identity.dn) == "CN=carol,O=AMS,C=GB"
            assert any("Our CA" in str(c.subject) for c in keystore.certificates)
        assert run("import-p12", bundle, "--keystore-conf", conf) == 2  # it has an identity now
        assert run("import-cert", partner, "--keystore-conf", conf) == 0  # a partner's, beside the identity
        with ams.Keystore.from_conf(conf, strict=True) as keystore:
            assert keystore.identity is not None and str(keystore.identity.dn) == "CN=carol,O=AMS,C=GB"
            assert len(keystore.find(ams.DistinguishedName.parse("CN=dave,O=AMS,C=GB"))) == 1


@requires_softhsm
def test_a_key_made_on_a_softhsm2_token_gets_its_certificate_from_an_openssl_ca(
    token: Path, cas: tuple[OpensslCa, OpensslCa], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ours, theirs = cas
    bundle = tmp_path / "others.pem"
    conf = tmp_path / "token.conf"
    settings = token.read_text().splitlines()
    conf.write_text("\n".join(f"pkcs11.secondary_keystore = {bundle}" if s.startswith("pkcs11.secondary") else s
                              for s in settings if not s.startswith("pkcs11.certificate")) + "\n")  # fmt: skip
    conf.chmod(0o600)
    csr = tmp_path / "dept.csr"
    assert run("request", "--keystore-conf", conf, "--label", "payments", "--subject", "CN=payments,O=AMS,C=GB",
               "--out-csr", csr, "--key-size", "2048") == 0  # fmt: skip
    assert "verify OK" in subprocess.run(["openssl", "req", "-verify", "-noout", "-in", csr], capture_output=True,
                                         text=True, check=True).stderr  # fmt: skip
    assert run("import-cert", ours.certificate, "--keystore-conf", conf) == 0
    assert run("import-cert", theirs.sign(csr, tmp_path / "theirs.pem"), "--keystore-conf", conf) == 2  # untrusted
    assert run("import-cert", ours.sign(csr, tmp_path / "payments.pem"), "--keystore-conf", conf) == 0
    imported = capsys.readouterr().out.splitlines()[-1]
    assert (
        imported.startswith("imported identity CN=payments,O=AMS,C=GB") and "the token (label 'payments')" in imported
    )
    with conf.open("a") as file:
        file.write("pkcs11.certificate = payments\n")
    assert run("list", "--keystore-conf", conf) == 0
    assert "identity: CN=payments,O=AMS,C=GB" in capsys.readouterr().out
    policies = store(
        'setmqspl -m QM -p PAY.Q -s SHA256 -e AES256 -a "CN=payments,O=AMS,C=GB" -r "CN=payments,O=AMS,C=GB"'
    )
    with ams.Keystore.from_conf(conf) as keystore:
        protector = ams.Protector(keystore, policies)
        assert protector.unprotect("PAY.Q", protector.protect("PAY.Q", b"on the token").body).body == b"on the token"
    assert run("request", "--keystore-conf", conf, "--label", "payments", "--subject", "CN=x,O=AMS,C=GB",
               "--out-csr", tmp_path / "again.csr") == 2  # fmt: skip
    assert "already has a private key labelled 'payments'" in capsys.readouterr().err


def _readme_blocks() -> list[str]:
    """The sh blocks of the README's "Managing keys" section, in order."""
    text = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = text.split("### Managing keys\n", 1)[1].split("\n### ", 1)[0]
    return [block.split("\n```", 1)[0] for block in section.split("```sh\n")[1:]]


@pytest.mark.parametrize("index", [0, 1], ids=["key-file", "softhsm2"])
def test_the_readme_steps_run_as_pasted(index: int, tmp_path: Path) -> None:
    blocks = _readme_blocks()
    assert len(blocks) == 2
    if index == 1 and (requires_softhsm.args[0] or not Path("/usr/lib/softhsm/libsofthsm2.so").exists()):
        pytest.skip("SoftHSM2 or python-pkcs11 is not installed")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AMS_", "SOFTHSM2_", "MQS_"))}
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}"
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", blocks[index]],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    who = ["CN=alice,O=AMS,C=GB", "CN=payments,O=AMS,C=GB"][index]
    assert f"identity: {who}" in result.stdout and "trusted CA: C=GB,O=AMS,CN=Example CA" in result.stdout


def test_passphrases_are_asked_twice_on_a_terminal_and_never_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AMS_KEY_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    answers = iter(["first passphrase", "second passphrase", PASSPHRASE, PASSPHRASE])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    command: list[str | Path] = ["request", "--subject", "CN=erin,O=AMS,C=GB", "--out-csr", tmp_path / "erin.csr"]
    assert run(*command, "--out-key", tmp_path / "erin.key.pem") == 2
    assert "the two entries differ; nothing was written" in capsys.readouterr().err
    assert not (tmp_path / "erin.key.pem").exists()
    assert run(*command, "--out-key", tmp_path / "erin.key.pem", "--key-size", "2048") == 0
    output = capsys.readouterr()
    assert PASSPHRASE not in output.out + output.err
    key = (tmp_path / "erin.key.pem").read_bytes()
    with pytest.raises(TypeError):  # encrypted: it needs the passphrase
        serialization.load_pem_private_key(key, None)
    assert serialization.load_pem_private_key(key, PASSPHRASE.encode()).key_size == 2048  # type: ignore[union-attr]
