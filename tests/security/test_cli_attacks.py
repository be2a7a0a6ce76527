"""The attacks of tests/security, run end to end through the ``ams`` command line.

The other files in this directory attack the public API; an operator meets the library through
``ams``, whose options, file loading and error printing are code paths of their own. Each test
below runs one attack class through ``ams.cli.main.main`` (one through ``python -m ams``) and
asserts that it fails, next to its accepted twin where that is cheap:

* trust: a partner's self-signed end-entity certificate (cA=FALSE, or no basicConstraints) in
  bob's keystore "issues" a certificate named alice and signs as her; ``ams unprotect`` refuses
  it, saying the partner is not a CA, and accepts what the real alice signs (and the partner's own
  signature, where it is pinned as itself).
* Bleichenbacher: a bad RSA block, well-formed blocks holding keys of the wrong length, a wrong
  key and a changed ciphertext make ``ams unprotect`` print byte-identical stderr with one exit
  status, for a privacy and a confidentiality message; the genuine message reads.
* revocation: a signer listed in a CRL given with ``--crl`` is refused (in hard and in soft mode:
  soft forgives only "unknown"), and accepted with a CRL that does not list it or without one; an
  OCSP responder on loopback saying "revoked" is believed through ``--ocsp-url``, "good" too.
* parser attacks: hostile shapes (an issuer Name nested 1,000 deep, a 4,400-digit version, 20,000
  RecipientInfos, broken PDMQ headers, hostile .spl/.mqsc policy files) through ``ams unprotect``,
  ``ams inspect`` and ``ams policy check``/``show`` end in a typed error with its exit status, no
  traceback, a short stderr (under 2,000 characters) and within 5 s. Two exceptions are by design
  and asserted as such: ``ams inspect`` describes (exit 0, a short JSON) a message whose issuer
  Name it cannot parse or that is too short to be protected, and ``ams policy check`` lists every
  error, one line each, at most 100 per file plus a count of the rest.
* a poison message: ``ams proxy --from --to`` on an embedded queue manager file moves the good
  messages behind an unreadable one and one for another recipient, puts those two on
  SYSTEM.PROTECTION.ERROR.QUEUE, and loses nothing.
"""

from __future__ import annotations

import io
import json
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp

import ams
from ams.cli.main import main
from ams.hazmat import der
from ams.mq import MQMD, EmbeddedQueueManager
from ams.mq.protected import ERROR_QUEUE
from ams.pki import Issued, issue
from tests.conftest import Pki
from tests.security.attacks import V2, V3, flip, wrapped_key_for
from tests.security.test_amplification import _integrity, _nested_name, _privacy, _recipient_info, _signed_data
from tests.security.test_decryption_oracles import _bleichenbacher_probes
from tests.security.test_revocation_attacks import Loopback, crl_of, read_request, respond
from tests.security.test_trust_attacks import _self_signed, _signed_by

BODY = b"pay the partner 1,000,000"
SECONDS = 5.0  # per command: generous for a slow CI machine, far below what an unbounded parser takes
STDERR_LIMIT = 2_000


@attrs.frozen
class Run:
    """What one ``ams`` command did, as the operator sees it."""

    code: int
    out: str
    err: str
    seconds: float


def ams_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    capsys.readouterr()
    started = time.perf_counter()
    code = main(list(argv))
    seconds = time.perf_counter() - started
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err, seconds)


def assert_typed_refusal(run: Run, code: int, *expected: str) -> None:
    """A typed error (not a crash), with ``code``, a short stderr holding ``expected``, in time."""
    assert run.code == code, run
    assert "Traceback" not in run.err and "internal error" not in run.err, run.err
    assert run.err.startswith("ams: refused (MQRC " if code == 3 else "ams: error: "), run.err
    assert len(run.err) < STDERR_LIMIT, f"{len(run.err)} characters of stderr"
    assert run.seconds < SECONDS, f"{run.seconds:.2f} s"
    for text in expected:
        assert text in run.err, (text, run.err)


def write_policies(directory: Path, *lines: str) -> Path:
    directory.mkdir()
    (directory / "policies.spl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def bob_conf(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bob's keystore.conf: his key, the CA and the other users' certificates (a PKCS#12 keystore)."""
    return pki.write_keystore(tmp_path_factory.mktemp("bob") / "keystore", "bob")


def _message_file(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


# -- trust ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "constraints",
    [x509.BasicConstraints(ca=False, path_length=None), None],
    ids=["cA-false", "no-basicConstraints"],
)
def test_cli_a_self_signed_partner_cannot_issue_itself_alice(
    pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str], constraints: x509.BasicConstraints | None
) -> None:
    partner = _self_signed("CN=partner,O=PARTNER,C=US", constraints=constraints)
    bob = pki.write_keystore(tmp_path / "bob", "bob", extra=[partner])  # bob trusts the partner as itself
    signed = f'setmqspl -m QM -p INT.Q -s SHA256 -a "{pki.dn("alice")}"'
    policies = write_policies(tmp_path / "policies", signed, "setmqspl -m QM -p OPEN.Q -s SHA256")
    keys = ["--policies", str(policies), "--keystore-conf", str(bob)]

    forged_alice = issue(partner, pki.dn("alice"))  # the partner's key signs a certificate named alice
    forged = _message_file(tmp_path, "forged.bin", _signed_by(forged_alice, signed))
    out = tmp_path / "forged.out"
    run = ams_cli(capsys, "unprotect", "-p", "INT.Q", *keys, "-i", str(forged), "-o", str(out))
    assert_typed_refusal(run, 3, "not a CA", "CN=partner,O=PARTNER,C=US")
    assert not out.exists()

    # the twins: the real alice is accepted, and so is the partner signing as itself (pinned)
    alice = ams.Protector(pki.keystore("alice"), ams.PolicyStore.from_directory(policies))
    genuine = _message_file(tmp_path, "genuine.bin", alice.protect("INT.Q", BODY).body)
    run = ams_cli(capsys, "unprotect", "-p", "INT.Q", *keys, "-i", str(genuine), "-o", str(out))
    assert run.code == 0 and out.read_bytes() == BODY, run
    pinned = _message_file(tmp_path, "pinned.bin", _signed_by(partner, "setmqspl -m QM -p OPEN.Q -s SHA256", "OPEN.Q"))
    run = ams_cli(capsys, "unprotect", "-p", "OPEN.Q", *keys, "-i", str(pinned), "-o", str(tmp_path / "pinned.out"))
    assert run.code == 0 and "CN=partner,O=PARTNER,C=US" in run.err, run


# -- Bleichenbacher ------------------------------------------------------------------------------------


def test_cli_bleichenbacher_probes_print_the_same_bytes(
    pki: Pki, bob_conf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each probe a Bleichenbacher attacker sends gets the very same answer from `ams unprotect`."""
    lines = (
        f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "{pki.dn("bob")}"',
        f'setmqspl -m QM -p CONF1.Q -e AES128 -r "{pki.dn("bob")}"',
    )
    policies = write_policies(tmp_path / "policies", *lines)
    keys = ["--policies", str(policies), "--keystore-conf", str(bob_conf)]
    alice = ams.Protector(pki.keystore("alice"), ams.PolicyStore.from_directory(policies))
    identity = pki.keystore("bob").identity
    assert identity is not None
    public = identity.certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    for queue, key_size in (("PRIV.Q", 32), ("CONF1.Q", 16)):
        message = alice.protect(queue, BODY).body
        genuine = _message_file(tmp_path, f"{queue}.bin", message)
        run = ams_cli(capsys, "unprotect", "-p", queue, *keys, "-i", str(genuine), "-o", str(tmp_path / "plain"))
        assert run.code == 0 and (tmp_path / "plain").read_bytes() == BODY, run  # the twin
        end = V3 + struct.unpack(">i", message[28:32])[0] if queue != "PRIV.Q" else len(message)
        wrapped = wrapped_key_for(message[:end], identity, offset=V2 if queue == "PRIV.Q" else V3)
        probes = _bleichenbacher_probes(message, wrapped, public, key_size)
        answers: dict[tuple[int, str], list[int]] = {}
        for number, probe in enumerate(probes):
            path = _message_file(tmp_path, f"{queue}.probe{number}", probe)
            run = ams_cli(capsys, "unprotect", "-p", queue, *keys, "-i", str(path))
            assert run.out == "", run  # nothing decrypted reaches standard output
            answers.setdefault((run.code, run.err), []).append(number)
        assert len(answers) == 1, (queue, answers)
        ((code, err),) = answers
        assert code == 3 and "MQRC 2063" in err and "Traceback" not in err, err


# -- revocation ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def revocable(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> tuple[Issued, Path, bytes]:
    """A signer the CA issued, a policy directory for INT.Q, and a message it signed."""
    signer = pki.issue("CN=revocable,O=AMS,C=GB", key=pki.spare_key)
    line = "setmqspl -m QM -p INT.Q -s SHA256"
    policies = write_policies(tmp_path_factory.mktemp("revocation") / "policies", line)
    return signer, policies, _signed_by(signer, line)


@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_cli_a_signer_revoked_in_a_crl_is_refused(
    pki: Pki,
    bob_conf: Path,
    revocable: tuple[Issued, Path, bytes],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    mode: str,
) -> None:
    signer, policies, message = revocable
    path = _message_file(tmp_path, "signed.bin", message)
    revoked = tmp_path / "revoked.crl"
    revoked.write_bytes(crl_of(pki.ca, signer.certificate.serial_number).public_bytes(serialization.Encoding.PEM))
    clean = tmp_path / "clean.crl"
    clean.write_bytes(
        crl_of(pki.ca, pki.users["carol"].certificate.serial_number).public_bytes(serialization.Encoding.DER)
    )
    keys = ["--policies", str(policies), "--keystore-conf", str(bob_conf), "--revocation-fail", mode]
    out = tmp_path / "out"
    run = ams_cli(capsys, "unprotect", "-p", "INT.Q", *keys, "--crl", str(revoked), "-i", str(path), "-o", str(out))
    assert_typed_refusal(run, 3, "revoked", "CN=revocable,O=AMS,C=GB")
    assert not out.exists()
    # the twins: a CRL that lists someone else, and no CRL at all
    for crl in (["--crl", str(clean)], []):
        run = ams_cli(capsys, "unprotect", "-p", "INT.Q", *keys, *crl, "-i", str(path), "-o", str(out))
        assert run.code == 0 and out.read_bytes() == BODY, (crl, run)


def _ocsp_responder(pki: Pki, status: ocsp.OCSPCertStatus) -> Callable[[socket.socket, threading.Event], None]:
    def serve(connection: socket.socket, stop: threading.Event) -> None:
        answer = respond(read_request(connection), pki.ca, status=status)
        connection.sendall(
            b"HTTP/1.0 200 OK\r\nContent-Type: application/ocsp-response\r\n"
            + f"Content-Length: {len(answer)}\r\n\r\n".encode()
            + answer
        )

    return serve


@pytest.mark.parametrize("status", [ocsp.OCSPCertStatus.REVOKED, ocsp.OCSPCertStatus.GOOD], ids=["revoked", "good"])
def test_cli_an_ocsp_responder_saying_revoked_is_believed(
    pki: Pki,
    bob_conf: Path,
    revocable: tuple[Issued, Path, bytes],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    status: ocsp.OCSPCertStatus,
) -> None:
    _, policies, message = revocable
    path = _message_file(tmp_path, "signed.bin", message)
    server = Loopback(_ocsp_responder(pki, status))
    try:
        keys = ["--policies", str(policies), "--keystore-conf", str(bob_conf)]
        ocsp_options = ["--ocsp", "--ocsp-url", server.url, "--revocation-fail", "hard"]
        out = tmp_path / "out"
        run = ams_cli(capsys, "unprotect", "-p", "INT.Q", *keys, *ocsp_options, "-i", str(path), "-o", str(out))
    finally:
        server.close()
    if status == ocsp.OCSPCertStatus.REVOKED:
        assert_typed_refusal(run, 3, "revoked", "CN=revocable,O=AMS,C=GB")
        assert not out.exists()
    else:
        assert run.code == 0 and out.read_bytes() == BODY, run


# -- parser attacks ------------------------------------------------------------------------------------


@attrs.frozen
class Hostile:
    """A hostile message, and what `ams unprotect` and `ams inspect` must say about it. inspect
    describes what it can without keys, so a shape it can show (bounded) is not an error for it."""

    queue: str
    message: bytes
    refusal: str  # in the stderr of `ams unprotect` (exit 3)
    inspect_code: int
    inspect_text: str  # in the stderr (exit 3) or the JSON (exit 0) of `ams inspect`


def _hostile_messages(pki: Pki, genuine: dict[str, bytes]) -> dict[str, Hostile]:
    conf, priv = genuine["CONF.Q"], genuine["PRIV.Q"]
    many = _recipient_info(pki.ca.certificate.subject.public_bytes(), 7) * 20_000
    return {
        "issuer Name nested 1,000 deep": Hostile(
            "PRIV.Q", _privacy(_recipient_info(_nested_name(1000))), "MQRC 2063", 0, "an unparseable Name of 3833 bytes"
        ),
        "4,400-digit version": Hostile(
            "INT.Q",
            _integrity(_signed_data(version=der.integer(10**4400))),
            "at most 32 are accepted",
            3,
            "INTEGER of 1828 octets; at most 32 are accepted",
        ),
        "20,000 RecipientInfos": Hostile("PRIV.Q", _privacy(many), "more than 1024", 3, "more than 1024"),
        "PDMQ header cut short": Hostile(
            "PRIV.Q", priv[:50], "shorter than a PDMQ header (104 bytes)", 0, '"protected": false'
        ),
        "PDMQ key block of 2**31 - 1": Hostile(
            "CONF.Q",
            conf[:28] + struct.pack(">i", 2**31 - 1) + conf[32:],
            "keyBlock 2147483647",
            3,
            "keyBlock 2147483647",
        ),
        "PDMQ negative key block": Hostile(
            "CONF.Q", conf[:28] + struct.pack(">i", -16) + conf[32:], "found -16", 3, "found -16"
        ),
        "PDMQ header of another version": Hostile("PRIV.Q", flip(priv, 5, 0x7F), "found 2.127", 3, "found 2.127"),
    }


HOSTILE_MESSAGES = [
    "issuer Name nested 1,000 deep",
    "4,400-digit version",
    "20,000 RecipientInfos",
    "PDMQ header cut short",
    "PDMQ key block of 2**31 - 1",
    "PDMQ negative key block",
    "PDMQ header of another version",
]


@pytest.fixture(scope="module")
def parser_world(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    lines = (
        "setmqspl -m QM -p INT.Q -s SHA256",
        f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "{pki.dn("bob")}"',
        f'setmqspl -m QM -p CONF.Q -e AES256 -r "{pki.dn("bob")}" -c 10',
    )
    policies = write_policies(tmp_path_factory.mktemp("parser") / "policies", *lines)
    alice = ams.Protector(pki.keystore("alice"), ams.PolicyStore.from_directory(policies))
    return policies, {queue: alice.protect(queue, BODY).body for queue in ("INT.Q", "PRIV.Q", "CONF.Q")}


@pytest.mark.parametrize("shape", HOSTILE_MESSAGES)
def test_cli_hostile_messages_end_typed_short_and_quick(
    pki: Pki,
    bob_conf: Path,
    parser_world: tuple[Path, dict[str, bytes]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    shape: str,
) -> None:
    policies, genuine = parser_world
    hostile = _hostile_messages(pki, genuine)[shape]
    queue = hostile.queue
    path = _message_file(tmp_path, "hostile.bin", hostile.message)
    keys = ["--keystore-conf", str(bob_conf)]
    run = ams_cli(capsys, "unprotect", "-p", queue, "--policies", str(policies), *keys, "-i", str(path))
    assert_typed_refusal(run, 3, hostile.refusal)
    assert run.out == ""
    run = ams_cli(capsys, "inspect", *keys, "-i", str(path), "--json")
    if hostile.inspect_code == 3:
        assert_typed_refusal(run, 3, hostile.inspect_text)
    else:  # described, in a few lines
        assert run.code == 0 and run.err == "" and run.seconds < SECONDS, run
        assert len(run.out) < STDERR_LIMIT and hostile.inspect_text in run.out, run.out
        json.loads(run.out)
    # the twin: the genuine message of that queue reads and inspects
    path.write_bytes(genuine[queue])
    run = ams_cli(capsys, "unprotect", "-p", queue, "--policies", str(policies), *keys, "-i", str(path))
    assert run.code == 0 and run.out.encode() == BODY, run
    run = ams_cli(capsys, "inspect", *keys, "-i", str(path), "--json")
    assert run.code == 0 and json.loads(run.out)["qop"] in ("INTEGRITY", "PRIVACY", "CONFIDENTIALITY"), run


HOSTILE_POLICY_FILES: dict[str, tuple[str, bytes]] = {
    "a 10,000-digit key reuse count": (
        "q.spl",
        ("setmqspl -m QM -p Q -e AES256 -r CN=a -c " + "9" * 10_000 + "\n").encode(),
    ),
    "a superscript digit": ("q.spl", "setmqspl -m QM -p Q -e AES256 -r CN=a -c \u00b2\n".encode()),
    "a signer DN of 2,000 RDN parts": (
        "q.spl",
        ("setmqspl -m QM -p Q -s SHA256 -a '" + "CN=a+" * 2_000 + "CN=a'\n").encode(),
    ),
    "an MQSC pattern that backtracked": ("q.mqsc", ("SET POLICY(Q) " + "a(" * 20_000 + "\n").encode()),
    "an MQSC key reuse of 50,000 digits": (
        "q.mqsc",
        ("SET POLICY(Q) ENCALG(AES256) RECIP('CN=a') KEYREUSE(" + "9" * 50_000 + ")\n").encode(),
    ),
    "20,000 continuation lines": ("q.mqsc", b"+\n" * 20_000),
    "not UTF-8": ("q.mqsc", b"* policies\nSET POLICY('Q') SIGNER('CN=\xe9')\n"),
    "500 lines of garbage": ("q.spl", b"setmqspl -m QM -p Q -s NOPE\n" * 500),
}


@pytest.mark.parametrize("hostile", list(HOSTILE_POLICY_FILES))
def test_cli_hostile_policy_files_end_typed_short_and_quick(
    pki: Pki, bob_conf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], hostile: str
) -> None:
    name, content = HOSTILE_POLICY_FILES[hostile]
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / name).write_bytes(content)
    (policies / "good.spl").write_text("setmqspl -m QM -p GOOD.Q -s SHA256\n", encoding="utf-8")
    # `ams policy check` lists every error (exit 1): one line each, at most 100 per file and a count of the rest
    run = ams_cli(capsys, "policy", "check", "--policies", str(policies))
    assert run.code == 1 and run.out == "" and run.seconds < SECONDS, run
    assert "Traceback" not in run.err and "internal error" not in run.err, run.err
    lines = run.err.splitlines()
    assert re.fullmatch(rf"[\d,]+ errors? in {re.escape(str(policies))}", lines[-1]), lines[-1]
    assert all(name in line for line in lines[:-1]), lines[:3]
    assert all(len(line) < len(str(policies)) + 200 for line in lines), max(map(len, lines))
    if hostile == "500 lines of garbage":
        assert len(lines) == 102 and lines[-2].endswith("and 400 more errors in this file"), lines[-3:]
    else:
        assert len(run.err) < STDERR_LIMIT, len(run.err)
    # `ams policy show` stops at the first error (exit 2)
    run = ams_cli(capsys, "policy", "show", "--policies", str(policies))
    assert_typed_refusal(run, 2, name)
    assert run.out == ""
    genuine = (
        ams.Protector(
            pki.keystore("alice"), ams.PolicyStore.of(ams.Policy.from_setmqspl("setmqspl -m QM -p GOOD.Q -s SHA256"))
        )
        .protect("GOOD.Q", BODY)
        .body
    )
    path = _message_file(tmp_path, "good.bin", genuine)
    keys = ["--policies", str(policies), "--keystore-conf", str(bob_conf)]
    run = ams_cli(capsys, "unprotect", "-p", "GOOD.Q", *keys, "-i", str(path))
    assert_typed_refusal(run, 2, name)
    assert run.out == ""  # a broken policy store protects nothing and reads nothing
    # the twin: without the hostile file the same store checks, shows and reads
    (policies / name).unlink()
    assert ams_cli(capsys, "policy", "check", "--policies", str(policies)).code == 0
    assert "GOOD.Q" in ams_cli(capsys, "policy", "show", "--policies", str(policies)).out
    run = ams_cli(capsys, "unprotect", "-p", "GOOD.Q", *keys, "-i", str(path))
    assert run.code == 0 and run.out.encode() == BODY, run


def test_cli_a_hostile_message_through_a_real_process(
    pki: Pki, bob_conf: Path, parser_world: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    """The same through `python -m ams`: what reaches the real stderr, not what main() returned."""
    policies, genuine = parser_world
    hostile = _hostile_messages(pki, genuine)["issuer Name nested 1,000 deep"]
    queue = hostile.queue
    path = _message_file(tmp_path, "hostile.bin", hostile.message)
    command = [sys.executable, "-m", "ams", "unprotect", "-p", queue, "--policies", str(policies)]
    command += ["--keystore-conf", str(bob_conf), "-i", str(path)]
    done = subprocess.run(command, capture_output=True, timeout=60, check=False)
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 3 and done.stdout == b"", (done.returncode, err)
    assert "Traceback" not in err and err.startswith("ams: refused (MQRC ") and len(err) < STDERR_LIMIT, err


# -- a poison message through the proxy ------------------------------------------------------------------


def test_cli_proxy_moves_good_messages_past_poison_and_loses_nothing(
    pki: Pki, bob_conf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    qm_path = tmp_path / "qm.sqlite"
    assert main(["qm", "create", str(qm_path)]) == 0
    assert main(["qm", "define", "SRC.Q", "DST.Q", "--qm", str(qm_path)]) == 0
    policies = write_policies(
        tmp_path / "policies",
        f'setmqspl -m QM -p SRC.Q -s SHA256 -e AES256 -a "{pki.dn("alice")}" -r "{pki.dn("bob")}"',
        f'setmqspl -m QM -p DST.Q -s SHA256 -e AES256 -r "{pki.dn("carol")}"',
    )
    carol_conf = pki.write_keystore(tmp_path / "carol", "carol")
    alice_conf = pki.write_keystore(tmp_path / "alice", "alice")
    qm = ["--qm", str(qm_path), "--policies", str(policies)]
    attacker = EmbeddedQueueManager(qm_path, create=True).connect("attacker")
    for_carol = (
        ams.Protector(
            pki.keystore("alice"),
            ams.PolicyStore.of(
                ams.Policy.from_setmqspl(f'setmqspl -m QM -p SRC.Q -s SHA256 -e AES256 -r "{pki.dn("carol")}"')
            ),
        )
        .protect("SRC.Q", b"not for bob")
        .body
    )

    attacker.put1("SRC.Q", MQMD(), b"\x00garbage that is not an AMS message")  # the poison, first in line
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"first good\n")))
    assert main(["put", "SRC.Q", *qm, "--keystore-conf", str(alice_conf)]) == 0
    attacker.put1("SRC.Q", MQMD(format=" " * 8), for_carol)  # a genuine message bob is not a recipient of
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"second good\n")))
    assert main(["put", "SRC.Q", *qm, "--keystore-conf", str(alice_conf)]) == 0
    assert attacker.depth("SRC.Q") == 4

    run = ams_cli(capsys, "proxy", "--from", "SRC.Q", "--to", "DST.Q", *qm, "--keystore-conf", str(bob_conf))
    assert run.code == 3 and "Traceback" not in run.err, run
    assert "moved 2 message(s) from SRC.Q to DST.Q, refused 2" in run.err, run.err
    # nothing lost: two moved, two on the error queue, none left behind or elsewhere
    assert attacker.depth("SRC.Q") == 0 and attacker.depth("DST.Q") == 2 and attacker.depth(ERROR_QUEUE) == 2
    run = ams_cli(capsys, "get", "DST.Q", *qm, "--keystore-conf", str(carol_conf))
    assert run.code == 0 and run.out == "first good\nsecond good\n", run
    run = ams_cli(capsys, "errors", "list", "--json", *qm, "--keystore-conf", str(bob_conf))
    rows = json.loads(run.out)
    assert [(row["queue"], row["reason"], row["qop"], row["size"]) for row in rows] == [
        ("SRC.Q", 2063, "unprotected", 35),  # the garbage, first in line
        ("SRC.Q", 2063, "PRIVACY", len(for_carol)),  # the one for carol
    ], rows
    explained = ams_cli(capsys, "errors", "explain", "2", "--json", *qm, "--keystore-conf", str(carol_conf))
    assert explained.code == 0, explained
    report = json.loads(explained.out)  # the error queue holds the original, intact: its recipient can read it
    assert report["verdict"].startswith("this identity can read it now (PRIVACY, signed by CN=alice"), report
    assert [recipient["dn"] for recipient in report["message"]["recipients"]] == [pki.dn("carol")]
    attacker.close()
