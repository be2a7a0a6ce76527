"""An attacker's review of round four's large privacy path (``ams._privacy_direct``), continued
from ``test_direct_path_review.py`` (its references and messages are used here):

1. **no unwritten byte**: an accepted message's ``bytes`` (made full of a canary) is the payload on
   every path, at sizes around the 64 KiB threshold and every block alignment, for 1, 3 and 10
   recipients, and for payloads of a few hundred bytes behind a 70 KB trailer (where the result,
   the head and the tail meet within a few blocks), where random changes of the plaintext get
   every reference's verdict too;
2. **no residue**: after a refusal on each road (the payload in place, judged whole, the buffered
   fallback, an authentic message from a signer the policy does not authorise) no object the
   interpreter can reach holds a byte of the payload.
"""

from __future__ import annotations

import functools
import gc
import os
import random
from collections.abc import Iterator

import attrs
import pytest
from cryptography import x509

import ams
import ams._privacy_direct
from ams.algorithms import SignatureAlgorithm
from ams.hazmat import der
from ams.hazmat.buffers import fresh_bytes
from ams.hazmat.enveloped import parse_enveloped_data
from ams.hazmat.pdmq import V2_SIZE, PdmqHeader
from ams.hazmat.signed import SignedDataWriter, read_ams_signed_head
from tests.conftest import Pki
from tests.security.test_direct_path_review import DIRECT, HEAD, SIZE, Known, _all_paths, _flip, _outcome
from tests.security.test_direct_path_review import alice as alice
from tests.security.test_direct_path_review import others as others
from tests.security.test_direct_path_review import policies as policies
from tests.security.test_direct_path_review import readers as readers
from tests.security.test_direct_privacy_attacks import Sealer

# -- 1. every byte of an accepted result is the payload's -----------------------------------------------


def _threshold(alice: ams.Protector, queue: str) -> int:
    """The smallest payload whose ciphertext takes the direct path."""
    low, high = DIRECT - 4096, DIRECT
    while low < high:
        middle = (low + high) // 2
        envelope = parse_enveloped_data(alice.protect(queue, bytes(middle)).body[V2_SIZE:])
        low, high = (middle + 1, high) if len(envelope.ciphertext) < DIRECT else (low, middle)
    return low


@pytest.mark.parametrize("queue", ["PRIV.Q", "PRIV128.Q", "3DES.Q", "THREE.Q", "TEN.Q"])
def test_an_accepted_result_is_the_payload_at_every_size_and_alignment(
    alice: ams.Protector, readers: dict[str, ams.Protector], queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Payloads at the threshold and at n*16-1, n*16, n*16+1 for several n (each ``bytes`` made
    full of a random canary): the payload, as every reference reads it; the direct path's result
    is the object it made; a changed twin is refused and its object zeroed."""
    made: list[bytes] = []

    def canary_bytes(size: int) -> tuple[bytes, memoryview] | None:
        found = fresh_bytes(size)
        assert found is not None
        found[1][:] = random.Random(size).randbytes(size)
        made.append(found[0])
        return found

    threshold = _threshold(alice, queue)
    sizes = [threshold - 1, threshold, threshold + 1]
    sizes += [n * 16 + d for n in (4096, 4097, 4104, 65536) for d in (-1, 0, 1)]
    rng = random.Random(queue)
    for size in sizes:
        payload = rng.randbytes(size)
        message = alice.protect(queue, payload).body
        monkeypatch.setattr(ams._privacy_direct, "fresh_bytes", canary_bytes)
        made.clear()
        outcome = _outcome(functools.partial(readers["direct"].unprotect, queue, message))
        monkeypatch.undo()
        assert outcome[0] == "accepted" and outcome[2] == payload, size
        direct = len(parse_enveloped_data(message[V2_SIZE:]).ciphertext) >= DIRECT
        assert len(made) == direct and (not direct or made[0] == payload), size
        assert _all_paths(readers, queue, message)[2] == payload
        if direct:
            monkeypatch.setattr(ams._privacy_direct, "fresh_bytes", canary_bytes)
            made.clear()
            refused = _outcome(functools.partial(readers["direct"].unprotect, queue, _flip(message, -60)))
            monkeypatch.undo()
            assert refused[0] == "refused" and made[0] == bytes(size), size


@pytest.fixture(scope="module")
def large_trailer(pki: Pki) -> Sealer:
    """A sealer for bob whose signer's certificate carries 70 KB of extension (issued by the CA bob
    trusts): a payload of a few hundred bytes behind it takes the direct path."""
    extension = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), bytes(70_000))
    signer = pki.issue("CN=large certificate,O=AMS,C=GB", key=pki.spare_key, extensions=[(extension, False)])
    sealer = Sealer(pki, "PRIV.Q")
    sealer.writer = SignedDataWriter(signer.certificate, signer.key, SignatureAlgorithm.SHA256)
    return sealer


def test_a_small_payload_behind_a_large_trailer_is_every_byte_written(
    large_trailer: Sealer, readers: dict[str, ams.Protector], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The result, head and tail meet within a few blocks of ``HEAD``: every payload size from where
    the direct path starts to past ``HEAD`` plus three blocks is the payload (the result made full
    of a canary first), as every reference reads it; a changed twin refused on every path alike."""
    made: list[bytes] = []

    def canary_bytes(size: int) -> tuple[bytes, memoryview] | None:
        found = fresh_bytes(size)
        assert found is not None
        found[1][:] = bytes([0xA5]) * size
        made.append(found[0])
        return found

    taken = 0
    for size in range(HEAD - 90, HEAD + 3 * 16 + 2):
        payload = random.Random(size).randbytes(size)
        message = large_trailer.seal(large_trailer.plaintext(payload), size)
        monkeypatch.setattr(ams._privacy_direct, "fresh_bytes", canary_bytes)
        made.clear()
        direct = _outcome(functools.partial(readers["direct"].unprotect, "PRIV.Q", message))
        monkeypatch.undo()
        assert direct[0] == "accepted" and direct[2] == payload, size
        assert made == [] or made == [payload], size
        taken += len(made)
        assert _all_paths(readers, "PRIV.Q", message)[2] == payload
        assert _all_paths(readers, "PRIV.Q", _flip(message, -300))[0] == "refused"
    assert taken > 40, taken  # the direct path read most of them


def test_random_changes_where_result_head_and_tail_meet_get_every_references_verdict(
    large_trailer: Sealer, readers: dict[str, ams.Protector]
) -> None:
    """Plaintexts the attacker encrypts, behind the large trailer: a byte changed in the framing,
    around the payload's end, in the trailer or near the padding, a few bytes cut, or origSize off
    by a block or a byte: the same verdict, error and diagnostic on every path."""
    rng = random.Random(20261206)
    verdicts = []
    for _ in range(int(os.environ.get("AMS_REVIEW_EXAMPLES", "40")) * 3):
        size = rng.randint(100, 400)
        plaintext = bytearray(large_trailer.plaintext(rng.randbytes(size)))
        _, _, start, stop = read_ams_signed_head(memoryview(bytes(plaintext)), 0, len(plaintext))
        region = rng.choice([(0, start), (stop - 40, stop + 40), (stop, stop + 200), (len(plaintext) - 300, None)])
        orig_size = size + rng.choice([0, 0, 0, -17, -16, -1, 1, 16, 17])
        if region[1] is None and rng.random() < 0.5:
            del plaintext[-rng.randint(1, 40) :]
        else:
            plaintext[rng.randrange(region[0], region[1] or len(plaintext))] ^= rng.randrange(1, 256)
        verdicts.append(_all_paths(readers, "PRIV.Q", large_trailer.seal(bytes(plaintext), orig_size))[0])
    assert verdicts.count("refused") > len(verdicts) * 0.9  # (a version 1 made 3 would read alike everywhere)


# -- 2. after a refusal, nothing the interpreter can reach holds the payload ---------------------------


def _reachable_holders(needles: list[bytes]) -> dict[bytes, list[str]]:
    """For each of ``needles``, the bytes-like objects that hold it and are reachable from an object
    the collector tracks (through the objects it does not track, such as tuples of bytes); ctypes
    arrays and other buffers included."""
    found: dict[bytes, list[str]] = {}
    seen = {id(needle) for needle in needles} | {id(needles)}
    pending = gc.get_objects()
    while pending:
        current = pending.pop()
        for value in gc.get_referents(current):
            if id(value) in seen:
                continue
            seen.add(id(value))
            content = _buffer_content(value)
            for needle in needles if content is not None else ():
                if needle in content:  # type: ignore[operator]
                    found.setdefault(needle, []).append(f"{type(value).__name__} in a {type(current).__name__}")
            if content is None and not gc.is_tracked(value):
                pending.append(value)
    return found


def _buffer_content(value: object) -> bytes | None:
    """The bytes of a buffer (bytes, bytearray, a view, a ctypes array); None for anything else."""
    if isinstance(value, str | int | float | type) or value is None:
        return None
    try:
        with memoryview(value) as view:  # type: ignore[arg-type]
            return view.tobytes()
    except (TypeError, ValueError):  # not a buffer, or a released view
        return None


def _sealed_refusals(pki: Pki, mark: bytes) -> Iterator[tuple[str, str, bytes]]:
    """(road, queue, message) for each road a refusal takes, its payload ``mark`` repeated."""
    known = Known.of(pki, "PRIV.Q", mark * (SIZE // len(mark)))
    sealer, plaintext, size = known.sealer, known.plaintext, len(known.payload)
    yield "the signature, payload in place", "PRIV.Q", _flip(known.message, -40)
    yield "the padding, judged whole", "PRIV.Q", _flip(known.message, -known.block - 1, 0x10)
    trailer = plaintext[: known.stop] + b"\x05\x00" + plaintext[known.stop :]
    yield "a trailer of another shape, judged whole", "PRIV.Q", sealer.seal(trailer, size)
    yield "origSize, the fallback", "PRIV.Q", sealer.seal(plaintext, size + 1)
    yield "a framing not AMS's, the fallback", "PRIV.Q", sealer.seal(der.tlv(der.SEQUENCE, plaintext[:-1]), size)
    yield "an unauthorised signer, authentic", "CAROL.ONLY", _relabelled(known.message, "CAROL.ONLY")


def _relabelled(message: bytes, queue: str) -> bytes:
    header = PdmqHeader.unpack(message)
    packed = attrs.evolve(header, name=queue).pack()
    return packed + message[len(packed) :]


def test_a_refusal_leaves_no_byte_of_the_payload_reachable(pki: Pki, policies: ams.PolicyStore) -> None:
    """The error, the Protector, its kept buffer, the readers' caches, any frame: after a refusal on
    each road no reachable object holds its payload (a mark made at run time for each road, so that
    no constant of the test holds it; the messages are made first, and their makers let go). The
    twin: an accepted payload is found."""
    bob = ams.Protector(pki.keystore("bob"), policies)
    marks = [os.urandom(24).hex().encode() for _ in range(6)]
    refusals = [list(_sealed_refusals(pki, mark))[index] for index, mark in enumerate(marks)]
    needles = [mark * 2 for mark in marks]
    gc.collect()
    assert _reachable_holders(needles) == {}  # the messages themselves hold no plaintext
    for road, queue, message in refusals:
        assert _outcome(functools.partial(bob.unprotect, queue, message))[0] == "refused", road
    found = _reachable_holders(needles)
    assert found == {}, {refusals[needles.index(needle)][0]: where for needle, where in found.items()}
    accepted = bob.unprotect("PRIV.Q", Known.of(pki, "PRIV.Q", marks[0] * (SIZE // 48)).message)
    assert accepted.body.count(marks[0]) == SIZE // 48
    assert needles[0] in _reachable_holders(needles)
