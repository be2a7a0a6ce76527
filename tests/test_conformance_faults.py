"""The kit finds planted faults: wrappers around `python -m ams` that flip a byte of what they write,
drop a recipient, skip the signer check, accept a weaker algorithm or write a PDMQ field wrong.
Each is reported by the property that must catch it, with a minimal counterexample, saved files
and a replay that still fails (the correct peer passes everything: test_conformance_cli.py)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import attrs
import pytest
from cryptography import x509

from ams.algorithms import QoP
from ams.cli.main import main
from ams.hazmat import mqheaders, pdmq, signed
from ams.mqconstants import MQENC_NATIVE
from ams.protector import Protector
from ams.testing.conformance import runner
from ams.testing.conformance.cases import must_accept_cases, must_check_cases
from ams.testing.conformance.peers import BUILTIN, InProcessPeer
from ams.testing.conformance.properties import BY_NAME, build_step
from ams.testing.conformance.protocol import Capabilities, Outcome, PeerSpec, Request
from ams.testing.conformance.runner import Options, run_conformance
from ams.testing.conformance.streams import message_iv
from ams.testing.conformance.tampering import MUST_CHECK
from ams.testing.conformance.world import World

WRAPPER = '''
"""A deliberately broken AMS peer: `python -m ams` with the planted fault named by argv[1]."""
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

FAULT, args = sys.argv[1], sys.argv[2:]
OPERATION = args[0]


def option(name):
    return args[args.index(name) + 1]


def rewrite_policy(change):
    import ams

    policy = ams.Policy.from_setmqspl((Path(option("--policies")) / "policy.spl").read_text())
    changed = Path(tempfile.mkdtemp())
    (changed / "policy.spl").write_text(change(policy).to_setmqspl("QM") + "\\n")
    args[args.index("--policies") + 1] = str(changed)


def accept_untrusted_signers(stderr):
    """On a refusal about the signer's certificate, hand out the signed content anyway."""
    from ams.hazmat import mqheaders, pdmq, signed

    if not any(code in stderr for code in (b"[untrusted_signer]", b"[certificate_validity]", b"[certificate_usage]")):
        return False
    body = Path(option("-i")).read_bytes()
    chain = mqheaders.walk(body, option("--format"))
    header = pdmq.PdmqHeader.unpack(body[chain.payload_offset :])
    content = bytes(signed.parse_signed_data(body[chain.payload_offset + header.size :], wrapped=True).content)
    payload = b"" if header.empty else content
    if chain.format_offset is not None:
        restored = mqheaders.encode_format(header.orig_format, chain.format_charset)
        rest = body[chain.format_offset + 8 : chain.payload_offset]
        payload = body[: chain.format_offset] + restored + rest + payload
    Path(option("-o")).write_bytes(payload)
    return True


def message_qop():
    from ams.hazmat import mqheaders, pdmq

    body = Path(option("-i")).read_bytes()
    chain = mqheaders.walk(body, option("--format"))
    return pdmq.PdmqHeader.unpack(body[chain.payload_offset :]).qop


def accept_other_qop():
    """Read the message with a policy of its own QoP (the weakest algorithms), whatever the queue's is."""
    import attrs
    import ams

    qop = message_qop()
    signs, encrypts = qop is not ams.QoP.CONFIDENTIALITY, qop is not ams.QoP.INTEGRITY
    rewrite_policy(lambda p: attrs.evolve(
        p,
        signature_algorithm=ams.SignatureAlgorithm.MD5 if signs else ams.SignatureAlgorithm.NONE,
        encryption_algorithm=ams.EncryptionAlgorithm.RC2 if encrypts else ams.EncryptionAlgorithm.NONE,
    ))
    return subprocess.run([sys.executable, "-m", "ams", *args], capture_output=True).returncode


def main():
    import attrs
    import ams

    if FAULT == "drop-recipient" and OPERATION == "protect":
        rewrite_policy(lambda p: attrs.evolve(p, recipients=p.recipients[:-1]) if len(p.recipients) > 1 else p)
    if FAULT == "weaker-algorithm" and OPERATION == "unprotect":  # reads with the weakest algorithms allowed
        md5, rc2 = ams.SignatureAlgorithm.MD5, ams.EncryptionAlgorithm.RC2
        rewrite_policy(lambda p: attrs.evolve(
            p,
            signature_algorithm=md5 if p.signature_algorithm.value else p.signature_algorithm,
            encryption_algorithm=rc2 if p.encryption_algorithm.value else p.encryption_algorithm,
        ))
    result = subprocess.run([sys.executable, "-m", "ams", *args], capture_output=True)
    sys.stderr.buffer.write(result.stderr)
    if result.returncode != 0:
        if FAULT == "crash" and OPERATION == "unprotect":
            os.kill(os.getpid(), signal.SIGSEGV)  # dies on every message it should refuse
        if FAULT == "accept-downgrade" and OPERATION == "unprotect":
            return accept_other_qop()
        if FAULT == "skip-signer-check" and OPERATION == "unprotect" and accept_untrusted_signers(result.stderr):
            return 0
        return result.returncode
    if OPERATION == "protect" and FAULT in ("flip-byte", "pdmq-field"):
        out = Path(option("-o"))
        data = bytearray(out.read_bytes())
        if FAULT == "flip-byte":
            data[-1] ^= 0x01
        else:
            from ams.hazmat import mqheaders, pdmq, signed

            start = mqheaders.walk(Path(option("-i")).read_bytes(), option("--format")).payload_offset
            data[start + 48] = 0x01  # the first PDMQ reserved byte, which must be zero
        out.write_bytes(bytes(data))
    return 0


sys.exit(main())
'''

KEYS = "-p {queue} --policies {policies} --keystore-conf {keystore_conf} --format {format}"
PROTECT = f"{KEYS} --allow-deprecated -i {{in}} -o {{out}}"
UNPROTECT = f"{KEYS} -i {{in}} -o {{out}}"


def run_planted(tmp_path: Path, fault: str, prop: str) -> dict[str, Any]:
    wrapper = tmp_path / "broken_peer.py"
    wrapper.write_text(WRAPPER, encoding="utf-8")
    peer = f"{{python}} {wrapper} {fault}"
    status = main(
        [
            "conformance", "--peer-name", fault, "--peer-protect", f"{peer} protect {PROTECT}",
            "--peer-unprotect", f"{peer} unprotect {UNPROTECT}", "--peer-policies", "--only", prop,
            "--max-examples", "10", "--seed", "3", "--shrink-time", "30", "--key-bits", "1024",
            "--output", str(tmp_path / "out"), "--no-progress",
        ]
    )  # fmt: skip
    assert status == 1
    [result] = json.loads((tmp_path / "out" / "report.json").read_text())["properties"]
    assert (result["name"], result["status"]) == (prop, "failed")
    failure: dict[str, Any] = result["failure"]
    return failure


MINIMAL = {"payload": {"shape": "empty", "size": 0, "seed": 0}, "headers": [], "final_format": "MQSTR", "queue": "Q"}


@pytest.mark.parametrize(
    "fault,prop,qop,recipients,found",
    [
        ("flip-byte", "roundtrip-from-peer", "INTEGRITY", [], "[bad_signature]"),
        ("drop-recipient", "roundtrip-from-peer", "PRIVACY", ["bob", "carol"], "carol (default reader) refused it"),
        ("skip-signer-check", "peer-refuses-untrusted-signer", "INTEGRITY", [], "done (exit 0)"),
        ("weaker-algorithm", "peer-refuses-weaker-algorithm", "INTEGRITY", [], "done (exit 0)"),
        ("pdmq-field", "peer-writes-strict", "INTEGRITY", [], "PDMQ reserved bytes 48-55: expected zeros"),
    ],
)
def test_each_planted_fault_is_found_with_a_minimal_counterexample(
    tmp_path: Path,
    fault: str,
    prop: str,
    qop: str,
    recipients: list[str],
    found: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    failure = run_planted(tmp_path, fault, prop)
    case = failure["case_values"]
    assert {key: case[key] for key in MINIMAL} == MINIMAL, failure["case"]
    assert (case["qop"], case["recipients"], case["digest"]) == (
        qop,
        recipients,
        "SHA256" if fault != "weaker-algorithm" else "SHA1",
    )
    assert found in failure["found"]
    directory = Path(failure["directory"])
    for name in (
        "payload.bin",
        "message.bin",
        "step.json",
        "peer.json",
        "replay.sh",
        "world/alice/key.pem",
        "world/trust.pem",
    ):
        assert (directory / name).is_file(), name
    assert failure["replay"] == f"ams conformance --replay {directory}"
    assert failure["peer_command"][1].endswith("broken_peer.py")
    capsys.readouterr()
    assert main(["conformance", "--replay", str(directory)]) == 1  # the one command reproduces it
    assert "still fails" in capsys.readouterr().out


@pytest.mark.parametrize("seed", [1, 2])  # seed 3: the test above, with its minimal counterexamples
@pytest.mark.parametrize(
    "fault,prop",
    [
        ("flip-byte", "roundtrip-from-peer"),
        ("drop-recipient", "roundtrip-from-peer"),
        ("skip-signer-check", "peer-refuses-untrusted-signer"),
        ("weaker-algorithm", "peer-refuses-weaker-algorithm"),
        ("pdmq-field", "peer-writes-strict"),
    ],
)
def test_the_first_planted_faults_are_found_on_every_seed(tmp_path: Path, fault: str, prop: str, seed: int) -> None:
    wrapper = tmp_path / "broken_peer.py"
    wrapper.write_text(WRAPPER, encoding="utf-8")
    peer = f"{{python}} {wrapper} {fault}"
    status = main(
        [
            "conformance", "--peer-name", fault, "--peer-protect", f"{peer} protect {PROTECT}",
            "--peer-unprotect", f"{peer} unprotect {UNPROTECT}", "--peer-policies", "--only", prop,
            "--max-examples", "10", "--seed", str(seed), "--shrink-time", "1", "--key-bits", "1024",
            "--output", str(tmp_path / "out"), "--no-progress",
        ]
    )  # fmt: skip
    assert status == 1
    [result] = json.loads((tmp_path / "out" / "report.json").read_text())["properties"]
    assert (result["name"], result["status"]) == (prop, "failed")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World.create(tmp_path_factory.mktemp("world"), key_bits=1024)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(
    "fault,prop,found",
    [
        ("crash", "peer-refuses-non-recipient", "crashed: killed by SIGSEGV, which is no refusal"),
        ("accept-downgrade", "peer-refuses-other-qop", "done (exit 0)"),
    ],
)
def test_a_crashing_peer_and_a_downgrade_are_found_on_every_seed(
    tmp_path: Path, world: World, fault: str, prop: str, found: str, seed: int
) -> None:
    """At the default example count (the fault shows on the first case; shrinking is kept short)."""
    wrapper = tmp_path / "broken_peer.py"
    wrapper.write_text(WRAPPER, encoding="utf-8")
    peer = f"{{python}} {wrapper} {fault}"
    spec = PeerSpec(fault, f"{peer} protect {PROTECT}", f"{peer} unprotect {UNPROTECT}", Capabilities(policies=True))
    options = Options(seed=seed, only=(prop,), output=tmp_path / "out", shrink_time=1)
    [result] = run_conformance(spec, options, world=world).results
    failure = result.failure
    assert failure is not None and found in failure.found, failure
    assert failure.kind == ("crashed" if fault == "crash" else "done")
    if fault == "accept-downgrade":
        case = failure.case_json
        assert (case["qop"], case["policy_qop"]) in {
            ("INTEGRITY", "PRIVACY"), ("INTEGRITY", "CONFIDENTIALITY"), ("PRIVACY", "CONFIDENTIALITY"),
            ("CONFIDENTIALITY", "INTEGRITY"), ("CONFIDENTIALITY", "PRIVACY"),
        }  # fmt: skip


class _Ignoring(InProcessPeer):
    """This project in process, with one check planted away: a refusal for ``code`` becomes a success."""

    def __init__(self, spec: PeerSpec, code: str, operation: str = "unprotect") -> None:
        super().__init__(spec)
        self.code, self.operation = code, operation

    def run(self, request: Request, world: World, workdir: Path) -> Outcome:
        outcome = super().run(request, world, workdir)
        if request.operation == self.operation and f"[{self.code}]" in outcome.stderr:
            return attrs.evolve(outcome, status=0, output=b"")
        return outcome


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(
    "code,classes",
    [
        ("bad_signature", {"the signed content", "the messageDigest attribute", "the signature value"}),
        ("size_mismatch", {"PDMQ origSize"}),
        ("not_protected", {"PDMQ StrucId", "the last clear Format"}),
    ],
)
def test_a_skipped_check_is_found_on_every_seed_by_the_must_check_list(
    tmp_path: Path, world: World, monkeypatch: pytest.MonkeyPatch, code: str, classes: set[str], seed: int
) -> None:
    """Skipped signature verification, origSize and the blanked last Format: once sampled at random,
    now changed once per QoP per run, whatever the seed."""
    monkeypatch.setattr(runner, "make_peer", lambda spec: _Ignoring(spec, code))
    options = Options(seed=seed, only=("peer-refuses-tampered",), output=tmp_path, shrink_time=1)
    [result] = run_conformance(BUILTIN["self"], options, world=world).results
    assert result.failure is not None and result.failure.kind == "done"
    assert any(f"({name}: " in result.failure.expected for name in classes), result.failure.expected
    counts = json.loads((tmp_path / "report.json").read_text())["coverage"]["counts"]["tamper classes"]
    assert all(counts.get(name) for name in classes)


def test_the_must_check_list_is_sent_and_refused_by_a_correct_peer(tmp_path: Path, world: World) -> None:
    options = Options(max_examples=1, seed=1, only=("peer-refuses-tampered",), output=tmp_path)
    report = run_conformance(BUILTIN["self"], options, world=world)
    assert report.ok, report.text()
    counts = report.coverage_json["counts"]["tamper classes"]
    for qop, names in MUST_CHECK.items():
        assert all(counts.get(name) for name in names), (qop, names, counts)
    assert report.results[0].examples == len(must_check_cases(Capabilities())) + 1


class _Pedantic(InProcessPeer):
    """This project in process, with a check planted in that AMS does not make: it refuses a message
    whose PDMQ ``field`` is not what this project writes (reserved bytes, byte order)."""

    def __init__(self, spec: PeerSpec, field: str) -> None:
        super().__init__(spec)
        self.field = field

    def run(self, request: Request, world: World, workdir: Path) -> Outcome:
        outcome = super().run(request, world, workdir)
        start = mqheaders.walk(request.data, request.format).payload_offset
        header = request.data[start : start + 56]
        if request.operation == "unprotect" and header[:4] == b"PDMQ":
            odd = header[48:56] != bytes(8) if self.field == "reserved" else header[6] != 2
            if odd:
                return Outcome(3, None, f"pedantic: the PDMQ {self.field} is not as we write it")
        return outcome


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(
    "field,name", [("reserved", "the reserved bytes"), ("encoding", "the header byte-swapped (encoding 2)")]
)
def test_a_peer_that_refuses_what_it_must_accept_is_found_on_every_seed(
    tmp_path: Path, world: World, monkeypatch: pytest.MonkeyPatch, field: str, name: str, seed: int
) -> None:
    monkeypatch.setattr(runner, "make_peer", lambda spec: _Pedantic(spec, field))
    options = Options(seed=seed, only=("peer-accepts-unchecked-fields",), output=tmp_path, shrink_time=1)
    [result] = run_conformance(BUILTIN["self"], options, world=world).results
    assert result.failure is not None and result.failure.kind == "refused", result
    assert "pedantic" in result.failure.found
    assert json.loads((tmp_path / "report.json").read_text())["coverage"]["counts"]["tamper classes"][name] >= 3


def test_the_must_accept_names_follow_the_mutations(world: World) -> None:
    keywords = {"dynamic-queue": "dynamic-queue", "flags": "flags", "reserved": "reserved",
                "policy name": "policy name", "key-reuse": "key-reuse", "byte-swapped": "byte order"}  # fmt: skip
    for case in must_accept_cases(Capabilities()):
        step = build_step(BY_NAME["peer-accepts-unchecked-fields"], case, world)
        name = case.tamper_class() or ""
        word = next(key for key in keywords if key in name)
        assert keywords[word] in step.note, (name, step.note)


class _SigningTimeOnly(InProcessPeer):
    """This project in process, with the time check planted wrong: a signer's certificate passes when
    the message's signingTime lies within its validity, valid now or not."""

    def run(self, request: Request, world: World, workdir: Path) -> Outcome:
        outcome = super().run(request, world, workdir)
        if request.operation != "unprotect" or "[certificate_validity]" not in outcome.stderr:
            return outcome
        start = mqheaders.walk(request.data, request.format).payload_offset
        header = pdmq.PdmqHeader.unpack(request.data[start:])
        if header.qop is not QoP.INTEGRITY:  # (privacy's signature is inside the envelope: left alone here)
            return outcome
        content = signed.parse_signed_data(request.data[start + header.size :], wrapped=True)
        when = signed.signing_time(content.signer_infos[0])
        certificate = x509.load_der_x509_certificate(content.certificates[0])
        if when is not None and certificate.not_valid_before_utc <= when <= certificate.not_valid_after_utc:
            return attrs.evolve(outcome, status=0, output=bytes(content.content))
        return outcome


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_peer_that_checks_only_the_signing_time_is_found_on_every_seed(
    tmp_path: Path, world: World, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    monkeypatch.setattr(runner, "make_peer", lambda spec: _SigningTimeOnly(spec))
    only = ("peer-refuses-invalid-signer", "peer-refuses-backdated-signer")
    options = Options(seed=seed, only=only, output=tmp_path, shrink_time=1)
    invalid, backdated = run_conformance(BUILTIN["self"], options, world=world).results
    assert invalid.status == "passed"  # signed now by an expired signer: refused, so the fault hid before
    assert backdated.failure is not None and backdated.failure.kind == "done"
    assert "signingTime" in backdated.failure.expected and "which does not hold now" in backdated.failure.expected


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_peer_that_ignores_the_authorised_signers_is_found_on_every_seed(
    tmp_path: Path, world: World, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    monkeypatch.setattr(runner, "make_peer", lambda spec: _Ignoring(spec, "unauthorised_signer"))
    only = ("peer-refuses-unauthorised-signer", "peer-accepts-authorised-signer")
    options = Options(seed=seed, only=only, output=tmp_path, shrink_time=1)
    refuses, accepts = run_conformance(BUILTIN["self"], options, world=world).results
    assert refuses.failure is not None and refuses.failure.kind == "done"
    assert (
        "the peer's policy authorises" in refuses.failure.expected
        and "alice" not in refuses.failure.case_json["authorised"]
    )
    assert accepts.status == "passed"  # its twin: a signer the policy authorises is accepted


class _ZeroIv(InProcessPeer):
    """This project in process, with the IV planted wrong: every message it protects has an all-zero IV."""

    def run(self, request: Request, world: World, workdir: Path) -> Outcome:
        outcome = super().run(request, world, workdir)
        if request.operation != "protect" or outcome.output is None:
            return outcome
        fmt = protected_format_of(request)
        iv = message_iv(outcome.output, fmt)
        return attrs.evolve(outcome, output=outcome.output.replace(iv, bytes(len(iv)), 1))


def protected_format_of(request: Request) -> str:
    chain = mqheaders.walk(request.data, request.format)
    return request.format if chain.format_offset is not None else " " * 8


class _KeyReusing(InProcessPeer):
    """This project in process, keeping one sender across calls (as one open queue handle) whose key
    reuse is planted wrong: unlimited whatever the policy says, or one message more than its count."""

    def __init__(self, spec: PeerSpec, extra: str) -> None:
        super().__init__(spec)
        self.extra = extra
        self.senders: dict[str, Protector] = {}

    def run(self, request: Request, world: World, workdir: Path) -> Outcome:
        outcome = super().run(request, world, workdir)
        if request.operation != "protect" or outcome.output is None:
            return outcome
        policy = request.policy(world)
        count = -1 if self.extra == "unlimited" or policy.key_reuse < 0 else policy.key_reuse + 1
        policy = attrs.evolve(policy, key_reuse=count)
        keystore, policies = world.keystore(request.identity), {policy.name: policy}
        sender = self.senders.setdefault(repr(policy), Protector(keystore, policies, allow_deprecated=True))
        body = sender.protect(request.queue, request.data, request.format, encoding=MQENC_NATIVE).body
        return attrs.evolve(outcome, output=body)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(
    "fault,prop,found",
    [
        ("zero-iv", "peer-writes-fresh-keys", "has an all-zero IV"),
        ("unlimited", "peer-writes-fresh-keys", "share one content-encryption key"),
        ("one-more", "peer-honours-key-reuse", "where the key reuse count"),
    ],
)
def test_a_stale_iv_or_key_is_found_on_every_seed(
    tmp_path: Path, world: World, monkeypatch: pytest.MonkeyPatch, fault: str, prop: str, found: str, seed: int
) -> None:
    """An all-zero IV; a key repeated where key reuse is off; a key used once more than -c N allows.
    (This project reuses a confidentiality key only, so the key faults are planted there.)"""
    peer = (lambda spec: _ZeroIv(spec)) if fault == "zero-iv" else (lambda spec: _KeyReusing(spec, fault))
    monkeypatch.setattr(runner, "make_peer", peer)
    caps = Capabilities(qops=(QoP.CONFIDENTIALITY,), policies=True) if fault != "zero-iv" else Capabilities()
    spec = attrs.evolve(BUILTIN["self"], capabilities=caps)
    options = Options(max_examples=9, seed=seed, only=(prop,), output=tmp_path, shrink_time=1)  # 3 streams
    [result] = run_conformance(spec, options, world=world).results
    assert result.failure is not None and result.failure.kind == "done", result
    assert found in result.failure.found, result.failure.found
    assert (Path(result.failure.directory) / "stream-1.bin").is_file()


def test_a_correct_peer_writes_fresh_ivs_and_keys_and_honours_key_reuse(tmp_path: Path, world: World) -> None:
    only = ("peer-writes-fresh-keys", "peer-honours-key-reuse")
    options = Options(max_examples=9, seed=1, only=only, output=tmp_path)
    report = run_conformance(BUILTIN["self"], options, world=world)
    assert report.ok, report.text()
    assert [r.examples for r in report.results] == [3, 3]  # a third of --max-examples: each case is 3-4 calls


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(
    "code,operation,refuses,twin",
    [
        ("certificate_revoked", "unprotect", "peer-refuses-revoked-signer", "peer-accepts-unrevoked-signer"),
        ("recipient_certificate", "protect", "peer-refuses-unusable-recipient", "roundtrip-from-peer"),
    ],
)
def test_a_peer_that_ignores_revocation_or_recipient_key_usage_is_found_on_every_seed(
    tmp_path: Path,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    code: str,
    operation: str,
    refuses: str,
    twin: str,
    seed: int,
) -> None:
    """A signer the CRL revokes accepted; a recipient without keyEncipherment encrypted to."""
    monkeypatch.setattr(runner, "make_peer", lambda spec: _Ignoring(spec, code, operation))
    options = Options(max_examples=3, seed=seed, only=(refuses, twin), output=tmp_path, shrink_time=1)
    results = {r.name: r for r in run_conformance(BUILTIN["self"], options, world=world).results}
    failure = results[refuses].failure
    assert failure is not None and failure.kind == "done", results[refuses]
    assert ("revoked" if operation == "unprotect" else "keyEncipherment") in failure.case + failure.expected
    assert results[twin].status == "passed"  # the twin: an unrevoked signer, usable recipients


class _FormatDropping(InProcessPeer):
    """This project in process, with the Format planted wrong: it hands back the MQMD Format it was
    given (blank without clear headers) rather than the origFormat the message carries."""

    def run(self, request: Request, world: World, workdir: Path) -> Outcome:
        outcome = super().run(request, world, workdir)
        return attrs.evolve(outcome, format=request.format) if outcome.format is not None else outcome


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_peer_that_drops_the_format_is_found_on_every_seed(
    tmp_path: Path, world: World, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    monkeypatch.setattr(runner, "make_peer", lambda spec: _FormatDropping(spec))
    options = Options(max_examples=5, seed=seed, only=("peer-restores-format",), output=tmp_path, shrink_time=1)
    [result] = run_conformance(BUILTIN["self"], options, world=world).results
    assert result.failure is not None and result.failure.kind == "done", result
    assert "the Format handed back is '        '" in result.failure.found
    assert result.failure.case_json["headers"] == [] and result.failure.case_json["final_format"].strip()


class _NoFutureSignatures(InProcessPeer):
    """This project in process, with a rule planted in that AMS does not have: a signingTime more than
    five minutes ahead is refused (format.md §6 checks the certificate's validity now, not the signingTime)."""

    def run(self, request: Request, world: World, workdir: Path) -> Outcome:
        outcome = super().run(request, world, workdir)
        start = mqheaders.walk(request.data, request.format).payload_offset
        if request.operation != "unprotect" or outcome.status != 0 or request.data[start : start + 4] != b"PDMQ":
            return outcome
        header = pdmq.PdmqHeader.unpack(request.data[start:])
        if header.qop is not QoP.INTEGRITY:
            return outcome
        content = signed.parse_signed_data(request.data[start + header.size :], wrapped=True)
        when = signed.signing_time(content.signer_infos[0])
        if when is not None and when > datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5):
            return Outcome(3, None, f"pedantic: signingTime {when} is in the future")
        return outcome


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_peer_that_refuses_a_future_signing_time_is_found_on_every_seed(
    tmp_path: Path, world: World, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    monkeypatch.setattr(runner, "make_peer", lambda spec: _NoFutureSignatures(spec))
    only = ("roundtrip-to-peer", "peer-accepts-future-signing-time")
    options = Options(max_examples=3, seed=seed, only=only, output=tmp_path, shrink_time=1)
    roundtrip, future = run_conformance(BUILTIN["self"], options, world=world).results
    assert roundtrip.status == "passed"  # signed now: accepted
    assert future.failure is not None and future.failure.kind == "refused", future
    assert "pedantic" in future.failure.found and "ahead of now" in future.failure.expected
