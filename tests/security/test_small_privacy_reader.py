"""The small privacy message's receive path after round five (benchmarks/README.md), and its rejected twins.

Round five took Python calls off this path: the decrypted SignedData's content is read by
``read_ams_signed_content`` (the reader of AMS's shape, told where the SEQUENCE header the
receiver wrote ends) with the strict reader behind it; the parse results are named tuples; the
CBC input checks, the QoP checks of the wire and the signer-identifier check run inline for the
usual case and hand anything else to the functions that judged it before. Every message here goes
through the allocating ``unprotect`` of a small message (the path the benchmark times), and a spy
proves that it reaches the new reader. Each accepted message has its refused twins: a byte of every
region of the plaintext changed, the plaintext truncated and extended, another signer, another
recipient, CBC input of the wrong size; every refusal after decryption starts is the one error.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import Cipher, modes

import ams
import ams._privacy
import ams.errors
from ams import _wire
from ams._privacy import decryption_failed
from ams.algorithms import EncryptionAlgorithm
from ams.hazmat import der
from ams.hazmat.enveloped import CbcDecryptor, cbc_decrypt, check_cbc_input, parse_enveloped_data
from ams.hazmat.pdmq import V2_SIZE
from ams.hazmat.signed import parse_signed_data_strictly, read_ams_signed_content, read_ams_signed_data
from tests.conftest import Pki, store
from tests.security.test_direct_privacy_attacks import Sealer, _payload, _plaintexts

SIZES = (256, 2048)  # the benchmark's small messages: below the direct path's 64 KiB


@pytest.fixture(scope="module")
def policies(pki: Pki) -> ams.PolicyStore:
    bob = pki.dn("bob")
    return store(
        f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "{bob}"',
        "setmqspl -m QM -p INT.Q -s SHA256",
        f'setmqspl -m QM -p CONF.Q -e AES256 -r "{bob}" -c 0',
    )


@pytest.fixture(scope="module")
def bob(pki: Pki, policies: ams.PolicyStore) -> ams.Protector:
    return ams.Protector(pki.keystore("bob"), policies, diagnose_decryption=True)


@pytest.fixture
def reached(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often the new reader and the strict reader behind it were called on the receive path."""
    counts = {"fast": 0, "strict": 0}

    def counting(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(ams._privacy, "read_ams_signed_content", counting("fast", read_ams_signed_content))
    monkeypatch.setattr(ams._privacy, "parse_signed_data_strictly", counting("strict", parse_signed_data_strictly))
    return counts


def _the_one_error(bob: ams.Protector, message: bytes) -> str:
    """The text every refusal after decryption starts must have for ``message`` (public facts only)."""
    envelope = parse_enveloped_data(message[V2_SIZE:])
    identity = bob.keystore.identity
    assert identity is not None
    return str(decryption_failed(ams.QoP.PRIVACY, envelope.algorithm, len(envelope.ciphertext), identity.dn))


def _refused_with_the_one_error(bob: ams.Protector, message: bytes, what: str) -> str | None:
    """The diagnostic of ``message``'s refusal, whose text must be the one error's."""
    with pytest.raises(ams.errors.DecryptionError) as caught:
        bob.unprotect("PRIV.Q", message)
    assert str(caught.value) == _the_one_error(bob, message), what
    assert caught.value.__cause__ is None and caught.value.__context__ is None  # no decrypted frame carried out
    return caught.value.diagnostic


def _regions(plaintext: bytes, payload: bytes) -> Iterator[tuple[str, int]]:
    """One offset in every region of AMS's SignedData content octets."""
    payload_at = plaintext.index(payload)
    _, certificate_start, certificate_size = der.read_header(plaintext, payload_at + len(payload))
    infos_at = certificate_start + certificate_size
    yield "version", 2
    yield "digestAlgorithms", 6
    yield "encapContentInfo framing", payload_at - 3
    yield "payload, first byte", payload_at
    yield "payload, last byte", payload_at + len(payload) - 1
    yield "certificates field", payload_at + len(payload) + 1
    yield "certificate body", certificate_start + certificate_size // 2
    yield "signerInfos SET", infos_at
    yield "SignerInfo version", infos_at + 6
    yield "issuer", infos_at + 12
    attributes_at = plaintext.index(b"\xa0", plaintext.index(der.oid("2.16.840.1.101.3.4.2.1"), infos_at))
    yield "signed attributes' tag", attributes_at
    yield "signing time", attributes_at + 45
    yield "message digest", len(plaintext) - 256 - 40
    yield "signatureAlgorithm", len(plaintext) - 256 - 10
    yield "signature", len(plaintext) - 100


@pytest.mark.parametrize("size", SIZES)
def test_a_byte_changed_in_every_region_of_the_plaintext_is_the_one_error(
    pki: Pki, bob: ams.Protector, reached: dict[str, int], size: int
) -> None:
    sealer = Sealer(pki, "PRIV.Q")
    payload = _payload(size)
    plaintext = sealer.plaintext(payload)
    genuine = sealer.seal(plaintext, size)
    assert bob.unprotect("PRIV.Q", genuine).body == payload  # the accepted twin
    assert reached["fast"] == 1 and reached["strict"] == 0
    diagnostics = set()
    for region, at in _regions(plaintext, payload):
        changed = bytearray(plaintext)
        changed[at] ^= 0x41
        diagnostics.add(_refused_with_the_one_error(bob, sealer.seal(bytes(changed), size), region))
    assert reached["fast"] == 1 + len(list(_regions(plaintext, payload)))  # each reached the new reader
    assert reached["strict"] > 0  # and some were not AMS's shape: the strict reader judged them
    assert len(diagnostics) > 2  # different steps failed; the text did not say which


@pytest.mark.parametrize("size", SIZES)
def test_truncated_extended_and_reframed_plaintexts_get_their_verdicts(
    pki: Pki, bob: ams.Protector, reached: dict[str, int], size: int
) -> None:
    """The chosen plaintexts of the large path's review, small: the general reader's valid framings
    are accepted, every truncation, trailing byte and resizing is the one error."""
    sealer = Sealer(pki, "PRIV.Q")
    payload = _payload(size)
    accepted = set()
    for what, plaintext, orig_size in _plaintexts(sealer, payload):
        message = sealer.seal(plaintext, orig_size)
        try:
            result = bob.unprotect("PRIV.Q", message)
        except ams.errors.DecryptionError as error:
            assert str(error) == _the_one_error(bob, message), what
            continue
        assert result.body == payload, what
        accepted.add(what)
    assert accepted == {
        "genuine",
        "an empty CRLs field (the general reader's)",
        "a whole SignedData SEQUENCE",
        "a whole ContentInfo",
    }
    assert reached["fast"] > 0 and reached["strict"] > 0


def test_another_signer_and_another_recipient_are_refused(
    pki: Pki, bob: ams.Protector, policies: ams.PolicyStore, reached: dict[str, int]
) -> None:
    """A SignerInfo naming carol while alice's certificate is carried, a signature made by carol's
    key over alice's attributes (both inside the one error), and a message for carol only."""
    sealer = Sealer(pki, "PRIV.Q")
    payload = _payload(700)
    plaintext = sealer.plaintext(payload)
    alice, carol = pki.issued("alice"), pki.issued("carol")
    ids = {name: der.integer(issued.certificate.serial_number) for name, issued in (("alice", alice), ("carol", carol))}
    assert len(ids["alice"]) == len(ids["carol"])
    at = plaintext.rindex(ids["alice"])  # the SignerInfo's serial (the certificate's comes first)
    assert at > plaintext.index(payload) + len(payload) + len(
        alice.certificate.public_bytes(serialization.Encoding.DER)
    )
    other_sid = plaintext[:at] + ids["carol"] + plaintext[at + len(ids["carol"]) :]
    diagnostic = _refused_with_the_one_error(bob, sealer.seal(other_sid, len(payload)), "SignerInfo names carol")
    assert diagnostic == "verifying the inner signature failed (SignerCertificateError)"
    found = read_ams_signed_data(der.tlv(der.SEQUENCE, plaintext), wrapped=False, templates=False)
    assert found is not None
    [info] = found.signer_infos
    assert info.signed_attributes is not None
    signed = b"\x31" + der.length(len(info.signed_attributes)) + bytes(info.signed_attributes)
    forged = carol.key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
    by_carol = plaintext.replace(info.signature, forged)
    diagnostic = _refused_with_the_one_error(bob, sealer.seal(by_carol, len(payload)), "signed by carol")
    assert diagnostic == "verifying the inner signature failed (BadSignatureError)"
    carol_only = store(f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "{pki.dn("carol")}"')
    for_carol = ams.Protector(pki.keystore("alice"), carol_only).protect("PRIV.Q", payload).body
    with pytest.raises(ams.errors.NotARecipientError):
        bob.unprotect("PRIV.Q", for_carol)
    assert reached["fast"] == 2


@pytest.mark.parametrize("algorithm", [EncryptionAlgorithm.AES256, EncryptionAlgorithm.TDES])
def test_cbc_input_of_the_wrong_size_is_refused_as_before(algorithm: EncryptionAlgorithm) -> None:
    """The inline test of the CBC input hands every wrong size to check_cbc_input, whose error it was."""
    spec = algorithm.spec
    key, block = bytes(spec.key_size), spec.block_size
    cipher = spec.factory(key)
    kept = CbcDecryptor(algorithm, cipher)
    cases = [(bytes(block), b""), (bytes(block), bytes(block + 1)), (bytes(block), bytes(3 * block - 1))]
    cases += [(bytes(block - 1), bytes(2 * block)), (bytes(block + 1), bytes(2 * block))]
    for iv, ciphertext in cases:
        with pytest.raises(ams.errors.DecryptionError) as expected:
            check_cbc_input(algorithm, block, iv, ciphertext, "what")
        for decrypt in (
            functools.partial(cbc_decrypt, algorithm, key, iv, ciphertext, what="what"),
            functools.partial(kept.decrypt, iv, ciphertext, what="what"),
        ):
            with pytest.raises(ams.errors.DecryptionError) as caught:
                decrypt()
            assert str(caught.value) == str(expected.value)
    padded = bytes(block - 1) + bytes([1])  # a zero key and IV: any block decrypts; make one that unpads
    encryptor = Cipher(cipher, modes.CBC(bytes(block))).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    assert bytes(cbc_decrypt(algorithm, key, bytes(block), ciphertext, what="what")) == bytes(block - 1)
    assert bytes(kept.decrypt(bytes(block), ciphertext, what="what")) == bytes(block - 1)


def test_the_wire_refuses_a_structure_of_another_qop(pki: Pki, policies: ams.PolicyStore) -> None:
    """The QoP checks made inline in ``_wire`` still refuse what ``_expect_qop`` refused."""
    alice = ams.Protector(pki.keystore("alice"), policies)
    messages = {
        qop: alice.protect(queue, b"payload").body
        for qop, queue in (
            (ams.QoP.INTEGRITY, "INT.Q"),
            (ams.QoP.PRIVACY, "PRIV.Q"),
            (ams.QoP.CONFIDENTIALITY, "CONF.Q"),
        )
    }
    for qop, message in messages.items():
        wire = _wire.parse(message)
        if qop is not ams.QoP.PRIVACY:
            with pytest.raises(ams.errors.MalformedMessageError, match=f"the message is {qop}, not PRIVACY"):
                wire.enveloped_data()
        if qop is not ams.QoP.CONFIDENTIALITY:
            with pytest.raises(ams.errors.MalformedMessageError, match=f"the message is {qop}, not CONFIDENTIALITY"):
                wire.confidential()
    assert _wire.parse(messages[ams.QoP.PRIVACY]).enveloped_data().recipient_ids
    assert _wire.parse(messages[ams.QoP.CONFIDENTIALITY]).confidential().iv
    unprotected = _wire.parse(b"not protected at all")
    for read in (unprotected.confidential, unprotected.enveloped_data, lambda: unprotected.restore(b"")):
        with pytest.raises(ams.errors.MalformedMessageError, match="the message is not protected"):
            read()


def test_validate_signer_judges_a_certificate_and_a_carried_one_alike(pki: Pki, bob: ams.Protector) -> None:
    """One cache lookup for the carried certificate's chain and usage, the plain certificate's own
    caches: the same chain, and the same refusal of a signer that does not chain to the keystore's CA."""
    verifier = bob.verifier
    alice = pki.issued("alice").certificate
    encoded = alice.public_bytes(serialization.Encoding.DER)
    now = datetime.datetime.now(datetime.UTC)
    carried = verifier.carried(encoded)
    assert verifier.validate_signer(carried, now) == verifier.validate_signer(alice, now)
    assert verifier.validate_signer(carried, now) == verifier.validate_signer(carried, now)  # from the cache
    stranger = pki.issued("mallory").certificate  # the foreign CA's user
    outsider = verifier.carried(stranger.public_bytes(serialization.Encoding.DER))
    errors = []
    for certificate in (outsider, stranger):
        with pytest.raises(ams.AmsError) as caught:
            verifier.validate_signer(certificate, now)
        errors.append((type(caught.value), str(caught.value)))
    assert errors[0] == errors[1]
    later = now + datetime.timedelta(days=3650 * 3)
    with pytest.raises(ams.AmsError, match=r"expired|not valid"):
        verifier.validate_signer(carried, later)  # dates are checked on every call, cache or not
