"""An attacker's review of round four's RecipientInfos layout cache (``ams.hazmat.recipient_layouts``)
and of the implicit-rejection key made in one C call (``ams.keys.unwrap``).

The EnvelopedData reader keeps the layout of the last RecipientInfos SET of each length it read, and
recognises a SET of that length by comparing every byte but the wrapped keys' content. An attacker
chooses every byte of the SET and can make it as long as the one a genuine sender's messages carry,
so the cache is attacked with SETs of the same length and another structure: the recipients in
another order, another recipient of the same length, another key-encryption algorithm of the same
length, wrapped keys whose lengths trade bytes, versions and names changed, and random changes
outside the wrapped keys. Each must read as the strict reader reads it with no cache at all (and as
asn1crypto reads it where the fast reader accepts), a Protector must pick its own RecipientInfo and
key, a tighter recipient limit must hold against a layout read under a looser one, and threads that
read SETs of the same length and different layouts (at different offsets) must never see each
other's.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import padding

import ams
import ams.errors
from ams.algorithms import EncryptionAlgorithm
from ams.hazmat import der, recipient_layouts
from ams.hazmat.certificates import issuer_and_serial
from ams.hazmat.enveloped import (
    EnvelopedContent,
    build_enveloped_data,
    parse_enveloped_data,
    parse_enveloped_data_strictly,
    read_ams_enveloped_data,
)
from ams.hazmat.oids import ID_ENVELOPED_DATA, ID_SIGNED_DATA, RSA_ENCRYPTION
from ams.hazmat.pdmq import V2_SIZE
from ams.keys.keystore import Identity, Keystore
from ams.keys.unwrap import unwrap_content_key
from ams.limits import Limits
from ams.testing.pki import Issued
from tests.conftest import Pki, store
from tests.test_readers_differential import _enveloped, check_enveloped

RSAES_OAEP = "1.2.840.113549.1.1.7"  # as long as rsaEncryption's OID
SHA256_WITH_RSA = "1.2.840.113549.1.1.11"
AES256 = EncryptionAlgorithm.AES256


@pytest.fixture(scope="module")
def twins(pki: Pki) -> tuple[Issued, Issued, Issued]:
    """Three recipients whose issuerAndSerialNumbers are as long as each other (same CA, serials of
    one length), with keys of their own: SETs naming two of them are as long as each other."""
    return tuple(  # type: ignore[return-value]
        pki.issue(f"CN=twin{n},O=AMS,C=GB", serial=0x7EADBEEF00000000000000000000000000000000 + n) for n in (1, 2, 3)
    )


@pytest.fixture(scope="module")
def policies(pki: Pki, twins: tuple[Issued, Issued, Issued]) -> ams.PolicyStore:
    one, two, three = (str(twin.dn) for twin in twins)
    return store(
        f'setmqspl -m QM -p ONE.TWO -s SHA256 -e AES256 -r "{one}" -r "{two}"',
        f'setmqspl -m QM -p TWO.THREE -s SHA256 -e AES256 -r "{two}" -r "{three}"',
        f'setmqspl -m QM -p THREE -s SHA256 -e AES256 -r "{one}" -r "{two}" -r "{pki.dn("bob")}"',
    )


def _reader(pki: Pki, twin: Issued, policies: ams.PolicyStore, **options: object) -> ams.Protector:
    others = [pki.ca.certificate, pki.issued("alice").certificate]
    keystore = Keystore(Identity(twin.certificate, twin.key), others, source=f"{twin.dn}'s keystore")
    return ams.Protector(keystore, policies, **options)  # type: ignore[arg-type]


def _set_of(blob: bytes) -> tuple[int, int]:
    """Where the RecipientInfos SET's content lies in an EnvelopedData ContentInfo."""
    start, stop = der.content_bounds(memoryview(blob), der.oid(ID_ENVELOPED_DATA))
    return der.expect(blob, start + 3, stop, der.SET)


@pytest.fixture
def no_layouts_kept() -> Iterator[None]:
    """The readers' layout caches empty for one test, then as they were: the caches are module
    state, and a test that ran before may have left a layout of the lengths this one reads."""
    caches: list[dict[int, Any]] = [recipient_layouts.LAYOUTS, recipient_layouts.ENVELOPES]
    saved = [dict(cache) for cache in caches]
    for cache in caches:
        cache.clear()
    yield
    for cache, kept in zip(caches, saved, strict=True):
        cache.clear()
        cache.update(kept)


@pytest.mark.usefixtures("no_layouts_kept")
def test_a_protector_picks_its_own_recipient_whatever_layout_was_read_last(
    pki: Pki, twins: tuple[Issued, Issued, Issued], policies: ams.PolicyStore
) -> None:
    """Messages to (twin1, twin2) and (twin2, twin3): SETs of one length, twin2 first in one and
    second in the other. Each read with the other's layout kept: every twin reads the messages
    for it with its own RecipientInfo and key (the wrong one would not unwrap: implicit rejection
    refuses it), and is told it is not a recipient of the other. The caches start empty (whatever
    ran before), so the first message is read with no layout kept."""
    alice = ams.Protector(pki.keystore("alice", extra=twins), policies)
    readers = [_reader(pki, twin, policies) for twin in twins]
    payloads = {queue: queue.ljust(9).encode() * 50 for queue in ("ONE.TWO", "TWO.THREE")}  # one length
    messages = {queue: alice.protect(queue, payload).body for queue, payload in payloads.items()}
    blobs = {queue: message[V2_SIZE:] for queue, message in messages.items()}
    rids = {queue: parse_enveloped_data_strictly(blob).recipient_ids for queue, blob in blobs.items()}
    assert rids["ONE.TWO"][1] == rids["TWO.THREE"][0]  # twin2 at another index
    assert len({len(blob) for blob in blobs.values()}) == 1 and len(set(map(_set_length, blobs.values()))) == 1
    assert _kept_rids(blobs["ONE.TWO"]) == []
    for queue in ["ONE.TWO", "TWO.THREE"] * 3:
        kept = _kept_rids(blobs[queue])
        for twin, reader in zip((1, 2, 3), readers, strict=True):
            if str(twin) in {"ONE.TWO": "12", "TWO.THREE": "23"}[queue]:
                assert reader.unprotect(queue, messages[queue]).body == payloads[queue]
            else:
                with pytest.raises(ams.errors.NotARecipientError):
                    reader.unprotect(queue, messages[queue])
        other = "TWO.THREE" if queue == "ONE.TWO" else "ONE.TWO"
        assert all(found == rids[other] for found in kept)  # each read with the other's layouts kept
    assert _kept_rids(blobs["TWO.THREE"]) and set(_kept_rids(blobs["TWO.THREE"])) == {rids["TWO.THREE"]}


def _set_length(blob: bytes) -> int:
    start, stop = _set_of(blob)
    return stop - start


def _kept_rids(blob: bytes) -> list[tuple[bytes, ...]]:
    """The recipients of each layout the reader keeps for a blob of this one's lengths: the SET's
    and, since the crypto4 branch's ad9b004, the whole EnvelopedData's."""
    kept = [recipient_layouts.LAYOUTS.get(_set_length(blob))]
    envelopes = getattr(recipient_layouts, "ENVELOPES", {})
    kept.append(envelopes.get(len(blob)))
    return [layout.rids for layout in kept if layout is not None]


# -- SETs of one length, another structure ----------------------------------------------------------------


def _info(rid: bytes, key: bytes, algorithm: bytes | None = None, version: bytes = b"\x02\x01\x00") -> bytes:
    """A KeyTransRecipientInfo: ``version``, ``rid``, the key-encryption algorithm, the wrapped key."""
    algorithm = algorithm if algorithm is not None else der.algorithm_identifier(RSA_ENCRYPTION)
    return der.tlv(der.SEQUENCE, version + rid + algorithm + der.tlv(der.OCTET_STRING, key))


def _blob(
    infos: list[bytes],
    ciphertext: bytes = bytes(64),
    *,
    content_type: str = ID_SIGNED_DATA,
    cipher: str = AES256.spec.oid,
    iv: bytes = bytes(16),
    tag: int = 0x80,
) -> bytes:
    """An EnvelopedData ContentInfo with these RecipientInfos and (by default) an AES-256 content."""
    algorithm = der.tlv(der.SEQUENCE, der.oid(cipher) + der.tlv(der.OCTET_STRING, iv))
    content = der.tlv(der.SEQUENCE, der.oid(content_type) + algorithm + der.tlv(tag, ciphertext))
    enveloped = der.tlv(der.SEQUENCE, b"\x02\x01\x00" + der.tlv(der.SET, b"".join(infos)) + content)
    return der.tlv(der.SEQUENCE, der.oid(ID_ENVELOPED_DATA) + der.tlv(0xA0, enveloped))


def _rids(pki: Pki, twins: tuple[Issued, Issued, Issued]) -> tuple[bytes, bytes]:
    return issuer_and_serial(twins[0].certificate), issuer_and_serial(twins[1].certificate)


def _keys(*sizes: int) -> list[bytes]:
    return [os.urandom(size) for size in sizes]


def _same_length_variants(
    pki: Pki, twins: tuple[Issued, Issued, Issued]
) -> Iterator[tuple[str, list[bytes], list[bytes]]]:
    """(what, the SET whose layout is kept, a SET of the same length that differs outside the keys)."""
    one, two = _rids(pki, twins)
    k = _keys(300, 300)
    genuine = [_info(one, k[0]), _info(two, k[1])]
    yield "the recipients swapped", genuine, [_info(two, k[0]), _info(one, k[1])]
    yield "another recipient, as long", genuine, [_info(one, k[0]), _info(one, k[1])]
    for oid in (RSAES_OAEP, SHA256_WITH_RSA):
        yield f"key encryption {oid}", genuine, [_info(one, k[0], der.algorithm_identifier(oid)), genuine[1]]
    empty_octets = der.tlv(der.SEQUENCE, der.oid(RSA_ENCRYPTION) + b"\x04\x00")
    yield "parameters an empty OCTET STRING, not NULL", genuine, [_info(one, k[0], empty_octets), genuine[1]]
    traded = _keys(301, 299)
    yield "the wrapped keys trade a byte", genuine, [_info(one, traded[0]), _info(two, traded[1])]
    yield "version 2", genuine, [_info(one, k[0], version=b"\x02\x01\x02"), genuine[1]]
    yield "the issuer's name changed", genuine, [_info(one.replace(b"Test CA", b"Test CB"), k[0]), genuine[1]]
    # one wrapped key 256 bytes, the other 344: moved between the two RecipientInfos
    moved = _keys(256, 344)
    yield (
        "key lengths swapped",
        [_info(one, moved[0]), _info(two, moved[1])],
        [_info(one, moved[1]), _info(two, moved[0])],
    )


def _check_with_layout_of(kept: bytes, changed: bytes) -> bool:
    """``changed`` read with ``kept``'s layout in the cache: as the strict reader reads it (and asn1crypto
    where the fast reader accepts it); True when the fast reader accepted it."""
    assert read_ams_enveloped_data(kept) is not None
    rids = parse_enveloped_data_strictly(kept).recipient_ids
    assert set(_kept_rids(kept)) == {rids}  # the caches hold ``kept``'s layout
    return check_enveloped(changed)


def test_a_set_of_the_same_length_and_another_structure_reads_as_the_strict_reader_reads_it(
    pki: Pki, twins: tuple[Issued, Issued, Issued]
) -> None:
    """Each variant (same SET length, checked) read with the genuine layout kept: the strict
    reader's value or verdict, never the layout's rids."""
    for what, kept, changed in _same_length_variants(pki, twins):
        kept_blob, changed_blob = _blob(kept), _blob(changed)
        kept_set, changed_set = _set_of(kept_blob), _set_of(changed_blob)
        assert kept_set[1] - kept_set[0] == changed_set[1] - changed_set[0], what
        _check_with_layout_of(kept_blob, changed_blob)
        fast = read_ams_enveloped_data(changed_blob)
        if fast is not None:
            assert fast.recipient_ids == parse_enveloped_data_strictly(changed_blob).recipient_ids, what


def test_an_envelope_of_the_same_length_and_another_framing_reads_as_the_strict_reader_reads_it(
    pki: Pki, twins: tuple[Issued, Issued, Issued]
) -> None:
    """The same RecipientInfos, an EnvelopedData of the same length around them that differs outside
    the IV and the ciphertext (its content type, cipher, IV length, the content's tag), read with
    the genuine one's layouts kept (the whole EnvelopedData's too, on h-crypto4): the strict
    reader's value or verdict, the cipher and IV of the message read."""
    one, two, _ = (issuer_and_serial(twin.certificate) for twin in twins)
    infos = [_info(one, os.urandom(256)), _info(two, os.urandom(256))]
    genuine = _blob(infos)
    variants = {
        "content type id-data": _blob(infos, content_type="1.2.840.113549.1.7.1"),
        "AES-128, as long an OID": _blob(infos, cipher=EncryptionAlgorithm.AES128.spec.oid),
        "an 8-byte IV, 8 more bytes of content": _blob(infos, bytes(72), iv=bytes(8)),
        "3DES, a shorter OID and IV": _blob(infos, bytes(73), cipher=EncryptionAlgorithm.TDES.spec.oid, iv=bytes(8)),
        "the content constructed": _blob(infos, tag=0xA0),
        "the IV changed, a value never compared": _blob(infos, iv=os.urandom(16)),
    }
    for what, changed in variants.items():
        assert len(changed) == len(genuine), what
        accepted = _check_with_layout_of(genuine, changed)  # the strict reader's value or verdict
        fast = read_ams_enveloped_data(changed)
        assert accepted == (fast is not None), what
        if fast is not None:
            strict = parse_enveloped_data_strictly(changed)
            assert (fast.algorithm, fast.iv, fast.content_type) == (strict.algorithm, strict.iv, strict.content_type)
    assert _check_with_layout_of(genuine, variants["the IV changed, a value never compared"])


def test_random_changes_outside_the_wrapped_keys_never_borrow_the_kept_layout(
    pki: Pki, twins: tuple[Issued, Issued, Issued]
) -> None:
    """Two to six bytes of a genuine three-recipient SET changed outside the wrapped keys (the bytes
    the layout compares), the genuine layout kept before each read: the strict reader's answer."""
    bob = pki.issued("bob").certificate
    recipients = [twins[0].certificate, twins[1].certificate, bob]
    parts, _ = build_enveloped_data(recipients, AES256, ID_SIGNED_DATA, [b"x" * 100])
    genuine = b"".join(bytes(part) for part in parts)
    start, stop = _set_of(genuine)
    read_ams_enveloped_data(genuine)
    layout = recipient_layouts.LAYOUTS[stop - start]
    compared = [start + offset + n for offset, segment in layout.segments for n in range(len(segment))]
    rng = random.Random(20261206)
    verdicts = []
    for _ in range(400):
        changed = bytearray(genuine)
        for at in rng.sample(compared, rng.randint(2, 6)):
            changed[at] = rng.randrange(256)
        verdicts.append(_check_with_layout_of(genuine, bytes(changed)))
    assert 0 < sum(verdicts) < len(verdicts)  # changed SETs the fast reader read, and ones it declined


def test_a_tighter_recipient_limit_holds_against_a_layout_read_under_a_looser_one(
    pki: Pki, twins: tuple[Issued, Issued, Issued], policies: ams.PolicyStore
) -> None:
    """A three-recipient message read (its layout kept) by a reader allowing 1,024, then by one
    allowing two: refused by the second as the strict reader refuses it, each time."""
    alice = ams.Protector(pki.keystore("alice", extra=twins), policies)
    message = alice.protect("THREE", b"three recipients").body
    loose, tight = _reader(pki, twins[0], policies), _reader(pki, twins[0], policies, limits=Limits(recipients=2))
    with pytest.raises(ams.errors.AmsError) as strict:
        parse_enveloped_data_strictly(message[V2_SIZE:], limits=Limits(recipients=2))
    for _ in range(2):
        assert loose.unprotect("THREE", message).body == b"three recipients"
        assert read_ams_enveloped_data(message[V2_SIZE:], limits=Limits(recipients=2)) is None
        with pytest.raises(ams.errors.AmsError) as refused:
            tight.unprotect("THREE", message)
        assert type(refused.value) is type(strict.value) and str(refused.value) == str(strict.value)


def test_threads_reading_sets_of_one_length_never_see_each_others_layout(
    pki: Pki, twins: tuple[Issued, Issued, Issued], policies: ams.PolicyStore
) -> None:
    """Three threads, each reading its own message over and over: (twin1, twin2) and (twin2, twin3)
    in small messages of one length, and (twin2, twin3) in one over 64 KiB (its SET at another
    offset), the interpreter switching threads as often as it can. Every read gives that message's
    recipients, their positions and keys."""
    alice = ams.Protector(pki.keystore("alice", extra=twins), policies)
    blobs = [
        alice.protect("ONE.TWO", b"small").body[V2_SIZE:],
        alice.protect("TWO.THREE", b"SMALL").body[V2_SIZE:],
        alice.protect("TWO.THREE", bytes(70_000)).body[V2_SIZE:],
    ]
    assert len(blobs[0]) == len(blobs[1]) and blobs[0][:300] != blobs[1][:300]  # one length, two layouts
    assert _set_of(blobs[0])[0] != _set_of(blobs[2])[0]  # the SETs start at different offsets
    expected = [_facts(parse_enveloped_data_strictly(blob)) for blob in blobs]
    wrong: list[int] = []

    def read(index: int) -> None:
        for _ in range(2000):
            found = parse_enveloped_data(blobs[index])
            if _facts(found) != expected[index]:
                wrong.append(index)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=read, args=(index,)) for index in range(len(blobs))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert wrong == []


def _facts(found: EnvelopedContent) -> tuple[object, ...]:
    return (found.recipient_ids, found.rests, _enveloped(found))


# -- implicit rejection: the same synthetic key as before the change ----------------------------------------


def _old_unwrap(identity: Identity, wrapped: bytes, size: int) -> tuple[bytes, bool]:
    """``unwrap_content_key`` as it was written before round four (hmac.new, a PKCS1v15 per call)."""
    synthetic = hmac.new(identity.rejection_secret, b"ams-implicit-rejection" + wrapped, hashlib.sha256).digest()
    try:
        key = identity.private_key.decrypt(wrapped, padding.PKCS1v15())
    except Exception:
        return synthetic[:size], False
    if len(key) != size:
        return synthetic[:size], False
    return key, True


def test_the_implicit_rejection_key_is_the_one_the_old_formula_gave(pki: Pki) -> None:
    """Garbage blocks, blocks of the wrong size, well-padded keys of the wrong length and genuine
    keys, for every key size AMS uses: the same key and flag as before; another identity's secret
    gives another key."""
    bob = pki.issued("bob")
    identity, other = Identity(bob.certificate, bob.key), Identity(bob.certificate, bob.key)
    public = bob.certificate.public_key()
    for size in (8, 16, 24, 32):
        cases = [os.urandom(256), os.urandom(255), b"", bytes(256)]
        cases += [public.encrypt(os.urandom(n), padding.PKCS1v15()) for n in (size - 1, size, size + 1, 0)]  # type: ignore[union-attr]
        for wrapped in cases:
            found = unwrap_content_key(identity, wrapped, size)
            assert found == _old_unwrap(identity, wrapped, size)
            assert len(found[0]) == size
            if not found[1]:
                assert unwrap_content_key(other, wrapped, size)[0] != found[0]
