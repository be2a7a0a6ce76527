"""The allocating ``protect`` and ``unprotect`` of large messages, written straight into the ``bytes``
they return (``ams.hazmat.buffers``): the same bytes as the small-message path gives, the same
refusals with the same error, and (memory, not time) the payload allocated once, not twice.
"""

from __future__ import annotations

import functools
import os
import tracemalloc
from collections.abc import Callable

import attrs
import pytest

import ams
import ams._privacy_direct
from ams.hazmat.buffers import fresh_bytes, scratch
from ams.hazmat.pdmq import PdmqHeader
from tests.conftest import Pki, five_queue_policies, rfh2, store

QUEUES = ("INT.Q", "PRIV.Q", "PRIV3.Q", "CONF.Q", "CONF.REUSE.Q")
DIRECT = 64 * 1024  # ams._protector_state.DIRECT_FROM: below it the small-message path runs
SIZES = (DIRECT - 1, DIRECT, DIRECT + 1, DIRECT + 15, DIRECT + 16, DIRECT + 17)


@pytest.fixture(scope="module")
def policies(pki: Pki) -> ams.PolicyStore:
    return store(
        *five_queue_policies(pki),
    )


@pytest.fixture(scope="module")
def alice(pki: Pki, policies: ams.PolicyStore) -> ams.Protector:
    return ams.Protector(pki.keystore("alice"), policies)


@pytest.fixture
def bob(pki: Pki, policies: ams.PolicyStore) -> ams.Protector:
    return ams.Protector(pki.keystore("bob"), policies)


def _rfh2() -> bytes:
    return rfh2(b"<usr><k>v</k></usr>    ", big_endian=True)


@pytest.mark.parametrize("queue", QUEUES)
def test_large_messages_round_trip_as_bytes(alice: ams.Protector, bob: ams.Protector, queue: str) -> None:
    for size in SIZES:
        payload = os.urandom(size)
        for prefix, fmt in ((b"", "MQSTR"), (_rfh2(), "MQHRF2")):
            sent = alice.protect(queue, prefix + payload, fmt, encoding=273)
            assert type(sent.body) is bytes
            into = alice.protect_into(queue, prefix + payload, format=fmt, encoding=273)
            assert len(into.body) == len(sent.body)  # the same layout, laid out by either call
            plain = bob.unprotect(queue, sent, encoding=273)
            assert type(plain.body) is bytes and plain.body == prefix + payload, (queue, size, fmt)
            assert plain.format.strip() == fmt
            view = bob.unprotect_into(queue, sent, encoding=273)
            assert bytes(view.body) == plain.body and view.header == plain.header


def _with_orig_size(body: bytes, change: int) -> bytes:
    header = PdmqHeader.unpack(body)
    packed = attrs.evolve(header, orig_size=header.orig_size + change).pack()
    return packed + body[len(packed) :]


def _refusal(action: Callable[[], object]) -> str:
    with pytest.raises(ams.errors.DecryptionError) as caught:
        action()
    return str(caught.value)


@pytest.mark.parametrize("queue", ["CONF.Q", "CONF.REUSE.Q", "PRIV.Q"])
def test_a_changed_large_message_is_refused_with_the_one_error(
    alice: ams.Protector, bob: ams.Protector, queue: str
) -> None:
    """Bad padding, and an origSize one byte short or long (inside and outside what the padding can
    give), are refused by the straight path with the text the buffered path gives."""
    payload = os.urandom(DIRECT + 3)  # 13 bytes of padding: origSize +-1 are both possible lengths
    good = alice.protect(queue, payload).body
    assert bob.unprotect(queue, good).body == payload  # the genuine twin (and a cached key to reuse)
    padding = bytearray(good)
    padding[-17] ^= 13  # the last byte now decrypts to 0: no padding
    for changed in (bytes(padding), _with_orig_size(good, -1), _with_orig_size(good, 1), _with_orig_size(good, 13)):
        straight = _refusal(functools.partial(bob.unprotect, queue, changed))
        assert straight == _refusal(functools.partial(bob.unprotect_into, queue, changed, bytearray(len(good))))
        assert "cannot decrypt and verify" in straight
    assert bob.unprotect(queue, alice.protect(queue, payload).body).body == payload


def _extra_peak(action: Callable[[], object]) -> int:
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    result = action()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del result
    return peak - before


@pytest.mark.parametrize("queue", ["CONF.Q", "CONF.REUSE.Q"])
def test_confidentiality_unprotect_allocates_the_payload_once(
    alice: ams.Protector, bob: ams.Protector, queue: str
) -> None:
    """Decrypted straight into the bytes returned: no buffer beside it (it was twice the payload)."""
    size = 1 << 20
    data = alice.protect(queue, os.urandom(size)).body
    bob.unprotect(queue, data)  # caches warm: only per-message memory is measured
    assert _extra_peak(lambda: bob.unprotect(queue, data)) < 1.1 * size


@pytest.mark.parametrize("queue", ["PRIV.Q", "CONF.Q"])
def test_protect_allocates_the_message_once(alice: ams.Protector, queue: str) -> None:
    """Written straight into the bytes returned: no ciphertext buffer beside it (it was twice)."""
    size = 1 << 20
    payload = os.urandom(size)
    alice.protect(queue, payload)
    assert _extra_peak(lambda: alice.protect(queue, payload)) < 1.1 * size


def test_fresh_bytes_is_written_through_its_view_and_never_a_shared_object() -> None:
    assert fresh_bytes(0) is None and fresh_bytes(1) is None  # the interpreter may share these
    made = fresh_bytes(100)
    assert made is not None
    out, view = made
    assert type(out) is bytes and len(out) == 100 and len(view) == 100 and not view.readonly
    view[:] = bytes(range(100))
    view.release()
    assert out == bytes(range(100))
    other = fresh_bytes(100)
    assert other is not None and other[0] is not out
    buffer = scratch(1000)
    assert len(buffer) == 1000 and not buffer.readonly


def test_a_refused_privacy_message_leaves_nothing_in_its_buffers(
    alice: ams.Protector, bob: ams.Protector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every buffer a large privacy message is decrypted into (the ``bytes`` to return, the head and
    tail buffers, the buffer kept between messages) holds no byte of a refused one: the payload of a
    message refused after decryption (its signature no longer verifies) is zeroed, and no buffer is
    kept (a sender with no key must not make a handle hold memory of the size it chose)."""
    made: list[bytes | memoryview] = []

    def recorded_bytes(size: int) -> tuple[bytes, memoryview] | None:
        found = fresh_bytes(size)
        made.extend(found[:1] if found is not None else ())
        return found

    def recorded_scratch(size: int) -> memoryview:
        buffer = scratch(size)
        made.append(buffer)
        return buffer

    monkeypatch.setattr(ams._privacy_direct, "fresh_bytes", recorded_bytes)
    monkeypatch.setattr(ams._privacy_direct, "scratch", recorded_scratch)
    payload = b"SECRET-PAYLOAD-" * (DIRECT // 15 + 1)
    good = bytearray(alice.protect("PRIV.Q", payload).body)
    assert bob.unprotect("PRIV.Q", bytes(good)).body == payload
    assert [type(b) for b in made] == [memoryview, bytes, memoryview]  # head, the result, tail
    made.clear()
    good[-40] ^= 0x01  # the signature's block: the payload still decrypts, the signature fails
    with pytest.raises(ams.errors.DecryptionError):
        bob.unprotect("PRIV.Q", bytes(good))
    assert len(made) == 3 and all(b"SECRET" not in bytes(buffer) for buffer in made)
    assert bob._spare._held == []
