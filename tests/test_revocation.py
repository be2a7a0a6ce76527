"""Revocation against real peers: CRLs made with `openssl ca`, and an `openssl ocsp` responder on
loopback. Every accepted case has its refused twin, in hard-fail and soft-fail modes."""

from __future__ import annotations

import datetime
import selectors
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

import ams
import ams.errors
from ams.keys import RevocationSettings
from ams.keys.ocsp_http import http_post
from ams.pki import Issued, issue, make_ca
from tests.conftest import needs_openssl, store

pytestmark = needs_openssl
POLICIES = store("setmqspl -m QM -p Q -s SHA256")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Authority:
    """A CA with an `openssl ca` database, its CRL and an OCSP responder on loopback."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ca = make_ca("CN=Revocation CA,O=AMS,C=GB")
        (root / "ca.pem").write_bytes(self.ca.certificate.public_bytes(serialization.Encoding.PEM))
        (root / "ca.key.pem").write_bytes(
            self.ca.key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (root / "index.txt").write_text("")
        (root / "crlnumber").write_text("01\n")
        (root / "ca.cnf").write_text(
            f"[ca]\ndefault_ca = own\n[own]\ndatabase = {root}/index.txt\ncertificate = {root}/ca.pem\n"
            f"private_key = {root}/ca.key.pem\ndefault_md = sha256\ndefault_crl_days = 30\n"
            f"crlnumber = {root}/crlnumber\n"
        )
        self.good = self.issue("CN=good,O=AMS,C=GB", state="valid")
        self.revoked = self.issue("CN=revoked,O=AMS,C=GB", state="revoked")
        self.stranger = self.issue("CN=stranger,O=AMS,C=GB", state=None)  # unknown to the CA's database
        self.openssl("ca", "-config", root / "ca.cnf", "-gencrl", "-out", root / "crl.pem")
        self.openssl("crl", "-in", root / "crl.pem", "-outform", "DER", "-out", root / "crl.der")
        self.responder: subprocess.Popen[bytes] | None = None

    def openssl(self, *args: object) -> None:
        result = subprocess.run(["openssl", *map(str, args)], capture_output=True, check=False)
        assert result.returncode == 0, result.stderr.decode()

    def issue(self, dn: str, *, state: str | None) -> Issued:
        issued = issue(self.ca, dn, ocsp_url=self.url)
        path = self.root / f"{issued.certificate.serial_number:x}.pem"
        path.write_bytes(issued.certificate.public_bytes(serialization.Encoding.PEM))
        if state == "valid":
            self.openssl("ca", "-config", self.root / "ca.cnf", "-valid", path)
        elif state == "revoked":
            self.openssl("ca", "-config", self.root / "ca.cnf", "-revoke", path, "-crl_reason", "keyCompromise")
        return issued

    def start_responder(self) -> None:
        self.responder = self.responder_signed_by(self.ca, self.port)

    def responder_signed_by(self, signer: Issued, port: int) -> subprocess.Popen[bytes]:
        """An `openssl ocsp` responder on loopback whose answers ``signer`` signs."""
        name = f"signer-{signer.certificate.serial_number:x}"
        (self.root / f"{name}.pem").write_bytes(signer.certificate.public_bytes(serialization.Encoding.PEM))
        (self.root / f"{name}.key.pem").write_bytes(
            signer.key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        command = ["openssl", "ocsp", "-index", str(self.root / "index.txt"), "-port", str(port)]
        command += ["-rsigner", str(self.root / f"{name}.pem"), "-rkey", str(self.root / f"{name}.key.pem")]
        command += ["-CA", str(self.root / "ca.pem"), "-ignore_err", "-ndays", "1"]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        # openssl prints "ACCEPT ..." once it listens; a probing connection would block its single thread
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout=10):
                raise RuntimeError("the openssl OCSP responder did not start")
        assert process.stdout.readline().startswith(b"ACCEPT")
        return process

    def stop(self) -> None:
        if self.responder is not None:
            self.responder.terminate()
            self.responder.wait(timeout=10)


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Authority]:
    made = Authority(tmp_path_factory.mktemp("ca"))
    made.start_responder()
    yield made
    made.stop()


def message_from(authority: Authority, who: Issued) -> bytes:
    sender = ams.Keystore(ams.Identity(who.certificate, who.key), [authority.ca.certificate])
    return ams.Protector(sender, POLICIES).protect("Q", b"signed").body


def reader(authority: Authority, settings: RevocationSettings) -> ams.Protector:
    bob = issue(authority.ca, "CN=bob,O=AMS,C=GB")
    keystore = ams.Keystore(ams.Identity(bob.certificate, bob.key), [authority.ca.certificate])
    return ams.Protector(keystore, POLICIES, revocation=settings)


@pytest.mark.parametrize("crl", ["crl.pem", "crl.der"])
def test_crl_refuses_the_revoked_signer_and_accepts_the_good_one(authority: Authority, crl: str) -> None:
    protector = reader(authority, RevocationSettings(crl_files=(authority.root / crl,)))
    assert protector.unprotect("Q", message_from(authority, authority.good)).body == b"signed"
    with pytest.raises(ams.errors.CertificateRevokedError, match=r"CN=revoked.*revoked on .*key_compromise.*CRL"):
        protector.unprotect("Q", message_from(authority, authority.revoked))


def test_crl_from_another_ca_or_out_of_date_is_no_answer(authority: Authority, tmp_path: Path) -> None:
    impostor = make_ca("CN=Revocation CA,O=AMS,C=GB")  # same name, other key: its CRL must not count
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    now = datetime.datetime.now(datetime.UTC)
    forged = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(impostor.certificate.subject)
        .last_update(now - datetime.timedelta(days=1))
        .next_update(now + datetime.timedelta(days=1))
        .sign(impostor.key, hashes.SHA256())
    )
    (tmp_path / "forged.pem").write_bytes(forged.public_bytes(serialization.Encoding.PEM))
    hard = reader(authority, RevocationSettings(crl_files=(tmp_path / "forged.pem",)))
    with pytest.raises(ams.errors.RevocationUnknownError, match="bad signature"):
        hard.unprotect("Q", message_from(authority, authority.revoked))
    stale = reader(authority, RevocationSettings(crl_files=(authority.root / "crl.pem",)))
    with pytest.raises(ams.errors.RevocationUnknownError, match="get a fresh CRL"):
        stale.unprotect("Q", message_from(authority, authority.good), at=now + datetime.timedelta(days=60))


def test_ocsp_good_revoked_and_unknown(authority: Authority) -> None:
    protector = reader(authority, RevocationSettings(ocsp=True))  # the responder comes from the AIA
    assert protector.unprotect("Q", message_from(authority, authority.good)).body == b"signed"
    with pytest.raises(ams.errors.CertificateRevokedError, match=r"CN=revoked.*OCSP responder http://127\.0\.0\.1"):
        protector.unprotect("Q", message_from(authority, authority.revoked))
    with pytest.raises(ams.errors.RevocationUnknownError, match="does not know serial"):
        protector.unprotect("Q", message_from(authority, authority.stranger))


def test_soft_fail_accepts_unknown_with_a_warning_but_never_a_revoked_signer(authority: Authority) -> None:
    soft = reader(authority, RevocationSettings(ocsp=True, hard_fail=False))
    with pytest.warns(ams.errors.AmsSecurityWarning, match="soft-fail"):
        assert soft.unprotect("Q", message_from(authority, authority.stranger)).body == b"signed"
    with pytest.raises(ams.errors.CertificateRevokedError):
        soft.unprotect("Q", message_from(authority, authority.revoked))


def test_responder_down_hard_and_soft(authority: Authority) -> None:
    dead = f"http://127.0.0.1:{_free_port()}"
    hard = reader(authority, RevocationSettings(ocsp=True, ocsp_url=dead, timeout=2))
    with pytest.raises(ams.errors.RevocationUnknownError, match="did not answer"):
        hard.unprotect("Q", message_from(authority, authority.good))
    soft = reader(authority, RevocationSettings(ocsp=True, ocsp_url=dead, timeout=2, hard_fail=False))
    with pytest.warns(ams.errors.AmsSecurityWarning):
        soft.unprotect("Q", message_from(authority, authority.good))


def test_answers_are_cached_until_next_update(authority: Authority) -> None:
    calls: list[str] = []

    def counting(url: str, body: bytes, timeout: float) -> bytes:
        calls.append(url)
        return http_post(url, body, timeout)

    protector = reader(authority, RevocationSettings(ocsp=True))
    assert protector.verifier.revocation is not None
    protector.verifier.revocation.fetch = counting
    data = message_from(authority, authority.good)
    for _ in range(3):
        protector.unprotect("Q", data)
    assert len(calls) == 1  # the responder's answer holds until its nextUpdate (-ndays 1)


def test_keystore_conf_configures_revocation(authority: Authority, tmp_path: Path) -> None:
    bob = issue(authority.ca, "CN=bob,O=AMS,C=GB")
    from ams.pki import write_user_keystore

    conf = write_user_keystore(tmp_path, "bob", bob, [authority.ca.certificate])
    with conf.open("a") as handle:
        handle.write(f"crl.file = {authority.root / 'crl.pem'}\nrevocation.fail = soft\nocsp.enable = false\n")
    keystore = ams.Keystore.from_conf(conf)
    assert keystore.revocation is not None and keystore.revocation.crl_files == (authority.root / "crl.pem",)
    assert not keystore.revocation.hard_fail and not keystore.revocation.ocsp
    with pytest.raises(ams.errors.CertificateRevokedError):
        ams.Protector(keystore, POLICIES).unprotect("Q", message_from(authority, authority.revoked))
    with conf.open("a") as handle:
        handle.write("ocsp.nonce = maybe\n")
    expected = r"keystore\.conf:\d+: ocsp\.nonce = 'maybe': expected true or false"
    with pytest.raises(ams.errors.KeystoreError, match=expected):
        ams.Keystore.from_conf(conf)


@pytest.mark.parametrize("delegated", [True, False])
def test_delegated_ocsp_responders_need_ocsp_signing(authority: Authority, delegated: bool) -> None:
    from cryptography.x509.oid import ExtendedKeyUsageOID

    eku = [ExtendedKeyUsageOID.OCSP_SIGNING] if delegated else [ExtendedKeyUsageOID.EMAIL_PROTECTION]
    signer = issue(authority.ca, f"CN=responder {delegated},O=AMS,C=GB", extended_key_usage=eku)
    port = _free_port()
    process = authority.responder_signed_by(signer, port)
    try:
        protector = reader(authority, RevocationSettings(ocsp=True, ocsp_url=f"http://127.0.0.1:{port}"))
        data = message_from(authority, authority.good)
        if delegated:
            assert protector.unprotect("Q", data).body == b"signed"
        else:
            with pytest.raises(ams.errors.RevocationUnknownError, match="not signed by the issuing CA or a responder"):
                protector.unprotect("Q", data)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_responder_of_another_ca_is_not_believed(authority: Authority, tmp_path: Path) -> None:
    stranger_ca = make_ca("CN=Revocation CA,O=AMS,C=GB")  # same name as the real CA, other key
    port = _free_port()
    process = authority.responder_signed_by(stranger_ca, port)
    try:
        protector = reader(authority, RevocationSettings(ocsp=True, ocsp_url=f"http://127.0.0.1:{port}"))
        with pytest.raises(ams.errors.RevocationUnknownError, match="not signed by the issuing CA"):
            protector.unprotect("Q", message_from(authority, authority.good))
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_responder_echoes_the_nonce_and_a_replayed_answer_is_refused(authority: Authority) -> None:
    answers: list[bytes] = []

    def recording(url: str, body: bytes, timeout: float) -> bytes:
        answers.append(http_post(url, body, timeout))
        return answers[-1]

    def replaying(url: str, body: bytes, timeout: float) -> bytes:
        return answers[0]  # a genuine, current answer, but to an earlier request

    data = message_from(authority, authority.good)
    first = reader(authority, RevocationSettings(ocsp=True))
    assert first.verifier.revocation is not None
    first.verifier.revocation.fetch = recording
    assert first.unprotect("Q", data).body == b"signed"
    replayed = reader(authority, RevocationSettings(ocsp=True))
    assert replayed.verifier.revocation is not None
    replayed.verifier.revocation.fetch = replaying
    with pytest.raises(ams.errors.RevocationUnknownError, match=r"another nonce .*set ocsp\.nonce = false"):
        replayed.unprotect("Q", data)
    without_nonce = reader(authority, RevocationSettings(ocsp=True, ocsp_nonce=False))
    assert without_nonce.verifier.revocation is not None
    without_nonce.verifier.revocation.fetch = replaying
    assert without_nonce.unprotect("Q", data).body == b"signed"  # only the answer's dates bound a replay then


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        ("ocsp.timeout = 2.5\nocsp.max_age = 600\nocsp.max_response_size = 65536\n", None),
        ("ocsp.timeout = 5s\n", r"ocsp\.timeout = '5s': expected a number of seconds greater than 0"),
        ("ocsp.max_age = 1h\n", r"ocsp\.max_age = '1h': expected a whole number of seconds"),
        ("ocsp.max_response_size = 1MiB\n", r"ocsp\.max_response_size = '1MiB': expected a whole number of bytes"),
        ("ocsp.url = https://ocsp.example/\n", r"ocsp\.url = 'https://ocsp\.example/': expected an http:// URL"),
    ],
)
def test_keystore_conf_reads_the_ocsp_limits(
    authority: Authority, tmp_path: Path, lines: str, error: str | None
) -> None:
    from ams.pki import write_user_keystore

    conf = write_user_keystore(tmp_path, "bob", issue(authority.ca, "CN=bob,O=AMS,C=GB"), [authority.ca.certificate])
    with conf.open("a") as handle:
        handle.write("ocsp.enable = true\n" + lines)
    if error is not None:
        with pytest.raises(ams.errors.KeystoreError, match=rf"keystore\.conf:\d+: {error}"):
            ams.Keystore.from_conf(conf)
        return
    settings = ams.Keystore.from_conf(conf).revocation
    assert settings is not None
    assert (settings.timeout, settings.max_age, settings.max_response_size) == (
        2.5,
        datetime.timedelta(minutes=10),
        65536,
    )


# CRLs that `openssl ca -gencrl -crlexts` makes, which cover no end entity: the config section and
# what the refusal says (openssl's config has no name for deltaCRLIndicator: its DER). `openssl verify
# -crl_check` uses none of them either: a delta needs -use_deltas and its base, an ARL does not cover an
# end entity, and a CRL with an unhandled critical extension is an error.
ODD_CRLS = {
    "arl": ("issuingDistributionPoint = critical, @idp\n[idp]\nonlyCA = TRUE\n", "onlyContainsCACerts"),
    "delta-only": ("2.5.29.27 = critical, DER:02:01:01\n", "delta CRL"),  # deltaCRLIndicator, base CRL 1
    "unknown-critical": ("1.3.6.1.4.1.55555.1.1 = critical, DER:05:00\n", "unknown critical extension"),
}


@pytest.mark.parametrize("shape", list(ODD_CRLS))
def test_odd_crls_from_openssl_are_no_answer_here_or_to_openssl(
    authority: Authority, tmp_path: Path, shape: str
) -> None:
    section, why = ODD_CRLS[shape]
    config = tmp_path / "odd.cnf"
    config.write_text((authority.root / "ca.cnf").read_text() + f"[odd]\n{section}")
    odd = tmp_path / "odd.pem"
    authority.openssl("ca", "-config", config, "-gencrl", "-crlexts", "odd", "-out", odd)
    revoked = authority.root / f"{authority.revoked.certificate.serial_number:x}.pem"
    verify = ["openssl", "verify", "-crl_check", "-CAfile", authority.root / "ca.pem", "-CRLfile", odd, revoked]
    assert subprocess.run(list(map(str, verify)), capture_output=True, check=False).returncode != 0
    hard = reader(authority, RevocationSettings(crl_files=(odd,)))
    for who in (authority.revoked, authority.good):
        with pytest.raises(ams.errors.RevocationUnknownError, match=why):
            hard.unprotect("Q", message_from(authority, who))
    soft = reader(authority, RevocationSettings(crl_files=(odd,), hard_fail=False))
    with pytest.warns(ams.errors.AmsSecurityWarning, match=why):
        assert soft.unprotect("Q", message_from(authority, authority.revoked)).body == b"signed"
    # the twin: the CA's complete CRL, which openssl verify uses too
    complete = reader(authority, RevocationSettings(crl_files=(authority.root / "crl.pem",)))
    with pytest.raises(ams.errors.CertificateRevokedError):
        complete.unprotect("Q", message_from(authority, authority.revoked))
    verify[-2] = authority.root / "crl.pem"
    checked = subprocess.run(list(map(str, verify)), capture_output=True, text=True, check=False)
    assert "certificate revoked" in checked.stdout + checked.stderr
