"""Attacks on the large privacy path of the allocating ``unprotect`` (``ams._privacy_direct``), which
decrypts the payload straight into the ``bytes`` it returns and the SignedData's framing and trailer
into small buffers of their own.

The reference is the buffered path, which decrypts the whole plaintext into one buffer and reads it
in one piece: ``unprotect_into`` runs it, on the same messages. Anyone with the receiver's
certificate can encrypt any plaintext for it, so the messages here are genuine ones, ones changed
after protection (a byte of every region: the IV, the framing's blocks, the first block straight
into the result, the blocks around the place where the result stops and the tail starts, the
trailer, the signature, the padding), and plaintexts of the attacker's choosing encrypted for the
receiver (truncated, extended, with a bad padding, framed as other CMS writers frame it). For every
one: the same verdict, the same payload, the same single error text and the same local diagnostic
(the step that failed); and after a refusal no buffer the message was decrypted into holds a byte
of it.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Iterator

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ams
import ams._privacy_direct
import ams.errors
from ams.algorithms import EncryptionAlgorithm, SignatureAlgorithm
from ams.hazmat import der
from ams.hazmat.buffers import fresh_bytes, scratch
from ams.hazmat.enveloped import build_enveloped_data, parse_enveloped_data
from ams.hazmat.oids import ID_SIGNED_DATA
from ams.hazmat.pdmq import V2_SIZE, PdmqHeader
from ams.hazmat.signed import SignedDataWriter, read_ams_signed_data, read_ams_signed_head, read_ams_signed_tail
from tests.conftest import Pki, store
from tests.security.test_refusal_residue import _exceptions

EXAMPLES = int(os.environ.get("AMS_REVIEW_EXAMPLES", "40"))
DIRECT = 64 * 1024  # ams._protector_state.DIRECT_FROM
HEAD = ams._privacy_direct.HEAD
MARK = b"SECRET-PAYLOAD-OF-A-LARGE-PRIVACY-MESSAGE/"
QUEUES = {"PRIV.Q": EncryptionAlgorithm.AES256, "PRIV128.Q": EncryptionAlgorithm.AES128}
QUEUES["3DES.Q"] = EncryptionAlgorithm.TDES
DIGESTS = {"PRIV.Q": SignatureAlgorithm.SHA256, "PRIV128.Q": SignatureAlgorithm.SHA512}
DIGESTS["3DES.Q"] = SignatureAlgorithm.SHA256


@pytest.fixture(scope="module")
def policies(pki: Pki) -> ams.PolicyStore:
    bob = pki.dn("bob")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 3DES is deprecated: still read, written with an opt-in
        return store(
            f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "{bob}"',
            f'setmqspl -m QM -p PRIV128.Q -s SHA512 -e AES128 -r "{bob}"',
            f'setmqspl -m QM -p 3DES.Q -s SHA256 -e 3DES -r "{bob}"',
        )


@pytest.fixture(scope="module")
def alice(pki: Pki, policies: ams.PolicyStore) -> ams.Protector:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ams.Protector(pki.keystore("alice"), policies, allow_deprecated=True)


@pytest.fixture(scope="module")
def bob(pki: Pki, policies: ams.PolicyStore) -> ams.Protector:
    """The reader under test: diagnostics on, so that the step that failed is compared too."""
    return ams.Protector(pki.keystore("bob"), policies, diagnose_decryption=True)


@pytest.fixture(scope="module")
def reference(pki: Pki, policies: ams.PolicyStore) -> ams.Protector:
    """The buffered path's reader (``unprotect_into``), with a Protector of its own."""
    return ams.Protector(pki.keystore("bob"), policies, diagnose_decryption=True)


def _outcome(action: Callable[[], ams.Unprotected | ams.UnprotectedView]) -> tuple[str, ...]:
    try:
        result = action()
    except ams.AmsError as error:
        return ("refused", type(error).__name__, str(error), str(getattr(error, "diagnostic", None)))
    return ("accepted", bytes(result.body).hex(), result.format, str(result.signer and result.signer.subject))


def _verdicts(bob: ams.Protector, reference: ams.Protector, queue: str, message: bytes) -> tuple[str, ...]:
    """Both paths' outcome on ``message``, which must be the same; the direct path's body is ``bytes``."""
    direct = _outcome(functools.partial(bob.unprotect, queue, message))
    buffered = _outcome(functools.partial(reference.unprotect_into, queue, message, bytearray(len(message))))
    assert direct == buffered
    return direct


def _payload(size: int, mark: bytes = MARK) -> bytes:
    return (mark * (size // len(mark) + 1))[:size]


class Sealer:
    """Privacy messages for bob from any SignedData plaintext, with the content key known."""

    def __init__(self, pki: Pki, queue: str) -> None:
        identity = pki.keystore("alice").identity
        assert identity is not None
        self.queue = queue
        self.algorithm = QUEUES[queue]
        self.writer = SignedDataWriter(identity.certificate, identity.private_key, DIGESTS[queue])
        self.bob = pki.issued("bob").certificate
        self.key = os.urandom(self.algorithm.spec.key_size)

    def plaintext(self, payload: bytes) -> bytes:
        """The SignedData content octets AMS encrypts for ``payload``."""
        return b"".join(bytes(part) for part in self.writer.content_parts(payload))

    def seal(self, plaintext: bytes, orig_size: int) -> bytes:
        """``plaintext`` padded and encrypted for bob, behind a PDMQ header saying ``orig_size``."""
        header = PdmqHeader(ams.QoP.PRIVACY, orig_size, "MQSTR   ", self.queue).pack()
        parts, _ = build_enveloped_data([self.bob], self.algorithm, ID_SIGNED_DATA, [plaintext], key=self.key)
        return header + b"".join(bytes(part) for part in parts)

    def seal_raw(self, padded: bytes, orig_size: int) -> bytes:
        """``padded`` (whole blocks, padding and all, as the attacker chose it) encrypted for bob."""
        block = self.algorithm.spec.block_size
        message = self.seal(padded[:-block], orig_size)  # its ciphertext is as long as ``padded``'s
        envelope = parse_enveloped_data(message[V2_SIZE:])
        assert len(envelope.ciphertext) == len(padded)
        encryptor = Cipher(self.algorithm.spec.factory(self.key), modes.CBC(envelope.iv)).encryptor()
        return message[: -len(padded)] + encryptor.update(padded) + encryptor.finalize()


@pytest.mark.parametrize("queue", sorted(QUEUES))
def test_every_byte_of_the_result_is_the_payload_at_every_alignment(
    alice: ams.Protector, bob: ams.Protector, reference: ams.Protector, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Payloads ending at every offset in a block (where the result stops and the tail starts
    moves with it) and starting at each framing length: each byte of the ``bytes`` returned (made
    full of a canary first) is the payload's, as the buffered path gives it."""

    def canary_bytes(size: int) -> tuple[bytes, memoryview] | None:
        made = fresh_bytes(size)
        if made is not None:
            made[1][:] = (b"\xa5CANARY\x5a" * (size // 8 + 1))[:size]
        return made

    monkeypatch.setattr(ams._privacy_direct, "fresh_bytes", canary_bytes)
    for size in [DIRECT - 300, *range(DIRECT, DIRECT + 17), 2 * DIRECT + 5, 1 << 20]:
        payload = _payload(size)
        message = alice.protect(queue, payload).body
        plain = bob.unprotect(queue, message)
        assert type(plain.body) is bytes and plain.body == payload, size
        assert _verdicts(bob, reference, queue, message)[0] == "accepted"
    assert bob._spare._held == []  # the straight path took no kept buffer


def _tampered(message: bytes, block: int) -> Iterator[tuple[str, bytes]]:
    """``message`` with one byte changed in each region of its EnvelopedData."""
    envelope = parse_enveloped_data(message[V2_SIZE:])
    ciphertext_at = len(message) - len(envelope.ciphertext)
    iv_at = message.rindex(envelope.iv, 0, ciphertext_at)
    blocks = len(envelope.ciphertext) // block
    chosen = {*range(12), blocks // 2, *range(blocks - 40, blocks)}  # the framing, the middle, the tail
    yield "IV", _flip(message, iv_at + 3)
    for index in sorted(chosen):
        for offset in (0, block - 1):
            yield f"block {index}/{blocks} byte {offset}", _flip(message, ciphertext_at + index * block + offset)


def _flip(message: bytes, at: int) -> bytes:
    changed = bytearray(message)
    changed[at] ^= 0x41
    return bytes(changed)


@pytest.mark.parametrize("queue", ["PRIV.Q", "3DES.Q"])
def test_a_byte_changed_anywhere_is_refused_as_the_buffered_path_refuses_it(
    alice: ams.Protector, bob: ams.Protector, reference: ams.Protector, queue: str
) -> None:
    """One error text for every region, the same diagnostic as the buffered path's."""
    message = alice.protect(queue, _payload(DIRECT + 21)).body
    texts = set()
    for region, changed in _tampered(message, QUEUES[queue].spec.block_size):
        verdict = _verdicts(bob, reference, queue, changed)
        assert verdict[:2] == ("refused", "DecryptionError"), region
        texts.add(verdict[2])
    assert len(texts) == 1  # the one error: public facts only, the same whatever failed
    assert _verdicts(bob, reference, queue, message)[0] == "accepted"  # the genuine twin


def _plaintexts(sealer: Sealer, payload: bytes) -> Iterator[tuple[str, bytes, int]]:
    """Plaintexts an attacker may encrypt for the receiver: (what, plaintext, origSize)."""
    good = sealer.plaintext(payload)
    size = len(payload)
    stop = good.index(payload) + size
    yield "genuine", good, size
    for cut in (1, 16, 255, len(good) - stop, len(good) - stop + 1, len(good) - stop + 40):
        yield f"truncated by {cut}", good[:-cut], size
    yield "a byte appended", good + b"\x00", size
    yield "a block appended", good + bytes(16), size
    yield "origSize one short", good, size - 1
    yield "origSize one long", good, size + 1
    octets = der.header(der.OCTET_STRING, size)
    yield "eContent OCTET STRING constructed", good.replace(octets, bytes([0x24]) + octets[1:], 1), size
    _, certificate_start, certificate_size = der.read_header(good, stop)
    infos_at = certificate_start + certificate_size
    crls = good[:infos_at] + b"\xa1\x00" + good[infos_at:]  # an empty crls field before signerInfos
    yield "an empty CRLs field (the general reader's)", crls, size
    whole = der.tlv(der.SEQUENCE, good)
    yield "a whole SignedData SEQUENCE", whole, size
    yield "a whole ContentInfo", der.tlv(der.SEQUENCE, der.oid(ID_SIGNED_DATA) + der.tlv(0xA0, whole)), size
    yield "the framing's lengths one long", good.replace(octets, der.header(der.OCTET_STRING, size + 1), 1), size


@pytest.mark.parametrize("queue", sorted(QUEUES))
def test_chosen_plaintexts_get_the_buffered_paths_verdict(
    pki: Pki, bob: ams.Protector, reference: ams.Protector, queue: str
) -> None:
    """Truncated, extended, resized and reframed SignedData, encrypted for bob: accepted exactly
    when the buffered path accepts them (the CRLs field and the whole SEQUENCE and ContentInfo
    framings are valid CMS the general reader accepts), refused with its text and diagnostic."""
    sealer = Sealer(pki, queue)
    verdicts = {}
    for what, plaintext, size in _plaintexts(sealer, _payload(DIRECT + 7)):
        verdicts[what] = _verdicts(bob, reference, queue, sealer.seal(plaintext, size))[0]
    accepted = {"genuine", "an empty CRLs field (the general reader's)", "a whole SignedData SEQUENCE"}
    assert {what for what, verdict in verdicts.items() if verdict == "accepted"} == {*accepted, "a whole ContentInfo"}


@pytest.mark.parametrize("queue", ["PRIV.Q", "3DES.Q"])
def test_padding_errors_are_refused_as_the_buffered_path_refuses_them(
    pki: Pki, bob: ams.Protector, reference: ams.Protector, queue: str
) -> None:
    """Paddings the attacker chose: none, longer than a block, inconsistent, and valid paddings of
    another length that cut into the trailer or leave bytes after it."""
    sealer = Sealer(pki, queue)
    block = sealer.algorithm.spec.block_size
    plaintext = sealer.plaintext(_payload(DIRECT + 3))
    body = plaintext + bytes(-len(plaintext) % block)  # whole blocks, the last one ends the trailer
    genuine = plaintext + bytes([block - len(plaintext) % block]) * (block - len(plaintext) % block)
    cases = {
        "the genuine padding": genuine,
        "a last byte of 0": body[:-1] + b"\x00" if len(body) > len(plaintext) else body + bytes(block),
        "a last byte over the block size": genuine[:-1] + bytes([block + 1]),
        "inconsistent padding bytes": genuine[:-2] + b"\x07\x02",
        "a valid padding of one byte": genuine[:-1] + b"\x01",
        "a whole block of padding after the trailer": genuine + bytes([block]) * block,
        "a whole block of padding that eats the trailer": genuine[:-block] + bytes([block]) * block,
    }
    texts: dict[int, set[str]] = {}
    for what, padded in cases.items():
        verdict = _verdicts(bob, reference, queue, sealer.seal_raw(padded, DIRECT + 3))
        assert verdict[0] == ("accepted" if what == "the genuine padding" else "refused"), what
        if verdict[0] == "refused":
            texts.setdefault(len(padded), set()).add(verdict[2])
    assert all(len(found) == 1 for found in texts.values())  # one text per ciphertext size, whatever failed


def test_a_message_for_another_key_or_with_a_damaged_key_block_is_refused(
    pki: Pki, alice: ams.Protector, bob: ams.Protector, reference: ams.Protector
) -> None:
    """Wrong recipient (carol's message), and a wrapped key changed (implicit rejection: the
    garbage key decrypts, the refusal's diagnostic stops at the unwrap) on the direct path too."""
    carol_only = store(f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "{pki.dn("carol")}"')
    for_carol = ams.Protector(pki.keystore("alice"), carol_only).protect("PRIV.Q", _payload(DIRECT + 9)).body
    verdict = _verdicts(bob, reference, "PRIV.Q", for_carol)
    assert verdict[1] == "NotARecipientError"
    message = alice.protect("PRIV.Q", _payload(DIRECT + 9)).body
    envelope = parse_enveloped_data(message[V2_SIZE:])
    _, stop = envelope.rests[0]
    damaged = _flip(message, V2_SIZE + stop - 20)  # inside the encryptedKey
    verdict = _verdicts(bob, reference, "PRIV.Q", damaged)
    assert (
        verdict[1] == "DecryptionError" and verdict[3] == "unwrapping the content key with RSA failed (DecryptionError)"
    )


def _holders(error: BaseException, mark: bytes) -> list[str]:
    """The library's frames, reachable from ``error``, whose locals hold ``mark``."""
    library = os.path.dirname(ams.__file__) + os.sep
    holders = []
    for exception in _exceptions(error):
        trace = exception.__traceback__
        while trace is not None:
            frame = trace.tb_frame
            if frame.f_code.co_filename.startswith(library):
                for name, value in frame.f_locals.items():
                    if isinstance(value, bytes | bytearray | memoryview) and mark in bytes(value):
                        holders.append(f"{frame.f_code.co_name}.{name}")
            trace = trace.tb_next
    return holders


def _recorder(bob: ams.Protector, monkeypatch: pytest.MonkeyPatch) -> list[bytes | memoryview]:
    """Every buffer the next messages are decrypted into: the result, the head and tail, the kept one."""
    made: list[bytes | memoryview] = []

    def recorded_bytes(size: int) -> tuple[bytes, memoryview] | None:
        found = fresh_bytes(size)
        made.extend(found[:1] if found is not None else ())
        return found

    def recorded_scratch(size: int) -> memoryview:
        buffer = scratch(size)
        made.append(buffer)
        return buffer

    take = bob._spare.take

    def recorded_take(size: int) -> memoryview:
        buffer = take(size)
        made.append(buffer)
        return buffer

    monkeypatch.setattr(ams._privacy_direct, "fresh_bytes", recorded_bytes)
    monkeypatch.setattr(ams._privacy_direct, "scratch", recorded_scratch)
    monkeypatch.setattr(bob._spare, "take", recorded_take)
    return made


def test_no_buffer_of_a_refused_message_keeps_a_byte_of_it(
    pki: Pki, policies: ams.PolicyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused on each road: the signature (payload in place), the padding and a trailer of
    another shape (judged whole in the kept buffer), a framing not AMS's (the buffered road):
    the result, the head and tail buffers and the kept buffer are zeroed, the kept buffer is let
    go, and the error keeps no frame that holds the plaintext."""
    bob = ams.Protector(pki.keystore("bob"), policies)
    sealer = Sealer(pki, "PRIV.Q")
    block = sealer.algorithm.spec.block_size
    payload = _payload(3 * DIRECT + 11)
    plaintext = sealer.plaintext(payload)
    padded = plaintext + bytes([block - len(plaintext) % block]) * (block - len(plaintext) % block)
    stop = plaintext.index(payload) + len(payload)
    refused = {
        "signature": _flip(sealer.seal(plaintext, len(payload)), -40),
        "padding": sealer.seal_raw(padded[:-1] + b"\x00", len(payload)),
        "trailer": sealer.seal(plaintext[:stop] + b"\x05\x00" + plaintext[stop:], len(payload)),
        "origSize not the framing's": sealer.seal(plaintext, len(payload) + 1),
        "not AMS's framing": sealer.seal(der.tlv(der.SEQUENCE, plaintext[:-1]), len(payload)),
    }
    for road, message in refused.items():
        made = _recorder(bob, monkeypatch)
        try:
            bob.unprotect("PRIV.Q", message)
        except ams.errors.DecryptionError as error:
            assert _holders(error, MARK[:20]) == [], road
        else:
            raise AssertionError(f"{road}: accepted")
        assert made and all(MARK[:20] not in bytes(buffer) for buffer in made), road
        assert bob._spare._held == [], road
        monkeypatch.undo()
    assert bob.unprotect("PRIV.Q", sealer.seal(plaintext, len(payload))).body == payload


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    size=st.integers(DIRECT - 40, DIRECT + 200),
    change=st.one_of(st.none(), st.tuples(st.integers(0, 1 << 20), st.integers(1, 255))),
    queue=st.sampled_from(sorted(QUEUES)),
)
def test_random_plaintexts_get_the_buffered_paths_verdict(
    pki: Pki, bob: ams.Protector, reference: ams.Protector, size: int, change: tuple[int, int] | None, queue: str
) -> None:
    """Random sizes, and a random byte of the plaintext changed (the framing's and the trailer's
    lengths and tags most often: the plaintext is short beside the payload, so positions near its
    ends are chosen), as an attacker encrypts it: the verdict of the buffered path."""
    sealer = Sealer(pki, queue)
    plaintext = bytearray(sealer.plaintext(_payload(size)))
    if change is not None:
        at, xor = change
        edge = at % (2 * HEAD + 1600)  # the framing or the trailer
        plaintext[edge if edge < 2 * HEAD else len(plaintext) - 1 - (edge - 2 * HEAD)] ^= xor
    verdict = _verdicts(bob, reference, queue, sealer.seal(bytes(plaintext), size))
    assert verdict[0] == ("accepted" if change is None else verdict[0])


@settings(max_examples=4 * EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(0, 9), at=st.integers(0, 1 << 16), xor=st.integers(0, 255), cut=st.integers(0, 40))
def test_the_split_reader_reads_what_the_whole_reader_reads(pki: Pki, size: int, at: int, xor: int, cut: int) -> None:
    """read_ams_signed_head on the first HEAD bytes and read_ams_signed_tail on a buffer that starts
    before the payload's end give what read_ams_signed_data gives on the whole plaintext (or fail
    where it fails), on AMS's plaintexts with a byte changed or cut short."""
    plaintext = bytearray(_plaintexts_for_the_readers(pki)[size])
    plaintext[at % len(plaintext)] ^= xor
    data = memoryview(bytes(plaintext[: len(plaintext) - cut]))
    framed = der.tlv(der.SEQUENCE, bytes(data))
    whole = read_ams_signed_data(framed, wrapped=False, templates=False)
    try:
        version, digest_oid, start, stop = read_ams_signed_head(data[:HEAD], 0, len(data))
        shift = max(0, stop - 17)  # the tail buffer starts inside the payload, as on the direct path
        certificates, info, digest = read_ams_signed_tail(data[shift:], stop - shift, len(data) - shift, False)
    except (der.DerError, IndexError):
        assert whole is None or whole.content_offset - (len(framed) - len(data)) > HEAD  # framing past HEAD
        return
    assert whole is not None
    assert (whole.version, whole.digest_oids, whole.certificates) == (version, (digest_oid,), certificates)
    assert whole.digest_algorithm is digest and bytes(whole.content) == bytes(data[start:stop])
    assert whole.signer_infos[0].signature == info.signature
    assert bytes(whole.signer_infos[0].signed_attributes or b"") == bytes(info.signed_attributes or b"")


_READER_PLAINTEXTS: list[bytes] = []


def _plaintexts_for_the_readers(pki: Pki) -> list[bytes]:
    """AMS's plaintexts of ten payload sizes around HEAD, with SHA-256 and SHA-512 (made once)."""
    if not _READER_PLAINTEXTS:
        identity = pki.keystore("alice").identity
        assert identity is not None
        for digest in (SignatureAlgorithm.SHA256, SignatureAlgorithm.SHA512):
            writer = SignedDataWriter(identity.certificate, identity.private_key, digest)
            for n in (1, 80, 128, 200, 1000):
                _READER_PLAINTEXTS.append(b"".join(bytes(part) for part in writer.content_parts(bytes(n))))
    return _READER_PLAINTEXTS


# -- the RecipientInfos layout: recognised by its public bytes, never more than the reader accepts ----


def test_a_kept_layout_accepts_only_what_the_strict_reader_reads_alike(pki: Pki) -> None:
    """With the layouts of a genuine three-recipient EnvelopedData kept (the whole framing, and its
    RecipientInfos SET), every byte before its ciphertext changed in turn (the outer framing,
    identifiers, versions, the key algorithm, lengths, the wrapped keys, the cipher, the IV): the
    reader gives what the strict reader gives (asn1crypto too, on a sample), or declines. Changed
    wrapped keys and IVs, which no reader interprets, are read through the layout."""
    from ams.hazmat import recipient_layouts
    from tests.test_readers_differential import check_enveloped

    recipients = [pki.issued(name).certificate for name in ("bob", "carol", "dave")]
    parts, _ = build_enveloped_data(recipients, EncryptionAlgorithm.AES256, ID_SIGNED_DATA, [b"x" * 100])
    genuine = b"".join(bytes(part) for part in parts)
    recipient_layouts.LAYOUTS.clear()
    recipient_layouts.ENVELOPES.clear()
    assert check_enveloped(genuine)
    assert len(recipient_layouts.LAYOUTS) == 1 and list(recipient_layouts.ENVELOPES) == [len(genuine)]
    envelope = recipient_layouts.ENVELOPES[len(genuine)]
    varying = sum(stop - start - len(recipient_layouts.RSA_KEY_PREFIX) - 2 for start, stop in envelope.rests)
    varying += envelope.iv[1] - envelope.iv[0]
    accepted = 0
    for at in range(envelope.content_start):
        for xor in (0x01, 0x80):
            changed = bytearray(genuine)
            changed[at] ^= xor
            accepted += check_enveloped(bytes(changed), third=at % 97 == 0)
    assert accepted >= 2 * varying  # a changed wrapped key or IV is still well formed: the layout's
    # the SET's layout alone, as an EnvelopedData of another length to the same recipients finds it
    other, _ = build_enveloped_data(recipients, EncryptionAlgorithm.AES256, ID_SIGNED_DATA, [b"y" * 3000])
    longer = b"".join(bytes(part) for part in other)
    set_start = longer.index(genuine[envelope.rests[0][0] - 200 : envelope.rests[0][0]])
    accepted = 0
    for at in range(set_start, set_start + 3 * 200):
        changed = bytearray(longer)
        changed[at] ^= 0x80
        recipient_layouts.ENVELOPES.clear()
        accepted += check_enveloped(bytes(changed), third=False)
    assert len(recipient_layouts.LAYOUTS) == 1 and accepted > 256  # changed wrapped keys among them
