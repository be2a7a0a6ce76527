"""Every accepted case has its rejected twin: each check of AMS-FORMAT section 6."""

from __future__ import annotations

import datetime
import struct
from pathlib import Path

import pytest
from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import ams
import ams.errors
from ams.pki import Issued
from tests.conftest import Pki, store

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def policies(pki: Pki) -> ams.PolicyStore:
    return store(
        f'setmqspl -m QM -p INT.Q -s SHA256 -a "{pki.dn("alice")}"',
        "setmqspl -m QM -p ANYSIGNER.Q -s SHA256",
        f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "{pki.dn("bob")}" -a "{pki.dn("alice")}"',
        f'setmqspl -m QM -p CONF.Q -e AES256 -r "{pki.dn("bob")}"',
        "setmqspl -m QM -p TOL.Q -s SHA256 -t 1",
    )


def _protector(pki: Pki, name: str, policies: ams.PolicyStore, **options: object) -> ams.Protector:
    return ams.Protector(pki.keystore(name), policies, **options)  # type: ignore[arg-type]


def test_unauthorised_signer_is_refused_and_authorised_one_accepted(pki: Pki, policies: ams.PolicyStore) -> None:
    bob = _protector(pki, "bob", policies)
    accepted = bob.unprotect("INT.Q", _protector(pki, "alice", policies).protect("INT.Q", b"hi").body)
    assert accepted.body == b"hi"
    with pytest.raises(ams.errors.UnauthorisedSignerError) as caught:
        bob.unprotect("INT.Q", _protector(pki, "carol", policies).protect("INT.Q", b"hi").body)
    assert pki.dn("carol") in str(caught.value) and pki.dn("alice") in str(caught.value)
    assert caught.value.reason == 2063
    assert caught.value.code == "unauthorised_signer"


def test_signer_dn_matches_case_and_space_insensitively(pki: Pki) -> None:
    relaxed = store('setmqspl -m QM -p INT.Q -s SHA256 -a "cn=ALICE, o=ams,  c=gb"')
    data = _protector(pki, "alice", relaxed).protect("INT.Q", b"hi").body
    assert _protector(pki, "bob", relaxed).unprotect("INT.Q", data).body == b"hi"
    reordered = store('setmqspl -m QM -p INT.Q -s SHA256 -a "C=GB,O=AMS,CN=alice"')
    with pytest.raises(ams.errors.UnauthorisedSignerError, match="different order"):
        _protector(pki, "bob", reordered).unprotect("INT.Q", data)


@pytest.mark.parametrize("queue", ["PRIV.Q", "CONF.Q"])
def test_reader_not_a_recipient_is_told_who_is(pki: Pki, policies: ams.PolicyStore, queue: str) -> None:
    data = _protector(pki, "alice", policies).protect(queue, b"for bob").body
    assert _protector(pki, "bob", policies).unprotect(queue, data).body == b"for bob"
    with pytest.raises(ams.errors.NotARecipientError) as caught:
        _protector(pki, "carol", policies).unprotect(queue, data)
    text = str(caught.value)
    assert pki.dn("bob") in text and pki.dn("carol") in text


QOP_QUEUES = {
    ams.QoP.INTEGRITY: "setmqspl -m QM -p Q -s SHA256",
    ams.QoP.PRIVACY: 'setmqspl -m QM -p Q -s SHA256 -e AES256 -r "{bob}"',
    ams.QoP.CONFIDENTIALITY: 'setmqspl -m QM -p Q -e AES256 -r "{bob}"',
}
ACCEPTS = {
    (ams.QoP.INTEGRITY, ams.QoP.INTEGRITY),
    (ams.QoP.INTEGRITY, ams.QoP.PRIVACY),
    (ams.QoP.PRIVACY, ams.QoP.PRIVACY),
    (ams.QoP.CONFIDENTIALITY, ams.QoP.CONFIDENTIALITY),
}


@pytest.mark.parametrize("policy_qop", list(QOP_QUEUES))
@pytest.mark.parametrize("message_qop", list(QOP_QUEUES))
def test_qop_matrix(pki: Pki, policy_qop: ams.QoP, message_qop: ams.QoP) -> None:
    sender = store(QOP_QUEUES[message_qop].format(bob=pki.dn("bob")))
    receiver = store(QOP_QUEUES[policy_qop].format(bob=pki.dn("bob")))
    data = _protector(pki, "alice", sender).protect("Q", b"matrix").body
    bob = _protector(pki, "bob", receiver)
    if (policy_qop, message_qop) in ACCEPTS:
        assert bob.unprotect("Q", data).body == b"matrix"
    else:
        with pytest.raises(ams.errors.QopMismatchError) as caught:
            bob.unprotect("Q", data)
        assert policy_qop.name in str(caught.value) and message_qop.name in str(caught.value)


def test_no_policy_returns_protected_message_as_is(pki: Pki, policies: ams.PolicyStore) -> None:
    data = _protector(pki, "alice", policies).protect("PRIV.Q", b"x").body
    message = _protector(pki, "bob", ams.PolicyStore()).unprotect("PRIV.Q", data)
    assert message.body == data and message.qop is ams.QoP.NONE


def test_unprotected_message_refused_unless_tolerated(pki: Pki, policies: ams.PolicyStore) -> None:
    bob = _protector(pki, "bob", policies)
    with pytest.raises(ams.errors.NotProtectedError, match="not protected"):
        bob.unprotect("ANYSIGNER.Q", b"plain", "MQSTR")
    tolerated = bob.unprotect("TOL.Q", b"plain", "MQSTR")
    assert (tolerated.body, tolerated.format, tolerated.qop) == (b"plain", "MQSTR", ams.QoP.NONE)
    # a protected message on a tolerating queue is still checked
    signed = _protector(pki, "alice", policies).protect("TOL.Q", b"signed").body
    assert bob.unprotect("TOL.Q", signed).body == b"signed"
    with pytest.raises(ams.SecurityError):
        bob.unprotect("TOL.Q", signed[:-1] + bytes([signed[-1] ^ 1]))


def test_weaker_digest_refused_stronger_accepted(pki: Pki) -> None:
    receiver = store("setmqspl -m QM -p Q -s SHA256")
    bob = _protector(pki, "bob", receiver)
    strong = _protector(pki, "alice", store("setmqspl -m QM -p Q -s SHA512")).protect("Q", b"x").body
    assert bob.unprotect("Q", strong).signature_algorithm is ams.SignatureAlgorithm.SHA512
    weak = _protector(pki, "alice", store("setmqspl -m QM -p Q -s SHA1"), allow_deprecated=True).protect("Q", b"x").body
    with pytest.raises(ams.errors.AlgorithmTooWeakError, match="SHA1, weaker than the policy's SHA256"):
        bob.unprotect("Q", weak)


@pytest.mark.parametrize("queue_line", ["-s SHA256 -e {cipher}", "-e {cipher}"])
def test_weaker_cipher_refused_stronger_accepted(pki: Pki, queue_line: str) -> None:
    bob_dn = pki.dn("bob")

    def policies(cipher: str) -> ams.PolicyStore:
        return store(f'setmqspl -m QM -p Q {queue_line.format(cipher=cipher)} -r "{bob_dn}"')

    bob = _protector(pki, "bob", policies("AES128"))
    strong = _protector(pki, "alice", policies("AES256")).protect("Q", b"x").body
    assert bob.unprotect("Q", strong).encryption_algorithm is ams.EncryptionAlgorithm.AES256
    weak = _protector(pki, "alice", policies("3DES"), allow_deprecated=True).protect("Q", b"x").body
    with pytest.raises(ams.errors.AlgorithmTooWeakError, match="3DES, weaker than the policy's AES128"):
        bob.unprotect("Q", weak)


def test_untrusted_signer_refused_until_its_ca_is_trusted(pki: Pki, policies: ams.PolicyStore) -> None:
    mallory = ams.Protector(
        ams.Keystore(ams.Identity(pki.mallory.certificate, pki.mallory.key), [pki.foreign_ca.certificate]), policies
    )
    data = mallory.protect("ANYSIGNER.Q", b"from abroad").body
    with pytest.raises(ams.errors.UntrustedSignerError) as caught:
        _protector(pki, "bob", policies).unprotect("ANYSIGNER.Q", data)
    assert "CN=mallory,O=ELSEWHERE,C=US" in str(caught.value) and "CN=Test CA" in str(caught.value)
    trusting = ams.Protector(pki.keystore("bob", extra=(pki.foreign_ca,)), policies)
    assert trusting.unprotect("ANYSIGNER.Q", data).body == b"from abroad"


def test_self_signed_signer_trusted_only_when_in_keystore(pki: Pki, policies: ams.PolicyStore) -> None:
    from ams.pki import make_ca, new_key

    key = new_key()
    own = make_ca("CN=selfie,O=AMS,C=GB", key=key)
    # make an end-entity self-signed certificate: issue() with itself as the CA
    from ams.pki import issue

    selfie = issue(Issued(key, own.certificate), "CN=selfie,O=AMS,C=GB", key=key)
    sender = ams.Protector(ams.Keystore(ams.Identity(selfie.certificate, key)), policies)
    data = sender.protect("ANYSIGNER.Q", b"me").body
    with pytest.raises(ams.errors.UntrustedSignerError):
        _protector(pki, "bob", policies).unprotect("ANYSIGNER.Q", data)
    bob = ams.Protector(ams.Keystore(pki.keystore("bob").identity, [pki.ca.certificate, selfie.certificate]), policies)
    assert bob.unprotect("ANYSIGNER.Q", data).body == b"me"


def _usage(**flags: bool) -> x509.KeyUsage:
    """A keyUsage with only the named bits set."""
    names = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    return x509.KeyUsage(**{name: flags.get(name, False) for name in names})


def _sender_with(pki: Pki, issued: Issued, policies: ams.PolicyStore) -> ams.Protector:
    return ams.Protector(ams.Keystore(ams.Identity(issued.certificate, issued.key), [pki.ca.certificate]), policies)


def test_expired_and_not_yet_valid_signers(pki: Pki, policies: ams.PolicyStore, make_issued: object) -> None:
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    old = make_issued("CN=old,O=AMS,C=GB", not_before=start, days=30)  # type: ignore[operator]
    data = _sender_with(pki, old, policies).protect("ANYSIGNER.Q", b"old news").body
    bob = _protector(pki, "bob", policies)
    with pytest.raises(ams.errors.CertificateValidityError, match="expired") as caught:
        bob.unprotect("ANYSIGNER.Q", data)
    assert "CN=old,O=AMS,C=GB" in str(caught.value) and "2020-01-31" in str(caught.value)
    assert bob.unprotect("ANYSIGNER.Q", data, at=start + datetime.timedelta(days=10)).body == b"old news"
    with pytest.raises(ams.errors.CertificateValidityError, match="not yet valid"):
        bob.unprotect("ANYSIGNER.Q", data, at=start - datetime.timedelta(days=10))


def test_signer_key_usage_and_ca_flag(pki: Pki, policies: ams.PolicyStore, make_issued: object) -> None:
    encipher_only = _usage(key_encipherment=True)
    bad_usage = make_issued("CN=noSign,O=AMS,C=GB", key_usage=encipher_only)  # type: ignore[operator]
    a_ca = make_issued("CN=subCA,O=AMS,C=GB", ca_flag=True)  # type: ignore[operator]
    no_email = make_issued(  # type: ignore[operator]
        "CN=tls,O=AMS,C=GB", extended_key_usage=[x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]
    )
    bob = _protector(pki, "bob", policies)
    with pytest.raises(ams.errors.CertificateUsageError, match="digitalSignature or nonRepudiation"):
        bob.unprotect("ANYSIGNER.Q", _sender_with(pki, bad_usage, policies).protect("ANYSIGNER.Q", b"x").body)
    with pytest.raises(ams.errors.CertificateUsageError, match="CA certificate"):
        bob.unprotect("ANYSIGNER.Q", _sender_with(pki, a_ca, policies).protect("ANYSIGNER.Q", b"x").body)
    with pytest.raises(ams.errors.CertificateUsageError, match="emailProtection"):
        bob.unprotect("ANYSIGNER.Q", _sender_with(pki, no_email, policies).protect("ANYSIGNER.Q", b"x").body)


def test_recipient_without_key_encipherment_is_refused_at_protect(pki: Pki, make_issued: object) -> None:
    sign_only = _usage(digital_signature=True)
    frank = make_issued("CN=frank,O=AMS,C=GB", key_usage=sign_only)  # type: ignore[operator]
    policies = store('setmqspl -m QM -p Q -e AES256 -r "CN=frank,O=AMS,C=GB"')
    alice = ams.Protector(pki.keystore("alice", extra=(frank,)), policies)
    with pytest.raises(ams.errors.RecipientCertificateError, match="keyEncipherment"):
        alice.protect("Q", b"x")


def test_two_certificates_in_signed_data_are_refused(pki: Pki, policies: ams.PolicyStore) -> None:
    data = _protector(pki, "alice", policies).protect("ANYSIGNER.Q", b"x").body
    info = asn1_cms.ContentInfo.load(data[104:])
    from asn1crypto import x509 as asn1_x509

    ca = asn1_x509.Certificate.load(pki.ca.certificate.public_bytes(serialization.Encoding.DER))
    info["content"]["certificates"].append(asn1_cms.CertificateChoices(name="certificate", value=ca))
    blob = info.dump(force=True)
    header = bytearray(data[:104])
    with pytest.raises(ams.errors.SignerCertificateError, match=r"exactly one certificate.*found 2"):
        _protector(pki, "bob", policies).unprotect("ANYSIGNER.Q", bytes(header) + blob)


def test_wrong_orig_size(pki: Pki, policies: ams.PolicyStore) -> None:
    for queue in ("INT.Q", "PRIV.Q", "CONF.Q"):
        data = bytearray(_protector(pki, "alice", policies).protect(queue, b"twelve bytes").body)
        assert _protector(pki, "bob", policies).unprotect(queue, bytes(data)).body == b"twelve bytes"
        struct.pack_into(">i", data, 24, 11)
        if queue == "INT.Q":  # the payload is readable anyway: the error may say what it found
            with pytest.raises(ams.errors.SizeMismatchError, match="12 bytes but the PDMQ header's origSize says 11"):
                _protector(pki, "bob", policies).unprotect(queue, bytes(data))
        else:  # an encrypted payload's length is found by decryption: the one decryption error
            with pytest.raises(ams.errors.DecryptionError) as caught:
                _protector(pki, "bob", policies).unprotect(queue, bytes(data))
            assert "12" not in caught.value.message.replace("AES256", "")


def test_empty_flag_contradicting_content(pki: Pki, policies: ams.PolicyStore) -> None:
    alice = _protector(pki, "alice", policies)
    bob = _protector(pki, "bob", policies)
    empty = alice.protect("INT.Q", b"").body
    assert empty[40] == 1 and struct.unpack(">i", empty[24:28])[0] == 1
    assert bob.unprotect("INT.Q", empty).body == b""
    one = bytearray(alice.protect("INT.Q", b"Z").body)
    assert bob.unprotect("INT.Q", bytes(one)).body == b"Z"
    one[40] = 1
    with pytest.raises(ams.errors.EmptyFlagError, match="empty-message flag"):
        bob.unprotect("INT.Q", bytes(one))


@pytest.mark.parametrize("queue", ["INT.Q", "PRIV.Q", "CONF.Q"])
def test_truncated_input_is_refused_at_every_length(pki: Pki, policies: ams.PolicyStore, queue: str) -> None:
    data = _protector(pki, "alice", policies).protect(queue, b"truncate me").body
    bob = _protector(pki, "bob", policies)
    for cut in [*range(104, len(data), 7), len(data) - 1]:
        with pytest.raises(ams.SecurityError):
            bob.unprotect(queue, data[:cut])
    with pytest.raises(ams.errors.NotProtectedError):
        bob.unprotect(queue, data[:103])


@pytest.mark.parametrize("queue", ["INT.Q", "PRIV.Q", "CONF.Q"])
def test_garbage_after_a_valid_header_is_refused(pki: Pki, policies: ams.PolicyStore, queue: str) -> None:
    import os

    data = _protector(pki, "alice", policies).protect(queue, b"x").body
    size = 112 if queue == "CONF.Q" else 104
    for _ in range(20):
        with pytest.raises(ams.SecurityError):
            _protector(pki, "bob", policies).unprotect(queue, data[:size] + os.urandom(len(data) - size))
    with pytest.raises(ams.errors.MalformedMessageError):
        _protector(pki, "bob", policies).unprotect(queue, b"PDMQ" + os.urandom(300))


def test_header_says_privacy_but_blob_is_signed_data(pki: Pki, policies: ams.PolicyStore) -> None:
    data = bytearray(_protector(pki, "alice", policies).protect("ANYSIGNER.Q", b"x").body)
    struct.pack_into(">i", data, 16, 8)
    relaxed = store("setmqspl -m QM -p ANYSIGNER.Q -s SHA256")
    with pytest.raises(ams.errors.HeaderContentMismatchError, match="PRIVACY"):
        _protector(pki, "bob", relaxed).unprotect("ANYSIGNER.Q", bytes(data))


def test_deprecated_algorithms_need_opt_in_and_warn(pki: Pki) -> None:
    policies = store("setmqspl -m QM -p Q -s SHA1")
    with pytest.raises(ams.errors.DeprecatedAlgorithmError, match=r"SHA1.*opt-in"):
        _protector(pki, "alice", policies).protect("Q", b"x")
    with pytest.warns(ams.errors.AmsDeprecationWarning, match="SHA1"):
        data = _protector(pki, "alice", policies, allow_deprecated=True).protect("Q", b"x").body
    assert _protector(pki, "bob", policies).unprotect("Q", data).signature_algorithm is ams.SignatureAlgorithm.SHA1


def test_long_digest_needs_key_over_768_bits(pki: Pki) -> None:
    key = serialization.load_pem_private_key((HERE / "data" / "rsa768.key.pem").read_bytes(), None)
    from ams.pki import issue

    small = issue(pki.ca, "CN=small,O=AMS,C=GB", key=key)  # type: ignore[arg-type]
    sender = ams.Keystore(ams.Identity(small.certificate, small.key), [pki.ca.certificate])
    with pytest.raises(ams.errors.KeyTooWeakError, match="768 bits"):
        ams.Protector(sender, store("setmqspl -m QM -p Q -s SHA512")).protect("Q", b"x")
    data = ams.Protector(sender, store("setmqspl -m QM -p Q -s SHA256")).protect("Q", b"x").body
    assert _protector(pki, "bob", store("setmqspl -m QM -p Q -s SHA256")).unprotect("Q", data).body == b"x"


def test_missing_recipient_certificate_names_the_dn_and_near_misses(pki: Pki) -> None:
    policies = store('setmqspl -m QM -p Q -e AES256 -r "CN=bobby,O=AMS,C=GB"')
    with pytest.raises(ams.errors.RecipientNotFoundError, match="CN=bobby,O=AMS,C=GB"):
        _protector(pki, "alice", policies).protect("Q", b"x")
    reordered = store('setmqspl -m QM -p Q -e AES256 -r "C=GB,O=AMS,CN=bob"')
    with pytest.raises(ams.errors.RecipientNotFoundError, match="different order"):
        _protector(pki, "alice", reordered).protect("Q", b"x")


def test_strict_dn_matching_compares_exactly(pki: Pki) -> None:
    relaxed = store('setmqspl -m QM -p Q -s SHA256 -e AES256 -r "CN=bob,O=AMS,C=GB" -a "cn=ALICE,o=ams,c=gb"')
    data = ams.Protector(pki.keystore("alice"), relaxed).protect("Q", b"x").body
    assert ams.Protector(pki.keystore("bob"), relaxed).unprotect("Q", data).body == b"x"
    with pytest.raises(ams.errors.UnauthorisedSignerError, match="case or spacing"):
        ams.Protector(pki.keystore("bob"), relaxed, strict_dn=True).unprotect("Q", data)
    # recipients always match exactly, as IBM documents (tests/security/test_recipient_attacks.py)
    loose_recipient = store('setmqspl -m QM -p Q -s SHA256 -e AES256 -r "cn=BOB,o=ams,c=gb"')
    for strict in (False, True):
        with pytest.raises(ams.errors.RecipientNotFoundError, match="case or spacing"):
            ams.Protector(pki.keystore("alice"), loose_recipient, strict_dn=strict).protect("Q", b"x")


def test_chain_through_an_intermediate(pki: Pki, policies: ams.PolicyStore) -> None:
    from ams.pki import issue

    intermediate = issue(pki.ca, "CN=Issuing CA,O=AMS,C=GB", ca_flag=True, extended_key_usage=None)
    leaf = issue(intermediate, "CN=frank,O=AMS,C=GB")
    data = _sender_with(pki, leaf, policies).protect("ANYSIGNER.Q", b"via intermediate").body
    with_intermediate = ams.Protector(pki.keystore("bob", extra=(intermediate,)), policies)
    assert with_intermediate.unprotect("ANYSIGNER.Q", data).body == b"via intermediate"
    with pytest.raises(ams.errors.UntrustedSignerError, match=r"CN=frank.*issued by CN=Issuing CA"):
        _protector(pki, "bob", policies).unprotect("ANYSIGNER.Q", data)
    not_a_ca = issue(pki.ca, "CN=Fake CA,O=AMS,C=GB")  # an end entity posing as issuer
    fake_leaf = issue(not_a_ca, "CN=grace,O=AMS,C=GB")
    fake = _sender_with(pki, fake_leaf, policies).protect("ANYSIGNER.Q", b"x").body
    with pytest.raises(ams.errors.UntrustedSignerError, match="not a CA"):
        ams.Protector(pki.keystore("bob", extra=(not_a_ca,)), policies).unprotect("ANYSIGNER.Q", fake)


def test_ec_signer_certificates_are_refused(pki: Pki, policies: ams.PolicyStore) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from ams.pki import issue

    ec_cert = issue(pki.ca, "CN=ecsigner,O=AMS,C=GB", key=ec.generate_private_key(ec.SECP256R1()))  # type: ignore[arg-type]
    rsa_data = _protector(pki, "alice", policies).protect("ANYSIGNER.Q", b"x").body
    info = asn1_cms.ContentInfo.load(rsa_data[104:])
    from asn1crypto import x509 as asn1_x509

    info["content"]["certificates"] = [
        asn1_cms.CertificateChoices(
            name="certificate",
            value=asn1_x509.Certificate.load(ec_cert.certificate.public_bytes(serialization.Encoding.DER)),
        )
    ]
    with pytest.raises(ams.SecurityError, match=r"CN=ecsigner.*RSA signers only"):
        _protector(pki, "bob", policies).unprotect("ANYSIGNER.Q", rsa_data[:104] + info.dump(force=True))


def test_confidentiality_recipient_without_data_encipherment_warns(pki: Pki, make_issued: object) -> None:
    key_only = _usage(digital_signature=True, key_encipherment=True)
    henry = make_issued("CN=henry,O=AMS,C=GB", key_usage=key_only)  # type: ignore[operator]
    policies = store('setmqspl -m QM -p Q -e AES256 -r "CN=henry,O=AMS,C=GB"')
    with pytest.warns(ams.errors.AmsSecurityWarning, match="dataEncipherment"):
        ams.Protector(pki.keystore("alice", extra=(henry,)), policies).protect("Q", b"x")


def test_queues_without_a_policy_pass_even_damaged_headers(pki: Pki, policies: ams.PolicyStore) -> None:
    broken_rfh2 = b"RFH \x02\x00\x00\x00\xff\xff\x00\x00" + bytes(30)
    message = _protector(pki, "bob", policies).unprotect("NO.POLICY.Q", broken_rfh2, "MQHRF2")
    assert (message.body, message.format, message.qop) == (broken_rfh2, "MQHRF2", ams.QoP.NONE)
    with pytest.raises(ams.errors.MalformedMessageError, match="StrucLength"):
        _protector(pki, "bob", policies).unprotect("INT.Q", broken_rfh2, "MQHRF2")
