"""Confidentiality key reuse (KEYREUSE / -c) per queue handle, both sides."""

from __future__ import annotations

import struct

import pytest

import ams
import ams.errors
from tests.conftest import Pki, store


def _key_block(data: bytes) -> bytes:
    (size,) = struct.unpack(">i", data[28:32])
    return data[112 : 112 + size]


def _policies(pki: Pki, reuse: str) -> ams.PolicyStore:
    return store(f'setmqspl -m QM -p CONF.Q -e AES256 -r "{pki.dn("bob")}" -c {reuse}')


@pytest.mark.parametrize("n", [1, 2, 5, 32])
def test_key_block_repeats_for_exactly_n_messages(pki: Pki, n: int) -> None:
    alice = ams.Protector(pki.keystore("alice"), _policies(pki, str(n)))
    blocks = [_key_block(alice.protect("CONF.Q", b"m%d" % i).body) for i in range(3 * n)]
    runs = [blocks[i : i + n] for i in range(0, 3 * n, n)]
    for run in runs:
        assert len(set(run)) == 1
    assert len({run[0] for run in runs}) == 3


def test_unlimited_never_renews_and_disabled_always_does(pki: Pki) -> None:
    unlimited = ams.Protector(pki.keystore("alice"), _policies(pki, "*"))
    assert len({_key_block(unlimited.protect("CONF.Q", b"x").body) for _ in range(50)}) == 1
    disabled = ams.Protector(pki.keystore("alice"), _policies(pki, "0"))
    data = [disabled.protect("CONF.Q", b"x").body for _ in range(5)]
    assert len({_key_block(d) for d in data}) == 5
    assert all(struct.unpack(">i", d[16:20])[0] == 64 for d in data)  # no 0x20 flag when DISABLED


def test_flag_set_whenever_reuse_is_not_disabled(pki: Pki) -> None:
    for reuse in ("1", "7", "*"):
        alice = ams.Protector(pki.keystore("alice"), _policies(pki, reuse))
        assert struct.unpack(">i", alice.protect("CONF.Q", b"x").body[16:20])[0] == 0x60


def test_iv_is_fresh_even_when_the_key_is_reused(pki: Pki) -> None:
    alice = ams.Protector(pki.keystore("alice"), _policies(pki, "*"))
    ivs = set()
    for _ in range(20):
        data = alice.protect("CONF.Q", b"same payload").body
        start = 112 + struct.unpack(">i", data[28:32])[0]
        ivs.add(data[start : start + 16])
    assert len(ivs) == 20


def test_one_shot_never_reuses_and_leaves_the_handle_cache_alone(pki: Pki) -> None:
    alice = ams.Protector(pki.keystore("alice"), _policies(pki, "*"))
    first = _key_block(alice.protect("CONF.Q", b"x").body)
    one_shots = {_key_block(alice.protect("CONF.Q", b"x", one_shot=True).body) for _ in range(3)}
    assert len(one_shots) == 3 and first not in one_shots
    assert _key_block(alice.protect("CONF.Q", b"x").body) == first


def test_receiver_does_no_rsa_work_for_a_repeated_key_block(pki: Pki) -> None:
    policies = _policies(pki, "10")
    alice = ams.Protector(pki.keystore("alice"), policies)
    bob = ams.Protector(pki.keystore("bob"), policies)
    for index in range(25):
        assert bob.unprotect("CONF.Q", alice.protect("CONF.Q", b"n%d" % index).body).body == b"n%d" % index
    assert bob.stats.rsa_private_operations == 3  # keys for messages 1-10, 11-20, 21-25
    assert bob.stats.key_reuse_hits == 22


def test_receiver_without_reuse_flag_unwraps_every_time(pki: Pki) -> None:
    policies = _policies(pki, "0")
    alice = ams.Protector(pki.keystore("alice"), policies)
    bob = ams.Protector(pki.keystore("bob"), policies)
    for _ in range(4):
        bob.unprotect("CONF.Q", alice.protect("CONF.Q", b"x").body)
    assert bob.stats.rsa_private_operations == 4 and bob.stats.key_reuse_hits == 0


def test_a_changed_key_block_is_not_served_from_the_cache(pki: Pki) -> None:
    policies = _policies(pki, "*")
    alice = ams.Protector(pki.keystore("alice"), policies)
    bob = ams.Protector(pki.keystore("bob"), policies)
    bob.unprotect("CONF.Q", alice.protect("CONF.Q", b"x").body)
    other = ams.Protector(pki.keystore("alice"), policies)  # another handle: another key
    assert bob.unprotect("CONF.Q", other.protect("CONF.Q", b"y").body).body == b"y"
    assert bob.stats.rsa_private_operations == 2
    # carol's handle has no cached key: a reused key block still needs her to be a recipient
    carol = ams.Protector(pki.keystore("carol"), policies)
    with pytest.raises(ams.errors.NotARecipientError):
        carol.unprotect("CONF.Q", alice.protect("CONF.Q", b"z").body)


def test_a_reused_key_decrypts_each_message_from_its_own_iv(pki: Pki) -> None:
    """The cached key's one decryption context gives each message its own plaintext, whatever it
    decrypted before: messages of every length, one tampered in its IV between good ones, and one
    whose padding fails; a message whose IV was changed decrypts (CBC has no integrity) to its own
    first block changed exactly as the IV was, as a fresh context would make it."""
    policies = _policies(pki, "*")
    alice = ams.Protector(pki.keystore("alice"), policies)
    bob = ams.Protector(pki.keystore("bob"), policies)
    payloads = [bytes([i]) * size for i, size in enumerate((1, 15, 16, 17, 31, 32, 33, 1000, 4096))]
    for payload in payloads:
        assert bob.unprotect("CONF.Q", alice.protect("CONF.Q", payload).body).body == payload
    message = bytearray(alice.protect("CONF.Q", b"A" * 40).body)
    iv_at = 112 + struct.unpack(">i", message[28:32])[0]
    message[iv_at] ^= 0x01  # the first plaintext byte flips with it
    assert bob.unprotect("CONF.Q", bytes(message)).body == b"@" + b"A" * 39
    assert bob.stats.rsa_private_operations == 1
    broken = bytearray(alice.protect("CONF.Q", b"B" * 40).body)
    broken[-17] ^= 0x01  # the padding's block changes: refused, and the key leaves the cache
    with pytest.raises(ams.errors.DecryptionError):
        bob.unprotect("CONF.Q", bytes(broken))
    for payload in payloads:
        assert bob.unprotect("CONF.Q", alice.protect("CONF.Q", payload).body).body == payload
    assert bob.stats.rsa_private_operations == 2


def test_chained_decryptor_matches_a_fresh_context_after_any_call() -> None:
    """CbcDecryptor against cbc_decrypt on the same inputs, including after a call that was refused
    (bad padding, a ciphertext of no whole blocks) and after one whose output buffer was too small."""
    import os

    from ams.algorithms import EncryptionAlgorithm
    from ams.hazmat.enveloped import CbcDecryptor, cbc_decrypt, cbc_encrypt

    for algorithm in (EncryptionAlgorithm.AES256, EncryptionAlgorithm.AES128, EncryptionAlgorithm.TDES):
        spec = algorithm.spec
        key = os.urandom(spec.key_size)
        chained = CbcDecryptor(algorithm, spec.factory(key))
        for size in (0, 1, spec.block_size, 100, 3000):
            iv, plaintext = os.urandom(spec.block_size), os.urandom(size)
            ciphertext = bytes(cbc_encrypt(algorithm, key, iv, [plaintext]))
            expected = bytes(cbc_decrypt(algorithm, key, iv, ciphertext, what="x"))
            assert expected == plaintext
            assert bytes(chained.decrypt(iv, ciphertext, what="x", headroom=7)) == plaintext
            pad = spec.block_size - size % spec.block_size
            bad_iv, bad = bytearray(iv), bytearray(ciphertext)
            if len(bad) == spec.block_size:
                bad_iv[-1] ^= pad  # the block before the last one's last byte steers it
            else:
                bad[-1 - spec.block_size] ^= pad
            with pytest.raises(ams.errors.DecryptionError):  # the last byte now decrypts to 0: no padding
                chained.decrypt(bytes(bad_iv), bytes(bad), what="x")
            with pytest.raises(ams.errors.DecryptionError):
                chained.decrypt(iv, ciphertext[:-1], what="x")
            with pytest.raises(ValueError):
                chained.decrypt(iv, ciphertext, what="x", into=memoryview(bytearray(len(ciphertext))))
            assert bytes(chained.decrypt(iv, ciphertext, what="x")) == plaintext
