"""ams conformance: the command protocol, the cases within a peer's capabilities, the strict
checks, the reports, and self-conformance in process (the command-line peers are in
test_conformance_cli.py, test_conformance_openssl.py and test_conformance_faults.py)."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ams.algorithms import EncryptionAlgorithm, QoP, SignatureAlgorithm
from ams.errors import UsageError
from ams.testing.algorithms import QOPS
from ams.testing.conformance.cases import case_strategy, must_accept_cases, must_check_cases, qop_matrix_cases
from ams.testing.conformance.peers import BUILTIN
from ams.testing.conformance.properties import ACCEPTED_QOPS, BY_NAME, PROPERTIES, Case, Check, build_step
from ams.testing.conformance.protocol import Capabilities, PeerSpec, Request, Template, run_command
from ams.testing.conformance.runner import Options, run_conformance, skip_reason, stream_examples
from ams.testing.conformance.strict import deviations
from ams.testing.conformance.world import World
from ams.testing.headers import ClearChain, HeaderSpec
from ams.testing.payloads import PayloadSpec

PYTHON = sys.executable


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World.create(tmp_path_factory.mktemp("world"), key_bits=1024)


# -- the protocol ------------------------------------------------------------------------------------------------------

VALUES: dict[str, str | list[str]] = {
    "python": "/usr/bin/python3",
    "queue": "PAY ROLL 'Q'",
    "format": "",
    "in": "/w/in.bin",
    "recipient_cert": ["/w/bob.pem", "/w/carol smith.pem"],
    "recipient_dn": [],
}


@pytest.mark.parametrize(
    "template,expected",
    [
        ("tool --queue {queue} --format {format}", ["tool", "--queue", "PAY ROLL 'Q'", "--format", ""]),
        ("tool --in={in} '{queue}'", ["tool", "--in=/w/in.bin", "PAY ROLL 'Q'"]),
        ("tool {recipient_cert}", ["tool", "/w/bob.pem", "/w/carol smith.pem"]),
        ("tool --to={recipient_cert} -x", ["tool", "--to=/w/bob.pem", "--to=/w/carol smith.pem", "-x"]),
        ("tool {recipient_cert:-r}", ["tool", "-r", "/w/bob.pem", "-r", "/w/carol smith.pem"]),
        ("tool {recipient_dn:--dn} --end", ["tool", "--end"]),  # no recipients: the flag goes too
        ("tool x{{y}}z {queue}", ["tool", "x{y}z", "PAY ROLL 'Q'"]),
        ("{python} -c 'print(1)'", ["/usr/bin/python3", "-c", "print(1)"]),
    ],
)
def test_templates_put_each_value_in_one_argument(template: str, expected: list[str]) -> None:
    assert Template.parse(template, "protect").render(VALUES) == expected


@pytest.mark.parametrize(
    "template,operation,match",
    [
        ("tool {nope}", "protect", r"unknown placeholder \{nope\}.*\{qop\}"),
        ("tool {queue", "protect", "unmatched '\\{'"),
        ("tool }", "protect", "unmatched '}'"),
        ("tool {recipient_cert}{recipient_dn}", "protect", "2 repeated placeholders"),
        ("tool {queue:-q}", "protect", "only the repeated placeholders"),
        ("tool x{recipient_cert:-r}", "protect", "as a whole word"),
        ("tool {signer_key}", "unprotect", "protect templates only"),
        ("", "protect", "empty"),
        ("tool 'open", "unprotect", "cannot be split"),
    ],
)
def test_bad_templates_are_refused_before_anything_runs(template: str, operation: str, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        Template.parse(template, operation)


def test_a_peer_that_does_not_answer_is_stopped(tmp_path: Path) -> None:
    args = Template.parse("{python} -c 'import time; time.sleep(30)'", "protect").render({"python": PYTHON})
    outcome = run_command(args, tmp_path, timeout=0.5)
    assert outcome.status is None and not outcome.accepted
    assert "no answer within" in outcome.describe()


def test_exit_zero_without_an_output_file_is_not_done(tmp_path: Path) -> None:
    outcome = run_command([PYTHON, "-c", "pass"], tmp_path, timeout=30)
    assert outcome.accepted and outcome.output is None
    assert "output file was not written" in outcome.describe()


# -- the cases stay within what the peer implements --------------------------------------------------------------------

NARROW = Capabilities(
    qops=(QoP.PRIVACY,),
    digests=(SignatureAlgorithm.SHA512,),
    ciphers=(EncryptionAlgorithm.AES128,),
    max_recipients=3,
    max_payload=100,
    clear_headers=False,
)


@settings(max_examples=60)
@given(data=st.data())
def test_cases_stay_within_the_capabilities(data: st.DataObject) -> None:
    narrow = PeerSpec("narrow", "tool", "tool", attrs.evolve(NARROW, policies=True))
    runnable = [p for p in PROPERTIES if skip_reason(p, narrow) is None and p.name != "peer-refuses-weaker-algorithm"]
    prop = data.draw(st.sampled_from(runnable))
    case = data.draw(case_strategy(prop, NARROW))
    assert case.qop is QoP.PRIVACY and case.digest is SignatureAlgorithm.SHA512
    assert case.cipher is EncryptionAlgorithm.AES128 and 1 <= case.recipients <= 3
    assert case.payload.size <= 100 and not case.chain.headers


@settings(max_examples=60)
@given(data=st.data())
def test_weaker_algorithm_cases_are_weaker_than_the_peers_policy(data: st.DataObject) -> None:
    caps = attrs.evolve(NARROW, qops=(QoP.INTEGRITY, QoP.PRIVACY, QoP.CONFIDENTIALITY), policies=True)
    case = data.draw(case_strategy(BY_NAME["peer-refuses-weaker-algorithm"], caps))
    policy_digest = case.policy_digest or case.digest
    policy_cipher = case.policy_cipher or case.cipher
    assert policy_digest in (SignatureAlgorithm.SHA512, SignatureAlgorithm.NONE)
    assert policy_cipher in (EncryptionAlgorithm.AES128, EncryptionAlgorithm.NONE)
    assert case.digest.value < policy_digest.value or case.cipher.value < policy_cipher.value


@settings(max_examples=40)
@given(data=st.data())
def test_other_qop_cases_pair_a_policy_with_a_message_it_must_refuse(data: st.DataObject) -> None:
    qops = data.draw(st.sampled_from([(QoP.INTEGRITY, QoP.PRIVACY), (QoP.PRIVACY, QoP.CONFIDENTIALITY), QOPS]))
    case = data.draw(case_strategy(BY_NAME["peer-refuses-other-qop"], attrs.evolve(NARROW, qops=qops)))
    assert case.policy_qop in qops and case.qop in qops
    assert (case.policy_qop, case.qop) not in ACCEPTED_QOPS
    higher = data.draw(case_strategy(BY_NAME["peer-accepts-higher-qop"], attrs.evolve(NARROW, qops=QOPS)))
    assert (higher.policy_qop, higher.qop) == (QoP.INTEGRITY, QoP.PRIVACY)


def test_what_a_peer_cannot_do_is_skipped_with_the_reason() -> None:
    protect_only = PeerSpec("half", protect="tool {in}")
    assert "no unprotect command (--peer-unprotect)" in (skip_reason(BY_NAME["roundtrip-to-peer"], protect_only) or "")
    assert skip_reason(BY_NAME["roundtrip-from-peer"], protect_only) is None
    unprotect_only = PeerSpec("reader", unprotect="tool {in}")
    assert "--peer-policies" in (skip_reason(BY_NAME["peer-refuses-weaker-algorithm"], unprotect_only) or "")
    confidential = attrs.evolve(unprotect_only, capabilities=Capabilities(qops=(QoP.CONFIDENTIALITY,)))
    assert "none of INTEGRITY, PRIVACY" in (skip_reason(BY_NAME["peer-refuses-untrusted-signer"], confidential) or "")
    policed = attrs.evolve(confidential, capabilities=Capabilities(qops=(QoP.CONFIDENTIALITY,), policies=True))
    assert "one QoP only" in (skip_reason(BY_NAME["peer-refuses-other-qop"], policed) or "")
    tolerates = BY_NAME["peer-tolerates-unprotected"]
    assert "takes neither {tolerate} nor {policies}" in (skip_reason(tolerates, policed) or "")
    for template in ("tool -t {tolerate} {in}", "tool --policies={policies}"):
        assert skip_reason(tolerates, attrs.evolve(policed, unprotect=template)) is None
    assert skip_reason(tolerates, attrs.evolve(policed, unprotect="tool {{tolerate}}")) is not None
    authorised = BY_NAME["peer-refuses-unauthorised-signer"]
    signing = attrs.evolve(policed, capabilities=Capabilities(policies=True), unprotect="tool {in}")
    assert "takes neither {authorised_dn} nor {policies}" in (skip_reason(authorised, signing) or "")
    assert skip_reason(authorised, attrs.evolve(signing, unprotect="tool {authorised_dn:-a} {in}")) is None


# -- the strict checks -------------------------------------------------------------------------------------------------


def _written(world: World, qop: QoP, chain: ClearChain) -> tuple[Request, bytes]:
    """What this project writes for a protect request, and the request."""
    digest = SignatureAlgorithm.SHA256 if qop is not QoP.CONFIDENTIALITY else SignatureAlgorithm.NONE
    cipher = EncryptionAlgorithm.AES256 if qop is not QoP.INTEGRITY else EncryptionAlgorithm.NONE
    case = Case(qop, digest, cipher, 0 if qop is QoP.INTEGRITY else 3, 0, PayloadSpec("text", 40), chain, "Q")
    step = build_step(BY_NAME["roundtrip-to-peer"], case, world)  # protected by us, in process
    request = Request(
        "protect", qop, digest, cipher, "alice", case.recipient_names, "Q", chain.mqmd_format, step.expected
    )
    return request, step.request.data


@pytest.mark.parametrize("qop", [QoP.INTEGRITY, QoP.PRIVACY, QoP.CONFIDENTIALITY])
def test_what_we_write_is_strict_and_every_deviation_is_named(world: World, qop: QoP) -> None:
    chain = ClearChain((HeaderSpec("MQHRF2", folders=("<usr><a>1</a></usr>",)),), "MQSTR", (546, 546))
    request, body = _written(world, qop, chain)
    assert deviations(body, request, world) == []
    start = len(chain.prefix())
    changed = bytearray(body)
    changed[start + 48] = 1  # a reserved byte
    changed[start + 60] ^= 0x20  # the policy name: 'Q' NUL-padded
    found = deviations(bytes(changed), request, world)
    assert any("reserved bytes" in d for d in found) and any("policy name" in d for d in found)
    assert any("clear headers changed" in d for d in deviations(b"X" + body[1:], request, world))
    fewer = attrs.evolve(request, recipients=request.recipients[:1])
    if qop is not QoP.INTEGRITY:
        assert any("exactly the policy's 1 recipient" in d for d in deviations(body, fewer, world))
    stronger = attrs.evolve(request, digest=SignatureAlgorithm.SHA512, cipher=EncryptionAlgorithm.AES128)
    assert deviations(body, stronger, world) != []


# -- self-conformance, in process --------------------------------------------------------------------------------------


def test_self_conformance_in_process(world: World, tmp_path: Path) -> None:
    options = Options(max_examples=9, seed=2026, output=tmp_path, shrink_time=5)
    report = run_conformance(BUILTIN["self"], options, world=world)
    assert [(r.name, r.status) for r in report.results] == [(p.name, "passed") for p in PROPERTIES], report.text()
    explicit = {  # sent before the random cases
        "peer-refuses-tampered": len(must_check_cases(Capabilities())),
        "peer-accepts-unchecked-fields": len(must_accept_cases(Capabilities())),
        "peer-follows-qop-matrix": len(qop_matrix_cases(Capabilities())),
    }
    streams = [p for p in PROPERTIES if p.check is Check.FRESH]  # each case a stream of 3-4 calls
    examples = {p.name: stream_examples(9) if p in streams else 9 + explicit.get(p.name, 0) for p in PROPERTIES}
    assert [r.examples for r in report.results] == list(examples.values())
    suite = ElementTree.parse(tmp_path / "junit.xml").getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == (str(len(PROPERTIES)), "0", "0")
    assert json.loads((tmp_path / "report.json").read_text())["ok"] is True
    text = (tmp_path / "report.txt").read_text()
    assert f"0 failed, {len(PROPERTIES)} passed, 0 skipped" in text
    coverage = json.loads((tmp_path / "report.json").read_text())["coverage"]
    assert set(coverage["counts"]["qops"]) == {"integrity", "privacy", "confidentiality", "not protected"}
    single = (len(PROPERTIES) - len(streams)) * 9 + sum(explicit.values())
    calls = sum(coverage["counts"]["qops"].values())  # every call, each of a stream's too
    assert single + 3 * stream_examples(9) * len(streams) <= calls <= single + 4 * stream_examples(9) * len(streams)
    assert "coverage (peer calls per value" in text and "  tamper classes" in text
    for dimension, values in coverage["never"].items():  # what was never drawn is said, and is really absent
        assert all(not coverage["counts"][dimension].get(v) for v in values)
        assert not values or f"never exercised: {', '.join(values)}" in text


def test_a_peer_that_unprotects_nothing_proves_nothing_by_refusing(world: World, tmp_path: Path) -> None:
    never = PeerSpec("never", unprotect=f"{PYTHON} -c 'import sys; sys.exit(3)'")
    only = ("roundtrip-to-peer", "peer-refuses-tampered", "roundtrip-from-peer")
    report = run_conformance(
        never, Options(max_examples=3, seed=1, only=only, output=tmp_path, shrink_time=2), world=world
    )
    results = {r.name: r for r in report.results}
    assert results["roundtrip-to-peer"].status == "failed"
    assert results["peer-refuses-tampered"].status == "skipped"
    assert "does not unprotect even the simplest message" in results["peer-refuses-tampered"].reason
    assert results["roundtrip-from-peer"].reason == "the peer has no protect command (--peer-protect)"
    failure = results["roundtrip-to-peer"].failure
    assert failure is not None and failure.case.startswith("integrity SHA256; payload empty; Format 'MQSTR'")
    assert not report.ok


def test_unknown_properties_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown property roundtrip: expected one of roundtrip-to-peer"):
        run_conformance(BUILTIN["self"], Options(only=("roundtrip",), output=tmp_path))


def test_a_peer_that_protects_nothing_proves_nothing_by_refusing(world: World, tmp_path: Path) -> None:
    """A refusal to encrypt for an unusable recipient counts only from a peer that protects at all."""
    never = PeerSpec("never", protect=f"{PYTHON} -c 'import sys; sys.exit(3)'")
    options = Options(max_examples=3, seed=1, only=("peer-refuses-unusable-recipient",), output=tmp_path)
    [result] = run_conformance(never, options, world=world).results
    assert result.status == "skipped" and "does not protect even the simplest message" in result.reason


INT, PRIV, CONF = QoP.INTEGRITY, QoP.PRIVACY, QoP.CONFIDENTIALITY
# docs/format.md §6: the (policy's QoP, message's QoP) pairs a receiver accepts
FORMAT_MD_ACCEPTS = {(INT, INT), (INT, PRIV), (PRIV, PRIV), (CONF, CONF)}


def test_the_qop_matrix_sends_every_cell_of_format_md_with_its_verdict(world: World) -> None:
    cases = qop_matrix_cases(Capabilities())
    cells = {(c.policy_qop, c.tolerate, None if c.unprotected else c.qop) for c in cases}
    assert len(cells) == len(cases) == 3 * 2 * 4  # policy QoP x -t 0/1 x (not protected, each QoP)
    for case in cases:
        step = build_step(BY_NAME["peer-follows-qop-matrix"], case, world)
        accepted = case.tolerate if case.unprotected else (case.policy_qop, case.qop) in FORMAT_MD_ACCEPTS
        assert step.check is (Check.ACCEPT if accepted else Check.REFUSE), (case.describe(), step.note)
        assert (step.request.qop, step.request.tolerate) == (case.policy_qop, case.tolerate)
        assert (step.request.data == step.expected) is case.unprotected  # ours protected, or the body as it was
    assert len(qop_matrix_cases(Capabilities(qops=(INT, CONF)))) == 2 * 2 * 3  # only what the peer implements
