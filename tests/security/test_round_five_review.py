"""An attacker's review of round five (the small privacy and key-reuse receive paths without
Python calls): each changed check against the one it replaced, on accepted messages and their
refused twins.

Round five made the parse results named tuples, read the decrypted SignedData content with
``read_ams_signed_content`` (the strict reader behind it), read the SignerInfo from one bytes copy,
inlined the CBC input, QoP and signer-identifier checks for the usual case, skipped the strength
comparison when the message's algorithm is the policy's own, and looked algorithms up by value.
Here: a signer named by subjectKeyIdentifier (the case the inline issuer-and-serial test hands on)
and every near miss of it; every pair of algorithms through the shortcut; the lookups by value
against the member tables; the SET OF header of the signed attributes at every length form; the
new reader, the strict reader and asn1crypto on mutated plaintexts (Hypothesis), with the path
each takes; and every refusal after decryption starts is the one error, with no plaintext in it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ams
import ams._privacy
import ams.errors
from ams import _rules
from ams._privacy import SEQUENCE_HEADROOM, _parse_privacy_plaintext, decryption_failed
from ams.algorithms import _CIPHERS, _DIGEST_OIDS, _HASHES, EncryptionAlgorithm, SignatureAlgorithm
from ams.hazmat import der, signed
from ams.hazmat.certificates import issuer_and_serial
from ams.hazmat.enveloped import parse_enveloped_data
from ams.hazmat.pdmq import V2_SIZE
from ams.hazmat.signed import SignedContent, parse_signed_data_strictly, read_ams_signed_content
from ams.limits import DEFAULT_LIMITS
from tests.conftest import Pki, store
from tests.security.test_direct_privacy_attacks import MARK, Sealer, _payload
from tests.test_readers_differential import _asn1crypto_signed, _signed

EXAMPLES = int(os.environ.get("AMS_REVIEW_EXAMPLES", "40"))
PAYLOAD = _payload(300)  # a small message: the path round five changed


@pytest.fixture(scope="module")
def policies(pki: Pki) -> ams.PolicyStore:
    return store(f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "{pki.dn("bob")}"')


@pytest.fixture(scope="module")
def bob(pki: Pki, policies: ams.PolicyStore) -> ams.Protector:
    return ams.Protector(pki.keystore("bob"), policies, diagnose_decryption=True)


@pytest.fixture(scope="module")
def sealer(pki: Pki) -> Sealer:
    return Sealer(pki, "PRIV.Q")


def _read(plaintext: bytes) -> SignedContent | None:
    head = der.header(der.SEQUENCE, len(plaintext))
    return read_ams_signed_content(memoryview(bytearray(head + plaintext)), len(head))


def _with_signer_id(plaintext: bytes, version: int, sid: bytes) -> bytes:
    """AMS's plaintext with the SignerInfo's version and sid replaced (the SignedData's version set
    to ``version`` too). The signature covers the signed attributes only, so it still verifies."""
    found = _read(plaintext)
    assert found is not None
    [info] = found.signer_infos
    assert info.signed_attributes is not None and info.issuer is not None and info.serial is not None

    def signer_info(prefix: bytes) -> bytes:
        attributes = bytes(info.signed_attributes or b"")
        return der.tlv(
            der.SEQUENCE,
            prefix
            + der.algorithm_identifier(info.digest_oid)
            + der.tlv(der.CONTEXT_0_CONSTRUCTED, attributes)
            + der.algorithm_identifier(info.signature_oid)
            + der.tlv(der.OCTET_STRING, info.signature),
        )

    original = der.tlv(
        der.SET, signer_info(der.integer(1) + der.tlv(der.SEQUENCE, info.issuer + der.integer(info.serial)))
    )
    assert plaintext.endswith(original) and plaintext.startswith(der.integer(1))
    body = plaintext[len(der.integer(1)) : -len(original)]
    return der.integer(version) + body + der.tlv(der.SET, signer_info(der.integer(version) + sid))


def _one_error(bob: ams.Protector, message: bytes) -> str:
    envelope = parse_enveloped_data(message[V2_SIZE:])
    identity = bob.keystore.identity
    assert identity is not None
    return str(decryption_failed(ams.QoP.PRIVACY, envelope.algorithm, len(envelope.ciphertext), identity.dn))


def _refused(bob: ams.Protector, message: bytes) -> str | None:
    """The diagnostic of ``message``'s refusal, which must be the one error and carry no plaintext."""
    with pytest.raises(ams.errors.DecryptionError) as caught:
        bob.unprotect("PRIV.Q", message)
    error = caught.value
    assert type(error) is ams.errors.DecryptionError and str(error) == _one_error(bob, message)
    assert error.__cause__ is None and error.__context__ is None
    for text in (str(error), error.diagnostic or ""):
        assert MARK[:12].decode() not in text
    return error.diagnostic


# -- the signer identifier: the inline issuer-and-serial test and what it hands to _check_sid ----------


def _issuer_and_serial(issuer: bytes, serial: int) -> bytes:
    return der.tlv(der.SEQUENCE, issuer + der.integer(serial))


def test_a_signer_named_by_key_identifier_is_accepted_and_every_near_miss_is_the_one_error(
    pki: Pki, bob: ams.Protector, sealer: Sealer
) -> None:
    """The inline test passes only an issuer and serial that both match; a subjectKeyIdentifier
    SignerInfo (v3) goes to _check_sid, which accepts alice's own and refuses every other."""
    alice = pki.issued("alice").certificate
    ski = bob.verifier.carried(alice.public_bytes(serialization.Encoding.DER)).key_identifier
    assert ski is not None
    issuer = alice.issuer.public_bytes()
    genuine = sealer.plaintext(PAYLOAD)
    by_key = _with_signer_id(genuine, 3, der.tlv(der.CONTEXT_0_PRIMITIVE, ski))
    assert bob.unprotect("PRIV.Q", sealer.seal(by_key, len(PAYLOAD))).body == PAYLOAD  # accepted
    assert bob.unprotect("PRIV.Q", sealer.seal(genuine, len(PAYLOAD))).body == PAYLOAD
    foreign = pki.issued("mallory").certificate  # another CA's user: another issuer Name
    near_misses = {
        "another key identifier": _with_signer_id(genuine, 3, der.tlv(der.CONTEXT_0_PRIMITIVE, ski[:-1] + b"\x00")),
        "an empty key identifier": _with_signer_id(genuine, 3, der.tlv(der.CONTEXT_0_PRIMITIVE, b"")),
        "the key identifier with version 1": _with_signer_id(genuine, 1, der.tlv(der.CONTEXT_0_PRIMITIVE, ski)),
        "issuer and serial with version 3": _with_signer_id(genuine, 3, issuer_and_serial(alice)),
        "alice's issuer, serial + 1": _with_signer_id(genuine, 1, _issuer_and_serial(issuer, alice.serial_number + 1)),
        "another issuer, alice's serial": _with_signer_id(
            genuine, 1, _issuer_and_serial(foreign.issuer.public_bytes(), alice.serial_number)
        ),
        "alice's serial negated": _with_signer_id(genuine, 1, _issuer_and_serial(issuer, -alice.serial_number)),
    }
    for what, plaintext in near_misses.items():
        diagnostic = _refused(bob, sealer.seal(plaintext, len(PAYLOAD)))
        kind = "MalformedMessageError" if "version" in what else "SignerCertificateError"  # _only_signer_info's
        assert diagnostic == f"verifying the inner signature failed ({kind})", what
    # the genuine form, rebuilt by the same helper, is accepted: the twins differ only in the signer id
    rebuilt = _with_signer_id(genuine, 1, issuer_and_serial(alice))
    assert rebuilt == genuine and bob.unprotect("PRIV.Q", sealer.seal(rebuilt, len(PAYLOAD))).body == PAYLOAD


# -- the strength shortcut and the lookups by value -----------------------------------------------------


@pytest.mark.parametrize(
    ("members", "check"),
    [
        (list(SignatureAlgorithm), _rules.check_digest_strength),
        (list(EncryptionAlgorithm), _rules.check_cipher_strength),
    ],
)
def test_the_policy_own_algorithm_shortcut_refuses_exactly_what_the_comparison_refused(
    members: list[Any], check: Callable[[str, Any, Any], None]
) -> None:
    """No member is an alias of another (``is`` and ``==`` agree), so skipping the comparison for the
    policy's own algorithm changes no verdict: every weaker pair is refused, with main's text."""
    assert len({member.value for member in members}) == len(members) == len(type(members[0]).__members__)
    for required in members:
        for found in members:
            if found.value < required.value:
                with pytest.raises(ams.errors.AlgorithmTooWeakError) as caught:
                    check("Q", required, found)
                assert f"with {found}, weaker than the policy's {required}" in str(caught.value)
            else:
                check("Q", required, found)  # its accepted twin


def test_the_lookups_by_value_give_each_member_its_own_entry() -> None:
    for digest in SignatureAlgorithm:
        if digest is SignatureAlgorithm.NONE:
            with pytest.raises(KeyError):
                _ = digest.oid
            with pytest.raises(KeyError):
                digest.hash()
            continue
        assert digest.oid == _DIGEST_OIDS[digest] and SignatureAlgorithm.from_oid(digest.oid) is digest
        assert type(digest.hash()) is _HASHES[digest]
    for cipher in EncryptionAlgorithm:
        if cipher is EncryptionAlgorithm.NONE:
            with pytest.raises(KeyError):
                _ = cipher.spec
            continue
        assert cipher.spec is _CIPHERS[cipher] and EncryptionAlgorithm.from_oid(cipher.spec.oid) is cipher


@pytest.mark.parametrize("size", [0, 1, 127, 128, 255, 256, 65535, 65536, 1 << 24])
def test_the_signed_attributes_set_header_is_der_at_every_length_form(size: int) -> None:
    """verify_signed_data writes 0x31 and der.length where it called der.header(SET): the same bytes."""
    assert b"\x31" + der.length(size) == der.header(der.SET, size)


# -- the readers on mutated plaintexts, and the path each takes -------------------------------------------


@pytest.fixture(scope="module")
def plaintexts(pki: Pki, sealer: Sealer, bob: ams.Protector) -> list[bytes]:
    """The genuine plaintext, its subjectKeyIdentifier form, and both under a one-byte payload."""
    alice = pki.issued("alice").certificate
    ski = bob.verifier.carried(alice.public_bytes(serialization.Encoding.DER)).key_identifier
    assert ski is not None
    found = []
    for payload in (PAYLOAD, b"\x00"):
        genuine = sealer.plaintext(payload)
        found += [genuine, _with_signer_id(genuine, 3, der.tlv(der.CONTEXT_0_PRIMITIVE, ski))]
    return found


def _mutants(plaintext: bytes) -> st.SearchStrategy[bytes]:
    """``plaintext`` with one to three edits, half of them in the SignerInfo (where the bytes copy is)."""
    signer_at = len(plaintext) - 420  # about where the SET of one SignerInfo starts
    position = st.one_of(st.integers(0, len(plaintext) - 1), st.integers(max(0, signer_at), len(plaintext) - 1))
    edit = st.tuples(st.sampled_from(["xor", "set", "insert", "delete"]), position, st.integers(0, 255))

    def applied(edits: list[tuple[str, int, int]]) -> bytes:
        changed = bytearray(plaintext)
        for kind, at, value in edits:
            at = min(at, len(changed) - 1)
            if kind == "xor":
                changed[at] ^= value or 1
            elif kind == "set":
                changed[at] = value
            elif kind == "insert":
                changed.insert(at, value)
            elif len(changed) > 1:
                del changed[at]
        return bytes(changed)

    return st.lists(edit, min_size=1, max_size=3).map(applied)


def _judge(mutant: bytes) -> tuple[str, Any]:
    """The new reader, the strict reader, asn1crypto and the receiver's parse on one plaintext:
    they must agree; the verdict and the path the receiver took."""
    head = der.header(der.SEQUENCE, len(mutant))
    framed = memoryview(bytearray(head + mutant))
    fast = read_ams_signed_content(framed, len(head))  # None or a value: any exception fails the test
    try:
        strict: SignedContent | None = parse_signed_data_strictly(framed, wrapped=False)
    except ams.AmsError:  # MalformedMessageError, UnsupportedAlgorithmError: the library's own only
        strict = None
    if fast is not None:
        assert strict is not None and _signed(fast) == _signed(strict)
        _asn1crypto_signed(bytes(framed), False, fast)
    buffer = memoryview(bytearray(SEQUENCE_HEADROOM + len(mutant)))
    buffer[SEQUENCE_HEADROOM:] = mutant
    try:
        base, parsed = _parse_privacy_plaintext(buffer, SEQUENCE_HEADROOM, len(mutant), DEFAULT_LIMITS)
    except ams.AmsError:  # the library's own only (the one error's cause, never seen by the sender)
        return ("refused", None)
    if mutant[0] == der.INTEGER:
        assert strict is not None and _signed(parsed) == _signed(strict)
        assert bytes(buffer[base + parsed.content_offset :][: len(parsed.content)]) == bytes(parsed.content)
    return ("fast" if fast is not None else "strict", _signed(parsed))


def test_the_readers_agree_on_the_genuine_plaintexts_and_their_simplest_twins(plaintexts: list[bytes]) -> None:
    for plaintext in plaintexts:
        assert _judge(plaintext)[0] == "fast"
        assert _judge(plaintext[:-1])[0] == "refused" and _judge(plaintext + b"\x00")[0] == "refused"
        # SignedData version 2: not AMS's shape, so the strict reader reads it (the verifier refuses it)
        assert _judge(b"\x02\x01\x02" + plaintext[3:])[0] == "strict"


@settings(
    max_examples=EXAMPLES * 3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_the_new_reader_the_strict_reader_and_asn1crypto_agree_on_mutants(
    plaintexts: list[bytes], data: st.DataObject
) -> None:
    plaintext = data.draw(st.sampled_from(plaintexts))
    _judge(data.draw(_mutants(plaintext)))


def _end_to_end(bob: ams.Protector, sealer: Sealer, plaintexts: list[bytes]) -> Iterator[tuple[str, bytes, str]]:
    """Mutants of the 300-byte plaintexts sealed for bob: (their readers' path, message, what)."""
    for index, plaintext in enumerate(plaintexts[:2]):
        version_2 = b"\x02\x01\x02" + plaintext[3:]
        yield _judge(version_2)[0], sealer.seal(version_2, len(PAYLOAD)), f"plaintext {index} version 2"
        for at in range(0, len(plaintext), 37):
            changed = bytearray(plaintext)
            changed[at] ^= 0x80
            yield _judge(bytes(changed))[0], sealer.seal(bytes(changed), len(PAYLOAD)), f"plaintext {index} byte {at}"


def test_every_mutant_the_receiver_reads_is_the_one_error_whichever_reader_judged_it(
    bob: ams.Protector, sealer: Sealer, plaintexts: list[bytes]
) -> None:
    """A bit changed every 37 bytes of both plaintexts (outside the payload it breaks the signature
    or the structure; inside it the digest): refused with the one error, whichever path the parse
    took; their accepted twins are the plaintexts themselves."""
    paths = set()
    for plaintext in plaintexts[:2]:
        assert bob.unprotect("PRIV.Q", sealer.seal(plaintext, len(PAYLOAD))).body == PAYLOAD
    for path, message, what in _end_to_end(bob, sealer, plaintexts):
        paths.add(path)
        diagnostic = _refused(bob, message)
        assert diagnostic is not None and diagnostic.endswith("Error)"), what  # a step's name and an AmsError's
    assert paths == {"fast", "strict", "refused"}


# -- no state learnt from decrypted bytes; the named tuples where the code compares them ---------------------


def test_privacy_plaintexts_teach_no_trailer_template_and_integrity_ones_do(
    pki: Pki, bob: ams.Protector, sealer: Sealer, plaintexts: list[bytes]
) -> None:
    """read_ams_signed_tail with templates off no longer builds a _Trailer: nothing decrypted, accepted
    or refused, of any length, adds or replaces a kept template. Its twin: an integrity message of a
    new length does (so that this test could fail)."""
    kept = dict(signed._TRAILERS)
    for plaintext in plaintexts:
        assert _judge(plaintext)[0] == "fast"
    for size in (1, 77, 300, 1000):
        payload = _payload(size)
        assert bob.unprotect("PRIV.Q", sealer.seal(sealer.plaintext(payload), size)).body == payload
        _refused(bob, sealer.seal(sealer.plaintext(payload)[:-1], size))
    assert signed._TRAILERS.keys() == kept.keys() and all(signed._TRAILERS[k] is kept[k] for k in kept)
    alice = ams.Protector(pki.keystore("alice"), store("setmqspl -m QM -p INT.Q -s SHA256"))
    signed._TRAILERS.clear()  # a template of this length may be kept already; it is learnt again
    try:
        message = alice.protect("INT.Q", PAYLOAD).body
        reader = ams.Protector(pki.keystore("bob"), store("setmqspl -m QM -p INT.Q -s SHA256"))
        assert reader.unprotect("INT.Q", message).body == PAYLOAD
        [template] = signed._TRAILERS.values()
        assert template.info.signed_attributes is None  # kept without a view of the message (_replace)
    finally:
        signed._TRAILERS.clear()
        signed._TRAILERS.update(kept)


def test_the_named_tuples_compare_as_the_receive_path_needs(sealer: Sealer, bob: ams.Protector) -> None:
    """SignerInfo and SignedContent compared by value before (attrs' eq) and still do; EnvelopedContent
    compared by identity and now by value, which nothing on the receive path relies on: the Protector
    reads the same message twice, and a changed twin of it, each with its own verdict."""
    plaintext = sealer.plaintext(PAYLOAD)
    first, second = _read(plaintext), _read(plaintext)
    assert first is not None and second is not None and first == second and first is not second
    assert first.signer_infos[0] == second.signer_infos[0]
    changed = _read(plaintext[:-1] + bytes([plaintext[-1] ^ 1]))  # the signature's last byte
    assert changed is not None and changed != first and changed.signer_infos[0] != first.signer_infos[0]
    message = sealer.seal(plaintext, len(PAYLOAD))
    envelopes = [parse_enveloped_data(message[V2_SIZE:]) for _ in range(2)]
    assert envelopes[0] == envelopes[1]
    assert bob.unprotect("PRIV.Q", message).body == PAYLOAD
    assert bob.unprotect("PRIV.Q", message).body == PAYLOAD  # the same message again: the same verdict
    tampered = bytearray(message)
    tampered[-1] ^= 1  # the last ciphertext block: the padding or the signature breaks
    assert parse_enveloped_data(bytes(tampered[V2_SIZE:])) != envelopes[0]
    _refused(bob, bytes(tampered))
    assert bob.unprotect("PRIV.Q", message).body == PAYLOAD  # and the genuine one after the refusal
