"""Attacks on the sender's choice of recipients: who gets the message key.

* A look-alike: an insider whose certificate from the same CA says ``CN=BOB`` or ``CN=bob `` (a
  trailing space), newer than bob's, must never receive what the policy meant for
  ``-r CN=bob,...``. Recipient DNs match a certificate's subject exactly (IBM's documentation:
  "Recipient DNs, when specified, must match exactly the DN contained in the digital
  certificate"); a loose-only match is refused, naming both DNs.
* Two CAs claiming one DN: two valid certificates with exactly the recipient's DN from
  different issuers are an error, never "newest wins" (a renewal by the same CA still is).
* A revoked recipient: ``protect()`` checks each recipient's chain for revocation with the same
  settings as signers (CRL and OCSP, hard or soft fail), caches the answer as long as it holds,
  and refuses a revoked one naming its DN, serial, the source and the date.

Each attack has its accepted twin, through the API and the ``ams`` command; ``ams doctor``
reports the ambiguous recipients.
"""

from __future__ import annotations

import datetime
import warnings
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

import ams
import ams.errors
from ams.doctor import diagnose
from ams.keys import RevocationChecker, RevocationSettings
from ams.pki import Issued, issue, make_ca
from tests.conftest import Pki, store
from tests.security.test_cli_attacks import ams_cli, assert_typed_refusal, write_policies
from tests.security.test_crl_scope_attacks import NOT_COVERING, crl
from tests.security.test_revocation_attacks import URL, Responder, respond
from tests.security.test_trust_attacks import _recipient_serial

BOB = "CN=bob,O=AMS,C=GB"
PRIVACY = f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "{BOB}"'
CONFIDENTIALITY = f'setmqspl -m QM -p CONF.Q -e AES256 -r "{BOB}" -c 5'
BODY = b"the payroll for March"
LOOK_ALIKES = {
    "upper-case": "CN=BOB,O=AMS,C=GB",
    "trailing-space": "CN=bob\\ ,O=AMS,C=GB",
    "mixed": "CN=Bob,O=ams,C=GB",
}


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def alice_with(pki: Pki, *extra: Issued, without_bob: bool = False) -> ams.Keystore:
    base = pki.keystore("alice")
    certificates = [c for c in base.certificates if not (without_bob and c == pki.issued("bob").certificate)]
    return ams.Keystore(base.identity, [*certificates, *(e.certificate for e in extra)], source="alice's keystore")


def look_alike(pki: Pki, dn: str) -> Issued:
    """A certificate from the same CA, newer than bob's, for a DN that differs from his only in case or spacing."""
    return issue(pki.ca, dn, key=pki.spare_key, not_before=now() - datetime.timedelta(minutes=5))


@pytest.mark.parametrize("dn", list(LOOK_ALIKES.values()), ids=list(LOOK_ALIKES))
def test_a_look_alike_recipient_never_receives(pki: Pki, dn: str) -> None:
    insider = look_alike(pki, dn)
    sent = ams.Protector(alice_with(pki, insider), store(PRIVACY)).protect("PRIV.Q", BODY).body
    assert _recipient_serial(sent) == pki.issued("bob").certificate.serial_number
    assert ams.Protector(pki.keystore("bob"), store(PRIVACY)).unprotect("PRIV.Q", sent).body == BODY
    insiders_keystore = ams.Keystore(ams.Identity(insider.certificate, insider.key), pki.keystore("bob").certificates)
    with pytest.raises(ams.errors.SecurityError):
        ams.Protector(insiders_keystore, store(PRIVACY)).unprotect("PRIV.Q", sent)


@pytest.mark.parametrize("line", [PRIVACY, CONFIDENTIALITY], ids=["privacy", "confidentiality"])
@pytest.mark.parametrize("dn", list(LOOK_ALIKES.values()), ids=list(LOOK_ALIKES))
def test_a_look_alike_alone_is_refused_naming_both_dns(pki: Pki, dn: str, line: str) -> None:
    insider = look_alike(pki, dn)
    queue = ams.Policy.from_setmqspl(line).name
    with pytest.raises(ams.errors.RecipientNotFoundError) as refused:
        ams.Protector(alice_with(pki, insider, without_bob=True), store(line)).protect(queue, BODY)
    message = refused.value.message
    assert BOB in message and str(insider.dn) in message, message
    assert "exactly" in message and "-r" in message, message


def test_a_policy_dn_written_in_another_case_is_refused_until_written_exactly(pki: Pki) -> None:
    """The twin: the policy names bob as his certificate spells it, and he receives."""
    loose = store('setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "cn=BOB,o=ams,c=gb"')
    with pytest.raises(ams.errors.RecipientNotFoundError, match="case or spacing"):
        ams.Protector(alice_with(pki), loose).protect("PRIV.Q", BODY)
    sent = ams.Protector(alice_with(pki), store(PRIVACY)).protect("PRIV.Q", BODY).body
    assert ams.Protector(pki.keystore("bob"), store(PRIVACY)).unprotect("PRIV.Q", sent).body == BODY


def test_two_cas_claiming_one_recipient_dn_is_an_error(pki: Pki) -> None:
    partner = make_ca("CN=Partner CA,O=PARTNER,C=US", key=pki.spare_key)
    claim = issue(partner, BOB, key=pki.spare_key, not_before=now() - datetime.timedelta(minutes=5))
    keystore = alice_with(pki, Issued(partner.key, partner.certificate), claim)
    with pytest.raises(ams.errors.RecipientCertificateError) as refused:
        ams.Protector(keystore, store(PRIVACY)).protect("PRIV.Q", BODY)
    message = refused.value.message
    for expected in (BOB, "CN=Test CA,O=AMS,C=GB", "CN=Partner CA,O=PARTNER,C=US", "ambiguous"):
        assert expected in message, (expected, message)
    # the twin: a renewal by bob's own CA is no ambiguity, and the newer certificate is used
    renewed = issue(pki.ca, BOB, key=pki.spare_key, not_before=now() - datetime.timedelta(minutes=5))
    sent = ams.Protector(alice_with(pki, renewed), store(PRIVACY)).protect("PRIV.Q", BODY).body
    assert _recipient_serial(sent) == renewed.certificate.serial_number
    # nor is a renewal under a CA certificate re-issued with the same name and key
    reissued_ca = make_ca("CN=Test CA,O=AMS,C=GB", key=pki.ca.key)
    keystore = alice_with(pki, renewed, Issued(reissued_ca.key, reissued_ca.certificate))
    sent = ams.Protector(keystore, store(PRIVACY)).protect("PRIV.Q", BODY).body
    assert _recipient_serial(sent) == renewed.certificate.serial_number


# -- revocation ---------------------------------------------------------------------------------------


def crl_file(tmp_path: Path, pki: Pki, *serials: int, **options: object) -> Path:
    path = tmp_path / "ca.crl"
    path.write_bytes(crl(pki.ca, *serials, **options).public_bytes(serialization.Encoding.PEM))  # type: ignore[arg-type]
    return path


@pytest.mark.parametrize("line", [PRIVACY, CONFIDENTIALITY], ids=["privacy", "confidentiality"])
def test_a_recipient_revoked_in_a_crl_is_refused_on_send(pki: Pki, tmp_path: Path, line: str) -> None:
    bob = pki.issued("bob").certificate
    queue = ams.Policy.from_setmqspl(line).name
    revoked = crl_file(tmp_path, pki, bob.serial_number)
    for hard in (True, False):  # soft fail forgives "unknown", never "revoked"
        protector = ams.Protector(
            alice_with(pki), store(line), revocation=RevocationSettings(crl_files=(revoked,), hard_fail=hard)
        )
        with pytest.raises(ams.errors.RecipientCertificateError) as refused:
            protector.protect(queue, BODY)
        message = refused.value.message
        for expected in (BOB, f"{bob.serial_number:#x}", "the CRL of CN=Test CA,O=AMS,C=GB", "revoked on"):
            assert expected in message, (expected, message)
    # the twin: a CRL that lists someone else
    clean = crl_file(tmp_path, pki, pki.issued("carol").certificate.serial_number)
    protector = ams.Protector(alice_with(pki), store(line), revocation=RevocationSettings(crl_files=(clean,)))
    sent = protector.protect(queue, BODY)
    assert ams.Protector(pki.keystore("bob"), store(line)).unprotect(queue, sent.body, sent.format).body == BODY


@pytest.mark.parametrize("shape", ["ca-only (ARL)", "delta-only", "unknown-critical"])
def test_a_recipient_with_only_an_odd_crl_is_undetermined(pki: Pki, tmp_path: Path, shape: str) -> None:
    """Hard fail refuses a recipient no CRL answers for, even one the odd CRL lists; soft fail sends, with a warning."""
    extensions, entry_extensions, why = NOT_COVERING[shape]
    serial = pki.issued("bob").certificate.serial_number
    odd = crl_file(tmp_path, pki, serial, extensions=extensions, entry_extensions=entry_extensions)
    hard = ams.Protector(alice_with(pki), store(PRIVACY), revocation=RevocationSettings(crl_files=(odd,)))
    with pytest.raises(ams.errors.RecipientCertificateError, match=why):
        hard.protect("PRIV.Q", BODY)
    soft = ams.Protector(
        alice_with(pki), store(PRIVACY), revocation=RevocationSettings(crl_files=(odd,), hard_fail=False)
    )
    with pytest.warns(ams.errors.AmsSecurityWarning, match=why):
        assert soft.protect("PRIV.Q", BODY).body


class Counting(Responder):
    """An OCSP responder for the test CA that says ``status``, answering as of ``clock``, and counts the questions."""

    def __init__(self, pki: Pki, status: ocsp.OCSPCertStatus, lifetime: datetime.timedelta) -> None:
        self.clock = now()
        super().__init__(
            lambda body: respond(
                body, pki.ca, status=status, lifetime=lifetime, this_update=self.clock - datetime.timedelta(minutes=1)
            )
        )


def ocsp_sender(pki: Pki, responder: Counting, line: str = PRIVACY) -> ams.Protector:
    checker = RevocationChecker(RevocationSettings(ocsp=True, ocsp_url=URL), fetch=responder)
    verifier = ams.Verifier(alice_with(pki), revocation=checker)
    return ams.Protector(verifier.keystore, store(line), verifier=verifier)


def test_a_recipient_revoked_by_ocsp_is_refused_on_send(pki: Pki) -> None:
    responder = Counting(pki, ocsp.OCSPCertStatus.REVOKED, datetime.timedelta(hours=1))
    with pytest.raises(ams.errors.RecipientCertificateError) as refused:
        ocsp_sender(pki, responder).protect("PRIV.Q", BODY)
    message = refused.value.message
    for expected in (BOB, f"{pki.issued('bob').certificate.serial_number:#x}", f"OCSP responder {URL}", "revoked on"):
        assert expected in message, (expected, message)
    good = Counting(pki, ocsp.OCSPCertStatus.GOOD, datetime.timedelta(hours=1))
    assert ocsp_sender(pki, good).protect("PRIV.Q", BODY).body


@pytest.mark.parametrize("line", [PRIVACY, CONFIDENTIALITY], ids=["privacy", "confidentiality"])
def test_a_recipient_check_is_made_once_and_again_when_its_answer_expires(pki: Pki, line: str) -> None:
    """The protect path is hot: the answer is cached with the recipient lookup until it expires."""
    responder = Counting(pki, ocsp.OCSPCertStatus.GOOD, datetime.timedelta(hours=1))
    sender = ocsp_sender(pki, responder, line)
    queue = ams.Policy.from_setmqspl(line).name
    start = now()
    sender.at = start
    for _ in range(5):
        sender.protect(queue, BODY)
    assert len(responder.urls) == 1
    sender.at = responder.clock = start + datetime.timedelta(hours=2)  # past the first answer's nextUpdate
    sender.protect(queue, BODY)
    assert len(responder.urls) == 2


def test_an_unknown_recipient_status_is_asked_again_each_time_under_soft_fail(pki: Pki) -> None:
    """As for a signer: "unknown" is never cached, so it warns on every message until it is known."""
    responder = Counting(pki, ocsp.OCSPCertStatus.UNKNOWN, datetime.timedelta(hours=1))
    checker = RevocationChecker(RevocationSettings(ocsp=True, ocsp_url=URL, hard_fail=False), fetch=responder)
    verifier = ams.Verifier(alice_with(pki), revocation=checker)
    sender = ams.Protector(verifier.keystore, store(PRIVACY), verifier=verifier)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sender.protect("PRIV.Q", BODY)
        sender.protect("PRIV.Q", BODY)
    assert len(responder.urls) == 2
    assert sum("does not know serial" in str(w.message) for w in caught) == 2


# -- through the ams command and ams doctor ----------------------------------------------------------------


@pytest.fixture(scope="module")
def insider(pki: Pki) -> Issued:
    return look_alike(pki, "CN=BOB,O=AMS,C=GB")


def test_cli_protect_refuses_a_revoked_or_look_alike_recipient(
    pki: Pki, insider: Issued, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = pki.write_keystore(tmp_path / "alice", "alice", extra=[insider])
    policies = write_policies(tmp_path / "policies", PRIVACY)
    source = tmp_path / "in.txt"
    source.write_bytes(BODY)
    out = tmp_path / "out.ams"
    keys = ["--policies", str(policies), "--keystore-conf", str(conf), "-i", str(source), "-o", str(out)]
    bob = pki.issued("bob").certificate
    revoked = crl_file(tmp_path, pki, bob.serial_number)
    run = ams_cli(capsys, "protect", "-p", "PRIV.Q", *keys, "--crl", str(revoked))
    assert_typed_refusal(run, 2, "recipient_certificate", BOB, f"{bob.serial_number:#x}", "revoked on")
    assert not out.exists()
    # the twin: no revocation; bob (not the newer look-alike) receives
    run = ams_cli(capsys, "protect", "-p", "PRIV.Q", *keys)
    assert run.code == 0, run
    assert _recipient_serial(out.read_bytes()) == bob.serial_number
    # a policy DN that matches a certificate only loosely (carol's, in another case): refused, naming both
    loose = write_policies(tmp_path / "loose", PRIVACY.replace(BOB, "CN=CAROL,O=AMS,C=GB"))
    keys = ["--policies", str(loose), "--keystore-conf", str(conf), "-i", str(source), "-o", str(tmp_path / "x")]
    run = ams_cli(capsys, "protect", "-p", "PRIV.Q", *keys)
    assert_typed_refusal(run, 2, "recipient_not_found", "CN=CAROL,O=AMS,C=GB", "CN=carol,O=AMS,C=GB", "exactly")


def test_doctor_reports_ambiguous_recipients(pki: Pki, insider: Issued, tmp_path: Path) -> None:
    conf = pki.write_keystore(tmp_path / "alice", "alice", extra=[insider])
    policies = {"PRIV.Q": ams.Policy.from_setmqspl(PRIVACY)}
    findings = diagnose(conf, policies)
    about = [f for f in findings if "PRIV.Q recipient" in f.subject]
    assert any(f.level == "warning" and "CN=BOB,O=AMS,C=GB" in f.problem and "look" in f.problem for f in about), about
    # a policy that names only the look-alike's spelling: an error, with the fix
    loose = {"PRIV.Q": ams.Policy.from_setmqspl(PRIVACY.replace("CN=bob", "CN=Bob"))}
    errors = [f for f in diagnose(conf, loose) if f.level == "error" and "PRIV.Q recipient" in f.subject]
    assert errors and "exactly" in errors[0].problem, errors
    # two CAs claiming bob's DN: an error
    partner = make_ca("CN=Partner CA,O=PARTNER,C=US", key=pki.spare_key)
    claim = issue(partner, BOB, key=pki.spare_key)
    claimed = pki.write_keystore(tmp_path / "claimed", "alice", extra=[Issued(partner.key, partner.certificate), claim])
    errors = [f for f in diagnose(claimed, policies) if f.level == "error" and "PRIV.Q recipient" in f.subject]
    assert errors and "ambiguous" in errors[0].problem and "CN=Partner CA" in errors[0].problem, errors
    # the twin: no look-alike, no finding about the recipient
    clean = pki.write_keystore(tmp_path / "clean", "alice")
    assert [f for f in diagnose(clean, policies) if "PRIV.Q recipient" in f.subject] == []
