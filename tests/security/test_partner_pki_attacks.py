"""A partner CA that the receiver trusts only for its own names, tried as that partner would.

The partner's CA is trusted only for ``O=Partner,C=GB``: a critical nameConstraints extension on
the cross-certificate our CA gave it (an intermediate), or on the partner's own root (the
anchor). It issues itself the DN of an authorised signer of ours and signs as them; it issues a
newer certificate with a recipient's DN, hoping to be encrypted for; it adds a critical extension
no one knows; a sub-CA goes deeper than its pathLenConstraint allows. Each must be refused, with
an error naming the certificate, the rule and the CA, through the API and through ``ams
unprotect``; each has its accepted twin (a name inside the subtree, the same extension not
critical, a path within its length).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtensionOID

import ams
import ams.errors
from ams.hazmat import der
from ams.pki import Issued, issue, make_ca, write_user_keystore
from tests import openssl_chain
from tests.conftest import Pki, store
from tests.security.test_cli_attacks import BODY, _message_file, ams_cli, assert_typed_refusal, write_policies
from tests.security.test_trust_attacks import _recipient_serial, _signed_by

PARTNER = "O=Partner,C=GB"
UNKNOWN = x509.ObjectIdentifier("1.3.6.1.4.1.55555.7.1")


def permitted(*names: x509.GeneralName) -> tuple[x509.NameConstraints, bool]:
    return x509.NameConstraints(permitted_subtrees=list(names), excluded_subtrees=None), True


def excluded(*names: x509.GeneralName) -> tuple[x509.NameConstraints, bool]:
    return x509.NameConstraints(permitted_subtrees=None, excluded_subtrees=list(names)), True


def directory(dn: str) -> x509.DirectoryName:
    return x509.DirectoryName(ams.DistinguishedName.parse(dn).to_x509())


def unknown_extension(critical: bool) -> tuple[x509.ExtensionType, bool]:
    return x509.UnrecognizedExtension(UNKNOWN, b"\x05\x00"), critical


def cross_certified(pki: Pki, *extensions: tuple[x509.ExtensionType, bool], path_length: int | None = None) -> Issued:
    """The partner's CA, certified by our CA with ``extensions`` (a cross-certificate)."""
    return issue(
        pki.ca,
        "CN=Partner CA,O=Partner,C=GB",
        ca_flag=True,
        extended_key_usage=None,
        path_length=path_length,
        extensions=extensions,
    )


def receiver(pki: Pki, *trusted: Issued, line: str) -> ams.Protector:
    bob = pki.keystore("bob")
    certificates = [*bob.certificates, *(t.certificate for t in trusted)]
    return ams.Protector(ams.Keystore(bob.identity, certificates, source="bob's keystore"), store(line))


def sender(pki: Pki, *extra: Issued, line: str) -> ams.Protector:
    alice = pki.keystore("alice")
    certificates = [*alice.certificates, *(e.certificate for e in extra)]
    return ams.Protector(ams.Keystore(alice.identity, certificates, source="alice's keystore"), store(line))


def signed_line(pki: Pki) -> str:
    return f'setmqspl -m QM -p INT.Q -s SHA256 -a "{pki.dn("alice")}" -a "CN=orders,{PARTNER}"'


# -- name constraints: signers ------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["intermediate", "anchor"])
def test_a_partner_ca_constrained_to_its_subtree_cannot_sign_as_our_alice(pki: Pki, where: str) -> None:
    constraint = permitted(directory(PARTNER))
    if where == "intermediate":
        partner_ca = cross_certified(pki, constraint)
    else:
        partner_ca = make_ca("CN=Partner CA,O=Partner,C=GB", extensions=[constraint])
    line = signed_line(pki)
    bob = receiver(pki, partner_ca, line=line)
    forged_alice = issue(partner_ca, pki.dn("alice"))
    with pytest.raises(ams.errors.UntrustedSignerError) as refused:
        bob.unprotect("INT.Q", _signed_by(forged_alice, line))
    message = refused.value.message
    assert f"signer {pki.dn('alice')}" in message
    assert "permitted subtree O=Partner,C=GB" in message and "CN=Partner CA,O=Partner,C=GB" in message
    # the twin: the partner's own system, inside the subtree, is accepted
    orders = issue(partner_ca, f"CN=orders,{PARTNER}")
    assert bob.unprotect("INT.Q", _signed_by(orders, line)).signer_dn == orders.dn
    # and the real alice, from our unconstrained CA
    assert bob.unprotect("INT.Q", sender(pki, line=line).protect("INT.Q", BODY).body).body == BODY


def test_an_excluded_subtree_refuses_our_names_and_accepts_the_rest(pki: Pki) -> None:
    partner_ca = cross_certified(pki, excluded(directory("O=AMS,C=GB")))
    line = signed_line(pki)
    bob = receiver(pki, partner_ca, line=line)
    forged_alice = issue(partner_ca, pki.dn("alice").upper())  # case does not get it out of the subtree
    with pytest.raises(ams.errors.UntrustedSignerError, match=r"excluded subtree O=AMS,C=GB"):
        bob.unprotect("INT.Q", _signed_by(forged_alice, line))
    orders = issue(partner_ca, f"CN=orders,{PARTNER}")
    assert bob.unprotect("INT.Q", _signed_by(orders, line)).body


def test_email_addresses_must_be_inside_an_rfc822_constraint(pki: Pki) -> None:
    partner_ca = cross_certified(pki, permitted(x509.RFC822Name("partner.example")))
    line = "setmqspl -m QM -p INT.Q -s SHA256"
    bob = receiver(pki, partner_ca, line=line)
    outside = x509.SubjectAlternativeName([x509.RFC822Name("alice@ams.example")])
    forged = issue(partner_ca, f"CN=orders,{PARTNER}", extensions=[(outside, False)])
    with pytest.raises(ams.errors.UntrustedSignerError, match=r"rfc822Name alice@ams.example.*permitted subtree"):
        bob.unprotect("INT.Q", _signed_by(forged, line))
    in_subject = issue(partner_ca, f"E=alice@ams.example,CN=orders,{PARTNER}")
    with pytest.raises(ams.errors.UntrustedSignerError, match=r"emailAddress alice@ams.example"):
        bob.unprotect("INT.Q", _signed_by(in_subject, line))
    inside = x509.SubjectAlternativeName([x509.RFC822Name("orders@PARTNER.example")])
    twin = issue(partner_ca, f"E=orders@partner.example,CN=orders,{PARTNER}", extensions=[(inside, False)])
    assert bob.unprotect("INT.Q", _signed_by(twin, line)).body


def test_a_constraint_type_ams_does_not_check_refuses_names_of_that_type(pki: Pki) -> None:
    partner_ca = cross_certified(pki, permitted(x509.DNSName("partner.example")))
    line = "setmqspl -m QM -p INT.Q -s SHA256"
    bob = receiver(pki, partner_ca, line=line)
    named = x509.SubjectAlternativeName([x509.DNSName("evil.example")])
    leaf = issue(partner_ca, f"CN=orders,{PARTNER}", extensions=[(named, False)])
    with pytest.raises(ams.errors.UntrustedSignerError, match=r"dNSName constraints.*not checked by AMS"):
        bob.unprotect("INT.Q", _signed_by(leaf, line))
    # a certificate without such a name is not constrained by it
    assert bob.unprotect("INT.Q", _signed_by(issue(partner_ca, f"CN=orders,{PARTNER}"), line)).body


# -- name constraints: recipients ---------------------------------------------------------------------


def test_a_partner_ca_cannot_issue_itself_our_recipient(pki: Pki) -> None:
    partner_ca = cross_certified(pki, permitted(directory(PARTNER)))
    line = f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "{pki.dn("bob")}"'
    newer_bob = issue(partner_ca, pki.dn("bob"))  # newer than bob's real certificate, so "newest wins"
    assert newer_bob.certificate.not_valid_before_utc >= pki.issued("bob").certificate.not_valid_before_utc
    message = sender(pki, partner_ca, newer_bob, line=line).protect("PRIV.Q", BODY).body
    assert _recipient_serial(message) == pki.issued("bob").certificate.serial_number
    assert receiver(pki, partner_ca, line=line).unprotect("PRIV.Q", message).body == BODY
    # with only the partner's certificate for bob, nothing is encrypted at all
    alone = pki.keystore("alice")
    keystore = ams.Keystore(
        alone.identity,
        [c for c in alone.certificates if c != pki.issued("bob").certificate]
        + [partner_ca.certificate, newer_bob.certificate],
    )
    with pytest.raises(ams.errors.RecipientCertificateError, match=r"permitted subtree O=Partner,C=GB"):
        ams.Protector(keystore, store(line)).protect("PRIV.Q", BODY)


def test_a_recipient_inside_the_partner_subtree_is_encrypted_for(pki: Pki) -> None:
    partner_ca = cross_certified(pki, permitted(directory(PARTNER)))
    receiver_dn = f"CN=receiver,{PARTNER}"
    partner_receiver = issue(partner_ca, receiver_dn)
    line = f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "{receiver_dn}"'
    message = sender(pki, partner_ca, partner_receiver, line=line).protect("PRIV.Q", BODY).body
    assert _recipient_serial(message) == partner_receiver.certificate.serial_number


# -- critical extensions and path length --------------------------------------------------------------


@pytest.mark.parametrize("on", ["signer", "issuing CA"])
def test_an_unknown_critical_extension_is_refused(pki: Pki, on: str) -> None:
    line = "setmqspl -m QM -p INT.Q -s SHA256"

    def attempt(critical: bool) -> ams.Unprotected:
        strange: Sequence[tuple[x509.ExtensionType, bool]] = [unknown_extension(critical)]
        partner_ca = cross_certified(pki, *(strange if on != "signer" else ()))
        leaf_extensions = strange if on == "signer" else ()
        leaf = issue(partner_ca, f"CN=orders,{PARTNER}", extensions=leaf_extensions)
        return receiver(pki, partner_ca, line=line).unprotect("INT.Q", _signed_by(leaf, line))

    subject = f"CN=orders,{PARTNER}" if on == "signer" else "CN=Partner CA,O=Partner,C=GB"
    with pytest.raises(ams.errors.UntrustedSignerError) as refused:
        attempt(critical=True)
    assert f"critical extension {UNKNOWN.dotted_string}" in refused.value.message
    assert subject in refused.value.message
    assert attempt(critical=False).body  # the twin: the same extension, not critical


def _sub_ca(ca: Issued, dn: str, path_length: int | None) -> Issued:
    return issue(ca, dn, ca_flag=True, extended_key_usage=None, path_length=path_length)


@pytest.mark.parametrize(("path_length", "refused"), [(0, True), (1, False), (None, False)])
def test_path_length_constraints_are_enforced(pki: Pki, path_length: int | None, refused: bool) -> None:
    line = "setmqspl -m QM -p INT.Q -s SHA256"
    partner_ca = cross_certified(pki, path_length=path_length)
    issuing = _sub_ca(partner_ca, "CN=Partner Issuing CA,O=Partner,C=GB", None)
    leaf = issue(issuing, f"CN=orders,{PARTNER}")
    bob = receiver(pki, partner_ca, issuing, line=line)
    if refused:
        with pytest.raises(ams.errors.UntrustedSignerError, match=r"pathLenConstraint 0.*CN=Partner CA"):
            bob.unprotect("INT.Q", _signed_by(leaf, line))
    else:
        assert bob.unprotect("INT.Q", _signed_by(leaf, line)).body


def test_constraints_of_every_ca_above_apply_to_a_deeper_path(pki: Pki) -> None:
    line = signed_line(pki)
    partner_ca = cross_certified(pki, permitted(directory(PARTNER)))
    issuing = _sub_ca(partner_ca, "CN=Partner Issuing CA,O=Partner,C=GB", None)
    bob = receiver(pki, partner_ca, issuing, line=line)
    with pytest.raises(ams.errors.UntrustedSignerError, match="permitted subtree O=Partner,C=GB"):
        bob.unprotect("INT.Q", _signed_by(issue(issuing, pki.dn("alice")), line))
    assert bob.unprotect("INT.Q", _signed_by(issue(issuing, f"CN=orders,{PARTNER}"), line)).body


def test_an_explicit_policy_requirement_is_not_silently_ignored(pki: Pki) -> None:
    line = "setmqspl -m QM -p INT.Q -s SHA256"
    explicit = x509.PolicyConstraints(require_explicit_policy=0, inhibit_policy_mapping=None)
    partner_ca = cross_certified(pki, (explicit, True))
    leaf = issue(partner_ca, f"CN=orders,{PARTNER}")
    with pytest.raises(ams.errors.UntrustedSignerError, match=r"requireExplicitPolicy.*CN=Partner CA"):
        receiver(pki, partner_ca, line=line).unprotect("INT.Q", _signed_by(leaf, line))
    # inhibiting policy mapping alone cannot change a verdict when no explicit policy is required
    mapping = x509.PolicyConstraints(require_explicit_policy=None, inhibit_policy_mapping=0)
    partner_ca = cross_certified(pki, (mapping, True), (x509.InhibitAnyPolicy(0), True))
    leaf = issue(partner_ca, f"CN=orders,{PARTNER}")
    assert receiver(pki, partner_ca, line=line).unprotect("INT.Q", _signed_by(leaf, line)).body


# -- the same through the ams command -----------------------------------------------------------------


def test_cli_a_constrained_partner_ca_cannot_sign_as_alice(
    pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    partner_ca = cross_certified(pki, permitted(directory(PARTNER)))
    conf = pki.write_keystore(tmp_path / "bob", "bob", extra=[partner_ca])
    line = signed_line(pki)
    policies = write_policies(tmp_path / "policies", line)
    keys = ["--policies", str(policies), "--keystore-conf", str(conf)]
    forged = _message_file(tmp_path, "forged.bin", _signed_by(issue(partner_ca, pki.dn("alice")), line))
    out = tmp_path / "forged.out"
    run = ams_cli(capsys, "unprotect", "-p", "INT.Q", *keys, "-i", str(forged), "-o", str(out))
    assert_typed_refusal(run, 3, "permitted subtree O=Partner,C=GB", "CN=Partner CA,O=Partner,C=GB", pki.dn("alice"))
    assert not out.exists()
    twin = _message_file(tmp_path, "twin.bin", _signed_by(issue(partner_ca, f"CN=orders,{PARTNER}"), line))
    run = ams_cli(capsys, "unprotect", "-p", "INT.Q", *keys, "-i", str(twin), "-o", str(out))
    assert run.code == 0 and out.read_bytes() == BODY, run


def test_cli_an_unknown_critical_extension_is_refused(
    pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = pki.write_keystore(tmp_path / "bob", "bob")
    line = "setmqspl -m QM -p INT.Q -s SHA256"
    policies = write_policies(tmp_path / "policies", line)
    keys = ["--policies", str(policies), "--keystore-conf", str(conf)]
    strange = issue(pki.ca, "CN=strange,O=AMS,C=GB", extensions=[unknown_extension(True)])
    message = _message_file(tmp_path, "strange.bin", _signed_by(strange, line))
    run = ams_cli(capsys, "unprotect", "-p", "INT.Q", *keys, "-i", str(message), "-o", str(tmp_path / "out"))
    assert_typed_refusal(run, 3, UNKNOWN.dotted_string, "CN=strange,O=AMS,C=GB")


def test_cli_protect_does_not_encrypt_for_the_partner_s_copy_of_our_recipient(
    pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    partner_ca = cross_certified(pki, permitted(directory(PARTNER)))
    newer_bob = issue(partner_ca, pki.dn("bob"))
    line = f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "{pki.dn("bob")}"'
    policies = write_policies(tmp_path / "policies", line)
    body = _message_file(tmp_path, "body.txt", BODY)
    conf = pki.write_keystore(tmp_path / "alice", "alice", extra=[partner_ca, newer_bob])
    out = tmp_path / "for-bob.bin"
    keys = ["--policies", str(policies), "--keystore-conf", str(conf)]
    run = ams_cli(capsys, "protect", "-p", "PRIV.Q", *keys, "-i", str(body), "-o", str(out))
    assert run.code == 0, run
    assert _recipient_serial(out.read_bytes()) == pki.issued("bob").certificate.serial_number
    # a sender who holds only the partner's certificate for bob encrypts nothing
    others = [pki.ca.certificate, partner_ca.certificate, newer_bob.certificate]
    conf = write_user_keystore(tmp_path / "alice-alone", "alice", pki.issued("alice"), others)
    out = tmp_path / "nothing.bin"
    keys = ["--policies", str(policies), "--keystore-conf", str(conf)]
    run = ams_cli(capsys, "protect", "-p", "PRIV.Q", *keys, "-i", str(body), "-o", str(out))
    assert_typed_refusal(run, 2, "permitted subtree O=Partner,C=GB", pki.dn("bob"), "Nothing was encrypted")
    assert not out.exists()


def _raw_name_constraints(dn: str, *, maximum: int | None) -> tuple[x509.ExtensionType, bool]:
    """A critical nameConstraints permitting ``dn``, its GeneralSubtree with ``maximum`` when given:
    written by hand, since cryptography neither writes nor keeps minimum and maximum."""
    base = der.tlv(0xA4, ams.DistinguishedName.parse(dn).to_x509().public_bytes())  # [4] directoryName
    bound = der.tlv(0x81, bytes([maximum])) if maximum is not None else b""  # [1] maximum
    value = der.tlv(der.SEQUENCE, der.tlv(0xA0, der.tlv(der.SEQUENCE, base + bound)))
    return x509.UnrecognizedExtension(ExtensionOID.NAME_CONSTRAINTS, value), True


@pytest.mark.parametrize("maximum", [5, None])
def test_a_subtree_with_a_maximum_is_refused_as_openssl_refuses_it(pki: Pki, maximum: int | None) -> None:
    partner_ca = cross_certified(pki, _raw_name_constraints(PARTNER, maximum=maximum))
    line = "setmqspl -m QM -p INT.Q -s SHA256"
    orders = issue(partner_ca, f"CN=orders,{PARTNER}")
    if openssl_chain.libcrypto() is not None:  # OpenSSL: "name constraints minimum and maximum not supported"
        now = datetime.datetime.now(datetime.UTC)
        openssl = openssl_chain.openssl_verdict(
            orders.certificate, [pki.ca.certificate], [partner_ca.certificate], at=now
        )
        assert (openssl is None) == (maximum is None), openssl
    bob = receiver(pki, partner_ca, line=line)
    if maximum is None:
        assert bob.unprotect("INT.Q", _signed_by(orders, line)).body
    else:
        with pytest.raises(ams.errors.UntrustedSignerError, match=r"CN=Partner CA.*minimum or maximum"):
            bob.unprotect("INT.Q", _signed_by(orders, line))
