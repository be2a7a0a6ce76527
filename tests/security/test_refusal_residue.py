"""What a refused message leaves behind (an attacker's review of round three's fast paths found
each of these; each test failed before its fix):

1. A refusal's error object keeps decrypted bytes reachable: the frames of its traceback (and of
   the exception it was raised during, kept as ``__context__`` although ``from None`` hides it
   from the printed traceback) hold the buffers the refused message was decrypted into. On the
   new straight path that is an immutable ``bytes`` (``decrypt_exact``'s ``out``) that cannot be
   wiped; on the large privacy path it is the buffer the Protector keeps, so a stored error
   aliases every later message's plaintext.
2. Any refused large privacy message (an attacker needs no key: implicit rejection decrypts
   garbage) leaves a buffer of its size, up to 32 MiB, kept by the Protector until it is closed.
3. With decryption diagnostics on, the straight path names the wrong step for an origSize that
   does not match (the buffered path and unprotect_into name it right).
"""

from __future__ import annotations

import types
import warnings

import attrs
import pytest

import ams
import ams.errors
from ams.hazmat.pdmq import PdmqHeader
from tests.conftest import Pki, store

DIRECT = 64 * 1024
MARK = b"SECRET-PLAINTEXT-OF-A-REFUSED-MESSAGE/"


@pytest.fixture(scope="module")
def policies(pki: Pki) -> ams.PolicyStore:
    bob = pki.dn("bob")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return store(
            f'setmqspl -m QM -p CONF.Q -e AES256 -r "{bob}"',
            f'setmqspl -m QM -p REUSE.Q -e AES128 -r "{bob}" -c *',
            f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "{bob}"',
        )


@pytest.fixture(scope="module")
def alice(pki: Pki, policies: ams.PolicyStore) -> ams.Protector:
    return ams.Protector(pki.keystore("alice"), policies)


def _payload(size: int, mark: bytes = MARK) -> bytes:
    return (mark * (size // len(mark) + 1))[:size]


def _exceptions(error: BaseException) -> list[BaseException]:
    """``error`` and every exception it keeps: causes, contexts, and ``error`` attributes."""
    found: list[BaseException] = []
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or any(current is seen for seen in found):
            continue
        found.append(current)
        kept = getattr(current, "error", None)
        pending += [current.__cause__, current.__context__, kept if isinstance(kept, BaseException) else None]
    return found


def _holders(error: BaseException, mark: bytes) -> list[str]:
    """The library frames' locals, reachable from ``error``, that hold ``mark``."""
    holders = []
    for exception in _exceptions(error):
        trace: types.TracebackType | None = exception.__traceback__
        while trace is not None:
            frame = trace.tb_frame
            if frame.f_code.co_filename != __file__:
                for name, value in frame.f_locals.items():
                    if isinstance(value, bytes | bytearray | memoryview) and mark in bytes(value):
                        holders.append(f"{type(exception).__name__}: {frame.f_code.co_name}.{name}")
            trace = trace.tb_next
    return holders


def _refused(protector: ams.Protector, queue: str, body: bytes) -> ams.AmsError:
    try:
        protector.unprotect(queue, body)
    except ams.AmsError as error:
        return error
    raise AssertionError("the changed message was accepted")


def _bad_padding(body: bytes) -> bytes:
    changed = bytearray(body)
    changed[-17] ^= 0x55  # the last block's plaintext changes completely: the padding fails
    return bytes(changed)


@pytest.mark.parametrize(("queue", "size"), [("CONF.Q", 1000), ("CONF.Q", DIRECT + 100), ("REUSE.Q", DIRECT + 100)])
def test_a_confidentiality_refusal_keeps_no_decrypted_byte_reachable(
    pki: Pki, policies: ams.PolicyStore, alice: ams.Protector, queue: str, size: int
) -> None:
    """Finding 1 (confidentiality): the refused payload, all but its last two blocks intact, is in
    a buffer the error keeps (large: ``decrypt_exact``'s ``out`` and ``view``; small:
    ``decrypt``'s ``into``)."""
    bob = ams.Protector(pki.keystore("bob"), policies)
    bob.unprotect(queue, alice.protect(queue, b"warm the key cache").body)
    error = _refused(bob, queue, _bad_padding(alice.protect(queue, _payload(size)).body))
    assert isinstance(error, ams.errors.DecryptionError)
    assert _holders(error, MARK) == []


def test_a_privacy_refusal_keeps_no_view_of_the_kept_buffer(
    pki: Pki, policies: ams.PolicyStore, alice: ams.Protector
) -> None:
    """Finding 1 (privacy): the refusal's own traceback holds ``_open_privacy``'s ``spare``, the
    buffer the Protector keeps: it still holds the tail of an earlier, longer accepted message,
    and, once the next message is read, that message's plaintext."""
    bob = ams.Protector(pki.keystore("bob"), policies)
    earlier = _payload(4 * DIRECT, b"EARLIER-ACCEPTED-MESSAGE/")
    assert bob.unprotect("PRIV.Q", alice.protect("PRIV.Q", earlier).body).body == earlier
    refused = bytearray(alice.protect("PRIV.Q", b"r" * (DIRECT + 100)).body)
    refused[-40] ^= 1  # the signature no longer verifies
    error = _refused(bob, "PRIV.Q", bytes(refused))
    later = _payload(2 * DIRECT, b"A-LATER-MESSAGE/")
    assert bob.unprotect("PRIV.Q", alice.protect("PRIV.Q", later).body).body == later
    assert _holders(error, b"EARLIER-ACCEPTED-MESSAGE/") == []
    assert _holders(error, b"A-LATER-MESSAGE/") == []


def test_a_refused_message_leaves_no_buffer_behind(pki: Pki, policies: ams.PolicyStore, alice: ams.Protector) -> None:
    """Finding 2: a refused message (here changed in its last block; an attacker with no key gets
    the same by naming the receiver in a RecipientInfo of garbage) is the only message of its
    size the receiver reads, yet a buffer of that size stays with the Protector (up to 32 MiB
    per handle, until it is closed). A refusal should wipe the buffer and let it go."""
    bob = ams.Protector(pki.keystore("bob"), policies)
    refused = bytearray(alice.protect("PRIV.Q", bytes(8 << 20)).body)
    refused[-40] ^= 1
    _refused(bob, "PRIV.Q", bytes(refused))
    kept = sum(len(buffer) for buffer in bob._spare._held)
    assert kept == 0, f"{kept} bytes kept after one refused message"


def _size_changed(body: bytes) -> bytes:
    header = PdmqHeader.unpack(body)
    packed = attrs.evolve(header, orig_size=header.orig_size - 1).pack()
    return packed + body[len(packed) :]


def test_the_diagnostic_names_the_step_that_failed_on_the_straight_path(
    pki: Pki, policies: ams.PolicyStore, alice: ams.Protector
) -> None:
    """Finding 3: an origSize one short is "checking origSize" on the buffered path and in
    unprotect_into, but "decrypting and unpadding the payload" on the straight one."""
    bob = ams.Protector(pki.keystore("bob"), policies, diagnose_decryption=True)
    changed = _size_changed(alice.protect("CONF.Q", bytes(DIRECT + 100)).body)
    straight = _refused(bob, "CONF.Q", changed)
    with pytest.raises(ams.errors.DecryptionError) as buffered:
        bob.unprotect_into("CONF.Q", changed, bytearray(len(changed)))
    assert isinstance(straight, ams.errors.DecryptionError)
    assert straight.diagnostic == buffered.value.diagnostic
    assert str(straight) == str(buffered.value)  # the text was always the same: only the diagnostic differs
