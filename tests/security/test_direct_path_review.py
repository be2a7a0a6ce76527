"""An attacker's review of round four's large privacy path (``ams._privacy_direct``): the framing
decrypted and read first, the payload decrypted straight into the ``bytes`` returned, the rest into
a tail buffer; anything else judged by the buffered reader on the same bytes. This file: the
oracles; ``test_direct_path_results.py``: what an accepted message returns and a refused one leaves.

Three references read every message beside the path under test: ``unprotect_into`` (the caller's
buffer), the allocating call as it was before the change (``open_privacy`` into a fresh buffer:
``DIRECT_FROM`` raised out of reach), and the direct path's own fallback (``fresh_bytes`` gives
nothing, so every message is judged in the kept buffer). An attacker with a genuine message and
no key can change any ciphertext block (CBC: a block garbled, the next one's bits flipped at will),
cut or add blocks, and change the PDMQ header; anyone with the receiver's certificate can encrypt
any plaintext for it. For each such message the same error (class, text, arguments, attributes,
context, the frames it was raised through, the local diagnostic) on every path and for every
region changed, each of the direct path's roads reached (in place, judged whole, the fallback);
no log line, and over a queue the same log line and error-queue entry; every ciphertext byte
decrypted exactly once whichever way the framing read; Bleichenbacher's probes on the fallback.
"""

from __future__ import annotations

import functools
import os
import random
import struct
import warnings
from collections.abc import Callable, Iterator

import attrs
import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives.ciphers import Cipher, CipherAlgorithm, modes

import ams
import ams._privacy_direct
import ams._protector_state
import ams._unprotecting
import ams.errors
import ams.hazmat.cbc
from ams.hazmat import der
from ams.hazmat.enveloped import parse_enveloped_data
from ams.hazmat.pdmq import V2_SIZE, PdmqHeader
from ams.hazmat.signed import read_ams_signed_head
from ams.mq import MQMD, ProtectedQueueManager
from ams.mq.protected import ERROR_QUEUE
from ams.testing.pki import Issued
from tests.conftest import Pki, store
from tests.mq_transports import Factory
from tests.security.test_direct_privacy_attacks import Sealer

DIRECT = ams._protector_state.DIRECT_FROM
HEAD = ams._privacy_direct.HEAD
SIZE = DIRECT + 4099  # a payload whose ciphertext takes the direct path


@pytest.fixture(scope="module")
def others(pki: Pki) -> list[Issued]:
    """Seven more recipients (one spare key: only their certificates matter), for ten in all."""
    return [pki.issue(f"CN=recipient{n},O=AMS,C=GB", key=pki.spare_key) for n in range(7)]


@pytest.fixture(scope="module")
def policies(pki: Pki, others: list[Issued]) -> ams.PolicyStore:
    bob, carol, dave = (pki.dn(name) for name in ("bob", "carol", "dave"))
    ten = " ".join(f'-r "{dn}"' for dn in [bob, carol, dave, *(str(o.dn) for o in others)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 3DES is deprecated: still read, written with an opt-in
        return store(
            f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "{bob}"',
            f'setmqspl -m QM -p PRIV128.Q -s SHA512 -e AES128 -r "{bob}"',
            f'setmqspl -m QM -p 3DES.Q -s SHA256 -e 3DES -r "{bob}"',
            f'setmqspl -m QM -p THREE.Q -s SHA256 -e AES256 -r "{bob}" -r "{carol}" -r "{dave}"',
            f"setmqspl -m QM -p TEN.Q -s SHA384 -e AES128 {ten}",
            f'setmqspl -m QM -p CAROL.ONLY -s SHA256 -e AES256 -r "{bob}" -a "{carol}"',
        )


@pytest.fixture(scope="module")
def alice(pki: Pki, policies: ams.PolicyStore, others: list[Issued]) -> ams.Protector:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ams.Protector(pki.keystore("alice", extra=others), policies, allow_deprecated=True)


@pytest.fixture(scope="module")
def readers(pki: Pki, policies: ams.PolicyStore) -> dict[str, ams.Protector]:
    """bob four times, each Protector with its own kept buffer: diagnostics on, so the step is compared too."""
    return {
        name: ams.Protector(pki.keystore("bob"), policies, diagnose_decryption=True)
        for name in ("direct", "into", "before", "fallback")
    }


Action = Callable[[], ams.Unprotected | ams.UnprotectedView]


def _error_facts(error: BaseException, frames: bool) -> tuple[object, ...]:
    """Everything an error shows: class, text, args, attributes, chained exceptions, notes, and
    (``frames``) the functions its traceback runs through."""
    names = []
    trace = error.__traceback__
    while frames and trace is not None:
        names.append(trace.tb_frame.f_code.co_name)
        trace = trace.tb_next
    return (
        type(error).__qualname__,
        str(error),
        error.args,
        sorted((key, repr(value)) for key, value in vars(error).items()),
        error.__cause__,
        error.__context__,
        error.__suppress_context__,
        getattr(error, "__notes__", None),
        names,
    )


def _outcome(action: Action, frames: bool = True) -> tuple[object, ...]:
    try:
        result = action()
    except ams.AmsError as error:
        return ("refused", *_error_facts(error, frames))
    facts = (result.format, result.qop, result.signer, result.signature_algorithm, result.encryption_algorithm)
    return ("accepted", type(result.body).__name__, bytes(result.body), *facts, result.header)


def _no_direct_bytes(size: int) -> None:
    """``fresh_bytes`` where the interpreter offers no such object: the direct path falls back."""
    return None


def _all_paths(readers: dict[str, ams.Protector], queue: str, message: bytes) -> tuple[object, ...]:
    """The outcome of ``message`` on the direct path, which each reference must give too."""
    direct = _outcome(functools.partial(readers["direct"].unprotect, queue, message))
    into = _outcome(lambda: readers["into"].unprotect_into(queue, message, bytearray(len(message))), frames=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ams._unprotecting, "DIRECT_FROM", 1 << 62)  # the allocating call before the change
        before = _outcome(functools.partial(readers["before"].unprotect, queue, message))
        patch.setattr(ams._unprotecting, "DIRECT_FROM", DIRECT)
        patch.setattr(ams._privacy_direct, "fresh_bytes", _no_direct_bytes)  # the direct path's fallback
        fallback = _outcome(functools.partial(readers["fallback"].unprotect, queue, message))
    assert direct == before == fallback
    if direct[0] == "accepted":
        assert direct[1] == "bytes" and into[2:] == direct[2:]
    else:
        assert into[:-1] == direct[:-1]  # the frames differ only by the public function called
    return direct


# -- the messages an attacker makes -------------------------------------------------------------------


@attrs.frozen
class Known:
    """A message sealed with a known content key, and where its plaintext's parts lie."""

    sealer: Sealer
    payload: bytes
    plaintext: bytes
    message: bytes
    start: int  # the payload's first byte in the plaintext
    stop: int  # the byte after its last
    middle: int  # where the direct path's tail buffer starts

    @classmethod
    def of(cls, pki: Pki, queue: str, payload: bytes) -> Known:
        sealer = Sealer(pki, queue)
        plaintext = sealer.plaintext(payload)
        _, _, start, stop = read_ams_signed_head(memoryview(plaintext), 0, len(plaintext))
        block = sealer.algorithm.spec.block_size
        middle = stop - (block - 1)
        return cls(
            sealer, payload, plaintext, sealer.seal(plaintext, len(payload)), start, stop, middle - middle % block
        )

    @property
    def block(self) -> int:
        return self.sealer.algorithm.spec.block_size

    def ciphertext_at(self) -> int:
        envelope = parse_enveloped_data(self.message[V2_SIZE:])
        return len(self.message) - len(envelope.ciphertext)


def _flip(message: bytes, at: int, xor: int = 0x41) -> bytes:
    changed = bytearray(message)
    changed[at] ^= xor
    return bytes(changed)


def _ciphertext_changed(known: Known) -> Iterator[tuple[str, bytes]]:
    """A byte of each region: the IV, every block of the framing, the blocks around each boundary
    (head and result, result and tail, the payload's end), the padding's blocks; and the padding
    oracle's probes (the next to last block's last byte, which flips the padding byte at will)."""
    at, block, message = known.ciphertext_at(), known.block, known.message
    blocks = (len(message) - at) // block
    iv_at = message.rindex(parse_enveloped_data(message[V2_SIZE:]).iv, 0, at)
    yield "IV first byte", _flip(message, iv_at)
    yield "IV last byte", _flip(message, iv_at + block - 1)
    regions = {f"head block {n}": n for n in range(HEAD // block + 1)}
    regions["last block into the result"] = known.middle // block - 1
    regions["first tail block"] = known.middle // block
    regions["block with the payload's last byte"] = (known.stop - 1) // block
    regions["block after the payload"] = known.stop // block
    regions["next to last block"] = blocks - 2
    regions["last block"] = blocks - 1
    for what, index in regions.items():
        for offset in (0, block - 1):
            yield f"{what} ({index}/{blocks}) byte {offset}", _flip(message, at + index * block + offset)
    for xor in range(1, 33):  # a padding oracle's probes: some give a valid padding of another length
        yield f"padding probe {xor}", _flip(message, len(message) - block - 1, xor)


def _reframed(message: bytes, ciphertext: bytes, orig_size: int | None = None) -> bytes:
    """``message`` with its encrypted content replaced (the DER lengths around it made right) and,
    when given, another origSize in its PDMQ header."""
    info = cms.ContentInfo.load(message[V2_SIZE:])
    info["content"]["encrypted_content_info"]["encrypted_content"] = ciphertext
    header = PdmqHeader.unpack(message)
    if orig_size is not None:
        header = attrs.evolve(header, orig_size=orig_size)
    return header.pack() + bytes(info.dump(force=True))


def _resized(known: Known) -> Iterator[tuple[str, bytes]]:
    """Whole blocks cut or added, and origSize changed in the clear header."""
    envelope = parse_enveloped_data(known.message[V2_SIZE:])
    ciphertext, block, size = bytes(envelope.ciphertext), known.block, len(known.payload)
    yield "one block cut", _reframed(known.message, ciphertext[:-block])
    yield "two blocks cut", _reframed(known.message, ciphertext[: -2 * block])
    yield "a random block added", _reframed(known.message, ciphertext + os.urandom(block))
    yield "the last block repeated", _reframed(known.message, ciphertext + ciphertext[-block:])
    for delta in (-16, -1, 1, 16):
        yield f"origSize {delta:+d}", _reframed(known.message, ciphertext, size + delta)


def _framings(known: Known) -> Iterator[tuple[str, bytes, int]]:
    """Plaintexts the attacker encrypts for the receiver: (what, plaintext, origSize). Each signature
    is genuine where it can be (the attacker may hold any sender's key): only the framing is wrong."""
    plaintext, payload, size = known.plaintext, known.payload, len(known.payload)
    set_stop = der.expect(plaintext, 3, len(plaintext), der.SET)[1]
    head, trailer = plaintext[:set_stop], plaintext[known.stop :]

    def encap(econtent: bytes) -> bytes:
        return der.tlv(der.SEQUENCE, der.oid("1.2.840.113549.1.7.1") + der.tlv(0xA0, econtent))

    octets = der.tlv(der.OCTET_STRING, payload)
    yield "eContent constructed (definite)", head + encap(der.tlv(0x24, octets)) + trailer, size
    indefinite = b"\x24\x80" + octets + b"\x00\x00"
    yield "eContent constructed (indefinite)", head + encap(indefinite) + trailer, size
    inner = der.oid("1.2.840.113549.1.7.1") + der.tlv(0xA0, octets)
    yield "encapContentInfo indefinite", head + b"\x30\x80" + inner + b"\x00\x00" + trailer, size
    for delta in (-16, -1, 1, 16):  # a genuine SignedData of another size: only origSize tells
        other = known.sealer.plaintext(payload[:delta] if delta < 0 else payload + bytes(delta))
        yield f"eContent {delta:+d} bytes against origSize", other, size
    yield "no trailer", plaintext[: known.stop], size
    yield "the trailer twice", plaintext + trailer, size


def _refusals(pki: Pki, queue: str) -> Iterator[tuple[str, bytes]]:
    known = Known.of(pki, queue, random.Random(queue).randbytes(SIZE))
    yield from _ciphertext_changed(known)
    yield from _resized(known)
    for what, plaintext, size in _framings(known):
        yield what, known.sealer.seal(plaintext, size)


@pytest.mark.parametrize("queue", ["PRIV.Q", "3DES.Q"])
def test_every_tampering_gets_one_error_on_every_path(
    pki: Pki, readers: dict[str, ams.Protector], queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Every region, every resize, every reframing: refused on all four paths with the same error
    (its class, text, attributes and frames), one text per ciphertext size, and no log line."""
    caplog.set_level("DEBUG")
    texts: dict[int, set[str]] = {}
    roads = set()
    for what, message in _refusals(pki, queue):
        roads.add(_road(readers["direct"], queue, message))
        outcome = _all_paths(readers, queue, message)
        assert outcome[:2] == ("refused", "DecryptionError"), what
        size = len(parse_enveloped_data(message[V2_SIZE:]).ciphertext)
        texts.setdefault(size, set()).add(str(outcome[2]))
    assert all(len(found) == 1 for found in texts.values()), texts
    assert caplog.records == []
    assert roads == {"the fallback", "judged whole", "in place"}  # the changes reach every road
    known = Known.of(pki, queue, b"the genuine twin" * (SIZE // 16))
    assert _all_paths(readers, queue, known.message)[0] == "accepted"


def _road(reader: ams.Protector, queue: str, message: bytes) -> str:
    """Which road the direct path took for ``message``: the buffered fallback (the framing did not
    read), the whole plaintext judged in the kept buffer (the tail did not read), or in place."""
    taken = []
    framing, whole = ams._privacy_direct._framing, ams._privacy_direct._Split._judged_whole

    def recorded_framing(*args: object) -> object:
        found = framing(*args)  # type: ignore[arg-type]
        taken.append("in place" if found is not None else "the fallback")
        return found

    def recorded_whole(*args: object) -> object:
        taken.append("judged whole")
        return whole(*args)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ams._privacy_direct, "_framing", recorded_framing)
        patch.setattr(ams._privacy_direct._Split, "_judged_whole", recorded_whole)
        _outcome(functools.partial(reader.unprotect, queue, message))
    return taken[-1] if taken else "not the direct path"


def test_over_a_queue_every_road_is_refused_alike(
    connections: Factory, pki: Pki, policies: ams.PolicyStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Through a protected queue on every transport, as the attacker sees it: a message changed so
    that the direct path takes each road goes to the error queue with reason 2063, with the same
    error and the same log line but for its MsgId; the genuine twin behind them is delivered."""
    known = Known.of(pki, "PRIV.Q", os.urandom(SIZE))
    at, block = known.ciphertext_at(), known.block
    bodies = {
        "the fallback": _flip(known.message, at + block),
        "judged whole": _flip(known.message, len(known.message) - block - 1, 0x10),
        "in place": _flip(known.message, at + 2 * HEAD),
    }
    assert {road: _road(ams.Protector(pki.keystore("bob"), policies), "PRIV.Q", b) for road, b in bodies.items()} == {
        road: road for road in bodies
    }
    attacker = connections("mallory")
    for body in [*bodies.values(), known.message]:
        attacker.put1("PRIV.Q", MQMD(format=" " * 8), body)
    queue = ProtectedQueueManager(connections("bob"), pki.keystore("bob"), policies).open("PRIV.Q", input=True)
    caplog.set_level("DEBUG")
    refused = []
    for _ in bodies:
        with pytest.raises(ams.errors.DecryptionError) as error:
            queue.get()
        refused.append((str(error.value), error.value.__notes__))
    assert queue.get().body == known.payload
    assert len(set(map(repr, refused))) == 1
    lines = {record.getMessage().replace(str(record.args[0]), "MSGID") for record in caplog.records}  # type: ignore[index]
    assert len(caplog.records) == len(bodies) and len(lines) == 1, lines
    dead = attacker.open(ERROR_QUEUE, input=True)
    for body in bodies.values():
        moved = dead.get()
        order = "<i" if moved.md.encoding == 546 else ">i"
        assert struct.unpack(order, moved.body[8:12]) == (2063,) and moved.body.endswith(body)


def test_an_rsa_block_that_unwraps_to_another_key_and_one_that_does_not_unwrap_take_one_road(
    pki: Pki, readers: dict[str, ams.Protector]
) -> None:
    """Bleichenbacher's probes on the new path: a wrapped key changed (implicit rejection: a key
    derived from the block) and a genuine wrap of another key (what a conformant probe gives) both
    decrypt the content to garbage, take the fallback (never a road that depends on the key being
    right) and are refused alike; the genuine wrap of the right key takes the direct road."""
    known = Known.of(pki, "PRIV.Q", os.urandom(SIZE))
    other = Known.of(pki, "PRIV.Q", known.payload)  # the same plaintext under another content key
    _, stop = parse_enveloped_data(known.message[V2_SIZE:]).rests[0]
    key_at = V2_SIZE + stop - 256
    assert other.message[:key_at] != known.message[:key_at] or other.message[key_at:] != known.message[key_at:]
    probes = {
        "a changed block": _flip(known.message, key_at + 100),
        "another key": known.message[:key_at] + other.message[key_at : key_at + 256] + known.message[key_at + 256 :],
    }
    outcomes = set()
    for what, message in probes.items():
        assert _road(readers["direct"], "PRIV.Q", message) == "the fallback", what
        outcomes.add(_all_paths(readers, "PRIV.Q", message)[:3])
    assert len(outcomes) == 1 and next(iter(outcomes))[:2] == ("refused", "DecryptionError")
    assert _road(readers["direct"], "PRIV.Q", known.message) == "in place"


class _Counted:
    """cryptography's Cipher, counting every byte its decryptors are given."""

    decrypted = 0

    def __init__(self, algorithm: CipherAlgorithm, mode: modes.CBC) -> None:
        self.cipher = Cipher(algorithm, mode)

    def decryptor(self) -> _Counted:
        self.context = self.cipher.decryptor()
        return self

    def update_into(self, data: bytes | memoryview, out: memoryview) -> int:
        _Counted.decrypted += len(data)
        return self.context.update_into(data, out)

    def finalize(self) -> bytes:
        return self.context.finalize()


def test_each_ciphertext_byte_is_decrypted_once_whichever_way_the_framing_reads(
    pki: Pki, readers: dict[str, ams.Protector], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No second decryption when the framing reads and the rest does not (or the reverse): the
    work a tampered message costs does not double on what its decrypted bytes say."""
    known = Known.of(pki, "PRIV.Q", os.urandom(SIZE))
    cases = [*_ciphertext_changed(known), *_resized(known), ("genuine", known.message)]
    monkeypatch.setattr(ams._privacy_direct, "Cipher", _Counted)
    monkeypatch.setattr(ams.hazmat.cbc, "Cipher", _Counted)
    for what, message in cases:
        _Counted.decrypted = 0
        size = len(parse_enveloped_data(message[V2_SIZE:]).ciphertext)
        _outcome(functools.partial(readers["direct"].unprotect, "PRIV.Q", message))
        assert _Counted.decrypted == size, what
