"""The specialised readers against the general strict ones, and asn1crypto as a third opinion.

The receive path reads the shapes AMS writes with specialised readers (``read_ams_signed_data``,
``read_ams_enveloped_data``, the PDMQ header in one pass, the signed-attribute layouts, the
SignedData trailer template) and hands anything else to the general strict readers. The rule held
here, on every mutant the fuzzer's mutations make of genuine messages: a specialised reader either
declines (None, or the general path) or gives exactly what the strict reader gives; and what it
accepts, asn1crypto (an independent CMS parser) reads with the same values.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asn1crypto import cms, core
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ams
from ams import _signature
from ams.hazmat import der
from ams.hazmat.enveloped import (
    EnvelopedContent,
    parse_enveloped_data,
    parse_enveloped_data_strictly,
    read_ams_enveloped_data,
)
from ams.hazmat.oids import ID_DATA, ID_ENVELOPED_DATA, ID_SIGNED_DATA
from ams.hazmat.pdmq import V2_SIZE, V3_SIZE, PdmqHeader
from ams.hazmat.signed import (
    SignedContent,
    parse_signed_data,
    parse_signed_data_strictly,
    read_ams_signed_content,
    read_ams_signed_data,
)
from tests.conftest import Pki, store
from tests.security import fuzz

Outcome = tuple[Any, ...]
MUTANTS_PER_SEED = 150  # the deterministic sweep; Hypothesis adds its own below


def _outcome(parse: Callable[[], Any], normal: Callable[[Any], Any]) -> Outcome:
    """A parse's value (normalised to comparable bytes) or its error, as the caller sees it."""
    try:
        return ("value", normal(parse()))
    except ams.AmsError as error:
        return ("error", type(error).__name__, str(error))


def _signed(found: SignedContent) -> tuple[Any, ...]:
    infos = tuple(
        (
            i.version,
            i.issuer,
            i.serial,
            i.key_identifier,
            i.digest_oid,
            None if i.signed_attributes is None else bytes(i.signed_attributes),
            i.signature_oid,
            i.signature,
        )
        for i in found.signer_infos
    )
    return (
        found.version,
        found.digest_algorithm,
        found.digest_oids,
        found.certificates,
        bytes(found.content),
        found.content_offset,
        infos,
    )


def _wrapped_key(found: EnvelopedContent, index: int) -> Outcome:
    return _outcome(lambda: found.wrapped_key(index), bytes)


def _enveloped(found: EnvelopedContent) -> tuple[Any, ...]:
    keys = tuple(_wrapped_key(found, index) for index in range(len(found.recipient_ids)))
    return (found.algorithm, found.content_type, found.iv, bytes(found.ciphertext), found.recipient_ids, keys)


# -- the three opinions on one input ------------------------------------------------------------------


def check_signed(data: bytes | memoryview, wrapped: bool, third: bool = True) -> bool:
    """The readers agree on ``data``; True when the specialised reader accepted it. ``third``: ask
    asn1crypto too (slow: a few milliseconds)."""
    strict = _outcome(lambda: parse_signed_data_strictly(data, wrapped=wrapped), _signed)
    assert _outcome(lambda: parse_signed_data(data, wrapped=wrapped), _signed) == strict
    fast = read_ams_signed_data(data, wrapped=wrapped)
    untaught = read_ams_signed_data(data, wrapped=wrapped, templates=False)  # as decrypted bytes are read
    assert (fast is None) == (untaught is None)
    if fast is None or untaught is None:
        return False
    assert strict == ("value", _signed(fast)) == ("value", _signed(untaught))
    if third:
        _asn1crypto_signed(bytes(data), wrapped, fast)
    for info in fast.signer_infos:
        if info.signed_attributes is not None:
            check_signed_attributes(info.signed_attributes)
    return True


def check_signed_content(inner: bytes) -> bool:
    """The privacy receiver's reader of the decrypted content octets (framed by a SEQUENCE header it
    writes itself) agrees with the strict reader and with :func:`read_ams_signed_data`, which it
    stands for there; True when it accepted ``inner``."""
    head = der.header(der.SEQUENCE, len(inner))
    framed = memoryview(bytearray(head + inner))
    found = read_ams_signed_content(framed, len(head))
    expected = read_ams_signed_data(bytes(framed), wrapped=False, templates=False)
    assert (found is None) == (expected is None)
    if found is None or expected is None:
        return False
    assert _signed(found) == _signed(expected)
    assert ("value", _signed(found)) == _outcome(lambda: parse_signed_data_strictly(framed, wrapped=False), _signed)
    return True


def check_signed_attributes(attributes: memoryview) -> None:
    expected = _outcome(lambda: _signature._signed_attributes_strictly(attributes), tuple)
    assert _outcome(lambda: _signature._signed_attributes(attributes), tuple) == expected


def check_enveloped(data: bytes | memoryview, third: bool = True) -> bool:
    """The readers agree on ``data``; True when the specialised reader accepted it (``third``: as above)."""
    strict = _outcome(lambda: parse_enveloped_data_strictly(data), _enveloped)
    assert _outcome(lambda: parse_enveloped_data(data), _enveloped) == strict
    fast = read_ams_enveloped_data(data)
    if fast is None:
        return False
    assert strict == ("value", _enveloped(fast))
    if third:
        _asn1crypto_enveloped(bytes(data), fast)
    return True


def check_pdmq(data: bytes) -> None:
    fields = lambda header: header  # noqa: E731 - PdmqHeader compares by value
    assert _outcome(lambda: PdmqHeader.unpack(data), fields) == _outcome(
        lambda: PdmqHeader._unpack_checked(data), fields
    )


def _asn1crypto_signed(data: bytes, wrapped: bool, fast: SignedContent) -> None:
    if wrapped:
        info = cms.ContentInfo.load(data, strict=True)
        assert info["content_type"].dotted == ID_SIGNED_DATA
        signed = info["content"]
    else:
        signed = cms.SignedData.load(data, strict=True)
    assert signed["version"].native == f"v{fast.version}"
    assert tuple(a["algorithm"].dotted for a in signed["digest_algorithms"]) == fast.digest_oids
    encap = signed["encap_content_info"]
    assert encap["content_type"].dotted == ID_DATA
    assert encap["content"].native == bytes(fast.content)
    certificates = signed["certificates"]
    found = () if isinstance(certificates, core.Void) else tuple(c.chosen.dump() for c in certificates)
    assert found == fast.certificates
    [theirs] = signed["signer_infos"]
    [ours] = fast.signer_infos
    assert theirs["version"].native == f"v{ours.version}"
    sid = theirs["sid"]
    if ours.issuer is not None:
        assert sid.chosen["issuer"].dump() == ours.issuer
        assert sid.chosen["serial_number"].native == ours.serial
    else:
        assert sid.chosen.native == ours.key_identifier
    assert theirs["digest_algorithm"]["algorithm"].dotted == ours.digest_oid
    assert ours.signed_attributes is not None and theirs["signed_attrs"].contents == bytes(ours.signed_attributes)
    assert theirs["signature_algorithm"]["algorithm"].dotted == ours.signature_oid
    assert theirs["signature"].native == ours.signature


def _asn1crypto_enveloped(data: bytes, fast: EnvelopedContent) -> None:
    keys = [_wrapped_key(fast, index) for index in range(len(fast.recipient_ids))]
    if any(key[0] == "error" for key in keys):
        return  # a RecipientInfo's other fields are read only when used: asn1crypto reads them all
    info = cms.ContentInfo.load(data, strict=True)
    assert info["content_type"].dotted == ID_ENVELOPED_DATA
    enveloped = info["content"]
    assert enveloped["version"].native == "v0"
    assert enveloped["originator_info"].native is None and enveloped["unprotected_attrs"].native is None
    recipients = list(enveloped["recipient_infos"])
    assert len(recipients) == len(fast.recipient_ids)
    for index, recipient in enumerate(recipients):
        assert recipient.name == "ktri"
        assert recipient.chosen["rid"].chosen.dump() == fast.recipient_ids[index]
        assert recipient.chosen["key_encryption_algorithm"]["algorithm"].dotted == "1.2.840.113549.1.1.1"
        assert recipient.chosen["encrypted_key"].native == keys[index][1]
    content = enveloped["encrypted_content_info"]
    assert content["content_type"].dotted == fast.content_type
    assert content["content_encryption_algorithm"]["algorithm"].dotted == fast.algorithm.spec.oid
    assert content["content_encryption_algorithm"]["parameters"].native == fast.iv
    assert content["encrypted_content"].native == bytes(fast.ciphertext)


# -- the inputs: genuine messages of every shape, and the fuzzer's mutants of them ---------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> fuzz.World:
    return fuzz.World(tmp_path_factory.mktemp("differential"))


@pytest.fixture(scope="module")
def seeds(world: fuzz.World, pki: Pki) -> list[fuzz.Seed[Any]]:
    """The fuzzer's message seeds, and messages of every digest and cipher AMS defines."""
    found: list[fuzz.Seed[Any]] = list(fuzz.message_seeds(world))
    lines = [f"setmqspl -m QM -p I.{d} -s {d}" for d in ("MD5", "SHA1", "SHA256", "SHA384", "SHA512")]
    recipients = " ".join(f'-r "{pki.dn(name)}"' for name in ("bob", "carol"))
    lines += [f"setmqspl -m QM -p P.{c} -s SHA256 -e {c} {recipients}" for c in ("RC2", "DES", "3DES", "AES128")]
    lines += [f"setmqspl -m QM -p C.{c} -e {c} {recipients} -c 5" for c in ("DES", "3DES", "AES128", "AES256")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        policies = store(*lines)
        alice = ams.Protector(pki.keystore("alice"), policies, allow_deprecated=True)
        for line in lines:
            queue = line.split(" -p ")[1].split()[0]
            for payload in (b"", b"x", bytes(range(256)) * 3):
                data = alice.protect(queue, payload).body
                blob = V3_SIZE if queue.startswith("C.") else V2_SIZE
                regions = ((blob, len(data), 0.7), (0, len(data), 0.3))
                context = fuzz.Message(queue, "        ", payload, policies[queue].qop, queue.startswith("C."))
                found.append(fuzz.Seed(f"{queue}/{len(payload)}", data, context, regions, fuzz.der_offsets(data, blob)))
    return found


def _parts(seed: fuzz.Seed[Any], data: bytes) -> Iterator[tuple[str, bytes]]:
    """The structures one message holds, cut where the genuine message has them."""
    offset = seed.context.pdmq_offset
    yield "pdmq", data[offset:]
    qop = seed.context.qop
    if qop is ams.QoP.CONFIDENTIALITY:
        key_block = PdmqHeader.unpack(seed.data[offset:]).key_block_size
        yield "enveloped", data[offset + V3_SIZE : offset + V3_SIZE + key_block]
    elif qop is ams.QoP.PRIVACY:
        yield "enveloped", data[offset + V2_SIZE :]
    else:
        yield "signed", data[offset + V2_SIZE :]


def check_message(seed: fuzz.Seed[Any], data: bytes, inner: bytes | None = None, third: bool = True) -> int:
    """Every reader pair on every structure of ``data``; how many the specialised readers accepted."""
    accepted = 0
    for kind, part in _parts(seed, data):
        if kind == "pdmq":
            check_pdmq(part)
        elif kind == "signed":
            accepted += check_signed(part, wrapped=True, third=third)
        else:
            accepted += check_enveloped(part, third=third)
    if inner is not None:  # a privacy plaintext: the SignedData content octets, as the receiver frames them
        framed = der.header(der.SEQUENCE, len(inner)) + inner
        accepted += check_signed(framed, wrapped=False) + check_signed(inner, wrapped=False)
        accepted += check_signed(inner, wrapped=True)
        check_signed_content(inner)
    return accepted


def _inner(seed: fuzz.Seed[Any]) -> bytes | None:
    return seed.inner


# -- the tests ---------------------------------------------------------------------------------------


def test_every_genuine_message_takes_the_specialised_readers(seeds: list[fuzz.Seed[Any]]) -> None:
    """Otherwise the sweep below could pass by never using them. RC2's parameters are not an IV alone:
    its envelopes are the strict reader's."""
    for seed in seeds:
        accepted = check_message(seed, seed.data, _inner(seed))
        expected = 0 if seed.context.queue == "P.RC2" else 1
        if seed.inner is not None:
            expected += 1  # the framed plaintext; the bare content octets are not a SEQUENCE
        assert accepted >= expected, seed.label


def test_the_privacy_content_reader_agrees_on_every_cut_and_changed_byte(seeds: list[fuzz.Seed[Any]]) -> None:
    """The decrypted content octets of genuine privacy messages, cut at every length, extended, and
    with a bit flipped in every byte: read_ams_signed_content accepts exactly what the reader of AMS's
    shape accepts (and then as the strict reader reads it), and asn1crypto reads what it accepts alike."""
    inners = [s.inner for s in seeds if s.inner is not None and s.context.qop is ams.QoP.PRIVACY][:2]
    assert inners
    for inner in inners:
        assert check_signed_content(inner)  # the genuine content takes it
        _asn1crypto_signed(der.header(der.SEQUENCE, len(inner)) + inner, False, _read_content(inner))
        rejected = 0
        for size in range(len(inner)):
            rejected += not check_signed_content(inner[:size])
        for extra in (b"\x00", b"\x30\x00", inner[-3:]):
            rejected += not check_signed_content(inner + extra)
        for position in range(len(inner)):
            changed = bytearray(inner)
            changed[position] ^= 1 << (position % 8)
            if check_signed_content(bytes(changed)) and position % 8 == 0:
                framed = der.header(der.SEQUENCE, len(changed)) + changed
                _asn1crypto_signed(bytes(framed), False, _read_content(bytes(changed)))
        assert rejected == len(inner) + 3  # every truncation and every trailing byte is refused


def _read_content(inner: bytes) -> SignedContent:
    head = der.header(der.SEQUENCE, len(inner))
    found = read_ams_signed_content(memoryview(head + inner), len(head))
    assert found is not None
    return found


def test_the_readers_agree_on_the_fuzzers_mutants(seeds: list[fuzz.Seed[Any]]) -> None:
    """A deterministic sweep: many mutants per seed, each genuine message read first so that the
    templates it teaches (SignedData trailer, PDMQ header) are in play."""
    rng = random.Random(13)
    splice = [seed.data for seed in seeds]
    accepted = 0
    for seed in seeds:
        check_message(seed, seed.data, _inner(seed))
        for _ in range(MUTANTS_PER_SEED):
            data, inner = fuzz.make_mutant(rng, seed, splice)
            accepted += check_message(seed, data, inner)
    assert accepted > len(seeds) * MUTANTS_PER_SEED // 10  # many mutants keep AMS's shape (a byte inside a value)


def test_the_readers_agree_on_flipped_bits(seeds: list[fuzz.Seed[Any]]) -> None:
    """A bit of every byte of a few genuine messages flipped in turn (the bit varies with the position):
    the same length, so the templates and layouts are tried on every byte."""
    for seed in [s for s in seeds if s.label.startswith(("I.SHA256/768", "P.AES128/1", "C.AES128/1"))]:
        check_message(seed, seed.data)
        for position in range(len(seed.data)):
            data = bytearray(seed.data)
            data[position] ^= 1 << (position % 8)
            check_message(seed, bytes(data), third=position % 16 == 0)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_readers_agree_on_what_hypothesis_finds(seeds: list[fuzz.Seed[Any]], data: st.DataObject) -> None:
    seed = data.draw(st.sampled_from(seeds))
    rng = random.Random(data.draw(st.integers(0, 2**32 - 1)))
    mutant, inner = fuzz.make_mutant(rng, seed, [s.data for s in seeds], count=data.draw(st.integers(1, 8)))
    check_message(seed, seed.data, _inner(seed))
    check_message(seed, mutant, inner)
