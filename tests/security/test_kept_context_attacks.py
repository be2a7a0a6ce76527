"""Round three's fast paths attacked: the kept CBC context of a reused confidentiality key, the
``bytes`` written straight through ``hazmat.buffers.fresh_bytes``, and the plaintext buffer a
Protector keeps between large privacy messages.

Each new path is checked against a straightforward reference (cryptography's CBC with a fresh
context per message, then PKCS#7 unpadding and the origSize check), over random streams of genuine,
tampered and spliced messages, with the kept context left half-way through a message in between;
every ``bytes`` that ``fresh_bytes`` hands out starts filled with a canary, which must never reach a
caller; and a Protector shared by threads reads every message as one Protector per thread would.

``AMS_REVIEW_EXAMPLES`` sets the Hypothesis example count of the differential tests (default 40).
"""

from __future__ import annotations

import contextlib
import os
import random
import struct
import threading
import warnings
from collections.abc import Iterator

import attrs
import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ams
import ams.errors
import ams.hazmat.cbc
import ams.protector
from ams._sending import ReusableKey
from ams.algorithms import EncryptionAlgorithm
from ams.hazmat import buffers
from ams.hazmat.enveloped import CbcDecryptor, cbc_encrypt
from ams.hazmat.pdmq import PdmqHeader
from tests.conftest import Pki, store

EXAMPLES = int(os.environ.get("AMS_REVIEW_EXAMPLES", "40"))
DIRECT = 64 * 1024  # ams._protector_state.DIRECT_FROM
CANARY = b"\xa5UNINIT\x5a"  # what an unwritten byte of a fresh_bytes object holds in these tests
ALGORITHMS = {"AES128.Q": EncryptionAlgorithm.AES128, "AES256.Q": EncryptionAlgorithm.AES256}
ALGORITHMS["3DES.Q"] = EncryptionAlgorithm.TDES
SIZES = st.one_of(
    st.integers(0, 70),
    st.sampled_from([DIRECT - 17, DIRECT - 16, DIRECT - 1, DIRECT, DIRECT + 1, DIRECT + 8, DIRECT + 15, DIRECT + 16]),
)


@pytest.fixture(scope="module")
def policies(pki: Pki) -> ams.PolicyStore:
    bob = pki.dn("bob")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 3DES is deprecated: still read, written with an opt-in
        return store(
            f'setmqspl -m QM -p AES128.Q -e AES128 -r "{bob}" -c 3',
            f'setmqspl -m QM -p AES256.Q -e AES256 -r "{bob}" -c *',
            f'setmqspl -m QM -p 3DES.Q -e 3DES -r "{bob}" -c 2',
            f'setmqspl -m QM -p ONCE.Q -e AES256 -r "{bob}"',
            f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "{bob}"',
            "setmqspl -m QM -p INT.Q -s SHA256",
        )


@pytest.fixture(scope="module")
def alice(pki: Pki, policies: ams.PolicyStore) -> ams.Protector:
    return ams.Protector(pki.keystore("alice"), policies, allow_deprecated=True)


@pytest.fixture
def canary_bytes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """fresh_bytes as the protector and the decryptor call it, with every byte of each object it
    makes first set to CANARY (the worst that uninitialised memory could hold); the sizes made."""
    made: list[int] = []

    def fresh(size: int) -> tuple[bytes, memoryview] | None:
        result = buffers.fresh_bytes(size)
        if result is not None:
            result[1][:] = (CANARY * (size // len(CANARY) + 1))[:size]
            made.append(size)
        return result

    monkeypatch.setattr(ams.protector, "fresh_bytes", fresh)
    monkeypatch.setattr(ams.hazmat.cbc, "fresh_bytes", fresh)
    return made


# -- the reference: a fresh cryptography context per message ---------------------------------------


def _reference_decrypt(algorithm: EncryptionAlgorithm, key: bytes, iv: bytes, ciphertext: bytes) -> bytes | None:
    """CBC with a context of its own, then PKCS#7 unpadding: None when the padding is bad."""
    spec = algorithm.spec
    if len(iv) != spec.block_size or not ciphertext or len(ciphertext) % spec.block_size:
        return None
    decryptor = Cipher(spec.factory(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(spec.block_size * 8).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        return None


@attrs.frozen
class _Layout:
    header: PdmqHeader
    key_block: slice
    iv: slice
    ciphertext: slice


def _layout(body: bytes) -> _Layout:
    """Where a confidentiality message (no clear headers) keeps its parts."""
    header = PdmqHeader.unpack(body)
    key_block = slice(header.size, header.size + header.key_block_size)
    iv = slice(key_block.stop, key_block.stop + header.iv_block_size)
    return _Layout(header, key_block, iv, slice(iv.stop, iv.stop + header.enc_block_size))


def _reference_unprotect(body: bytes, algorithm: EncryptionAlgorithm, keys: dict[bytes, bytes]) -> bytes | None:
    """What a receiver with no state at all accepts: the payload, or None when it refuses."""
    parts = _layout(body)
    plaintext = _reference_decrypt(algorithm, keys[body[parts.key_block]], body[parts.iv], body[parts.ciphertext])
    if plaintext is None or len(plaintext) != parts.header.orig_size:
        return None
    if parts.header.empty:
        return b"" if plaintext == b"\x00" else None
    return plaintext


def _tampered(body: bytes, kind: str, rng: random.Random, pool: list[bytes]) -> bytes:
    """``body`` changed as an attacker without the key can change it."""
    parts = _layout(body)
    out = bytearray(body)
    if kind == "iv":
        out[rng.randrange(parts.iv.start, parts.iv.stop)] ^= 1 << rng.randrange(8)
    elif kind == "ciphertext":
        out[rng.randrange(parts.ciphertext.start, parts.ciphertext.stop)] ^= 1 << rng.randrange(8)
    elif kind == "padding":  # the block before the last: steers the padding bytes
        block = parts.header.iv_block_size
        before = parts.ciphertext.stop - 2 * block if parts.header.enc_block_size > block else parts.iv.start
        out[before + block - 1 - rng.randrange(min(3, block))] ^= rng.randrange(1, 256)
    elif kind == "origsize":
        change = rng.choice([-17, -16, -9, -8, -2, -1, 1, 2, 8, 16, 17])
        orig = max(1, parts.header.orig_size + change)  # origSize 0 is malformed, a public refusal
        packed = attrs.evolve(parts.header, orig_size=orig).pack()
        out[: len(packed)] = packed
    elif kind == "splice" and pool:  # another message's key block (same size) or IV
        other = _layout(donor := rng.choice(pool))
        if other.header.key_block_size == parts.header.key_block_size and rng.random() < 0.5:
            out[parts.key_block] = donor[other.key_block]
        elif other.header.iv_block_size == parts.header.iv_block_size:
            out[parts.iv] = donor[other.iv]
    return bytes(out)


@contextlib.contextmanager
def _recording_keys(alice: ams.Protector) -> Iterator[dict[bytes, bytes]]:
    """Every message key alice makes while it lasts, by its key block (the reference's way to decrypt)."""
    sender, keys = alice._sender, dict[bytes, bytes]()
    real = sender.confidentiality_key

    def recording(*args: object, **options: object) -> ReusableKey:
        state = real(*args, **options)  # type: ignore[arg-type]
        keys[state.key_block] = state.key
        return state

    sender.confidentiality_key = recording  # type: ignore[method-assign]
    try:
        yield keys
    finally:
        del sender.confidentiality_key  # the class's method again


def _garble_kept_contexts(bob: ams.Protector, rng: random.Random) -> None:
    """Leave every kept context as a message that stopped half-way would: some blocks of its
    ciphertext decrypted, the rest never fed."""
    for kept in bob._receiver_keys.values():
        decryptor = kept.decryptor
        blocks = rng.randrange(1, 5) * decryptor._block
        decryptor._context.update_into(os.urandom(blocks), memoryview(bytearray(blocks + decryptor._block)))


# -- 1. the kept CBC context and the straight path against the reference, over random streams ---------


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_a_reused_key_reads_any_stream_as_a_fresh_context_would(
    pki: Pki, policies: ams.PolicyStore, alice: ams.Protector, canary_bytes: list[int], data: st.DataObject
) -> None:
    """A stream of confidentiality messages on queues that reuse keys (and one that does not), of
    every size around the straight path's threshold and the block boundaries, each maybe changed
    (IV, ciphertext, padding, origSize, a key block or IV from another message) and maybe with the
    kept contexts left half-way through a message before it: the receiver accepts exactly what a
    stateless reference accepts, with the same bytes, and no canary byte ever reaches it."""
    with _recording_keys(alice) as keys:
        _read_a_stream(pki, policies, alice, keys, data)


def _read_a_stream(
    pki: Pki, policies: ams.PolicyStore, alice: ams.Protector, keys: dict[bytes, bytes], data: st.DataObject
) -> None:
    bob = ams.Protector(pki.keystore("bob"), policies)
    rng = random.Random(data.draw(st.integers(0, 2**32), label="seed"))
    pools: dict[str, list[bytes]] = {}
    for _ in range(data.draw(st.integers(1, 12), label="messages")):
        queue = data.draw(st.sampled_from([*ALGORITHMS, "ONCE.Q"]), label="queue")
        payload = rng.randbytes(data.draw(SIZES, label="size"))
        body = alice.protect(queue, payload).body
        kind = data.draw(st.sampled_from(["none", "iv", "ciphertext", "padding", "origsize", "splice"]), label="kind")
        pool = pools.setdefault(queue, [])
        changed = _tampered(body, kind, rng, pool)
        pool.append(body)
        if data.draw(st.booleans(), label="half-way"):
            _garble_kept_contexts(bob, rng)
        algorithm = ALGORITHMS.get(queue, EncryptionAlgorithm.AES256)
        expected = _reference_unprotect(changed, algorithm, keys)
        if kind == "none":
            assert expected == payload
        try:
            got: bytes | None = bob.unprotect(queue, changed).body
        except ams.errors.DecryptionError:
            got = None
        assert got == expected, (queue, len(payload), kind)
        assert got is None or CANARY not in got
        if got is not None and len(got) >= DIRECT:
            view = bob.unprotect_into(queue, changed, bytearray(len(changed)))  # the same answer both ways
            assert bytes(view.body) == got


@settings(max_examples=EXAMPLES * 5, deadline=None)
@given(data=st.data())
def test_one_decryptor_agrees_with_a_fresh_context_after_anything(data: st.DataObject) -> None:
    """CbcDecryptor's decrypt and decrypt_exact, called with whatever a message can carry (an IV
    or ciphertext of any length, changed bytes, any expected size) and stopped half-way (a
    ciphertext the context cannot read, given after the IV went through it), against the
    reference on the same inputs."""
    algorithm = data.draw(st.sampled_from([a for a in EncryptionAlgorithm if a is not EncryptionAlgorithm.NONE]))
    block, key = algorithm.spec.block_size, os.urandom(algorithm.spec.key_size)
    decryptor = CbcDecryptor(algorithm, algorithm.spec.factory(key))
    for _ in range(data.draw(st.integers(1, 10), label="calls")):
        plaintext = data.draw(st.binary(max_size=200), label="plaintext")
        iv = os.urandom(block)
        ciphertext = bytearray(cbc_encrypt(algorithm, key, iv, [plaintext]))
        for _ in range(data.draw(st.integers(0, 2), label="changes")):
            ciphertext[data.draw(st.integers(0, len(ciphertext) - 1))] ^= data.draw(st.integers(1, 255))
        cut = data.draw(st.sampled_from([0, 0, 0, 1, block, block + 1]), label="cut")
        sent = bytes(ciphertext[: len(ciphertext) - cut])
        sent_iv = iv[: data.draw(st.sampled_from([block, block, block, block - 1, 0]), label="iv length")]
        expected = _reference_decrypt(algorithm, key, sent_iv, sent)
        if data.draw(st.booleans(), label="stop half-way"):
            wide = memoryview(sent + bytes(-len(sent) % (4 * block))).cast("I")  # fewer items than bytes
            with pytest.raises((TypeError, ValueError, ams.errors.DecryptionError)):  # after the IV went in
                decryptor.decrypt(iv, wide, what="x")
        if data.draw(st.booleans(), label="exact"):
            size = len(expected) if expected is not None else len(sent) - 1
            size += data.draw(st.sampled_from([0, 0, 0, -1, 1, -block]), label="size change")
            try:
                got: bytes | None = decryptor.decrypt_exact(sent_iv, sent, size, what="x")
            except (ams.errors.DecryptionError, ams.errors.MalformedMessageError):
                got = None
            assert got == (expected if expected is not None and len(expected) == size else None)
        else:
            headroom = data.draw(st.integers(0, 20), label="headroom")
            try:
                got = bytes(decryptor.decrypt(sent_iv, sent, what="x", headroom=headroom))
            except ams.errors.DecryptionError:
                got = None
            assert got == expected


# -- 2. no unwritten byte of fresh_bytes reaches a caller ---------------------------------------------


def _rfh2() -> bytes:
    folder = b"<usr><k>v</k></usr>    "
    fixed = struct.pack(">4siiii8sii", b"RFH ", 2, 40 + len(folder), 273, 1208, b"MQSTR   ", 0, 1208)
    return fixed + struct.pack(">i", len(folder)) + folder


def _edges() -> Iterator[int]:
    yield from (0, 1, 2, 15, 16, 17, DIRECT - 200)
    yield from range(DIRECT - 17, DIRECT + 18)
    yield from (3 * DIRECT - 1, 3 * DIRECT, 3 * DIRECT + 1)


@pytest.mark.parametrize("queue", [*ALGORITHMS, "ONCE.Q", "PRIV.Q", "INT.Q"])
def test_no_unwritten_byte_of_a_fresh_bytes_object_is_ever_returned(
    pki: Pki, policies: ams.PolicyStore, alice: ams.Protector, canary_bytes: list[int], queue: str
) -> None:
    """Every size from 17 below to 17 above the threshold (and a few others), with and without a
    clear header in front: what protect and unprotect return holds no canary byte, and is right.
    For confidentiality every origSize the padding could give is refused, on the straight path."""
    bob = ams.Protector(pki.keystore("bob"), policies)
    for size in _edges():
        payload = bytes((index * 7 + size) & 0xFF for index in range(size))
        for prefix, format in ((b"", "MQSTR"), (_rfh2(), "MQHRF2")):
            sent = alice.protect(queue, prefix + payload, format, encoding=273)
            assert CANARY[:6] not in sent.body
            got = bob.unprotect(queue, sent, encoding=273).body
            assert got == prefix + payload and CANARY[:6] not in got, (size, format)
        if queue in ALGORITHMS and size >= DIRECT - 17:
            body = alice.protect(queue, payload).body
            for change in (-17, -16, -8, -1, 1, 8, 16, 17):
                with pytest.raises(ams.errors.DecryptionError):
                    bob.unprotect(queue, _tampered_size(body, change))
    assert canary_bytes, "the straight paths ran"


def _tampered_size(body: bytes, change: int) -> bytes:
    header = PdmqHeader.unpack(body)
    packed = attrs.evolve(header, orig_size=max(1, header.orig_size + change)).pack()
    return packed + body[len(packed) :]


# -- 3. the kept privacy buffer: copies out, never a view of it; nothing crosses messages ---------------


def test_a_result_is_a_copy_that_no_later_message_changes(
    pki: Pki, policies: ams.PolicyStore, alice: ams.Protector
) -> None:
    """A long message, then shorter ones (accepted and refused) through the one kept buffer: each
    result is its own bytes, unchanged by what the buffer holds later, and a shorter result holds
    nothing of the longer one."""
    bob = ams.Protector(pki.keystore("bob"), policies)
    long = b"L" * (4 * DIRECT)
    first = bob.unprotect("PRIV.Q", alice.protect("PRIV.Q", long).body).body
    short = b"S" * (DIRECT + 5)
    second = bob.unprotect("PRIV.Q", alice.protect("PRIV.Q", short).body).body
    refused = bytearray(alice.protect("PRIV.Q", b"R" * (2 * DIRECT)).body)
    refused[-40] ^= 1
    with pytest.raises(ams.errors.DecryptionError):
        bob.unprotect("PRIV.Q", bytes(refused))
    third = bob.unprotect("PRIV.Q", alice.protect("PRIV.Q", b"T" * (3 * DIRECT)).body).body
    assert type(first) is bytes and first == long
    assert type(second) is bytes and second == short
    assert third == b"T" * (3 * DIRECT)
    assert bob._spare._held == []  # AMS's framing: each payload decrypted straight into its own bytes


# -- 4. one Protector shared by threads: the kept context and buffer are never used by two at once --


def test_a_protector_shared_by_threads_reads_every_message_as_a_fresh_one(
    pki: Pki, policies: ams.PolicyStore, alice: ams.Protector
) -> None:
    """Four threads read a mix of reused-key and large privacy messages, some changed, through one
    Protector: each answer is the answer of a Protector of its own, read one message at a time."""
    messages: list[tuple[str, bytes]] = []
    for index in range(24):
        for queue in ("AES128.Q", "AES256.Q", "PRIV.Q"):
            payload = bytes([index]) * (10, 70_000, DIRECT, DIRECT + 1)[index % 4]
            body = alice.protect(queue, payload).body
            if index % 5 == 2:
                changed = bytearray(body)
                changed[-20] ^= 1
                body = bytes(changed)
            messages.append((queue, body))

    def answer(protector: ams.Protector, queue: str, body: bytes) -> bytes | None:
        try:
            return protector.unprotect(queue, body).body
        except ams.errors.DecryptionError:
            return None

    expected = [answer(ams.Protector(pki.keystore("bob"), policies), queue, body) for queue, body in messages]
    shared = ams.Protector(pki.keystore("bob"), policies)
    failures: list[str] = []

    def read(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(150):
            index = rng.randrange(len(messages))
            try:
                if answer(shared, *messages[index]) != expected[index]:
                    failures.append(f"message {index}: another answer")
            except Exception as error:  # any other exception is the finding
                failures.append(f"message {index}: {error!r}")

    threads = [threading.Thread(target=read, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
