"""The receive path's fast readers and caches, tried as an attacker who knows exactly how they work.

The shapes AMS writes are read by specialised readers (SignedData, EnvelopedData, the PDMQ
header, the signed attributes, a SignedData "trailer" template), and what a receiver learned
from earlier messages is kept (parsed certificates and what was checked about them, a reused
confidentiality key, recipient identifiers already found well formed). Each is attacked here:
a specialised reader must decline or agree with the strict one on every structural edit of a
genuine message; nothing but an ``ams.AmsError`` escapes; what a cache keeps is bounded in
bytes and holds no view of a message; no decrypted byte teaches a cache anything; a memo never
lets a later message skip a check under a different rule; ``unprotect_into`` leaves nothing of a
refused message behind. And an error about a message that is not protected never quotes its
bytes.
"""

from __future__ import annotations

import datetime
import gc
import os
import struct
import threading
import tracemalloc
from collections.abc import Callable, Iterator

import pytest

import ams
import ams.errors
from ams.algorithms import EncryptionAlgorithm
from ams.hazmat import der, signed
from ams.hazmat.certificates import issuer_and_serial
from ams.hazmat.enveloped import parse_enveloped_data
from ams.hazmat.oids import ID_CONTENT_TYPE, ID_DATA, ID_ENVELOPED_DATA, ID_SIGNED_DATA, RSA_ENCRYPTION
from ams.hazmat.pdmq import PdmqHeader
from ams.mqconstants import MQFMT_NONE
from tests.conftest import Pki, store
from tests.test_readers_differential import check_enveloped, check_pdmq, check_signed, check_signed_attributes

SECRET = b"PIN=4921; account 12345678; pay 1,000.00 GBP to sort code 40-11-62; memo: Q3 settlement"
SHA256 = der.algorithm_identifier("2.16.840.1.101.3.4.2.1")
AES256 = EncryptionAlgorithm.AES256.spec.oid


@pytest.fixture(scope="module")
def policies(pki: Pki) -> ams.PolicyStore:
    three = " ".join(f'-r "{pki.dn(name)}"' for name in ("carol", "bob", "dave"))
    return store(
        "setmqspl -m QM -p INT.Q -s SHA256",
        f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "{pki.dn("bob")}"',
        f"setmqspl -m QM -p PRIV3.Q -s SHA512 -e AES128 {three}",
        f'setmqspl -m QM -p CONF.Q -e AES128 -r "{pki.dn("bob")}" -c 100',
        f'setmqspl -m QM -p LOOSE.Q -s SHA256 -a "{pki.dn("alice").upper()}"',
    )


@pytest.fixture(scope="module")
def alice(pki: Pki, policies: ams.PolicyStore) -> ams.Protector:
    return ams.Protector(pki.keystore("alice"), policies)


def _bob(pki: Pki, policies: ams.PolicyStore, **options: object) -> ams.Protector:
    return ams.Protector(pki.keystore("bob"), policies, **options)  # type: ignore[arg-type]


def _refusal(action: Callable[..., object], *args: object, **options: object) -> ams.AmsError:
    """The AmsError ``action(*args, **options)`` raises; anything else (or acceptance) fails the test."""
    try:
        action(*args, **options)
    except ams.AmsError as error:
        return error
    raise AssertionError("the message was accepted")


# -- 1. only AmsError escapes: a RecipientInfo that ends inside its encryptedKey's length -------------


def _envelope(rid: bytes, rest: bytes, inner_type: str) -> bytes:
    """A ContentInfo(envelopedData) with one RecipientInfo (``rid``, then ``rest`` as it is) and AES256."""
    info = der.tlv(der.SEQUENCE, der.integer(0) + rid + rest)
    cipher = der.algorithm_identifier(AES256, der.tlv(der.OCTET_STRING, bytes(16)))
    eci = der.tlv(der.SEQUENCE, der.oid(inner_type) + cipher + der.tlv(der.CONTEXT_0_PRIMITIVE, bytes(32)))
    enveloped = der.tlv(der.SEQUENCE, der.integer(0) + der.tlv(der.SET, info) + eci)
    return der.tlv(der.SEQUENCE, der.oid(ID_ENVELOPED_DATA) + der.tlv(der.CONTEXT_0_CONSTRUCTED, enveloped))


CUT_KEYS = [b"\x04\x82", b"\x04\x82\x01", b"\x04\x83\x00\x01", b"\x04"]


@pytest.mark.parametrize("cut", CUT_KEYS, ids=lambda cut: cut.hex())
def test_a_recipient_info_ending_inside_its_key_length_is_malformed(
    pki: Pki, policies: ams.PolicyStore, cut: bytes
) -> None:
    """The fast path of ``wrapped_key`` read the two length octets after ``04 82`` without checking
    they were there: an IndexError escaped ``unprotect`` for a RecipientInfo naming the receiver."""
    rid = issuer_and_serial(pki.issued("bob").certificate)
    rest = der.algorithm_identifier(RSA_ENCRYPTION) + cut
    hazmat = _refusal(lambda: parse_enveloped_data(_envelope(rid, rest, ID_DATA)).wrapped_key(0))
    assert isinstance(hazmat, ams.errors.MalformedMessageError)
    privacy = PdmqHeader(ams.QoP.PRIVACY, 5, "MQSTR", "PRIV.Q").pack() + _envelope(rid, rest, ID_SIGNED_DATA)
    key_block = _envelope(rid, rest, ID_DATA)
    confidential = (
        PdmqHeader(
            ams.QoP.CONFIDENTIALITY,
            5,
            "MQSTR",
            "CONF.Q",
            key_block_size=len(key_block),
            iv_block_size=16,
            enc_block_size=16,
        ).pack()
        + key_block
        + bytes(32)
    )
    bob = _bob(pki, policies)
    for queue, message in (("PRIV.Q", privacy), ("CONF.Q", confidential)):
        assert isinstance(_refusal(bob.unprotect, queue, message), ams.errors.MalformedMessageError)
        into = _refusal(bob.unprotect_into, queue, message, bytearray(len(message)))
        assert isinstance(into, ams.errors.MalformedMessageError)


# -- 2. what the caches keep: bounded in bytes, and no view of a message -----------------------------


def _retained(action: Callable[[], None]) -> int:
    """The bytes still allocated after ``action`` (and a garbage collection), against before it."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        action()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def _hostile_integrity(filler: bytes, serial: int) -> bytes:
    """An integrity message of AMS's shape whose "certificate" is ``filler`` in a SEQUENCE."""
    sid = der.tlv(der.SEQUENCE, der.tlv(der.SEQUENCE, b"") + der.integer(serial))
    info = der.tlv(
        der.SEQUENCE,
        der.integer(1)
        + sid
        + SHA256
        + der.tlv(der.CONTEXT_0_CONSTRUCTED, der.tlv(der.SEQUENCE, b""))
        + der.algorithm_identifier(RSA_ENCRYPTION)
        + der.tlv(der.OCTET_STRING, bytes(256)),
    )
    encap = der.tlv(der.SEQUENCE, der.oid(ID_DATA) + der.tlv(0xA0, der.tlv(der.OCTET_STRING, b"x")))
    certificates = der.tlv(der.CONTEXT_0_CONSTRUCTED, der.tlv(der.SEQUENCE, filler))
    body = der.integer(1) + der.tlv(der.SET, SHA256) + encap + certificates + der.tlv(der.SET, info)
    blob = der.tlv(der.SEQUENCE, der.oid(ID_SIGNED_DATA) + der.tlv(0xA0, der.tlv(der.SEQUENCE, body)))
    return PdmqHeader(ams.QoP.INTEGRITY, 1, "MQSTR", "INT.Q").pack() + blob


def test_the_trailer_templates_keep_no_large_trailer(pki: Pki, policies: ams.PolicyStore) -> None:
    """Each template was kept whatever its size: 64 messages of distinct lengths with a large
    "certificate" pinned 64 times that size in a module-global, for as long as the process ran."""
    bob = _bob(pki, policies)
    size, count = 128 * 1024, 24
    messages = [_hostile_integrity(bytes(size + index), index + 1) for index in range(count)]
    assert signed.read_ams_signed_data(messages[0][104:], wrapped=True, templates=False) is not None

    def receive_all() -> None:
        for message in messages:
            _refusal(bob.unprotect, "INT.Q", message)

    kept = _retained(receive_all)
    assert kept < 2 * size, f"{kept} bytes kept after {count} hostile messages of {size} bytes"


def test_a_template_holds_no_view_of_the_message(alice: ams.Protector, pki: Pki, policies: ams.PolicyStore) -> None:
    """A template kept its SignerInfo's signed attributes as a view of the message: the caller's
    buffer stayed exported (it could not be resized: BufferError) and alive after the call."""
    bob = _bob(pki, policies)
    for size in (10, 10_000):
        buffer = bytearray(alice.protect("INT.Q", os.urandom(size)).body)
        assert bob.unprotect("INT.Q", memoryview(buffer)).body
        assert bob.unprotect_into("INT.Q", memoryview(buffer), bytearray(len(buffer))).body
        buffer.extend(b"more")  # BufferError while a cache holds a view of it
        del buffer[-4:]


def _hostile_privacy(count: int, size: int, serial: int) -> bytes:
    """A privacy message for ``count`` recipients (none of them this receiver) with large issuers."""
    infos = b""
    for index in range(count):
        issuer = der.tlv(der.SEQUENCE, bytes(size + index))
        rid = der.tlv(der.SEQUENCE, issuer + der.integer(serial * 1000 + index + 1))
        rest = der.algorithm_identifier(RSA_ENCRYPTION) + der.tlv(der.OCTET_STRING, bytes(256))
        infos += der.tlv(der.SEQUENCE, der.integer(0) + rid + rest)
    cipher = der.algorithm_identifier(AES256, der.tlv(der.OCTET_STRING, bytes(16)))
    eci = der.tlv(der.SEQUENCE, der.oid(ID_SIGNED_DATA) + cipher + der.tlv(der.CONTEXT_0_PRIMITIVE, bytes(32)))
    enveloped = der.tlv(der.SEQUENCE, der.integer(0) + der.tlv(der.SET, infos) + eci)
    blob = der.tlv(der.SEQUENCE, der.oid(ID_ENVELOPED_DATA) + der.tlv(0xA0, enveloped))
    return PdmqHeader(ams.QoP.PRIVACY, 5, "MQSTR", "PRIV.Q").pack() + blob


def test_the_checked_recipient_ids_keep_no_large_rid(pki: Pki, policies: ams.PolicyStore) -> None:
    """Every well-formed issuerAndSerialNumber was remembered, up to 4,096 of them of any size:
    a sender could pin 4,096 times its largest message in the receiver's memory."""
    bob = _bob(pki, policies)
    size = 32 * 1024
    messages = [_hostile_privacy(8, size, serial) for serial in range(12)]  # 3 MiB of rids in all

    def receive_all() -> None:
        for message in messages:
            assert isinstance(_refusal(bob.unprotect, "PRIV.Q", message), ams.errors.NotARecipientError)

    kept = _retained(receive_all)
    assert kept < 4 * size, f"{kept} bytes kept after 96 recipient ids of {size} bytes"


def test_decrypted_bytes_teach_no_template(alice: ams.Protector, pki: Pki, policies: ams.PolicyStore) -> None:
    """No receiver state may depend on decrypted bytes (beyond the signer-certificate cache): the
    SignedData inside a privacy message is read without the templates, accepted or not."""
    bob = _bob(pki, policies)
    message = alice.protect("PRIV.Q", SECRET).body
    tampered = bytearray(message)
    tampered[-40] ^= 0x01
    signed._TRAILERS.clear()
    assert bob.unprotect("PRIV.Q", message).body == SECRET
    assert isinstance(_refusal(lambda: bob.unprotect("PRIV.Q", bytes(tampered))), ams.errors.DecryptionError)
    assert bob.unprotect_into("PRIV.Q", message, bytearray(len(message))).body == SECRET
    assert signed._TRAILERS == {}
    assert bob.unprotect("INT.Q", alice.protect("INT.Q", SECRET)).body == SECRET
    assert len(signed._TRAILERS) == 1  # the assertion above can fail: a signed-only message does teach one


# -- 3. memos keyed by bytes or identity never skip a check under a different rule -------------------


def test_the_authorised_signer_memo_follows_the_dn_rule(
    alice: ams.Protector, pki: Pki, policies: ams.PolicyStore
) -> None:
    """The memo "this certificate matched this list" ignored ``strict_dn``: a signer accepted under
    the loose rule stayed accepted after the verifier was made strict."""
    message = alice.protect("LOOSE.Q", SECRET).body
    assert isinstance(
        _refusal(lambda: _bob(pki, policies, strict_dn=True).unprotect("LOOSE.Q", message)),
        ams.errors.UnauthorisedSignerError,
    )
    bob = _bob(pki, policies)
    assert bob.unprotect("LOOSE.Q", message).body == SECRET  # the loose rule: case differs
    bob.verifier.strict_dn = True
    assert isinstance(_refusal(lambda: bob.unprotect("LOOSE.Q", message)), ams.errors.UnauthorisedSignerError)


def test_the_authorised_signer_memo_follows_a_changed_list(
    alice: ams.Protector, pki: Pki, policies: ams.PolicyStore
) -> None:
    """A Policy is frozen, but a list given as its signers is not: the memo keyed by the list's
    identity kept authorising a signer the list no longer named."""
    message = alice.protect("INT.Q", SECRET).body
    signers = [ams.DistinguishedName.parse(pki.dn("alice"))]
    policy = ams.Policy("INT.Q", signature_algorithm=ams.SignatureAlgorithm.SHA256, signers=signers)  # type: ignore[arg-type]
    bob = _bob(pki, policies)
    assert bob.unprotect("INT.Q", message, policy=policy).body == SECRET
    signers[0] = ams.DistinguishedName.parse(pki.dn("carol"))
    assert isinstance(
        _refusal(lambda: bob.unprotect("INT.Q", message, policy=policy)), ams.errors.UnauthorisedSignerError
    )


def test_cached_facts_never_skip_dates_another_policy_or_a_cipher_rule(
    alice: ams.Protector, pki: Pki, policies: ams.PolicyStore
) -> None:
    bob = _bob(pki, policies)
    integrity = alice.protect("INT.Q", SECRET).body
    assert bob.unprotect("INT.Q", integrity).body == SECRET  # the certificate, its chain, usage: learned
    expired = pki.issued("alice").certificate.not_valid_after_utc + datetime.timedelta(days=2)
    assert isinstance(
        _refusal(lambda: bob.unprotect("INT.Q", integrity, at=expired)), ams.errors.CertificateValidityError
    )
    carol_only = ams.Policy.from_setmqspl(f'setmqspl -m QM -p INT.Q -s SHA256 -a "{pki.dn("carol")}"')
    alice_only = ams.Policy.from_setmqspl(f'setmqspl -m QM -p INT.Q -s SHA256 -a "{pki.dn("alice")}"')
    assert bob.unprotect("INT.Q", integrity, policy=alice_only).body == SECRET
    refused = _refusal(lambda: bob.unprotect("INT.Q", integrity, policy=carol_only))
    assert isinstance(refused, ams.errors.UnauthorisedSignerError)
    # a confidentiality key reused: the next message with its key block still meets the policy's cipher rule
    first, second = (alice.protect("CONF.Q", SECRET).body for _ in range(2))
    size = PdmqHeader.unpack(first).key_block_size
    assert first[112 : 112 + size] == second[112 : 112 + size]  # the same key block
    assert bob.unprotect("CONF.Q", first).body == SECRET
    stronger = ams.Policy.from_setmqspl(f'setmqspl -m QM -p CONF.Q -e AES256 -r "{pki.dn("bob")}" -c 100')
    assert isinstance(
        _refusal(lambda: bob.unprotect("CONF.Q", second, policy=stronger)), ams.errors.AlgorithmTooWeakError
    )
    assert bob.unprotect("CONF.Q", second).body == SECRET


# -- 4. unprotect_into: nothing of a refused message stays, nothing stale is handed back --------------


def test_unprotect_into_with_a_cached_key_zeroes_a_refused_message(
    alice: ams.Protector, pki: Pki, policies: ams.PolicyStore
) -> None:
    bob = _bob(pki, policies)
    long, short = os.urandom(3000), b"short one"
    messages = [alice.protect("CONF.Q", payload).body for payload in (long, short, SECRET)]
    buffer = bytearray(b"\xaa" * (len(messages[0]) + 32))
    assert bytes(bob.unprotect_into("CONF.Q", messages[0], buffer).body) == long
    view = bob.unprotect_into("CONF.Q", messages[1], buffer).body  # the key is cached now
    assert bytes(view) == short and len(view) == len(short) and view.obj is buffer
    with pytest.raises(IndexError):
        view[len(short)]  # the stale bytes of the long message after it are not part of the view
    tampered = bytearray(messages[2])
    tampered[-1] ^= 0x01  # the padding: decrypted into the buffer with the cached key, then refused
    assert isinstance(
        _refusal(lambda: bob.unprotect_into("CONF.Q", bytes(tampered), buffer)), ams.errors.DecryptionError
    )
    assert buffer[: len(tampered)] == bytes(len(tampered))
    assert SECRET[:8] not in buffer


# -- 5. a specialised reader declines or agrees with the strict one, on every structural edit ---------

Node = tuple[int, "bytes | list[Node]"]


def _tree(data: bytes) -> list[Node]:
    nodes: list[Node] = []
    offset = 0
    while offset < len(data):
        tag, start, size = der.read_header(data, offset)
        content = data[start : start + size]
        nodes.append((tag, _tree(content) if tag & 0x20 else content))
        offset = start + size
    return nodes


def _child(node: Node, *path: int) -> Node:
    for index in path:
        content = node[1]
        assert isinstance(content, list)
        node = content[index]
    return node


def _encode(nodes: list[Node], path: tuple[int, ...] = (), edit: tuple[tuple[int, ...], str] | None = None) -> bytes:
    out = b""
    for index, (tag, content) in enumerate(nodes):
        here = (*path, index)
        inner = _encode(content, here, edit) if isinstance(content, list) else content
        kind = edit[1] if edit is not None and edit[0] == here else ""
        if kind == "pad-integer" and tag == der.INTEGER and inner and inner[0] < 0x80:
            inner = b"\x00" + inner
        if kind.startswith("cut-") and isinstance(content, list) and content:  # end inside the last child's header
            last = _encode(content[-1:], (*here, len(content) - 1))
            inner = inner[: len(inner) - len(last)] + last[: min(int(kind[-1]), len(last) - 1)]
        if kind == "tag":
            tag ^= 0x01
        if kind == "non-minimal-length":
            length = (b"\x81" + bytes((len(inner),))) if len(inner) < 0x80 else b"\x83" + len(inner).to_bytes(3, "big")
        elif kind == "non-minimal-82" and len(inner) < 0x100:
            length = b"\x82" + len(inner).to_bytes(2, "big")
        elif kind == "indefinite" and tag & 0x20:
            length, inner = b"\x80", inner + b"\x00\x00"
        else:
            length = der.length(len(inner))
        out += bytes((tag,)) + length + inner
        if kind == "trailing":
            out += der.NULL
    return out


EDITS = (
    "pad-integer",
    "cut-1",
    "cut-2",
    "cut-3",
    "tag",
    "non-minimal-length",
    "non-minimal-82",
    "indefinite",
    "trailing",
)


def _paths(nodes: list[Node], path: tuple[int, ...] = ()) -> Iterator[tuple[int, ...]]:
    for index, (_, content) in enumerate(nodes):
        yield (*path, index)
        if isinstance(content, list):
            yield from _paths(content, (*path, index))


def _mutants(data: bytes) -> Iterator[bytes]:
    tree = _tree(data)
    assert _encode(tree) == data
    for path in _paths(tree):
        for kind in EDITS:
            mutant = _encode(tree, edit=(path, kind))
            if mutant != data:
                yield mutant
    yield data + b"\x00"
    yield data[:-1]


def test_every_structural_edit_of_a_signed_data_is_declined_or_agreed(alice: ams.Protector) -> None:
    blob = alice.protect("INT.Q", SECRET).body[104:]
    bare = _encode([_child(_tree(blob)[0], 1, 0)])  # the SignedData in the ContentInfo's [0]
    check_signed(blob, wrapped=True)  # teaches the template the mutants of its length meet
    accepted = total = 0
    for wrapped, data in ((True, blob), (False, bare)):
        for mutant in _mutants(data):
            total += 1
            accepted += check_signed(mutant, wrapped=wrapped, third=False)
    assert total > 500 and accepted > 0  # the sweep reached the fast reader, which accepted some edits


@pytest.mark.parametrize("queue", ["PRIV.Q", "PRIV3.Q", "CONF.Q"])
def test_every_structural_edit_of_an_enveloped_data_is_declined_or_agreed(alice: ams.Protector, queue: str) -> None:
    body = alice.protect(queue, SECRET).body
    if queue == "CONF.Q":
        header = PdmqHeader.unpack(body)
        blob = body[112 : 112 + header.key_block_size]
    else:
        blob = body[104:]
    accepted = 0
    for mutant in _mutants(blob):
        accepted += check_enveloped(mutant, third=False)
    assert accepted > 0


def _attributes(time: bytes, digest: bytes, content_type: str = ID_DATA) -> list[bytes]:
    def attribute(oid: str, value: bytes) -> bytes:
        return der.tlv(der.SEQUENCE, der.oid(oid) + der.tlv(der.SET, value))

    return [
        attribute(ID_CONTENT_TYPE, der.oid(content_type)),
        attribute("1.2.840.113549.1.9.5", time),
        attribute("1.2.840.113549.1.9.4", digest),
    ]


def test_signed_attributes_of_the_fixed_length_but_another_shape_are_read_strictly() -> None:
    """The fixed layouts match everything but the time's and digest's content octets: a set of the
    same length with a duplicate, another order, another contentType or other tags is read (and
    judged) by the strict reader."""
    utc, digest = der.tlv(0x17, b"250101000000Z"), der.tlv(der.OCTET_STRING, bytes(32))
    genuine = _attributes(utc, digest)
    cases = [
        genuine,
        [genuine[0], genuine[2], genuine[1]],
        _attributes(utc, digest, ID_SIGNED_DATA),  # an OID of the same length
        _attributes(der.tlv(der.OCTET_STRING, b"250101000000Z"), digest),
        _attributes(utc, der.tlv(0x0C, bytes(32))),
        _attributes(der.tlv(0x18, b"250101000000Z"), der.tlv(der.OCTET_STRING, bytes(31))),
        [genuine[0], genuine[1], genuine[2].replace(der.oid("1.2.840.113549.1.9.4"), der.oid(ID_CONTENT_TYPE))],
        [genuine[0], genuine[0], genuine[2]],
        genuine[:2],
    ]
    for case in cases:
        check_signed_attributes(memoryview(b"".join(case)))


def test_every_byte_of_a_pdmq_header_is_read_alike_by_both_readers() -> None:
    """The one-pass PDMQ reader (and its cache of headers by their bytes) against the field-by-field one."""
    genuine = [
        PdmqHeader(ams.QoP.INTEGRITY, 5, "MQSTR", "INT.Q").pack(),
        PdmqHeader(ams.QoP.PRIVACY, 70000, "MQSTR", "PRIV.Q", empty=True, encoding=2).pack(),
        PdmqHeader(
            ams.QoP.CONFIDENTIALITY, 9, "", "C", key_reuse=True, key_block_size=300, iv_block_size=16, enc_block_size=16
        ).pack(),
    ]
    for header in genuine:
        for data in (header, header[:-1], header + b"tail"):
            check_pdmq(data)
        for offset in range(len(header)):
            for value in {0x00, 0x01, 0x02, 0x03, 0x20, 0x7F, 0x80, 0xFF, header[offset] ^ 0x01}:
                check_pdmq(header[:offset] + bytes((value,)) + header[offset + 1 :])


# -- 6. module-global state under concurrent Protectors: perf only, never a wrong result --------------


def test_concurrent_protectors_read_every_message_right(pki: Pki, policies: ams.PolicyStore) -> None:
    senders = {name: ams.Protector(pki.keystore(name), policies) for name in ("alice", "carol")}
    messages = [
        (name, queue, payload, senders[name].protect(queue, payload).body)
        for name in senders
        for queue in ("INT.Q", "PRIV.Q")
        for payload in (b"a" * 50, b"b" * 51, SECRET)
    ]
    failures: list[str] = []

    def receive() -> None:
        bob = _bob(pki, policies)
        for _ in range(4):
            for name, queue, payload, body in messages:
                got = bob.unprotect(queue, body)
                if got.body != payload or got.signer_dn != ams.DistinguishedName.parse(pki.dn(name)):
                    failures.append(f"{queue} from {name}")

    threads = [threading.Thread(target=receive) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


# -- 7. the known finding: an unprotected body is never quoted in an error ----------------------------


def _quotes(text: str) -> list[str]:
    return [piece for piece in ("PIN", "4921", "b'", "\\x", "account") if piece in text]


def _rfh2(struc_id: bytes = b"RFH ", next_format: bytes = b"MQSTR   ") -> bytes:
    folder = b"<usr><k>v</k></usr>    "
    fixed = struct.pack(">4siiii8sii", struc_id, 2, 40 + len(folder), 273, 1208, next_format, 0, 1208)
    return fixed + struct.pack(">i", len(folder)) + folder


def test_an_unprotected_body_is_never_quoted_in_an_error(pki: Pki, policies: ams.PolicyStore) -> None:
    bob = _bob(pki, policies)
    named = PdmqHeader(ams.QoP.INTEGRITY, 5, "MQSTR", "INT.Q").pack()
    cases: list[tuple[bytes, str]] = [
        (SECRET * 2, MQFMT_NONE),  # a blank Format, a payload that is no PDMQ header
        (SECRET, MQFMT_NONE),  # ... and shorter than one
        (SECRET, "MQHRF2"),  # the Format names a header that is not there: the payload starts there
        (_rfh2(next_format=b"\x01PIN=49\x02") + SECRET, "MQHRF2"),  # a Format field that is not text
        (named[:32] + b"PIN=\xff49" + named[40:56] + b"\xff" + SECRET[:47] + SECRET, MQFMT_NONE),
    ]
    for body, fmt in cases:
        error = _refusal(bob.unprotect, "INT.Q", body, fmt, encoding=273)
        assert _quotes(str(error)) == [], str(error)
    reason = str(_refusal(lambda: bob.unprotect("INT.Q", SECRET * 2)))
    assert f"{2 * len(SECRET)}-byte payload" in reason and "'PDMQ'" in reason and "printable" in reason
    assert "shorter than a PDMQ header" in str(_refusal(lambda: bob.unprotect("INT.Q", SECRET[:40])))
    for data in (SECRET + bytes(104), b"\x00\x01\x02\x03" + bytes(104)):
        assert _quotes(str(_refusal(PdmqHeader.unpack, data))) == []
    with pytest.raises(ams.errors.MalformedMessageError, match="StrucId") as caught:
        ams.Protector(pki.keystore("alice"), policies).protect("INT.Q", SECRET, "MQHRF2")
    assert _quotes(str(caught.value)) == []
