"""``Protector.unprotect_into``: the large-message call whose body is a view, never a copy.

It must agree with ``unprotect`` on every message (body, Format, signer, algorithms), refuse
exactly what ``unprotect`` refuses with the same error, leave nothing of a refused message in the
caller's buffer, and allocate no more than the payload once (memory, not time, is asserted here;
the benchmarks measure both).
"""

from __future__ import annotations

import os
import tracemalloc

import pytest

import ams
from ams.message import UnprotectedView
from tests.conftest import Pki, five_queue_policies, rfh2, store

QUEUES = ("INT.Q", "PRIV.Q", "PRIV3.Q", "CONF.Q", "CONF.REUSE.Q")
PAYLOADS = (b"", b"\x00", b"pay bob 100 GBP", os.urandom(5000))


@pytest.fixture(scope="module")
def policies(pki: Pki) -> ams.PolicyStore:
    return store(
        *five_queue_policies(pki),
        f'setmqspl -m QM -p AUTH.Q -s SHA256 -e AES256 -r "{pki.dn("bob")}" -a "{pki.dn("carol")}"',
        "setmqspl -m QM -p TOLERANT.Q -s SHA256 -t 1",
    )


@pytest.fixture(scope="module")
def alice(pki: Pki, policies: ams.PolicyStore) -> ams.Protector:
    return ams.Protector(pki.keystore("alice"), policies)


@pytest.fixture
def bob(pki: Pki, policies: ams.PolicyStore) -> ams.Protector:
    return ams.Protector(pki.keystore("bob"), policies)


def _rfh2(next_format: str = "MQSTR") -> bytes:
    return rfh2(b"<usr><k>v</k></usr>    ", big_endian=True, next_format=next_format)


def _same(plain: ams.Unprotected, view: UnprotectedView) -> None:
    assert bytes(view.body) == plain.body
    assert (view.format, view.qop, view.signer, view.header) == (plain.format, plain.qop, plain.signer, plain.header)
    assert view.signature_algorithm == plain.signature_algorithm
    assert view.encryption_algorithm == plain.encryption_algorithm


@pytest.mark.parametrize("queue", QUEUES)
def test_the_view_is_what_unprotect_returns(alice: ams.Protector, bob: ams.Protector, queue: str) -> None:
    for payload in PAYLOADS:
        for prefix, fmt in ((b"", "MQSTR"), (_rfh2(), "MQHRF2")):
            sent = alice.protect(queue, prefix + payload, fmt, encoding=273)
            plain = bob.unprotect(queue, sent, encoding=273)
            assert plain.body == prefix + payload and plain.format.strip() == fmt
            _same(plain, bob.unprotect_into(queue, sent, encoding=273))  # a buffer of its own
            _same(plain, bob.unprotect_into(queue, sent, bytearray(len(sent.body) + 7), encoding=273))
            larger = memoryview(bytearray(len(sent.body) * 2))[3:]
            _same(plain, bob.unprotect_into(queue, sent, larger, encoding=273))


def test_a_buffer_is_reused_from_message_to_message(alice: ams.Protector, bob: ams.Protector) -> None:
    messages = [alice.protect("CONF.REUSE.Q", os.urandom(size)) for size in (3000, 10, 2000, 0, 2999)]
    buffer = bytearray(max(len(m.body) for m in messages))
    for message in messages:
        view = bob.unprotect_into("CONF.REUSE.Q", message, buffer)
        assert bytes(view.body) == bob.unprotect("CONF.REUSE.Q", message).body
    assert bob.stats.key_reuse_hits >= 4


def test_nothing_is_copied(alice: ams.Protector, bob: ams.Protector) -> None:
    """Integrity: a view of the message itself; encrypted QoPs: a view of the caller's buffer."""
    payload = os.urandom(100_000)
    signed = alice.protect("INT.Q", payload).body
    view = bob.unprotect_into("INT.Q", signed).body
    assert view.obj is signed and bytes(view) == payload
    buffer = bytearray(200_000)
    for queue in ("PRIV.Q", "CONF.Q"):
        view = bob.unprotect_into(queue, alice.protect(queue, payload), buffer).body
        assert view.obj is buffer and bytes(view) == payload


def test_unprotected_and_unpoliced_messages_are_views_as_they_are(bob: ams.Protector) -> None:
    body = b"plain text"
    for queue in ("TOLERANT.Q", "NO.POLICY"):
        result = bob.unprotect_into(queue, body, format="MQSTR")
        assert result.qop is ams.QoP.NONE and result.body.obj is body and result.format == "MQSTR"
    with pytest.raises(ams.SecurityError) as refused:
        bob.unprotect_into("INT.Q", body, format="MQSTR")
    assert refused.value.code == "not_protected"


def test_a_buffer_too_small_or_read_only_is_a_usage_error(alice: ams.Protector, bob: ams.Protector) -> None:
    sent = alice.protect("PRIV.Q", b"x" * 100)
    for buffer in (bytearray(len(sent.body) - 1), memoryview(bytes(len(sent.body))), b"\x00" * len(sent.body)):
        with pytest.raises(ams.UsageError):
            bob.unprotect_into("PRIV.Q", sent, buffer)  # type: ignore[arg-type]


def test_the_message_s_own_memory_is_not_a_buffer(alice: ams.Protector, bob: ams.Protector) -> None:
    """A refusal zeroes the buffer: were it the message's memory, the message would be destroyed."""
    held = bytearray(alice.protect("PRIV.Q", b"x" * 100).body)
    for data, buffer in ((memoryview(held), held), (memoryview(held)[4:], memoryview(held))):
        with pytest.raises(ams.UsageError, match="buffer of its own"):
            bob.unprotect_into("PRIV.Q", data, buffer)
    assert bob.unprotect("PRIV.Q", bytes(held)).body == b"x" * 100


def _refused(bob: ams.Protector, queue: str, data: bytes) -> tuple[str, str]:
    buffer = bytearray(b"\xaa" * (len(data) + 64))
    with pytest.raises(ams.SecurityError) as into:
        bob.unprotect_into(queue, data, buffer)
    assert buffer[: len(data)] == bytes(len(data)), "a refused message left bytes in the caller's buffer"
    assert buffer[len(data) :] == b"\xaa" * 64, "bytes beyond the message's length were written"
    with pytest.raises(ams.SecurityError) as plain:
        bob.unprotect(queue, data)
    assert (type(into.value), str(into.value)) == (type(plain.value), str(plain.value))
    return into.value.code, str(into.value)


def test_a_refused_message_leaves_nothing_in_the_buffer(alice: ams.Protector, bob: ams.Protector) -> None:
    """Every corruption of the ciphertext (one error), and authentic content that a later check refuses."""
    payload = b"secret salary figures " * 50
    private = alice.protect("PRIV.Q", payload).body
    codes = set()
    for offset in range(len(private) - 400, len(private), 37):  # inside the ciphertext: decrypted, then refused
        tampered = bytearray(private)
        tampered[offset] ^= 0x40
        codes.add(_refused(bob, "PRIV.Q", bytes(tampered))[0])
    assert codes == {"decryption_failed"}
    code, text = _refused(bob, "AUTH.Q", alice.protect("AUTH.Q", payload).body)  # decrypted, verified, not authorised
    assert code == "unauthorised_signer" and "secret" not in text
    confidential = bytearray(alice.protect("CONF.Q", payload).body)
    confidential[-1] ^= 0x01  # the padding
    assert _refused(bob, "CONF.Q", bytes(confidential))[0] == "decryption_failed"


def _extra_peak(action: object) -> int:
    assert callable(action)
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    result = action()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del result
    return peak - before


@pytest.mark.parametrize("queue", ["INT.Q", "PRIV.Q", "CONF.Q"])
def test_memory_is_the_payload_once_at_most(alice: ams.Protector, bob: ams.Protector, queue: str) -> None:
    """A loose bound (the benchmarks measure it exactly): unprotect_into allocates at most the payload
    once (its own buffer), nothing like it with the caller's buffer; unprotect needs about twice."""
    size = 1 << 20
    data = alice.protect(queue, os.urandom(size)).body
    buffer = bytearray(len(data))
    bob.unprotect_into(queue, data, buffer)  # caches warm: only per-message memory is measured
    assert _extra_peak(lambda: bob.unprotect_into(queue, data)) < 1.1 * size
    assert _extra_peak(lambda: bob.unprotect_into(queue, data, buffer)) < 0.1 * size
