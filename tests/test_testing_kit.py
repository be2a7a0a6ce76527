"""ams.testing, the kit others build on: the throwaway PKI and its broken certificates, keystore.conf
files, the pytest plugin, payload shapes, and mutations that say truly what a receiver must do."""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ams
import ams.errors
from ams.keys.revocation_settings import RevocationSettings
from ams.testing.mutations import Expect, ProtectedMessage, field_changes, layout, refusing
from ams.testing.payloads import PayloadSpec
from ams.testing.pki import CertificateFault, ThrowawayPki, pem
from ams.testing.plugin import KeystoreConfWriter, PolicyDirWriter
from ams.testing.strategies import mutations, payload_specs, protected_messages
from tests.conftest import store

ROOT = Path(__file__).resolve().parents[1]

# -- the kit loads without Hypothesis, and only two modules import it --------------------------------------------------


def test_the_kit_needs_hypothesis_only_for_strategies_and_the_runner() -> None:
    code = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "import ams.testing, ams.testing.pki, ams.testing.plugin, ams.testing.mutations, ams.testing.headers\n"
        "import ams.testing.conformance.peers, ams.testing.conformance.checks, ams.testing.conformance.replay\n"
        "import ams.testing.conformance.openssl_peer, ams.cli.main\n"
        "try:\n    import ams.testing.strategies\nexcept ImportError:\n    print('no strategies')\n"
        "from ams.cli.main import main\nsys.exit(main(['conformance', '--peer', 'self']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.stdout == "no strategies\n", result.stderr
    assert result.returncode == 2 and "pip install 'ams[testing]'" in result.stderr


def test_hypothesis_is_imported_only_by_the_strategies_and_the_conformance_runner() -> None:
    importers = set()
    for path in (ROOT / "ams").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n == "hypothesis" or n.startswith("hypothesis.") for n in names):
                importers.add(path.relative_to(ROOT).as_posix())
    runner = {"ams/testing/conformance/runner.py", "ams/testing/conformance/cases.py"}  # cases: the runner's draws
    assert importers == {"ams/testing/strategies.py", *runner}


def test_the_package_declares_the_testing_extra_and_the_pytest_plugin() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert any(r.startswith("hypothesis") for r in project["optional-dependencies"]["testing"])
    assert project["entry-points"]["pytest11"] == {"ams": "ams.testing.plugin"}


def _plugin_installed() -> bool:
    return any(e.value == "ams.testing.plugin" for e in importlib.metadata.entry_points(group="pytest11"))


def test_the_pytest_plugin_gives_any_suite_its_fixtures(tmp_path: Path) -> None:
    (tmp_path / "test_uses_the_plugin.py").write_text(
        "import ams\n"
        "def test_bob_reads_alice(ams_pki, ams_keystore_conf, ams_policy_dir):\n"
        '    queue = ams_policy_dir(f\'setmqspl -m QM -p Q -s SHA256 -e AES256 -r "{ams_pki.dn("bob")}"\')\n'
        "    policies = ams.PolicyStore.from_directory(queue)\n"
        "    sent = ams.Protector(ams_pki.keystore('alice'), policies).protect('Q', b'hi')\n"
        "    bob = ams.Keystore.from_conf(ams_keystore_conf('bob', kind='pem'), strict=True)\n"
        "    assert ams.Protector(bob, policies).unprotect('Q', sent).body == b'hi'\n"
        "from hypothesis import given, settings\n"
        "from ams.testing.strategies import policies\n"
        "@settings(max_examples=3)\n"
        "@given(policy=policies(deprecated=False))\n"  # the fixtures are not function-scoped: @given takes them
        "def test_given_takes_the_fixtures(ams_keystore_conf, ams_policy_dir, policy):\n"
        "    assert not policy.signature_algorithm.deprecated and not policy.encryption_algorithm.deprecated\n"
        "    assert ams_keystore_conf('bob').is_file() and ams_policy_dir(policy.to_setmqspl('QM')).is_dir()\n",
        encoding="utf-8",
    )
    load = [] if _plugin_installed() else ["-p", "ams.testing.plugin"]  # installed: loaded by its entry point
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *load, str(tmp_path)]
    result = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


# -- the throwaway PKI -------------------------------------------------------------------------------------------------

SIGNER_ERRORS: dict[CertificateFault, type[ams.errors.SecurityError] | None] = {
    CertificateFault.EXPIRED: ams.errors.CertificateValidityError,
    CertificateFault.NOT_YET_VALID: ams.errors.CertificateValidityError,
    CertificateFault.REVOKED: ams.errors.CertificateRevokedError,
    CertificateFault.NO_KEY_ENCIPHERMENT: None,
    CertificateFault.NO_DIGITAL_SIGNATURE: ams.errors.CertificateUsageError,
    CertificateFault.CA_CERTIFICATE: ams.errors.CertificateUsageError,
    CertificateFault.WRONG_EXTENDED_KEY_USAGE: ams.errors.CertificateUsageError,
    CertificateFault.SELF_SIGNED: ams.errors.UntrustedSignerError,
    CertificateFault.UNTRUSTED_ISSUER: ams.errors.UntrustedSignerError,
}


@pytest.mark.parametrize("fault", list(CertificateFault), ids=lambda f: f.value)
def test_each_faulty_certificate_is_refused_as_a_signer_for_its_reason(
    pki: ThrowawayPki, fault: CertificateFault, tmp_path: Path
) -> None:
    signer = pki.faulty(fault)
    assert fault.refused_as_signer == (SIGNER_ERRORS[fault] is not None)
    policies = store("setmqspl -m QM -p Q -s SHA256")
    keystore = ams.Keystore(ams.Identity(signer.certificate, signer.key), [pki.ca.certificate])
    sent = ams.Protector(keystore, policies).protect("Q", b"signed")
    (tmp_path / "ca.crl").write_bytes(pki.crl().public_bytes(Encoding.PEM))
    bob = ams.Protector(pki.keystore("bob"), policies, revocation=RevocationSettings(crl_files=(tmp_path / "ca.crl",)))
    expected = SIGNER_ERRORS[fault]
    if expected is None:
        assert bob.unprotect("Q", sent).body == b"signed"
    else:
        with pytest.raises(expected):
            bob.unprotect("Q", sent)


@pytest.mark.parametrize("fault", list(CertificateFault), ids=lambda f: f.value)
def test_each_faulty_certificate_is_refused_as_a_recipient_when_it_must_be(
    pki: ThrowawayPki, fault: CertificateFault
) -> None:
    recipient = pki.faulty(fault, f"CN=recipient {fault.value},O=AMS,C=GB")
    policies = store(f'setmqspl -m QM -p Q -s SHA256 -e AES256 -r "{recipient.dn}"')
    alice = ams.Protector(pki.keystore("alice", extra=(recipient,)), policies)
    if fault.refused_as_recipient:
        with pytest.raises(ams.errors.ConfigurationError, match="recipient"):
            alice.protect("Q", b"secret")
    else:
        keystore = ams.Keystore(ams.Identity(recipient.certificate, recipient.key), [pki.ca.certificate, *users(pki)])
        assert ams.Protector(keystore, policies).unprotect("Q", alice.protect("Q", b"secret")).body == b"secret"


def users(pki: ThrowawayPki) -> list[x509.Certificate]:
    return [u.certificate for u in pki.users.values()]


@pytest.mark.parametrize("kind", ["pkcs12", "pem"])
def test_written_keystores_load_strictly_and_carry_the_crl(
    pki: ThrowawayPki, ams_keystore_conf: KeystoreConfWriter, ams_policy_dir: PolicyDirWriter, kind: str
) -> None:
    revoked = pki.faulty(CertificateFault.REVOKED, "CN=revoked signer,O=AMS,C=GB")
    conf = ams_keystore_conf("bob", kind=kind, crl=True)
    keystore = ams.Keystore.from_conf(conf, strict=True)  # no unprotected key, no readable password
    assert keystore.identity is not None and str(keystore.identity.dn) == pki.dn("bob")
    assert keystore.revocation is not None and keystore.revocation.crl_files == (conf.parent / "ca.crl",)
    policies = ams.PolicyStore.from_directory(ams_policy_dir("setmqspl -m QM -p Q -s SHA512"))
    signed = ams.Protector(ams.Keystore(ams.Identity(revoked.certificate, revoked.key)), policies).protect("Q", b"x")
    with pytest.raises(ams.errors.CertificateRevokedError):
        ams.Protector(keystore, policies).unprotect("Q", signed)


def test_a_pki_can_name_its_users_and_write_its_ca(tmp_path: Path) -> None:
    small = ThrowawayPki({"ops": "CN=Ops Team\\, EMEA+UID=ops,O=Example,C=FR"}, key_bits=1024)
    wanted = ams.DistinguishedName.parse("CN=Ops Team\\, EMEA+UID=ops,O=Example,C=FR")
    assert ams.DistinguishedName.parse(small.dn("ops")).matches(wanted, strict=True)  # a SET: any order
    assert small.issued("mallory") is small.mallory
    with pytest.raises(ams.errors.UsageError, match="no user 'nobody'"):
        small.issued("nobody")
    assert small.write_ca(tmp_path / "ca.pem").read_bytes() == pem(small.ca.certificate)


# -- payloads and mutations --------------------------------------------------------------------------------------------


@given(payload_specs())
def test_payload_specs_make_what_they_say(spec: PayloadSpec) -> None:
    data = spec.data()
    assert len(data) == spec.size and data == spec.data()
    assert spec.shape != "large" or 65536 <= spec.size <= 1 << 20


QUEUES = ("INT.Q", "PRIV.Q", "CONF.Q")


@pytest.fixture(scope="module")
def kit_policies(pki: ThrowawayPki) -> ams.PolicyStore:
    recipients = f'-r "{pki.dn("bob")}" -r "{pki.dn("carol")}" -r "{pki.dn("dave")}"'
    return store(
        "setmqspl -m QM -p INT.Q -s SHA384",
        f"setmqspl -m QM -p PRIV.Q -s SHA256 -e AES128 {recipients}",
        f"setmqspl -m QM -p CONF.Q -e AES256 {recipients} -c 5",
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), queue=st.sampled_from(QUEUES))
def test_mutations_say_what_a_correct_receiver_does(
    pki: ThrowawayPki, kit_policies: ams.PolicyStore, data: st.DataObject, queue: str
) -> None:
    policy = kit_policies[queue]
    message = data.draw(protected_messages(pki.keystore("alice"), policy), "message")
    mutation = data.draw(mutations(message, reader=pki.users["bob"].certificate), "mutation")
    bob = ams.Protector(pki.keystore("bob"), kit_policies)
    try:
        result = bob.unprotect(queue, mutation.body, mutation.format, encoding=message.encoding)
    except ams.SecurityError:
        assert mutation.expect is not Expect.ACCEPT, mutation.description
        return
    assert mutation.expect is not Expect.REFUSE, mutation.description
    if mutation.expect is Expect.ACCEPT:
        assert result.body == message.original, mutation.description


def test_every_byte_that_must_not_change_is_refused_with_many_recipients(
    pki: ThrowawayPki, kit_policies: ams.PolicyStore
) -> None:
    """Privacy for three recipients, read by carol: bob's and dave's RecipientInfos may change unnoticed."""
    body = b"pay 100 GBP to carol"
    message = ProtectedMessage.of(
        ams.Protector(pki.keystore("alice"), kit_policies).protect("PRIV.Q", body), body, "MQSTR", "PRIV.Q"
    )
    reader = pki.users["carol"].certificate
    where = layout(message, reader)
    others = [r for r in where.regions if "another recipient" in r.name]
    assert len(others) == 2 and all(r.expect is Expect.EITHER for r in others)
    carol = ams.Protector(pki.keystore("carol"), kit_policies)
    for index in range(0, where.count(Expect.REFUSE), 7):
        mutation = refusing(message, "flip", index, index % 8, reader=reader)
        with pytest.raises(ams.SecurityError):
            carol.unprotect("PRIV.Q", mutation.body, mutation.format)
    unnoticed = [m for m in field_changes(message) if m.expect is Expect.ACCEPT]
    assert {m.description.split(" ")[1] for m in unnoticed} >= {"dynamic-queue", "policy", "reserved"}
    for mutation in unnoticed:
        assert carol.unprotect("PRIV.Q", mutation.body, mutation.format).body == body
