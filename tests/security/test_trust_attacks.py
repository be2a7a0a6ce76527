"""Trust, tried as a partner who wants to sign as someone else or be encrypted for.

A partner's self-signed certificate in the receiver's keystore must never act as an issuer; an
issuer must be a CA allowed to sign certificates; recipients'
certificates are validated before anything is encrypted for them; DNs match the way IBM's Java
client compares them, no looser.
"""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

import ams
import ams.errors
from ams.hazmat.enveloped import parse_enveloped_data
from ams.pki import Issued, issue, make_ca, new_key
from tests.conftest import Pki, store

NOW = datetime.datetime.now(datetime.UTC)
_KEY_CERT_SIGN = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)
_SIGN_ONLY = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


def _self_signed(dn: str, *, constraints: x509.BasicConstraints | None) -> Issued:
    """An end-entity certificate that signs itself, as Java's keytool -genkeypair writes them."""
    key = new_key()
    name = ams.DistinguishedName.parse(dn).to_x509()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=365))
    )
    if constraints is not None:
        builder = builder.add_extension(constraints, critical=True)
    return Issued(key, builder.sign(key, hashes.SHA256()))


def _signed_by(signer: Issued, policy_line: str, queue: str = "INT.Q") -> bytes:
    keystore = ams.Keystore(ams.Identity(signer.certificate, signer.key), [], source="the sender")
    return ams.Protector(keystore, store(policy_line)).protect(queue, b"pay the partner 1,000,000").body


def _receiver(pki: Pki, *extra: x509.Certificate, line: str) -> ams.Protector:
    bob = pki.keystore("bob")
    return ams.Protector(ams.Keystore(bob.identity, [*bob.certificates, *extra], source="bob"), store(line))


@pytest.mark.parametrize(
    "constraints",
    [x509.BasicConstraints(ca=False, path_length=None), None],
    ids=["cA-false", "no-basicConstraints"],
)
def test_a_self_signed_partner_cannot_issue_itself_alice(pki: Pki, constraints: x509.BasicConstraints | None) -> None:
    partner = _self_signed("CN=partner,O=PARTNER,C=US", constraints=constraints)
    line = f'setmqspl -m QM -p INT.Q -s SHA256 -a "{pki.dn("alice")}"'
    forged_alice = issue(partner, pki.dn("alice"))  # the partner's key signs a certificate named alice
    bob = _receiver(pki, partner.certificate, line=line)
    with pytest.raises(ams.errors.UntrustedSignerError, match="not a CA"):
        bob.unprotect("INT.Q", _signed_by(forged_alice, line))
    # the twin: the partner's own self-signed certificate is trusted as itself (a pinned signer)
    open_line = "setmqspl -m QM -p INT.Q -s SHA256"
    pinned = _receiver(pki, partner.certificate, line=open_line).unprotect("INT.Q", _signed_by(partner, open_line))
    assert pinned.signer_dn == ams.DistinguishedName.parse("CN=partner,O=PARTNER,C=US")


def test_a_self_signed_signer_outside_the_keystore_is_refused(pki: Pki) -> None:
    stranger = _self_signed("CN=stranger,O=ELSEWHERE,C=US", constraints=None)
    line = "setmqspl -m QM -p INT.Q -s SHA256"
    with pytest.raises(ams.errors.UntrustedSignerError, match="self-signed"):
        _receiver(pki, line=line).unprotect("INT.Q", _signed_by(stranger, line))


def test_an_issuer_without_key_cert_sign_cannot_issue(pki: Pki) -> None:
    line = "setmqspl -m QM -p INT.Q -s SHA256"
    crippled = issue(pki.ca, "CN=Sub CA,O=AMS,C=GB", ca_flag=True, key_usage=_SIGN_ONLY, extended_key_usage=None)
    signer = issue(crippled, "CN=dave,OU=sub,O=AMS,C=GB")
    with pytest.raises(ams.errors.UntrustedSignerError, match="keyCertSign"):
        _receiver(pki, crippled.certificate, line=line).unprotect("INT.Q", _signed_by(signer, line))
    # the twin: the same chain through a sub-CA that may sign certificates
    proper = issue(pki.ca, "CN=Sub CA,O=AMS,C=GB", ca_flag=True, key_usage=_KEY_CERT_SIGN, extended_key_usage=None)
    signer = issue(proper, "CN=dave,OU=sub,O=AMS,C=GB")
    assert _receiver(pki, proper.certificate, line=line).unprotect("INT.Q", _signed_by(signer, line)).body


def _recipient_serial(message: bytes) -> int | None:
    envelope = parse_enveloped_data(message[104:])
    (ref,) = envelope.recipient_refs()
    return ref.serial


def test_recipients_are_validated_and_the_newest_valid_certificate_is_used(pki: Pki) -> None:
    line = 'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "CN=frank,O=AMS,C=GB"'
    old = issue(pki.ca, "CN=frank,O=AMS,C=GB", not_before=NOW - datetime.timedelta(days=300))
    new = issue(pki.ca, "CN=frank,O=AMS,C=GB", not_before=NOW - datetime.timedelta(days=2))
    expired = issue(
        pki.ca,
        "CN=frank,O=AMS,C=GB",
        not_before=NOW - datetime.timedelta(days=10),
        not_after=NOW - datetime.timedelta(days=1),
    )
    alice = pki.keystore("alice")

    def send(*candidates: Issued) -> bytes:
        keystore = ams.Keystore(alice.identity, [*alice.certificates, *(c.certificate for c in candidates)])
        return ams.Protector(keystore, store(line)).protect("PRIV.Q", b"for frank").body

    assert _recipient_serial(send(old, new)) == new.certificate.serial_number
    assert _recipient_serial(send(new, old)) == new.certificate.serial_number
    assert _recipient_serial(send(old, expired)) == old.certificate.serial_number  # newer, but expired
    with pytest.raises(ams.errors.RecipientCertificateError, match=r"CN=frank,O=AMS,C=GB.*expired"):
        send(expired)


def test_a_recipient_from_an_untrusted_ca_gets_nothing(pki: Pki) -> None:
    line = 'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "CN=grace,O=AMS,C=GB"'
    rogue_ca = make_ca("CN=Test CA,O=AMS,C=GB")  # the same DN as the real CA, another key
    rogue = issue(rogue_ca, "CN=grace,O=AMS,C=GB")
    alice = pki.keystore("alice")
    keystore = ams.Keystore(alice.identity, [*alice.certificates, rogue.certificate])
    with pytest.raises(ams.errors.RecipientCertificateError, match="does not chain"):
        ams.Protector(keystore, store(line)).protect("PRIV.Q", b"secret")
    genuine = issue(pki.ca, "CN=grace,O=AMS,C=GB")
    keystore = ams.Keystore(alice.identity, [*alice.certificates, rogue.certificate, genuine.certificate])
    sent = ams.Protector(keystore, store(line)).protect("PRIV.Q", b"secret").body
    assert _recipient_serial(sent) == genuine.certificate.serial_number  # the valid one of the two


@pytest.mark.parametrize(
    "policy_dn,certificate_dn,accepted",
    [
        ("CN=fiona,O=AMS,C=GB", "CN=FIONA,O=ams,C=gb", True),
        ("CN=Ørsted,O=AMS,C=GB", "CN=øRSTED,O=AMS,C=GB", True),
        ("CN=ﬁona,O=AMS,C=GB", "CN=fiona,O=AMS,C=GB", False),
        ("CN=STRASSE,O=AMS,C=GB", "CN=straße,O=AMS,C=GB", False),
        ("CN=alice,O=AMS,C=GB", "CN=alice\u00a0,O=AMS,C=GB", False),
        ("CN=alice,O=AMS,C=GB", "CN=alice\u2003,O=AMS,C=GB", False),
    ],
)
def test_authorised_signers_match_no_looser_than_ibm_java(
    pki: Pki, policy_dn: str, certificate_dn: str, accepted: bool
) -> None:
    line = f'setmqspl -m QM -p INT.Q -s SHA256 -a "{policy_dn}"'
    signer = issue(pki.ca, certificate_dn)
    receiver = _receiver(pki, line=line)
    message = _signed_by(signer, line)
    if accepted:
        assert receiver.unprotect("INT.Q", message).body
    else:
        with pytest.raises(ams.errors.UnauthorisedSignerError):
            receiver.unprotect("INT.Q", message)
