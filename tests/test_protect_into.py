"""``Protector.protect_into``: the large-message send that writes the protected message in one pass.

It must write what ``protect`` writes (same layout and length, the same receiver accepts it, and
openssl reads it), encrypt straight into the caller's buffer (the ciphertext writer agrees with
the allocating one on every split of the plaintext), refuse a buffer it cannot use, and allocate
far less than the payload (memory is asserted here, never time; the benchmarks measure both).
"""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from hypothesis import given, settings
from hypothesis import strategies as st

import ams
from ams.hazmat.enveloped import PendingCiphertext
from ams.hazmat.pdmq import PdmqHeader
from tests.conftest import Pki, five_queue_policies, needs_openssl, store
from tests.test_openssl import files as files
from tests.test_openssl import openssl
from tests.test_unprotect_into import _rfh2

QUEUES = ("INT.Q", "PRIV.Q", "PRIV3.Q", "CONF.Q", "CONF.REUSE.Q", "PRIV.3DES.Q")
SIZES = (0, 1, 15, 16, 17, 31, 1000, 70_001)


@pytest.fixture(scope="module")
def policies(pki: Pki) -> ams.PolicyStore:
    return store(
        *five_queue_policies(pki),
        f'setmqspl -m QM -p PRIV.3DES.Q -s SHA256 -e 3DES -r "{pki.dn("bob")}"',  # an 8-byte block
    )


@pytest.fixture(scope="module")
def alice(pki: Pki, policies: ams.PolicyStore) -> ams.Protector:
    return ams.Protector(pki.keystore("alice"), policies, allow_deprecated=True)


@pytest.fixture
def bob(pki: Pki, policies: ams.PolicyStore) -> ams.Protector:
    return ams.Protector(pki.keystore("bob"), policies)


@pytest.mark.parametrize("queue", QUEUES)
def test_what_protect_into_writes_is_what_protect_writes(alice: ams.Protector, bob: ams.Protector, queue: str) -> None:
    buffer = bytearray(200_000)
    for size in SIZES:
        payload = os.urandom(size)
        for prefix, fmt in ((b"", "MQSTR"), (_rfh2(), "MQHRF2")):
            sent = alice.protect_into(queue, prefix + payload, buffer, fmt, encoding=273)
            assert isinstance(sent.body, memoryview) and sent.body.obj is buffer
            reference = alice.protect(queue, prefix + payload, fmt, encoding=273)
            assert (len(sent.body), sent.format, sent.qop) == (len(reference.body), reference.format, reference.qop)
            header = PdmqHeader.unpack(bytes(sent.body[len(prefix) :]))
            assert header == PdmqHeader.unpack(reference.body[len(prefix) :])
            received = bob.unprotect(queue, bytes(sent.body), sent.format, encoding=273)
            assert (received.body, received.format.strip()) == (prefix + payload, fmt)
            fresh = alice.protect_into(queue, prefix + payload, None, fmt, encoding=273)  # a buffer of its own
            assert bob.unprotect(queue, bytes(fresh.body), fresh.format, encoding=273).body == prefix + payload


def test_a_queue_without_protection_is_copied_as_it_is(alice: ams.Protector) -> None:
    buffer = bytearray(100)
    sent = alice.protect_into("NO.POLICY.Q", b"in the clear", buffer, "MQSTR")
    assert (bytes(sent.body), sent.format, sent.qop) == (b"in the clear", "MQSTR", ams.QoP.NONE)


# confidentiality has no MAC by design (format.md): its flips are tests/test_tamper.py's subject
@pytest.mark.parametrize("queue", ["INT.Q", "PRIV.Q", "PRIV3.Q"])
def test_a_tampered_byte_of_what_protect_into_wrote_is_refused(
    alice: ams.Protector, bob: ams.Protector, queue: str
) -> None:
    sent = alice.protect_into(queue, b"x" * 5000)
    tampered = bytearray(sent.body)
    tampered[len(tampered) - 100] ^= 0x01  # inside the payload (integrity) or the ciphertext
    with pytest.raises(ams.SecurityError):
        bob.unprotect(queue, bytes(tampered), sent.format)


def test_a_buffer_too_small_names_the_size_needed(alice: ams.Protector) -> None:
    needed = len(alice.protect("PRIV.Q", b"x" * 4000).body)
    with pytest.raises(ams.UsageError, match=f"at least {needed} bytes") as refused:
        alice.protect_into("PRIV.Q", b"x" * 4000, bytearray(needed - 1))
    assert "protect_into" in str(refused.value)
    assert len(alice.protect_into("PRIV.Q", b"x" * 4000, bytearray(needed)).body) == needed  # its twin


def test_a_buffer_it_cannot_write_is_refused(alice: ams.Protector) -> None:
    with pytest.raises(ams.UsageError, match="writable"):
        alice.protect_into("PRIV.Q", b"body", bytes(10_000))  # type: ignore[arg-type]
    with pytest.raises(ams.UsageError, match="writable"):
        alice.protect_into("PRIV.Q", b"body", memoryview(bytearray(10_000)).toreadonly())


def test_the_memory_holding_the_message_is_not_a_buffer_for_it(alice: ams.Protector) -> None:
    shared = bytearray(20_000)
    shared[:5] = b"hello"
    with pytest.raises(ams.UsageError, match="buffer of its own"):
        alice.protect_into("PRIV.Q", memoryview(shared)[:5], shared)
    assert shared[:5] == b"hello"


@pytest.mark.parametrize("queue", ["INT.Q", "PRIV.Q", "CONF.Q"])
def test_protect_into_allocates_far_less_than_the_payload(alice: ams.Protector, queue: str) -> None:
    payload = os.urandom(4 << 20)
    buffer = bytearray(len(payload) + 64 * 1024)
    alice.protect_into(queue, payload, buffer)  # warm: writers, recipients and templates made once
    tracemalloc.start()
    try:
        alice.protect_into(queue, payload, buffer)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < len(payload) // 16, f"{peak} bytes allocated for a {len(payload)}-byte payload"


@settings(max_examples=200, deadline=None)
@given(
    algorithm=st.sampled_from(
        [ams.EncryptionAlgorithm.AES128, ams.EncryptionAlgorithm.AES256, ams.EncryptionAlgorithm.TDES]
    ),
    parts=st.lists(st.binary(max_size=70), max_size=6),
)
def test_encrypting_in_place_agrees_with_encrypting_into_a_buffer_of_its_own(
    algorithm: ams.EncryptionAlgorithm, parts: list[bytes]
) -> None:
    spec = algorithm.spec
    key, iv = os.urandom(spec.key_size), os.urandom(spec.block_size)
    pending = PendingCiphertext(algorithm, key, iv, parts)
    expected = bytes(pending.compute())
    out = bytearray(len(pending) + 2)
    pending.write_into(memoryview(out)[1 : 1 + len(pending)])
    assert bytes(out[1:-1]) == expected and out[0] == out[-1] == 0  # not a byte outside its place
    decryptor = Cipher(spec.factory(key), modes.CBC(iv)).decryptor()  # cryptography's, not ours
    padded = decryptor.update(expected) + decryptor.finalize()
    assert padded == b"".join(parts) + bytes([padded[-1]]) * padded[-1] and 1 <= padded[-1] <= spec.block_size
    with pytest.raises(ValueError, match="bytes"):
        pending.write_into(memoryview(out))


@needs_openssl
def test_openssl_decrypts_what_protect_into_wrote(alice: ams.Protector, files: Path) -> None:
    payload = os.urandom(100_000)
    sent = alice.protect_into("CONF.Q", payload)  # confidentiality: the key block is a CMS EnvelopedData
    header = PdmqHeader.unpack(bytes(sent.body))
    blob = bytes(sent.body[header.size :])
    key_block = blob[: header.key_block_size]
    (files / "into-key.der").write_bytes(key_block)
    recipient = ("-recip", files / "bob.pem", "-inkey", files / "bob.key.pem")
    key = openssl("cms", "-decrypt", "-binary", "-inform", "DER", "-in", files / "into-key.der", *recipient)
    iv = blob[header.key_block_size : header.key_block_size + header.iv_block_size]
    ciphertext = blob[header.key_block_size + header.iv_block_size :]
    (files / "into-data.bin").write_bytes(ciphertext)
    plain = openssl("enc", "-d", "-aes-256-cbc", "-K", key.hex(), "-iv", iv.hex(), "-in", files / "into-data.bin")
    assert plain == payload
