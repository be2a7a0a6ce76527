"""Amplification, tried as an attacker who sends small messages that cost the receiver a lot.

Every count in a message is the sender's: a million empty certificates, twenty thousand
RecipientInfos, a megabyte of digest algorithms, a 4,400-digit version number, a Name nested a
thousand deep. Each shape must be refused with a typed error of bounded length, in time and
memory proportional to its size with a small constant.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

import ams
import ams.errors
from ams.cli.main import main
from ams.hazmat import der
from ams.hazmat.oids import ID_DATA, ID_ENVELOPED_DATA, ID_SIGNED_DATA
from ams.hazmat.pdmq import PdmqHeader
from ams.inspect import inspect_message
from tests.conftest import Pki, store

SHA256 = der.algorithm_identifier("2.16.840.1.101.3.4.2.1")
# seconds allowed per hostile megabyte, and a fixed allowance (imports, caches, a slow machine)
SECONDS_PER_MB = 0.25
FIXED_SECONDS = 0.25


def _integrity(signed_data: bytes) -> bytes:
    blob = der.tlv(der.SEQUENCE, der.oid(ID_SIGNED_DATA) + der.tlv(der.CONTEXT_0_CONSTRUCTED, signed_data))
    return PdmqHeader(ams.QoP.INTEGRITY, 1, "MQSTR   ", "INT.Q").pack() + blob


def _signed_data(
    *, version: bytes = der.integer(1), digests: bytes = SHA256, certificates: bytes = b"", infos: bytes = b""
) -> bytes:
    encap = der.tlv(der.SEQUENCE, der.oid(ID_DATA) + der.tlv(0xA0, der.tlv(der.OCTET_STRING, b"x")))
    return der.tlv(
        der.SEQUENCE,
        version + der.tlv(der.SET, digests) + encap + der.tlv(0xA0, certificates) + der.tlv(der.SET, infos),
    )


def _envelope(recipient_infos: bytes, inner: str = ID_SIGNED_DATA) -> bytes:
    cipher = der.algorithm_identifier("2.16.840.1.101.3.4.1.42", der.tlv(der.OCTET_STRING, bytes(16)))
    eci = der.tlv(der.SEQUENCE, der.oid(inner) + cipher + der.tlv(0x80, bytes(32)))
    enveloped = der.tlv(der.SEQUENCE, der.integer(0) + der.tlv(der.SET, recipient_infos) + eci)
    return der.tlv(der.SEQUENCE, der.oid(ID_ENVELOPED_DATA) + der.tlv(der.CONTEXT_0_CONSTRUCTED, enveloped))


def _recipient_info(issuer: bytes, serial: int = 1) -> bytes:
    rid = der.tlv(der.SEQUENCE, issuer + der.integer(serial))
    rsa = der.algorithm_identifier("1.2.840.113549.1.1.1")
    return der.tlv(der.SEQUENCE, der.integer(0) + rid + rsa + der.tlv(der.OCTET_STRING, bytes(256)))


def _privacy(recipient_infos: bytes) -> bytes:
    return PdmqHeader(ams.QoP.PRIVACY, 1, "MQSTR   ", "PRIV.Q").pack() + _envelope(recipient_infos)


def _nested_name(depth: int) -> bytes:
    name = der.tlv(der.SEQUENCE, b"")
    for _ in range(depth):
        name = der.tlv(der.SEQUENCE, name)
    return name


@pytest.fixture(scope="module")
def bob(pki: Pki) -> ams.Protector:
    return ams.Protector(
        pki.keystore("bob"),
        store(
            "setmqspl -m QM -p INT.Q -s SHA256",
            f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "{pki.dn("bob")}"',
        ),
    )


def _measure(attempt: Callable[[], object]) -> tuple[ams.AmsError, float, int]:
    """The typed error, the seconds it took, and the peak of memory allocated meanwhile."""
    started = time.perf_counter()
    with pytest.raises(ams.AmsError) as caught:
        attempt()
    elapsed = time.perf_counter() - started
    tracemalloc.start()
    try:
        with pytest.raises(ams.AmsError):
            attempt()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return caught.value, elapsed, peak


def _hostile_messages(pki: Pki) -> dict[str, tuple[str, bytes]]:
    genuine_info = _recipient_info(pki.ca.certificate.subject.public_bytes(), 7)
    return {
        "a million empty certificates": ("INT.Q", _integrity(_signed_data(certificates=b"\x30\x00" * 1_000_000))),
        "1.3 MB of digestAlgorithms": ("INT.Q", _integrity(_signed_data(digests=SHA256 * 100_000))),
        "a 4,400-digit version": ("INT.Q", _integrity(_signed_data(version=der.integer(10**4400)))),
        "a million empty SignerInfos": ("INT.Q", _integrity(_signed_data(infos=b"\x30\x00" * 1_000_000))),
        "20,000 RecipientInfos": ("PRIV.Q", _privacy(genuine_info * 20_000)),
        "300,000 RecipientInfos": ("PRIV.Q", _privacy(genuine_info * 300_000)),
        "an issuer Name nested 1,000 deep": ("PRIV.Q", _privacy(_recipient_info(_nested_name(1000)))),
    }


@pytest.mark.parametrize(
    "shape",
    [
        "a million empty certificates",
        "1.3 MB of digestAlgorithms",
        "a 4,400-digit version",
        "a million empty SignerInfos",
        "20,000 RecipientInfos",
        "300,000 RecipientInfos",
        "an issuer Name nested 1,000 deep",
    ],
)
def test_hostile_shapes_cost_little_and_fail_typed(pki: Pki, bob: ams.Protector, shape: str) -> None:
    queue, message = _hostile_messages(pki)[shape]
    megabytes = len(message) / 1e6
    for name, attempt in (
        ("unprotect", lambda: bob.unprotect(queue, message)),
        ("inspect", lambda: _inspect_or_raise(message, bob.keystore)),
    ):
        error, elapsed, peak = _measure(attempt)
        assert len(str(error)) <= 1100, f"{name}: an error text of {len(str(error))} characters"
        assert elapsed < FIXED_SECONDS + SECONDS_PER_MB * megabytes, f"{name}: {elapsed:.2f} s for {megabytes:.1f} MB"
        assert peak < 2 * len(message) + 2_000_000, f"{name}: {peak / 1e6:.1f} MB for {megabytes:.1f} MB"


def _inspect_or_raise(message: bytes, keystore: ams.Keystore) -> None:
    report = inspect_message(message, keystore=keystore)
    raise ams.errors.MalformedMessageError(f"inspect described it: {str(report)[:200]}")


def test_a_genuine_message_padded_with_recipient_infos_is_refused(pki: Pki, bob: ams.Protector) -> None:
    """RecipientInfos are outside the signature: padding a genuine message with 300,000 of them
    must not be accepted after seconds of work."""
    alice = ams.Protector(pki.keystore("alice"), bob.policies)
    genuine = alice.protect("PRIV.Q", b"order 42").body
    assert bob.unprotect("PRIV.Q", genuine).body == b"order 42"
    blob = genuine[104:]
    outer = der.Reader(blob, "ContentInfo").read("ContentInfo", der.SEQUENCE).children("ContentInfo")
    outer.read("contentType", der.OID)
    enveloped = outer.read("content", 0xA0).children("[0]").read("EnvelopedData", der.SEQUENCE).children("ED")
    version = bytes(enveloped.read("version", der.INTEGER).encoded)
    infos = enveloped.read("recipientInfos", der.SET)
    rest = bytes(blob[enveloped.offset : enveloped.stop])
    (info,) = infos.children("recipientInfos").all("RecipientInfo")
    padding = _recipient_info(pki.ca.certificate.subject.public_bytes(), 99) * 300_000
    content = version + der.tlv(der.SET, bytes(info.encoded) + padding) + rest
    padded_blob = der.tlv(der.SEQUENCE, der.oid(ID_ENVELOPED_DATA) + der.tlv(0xA0, der.tlv(der.SEQUENCE, content)))
    padded = genuine[:104] + padded_blob
    error, elapsed, _ = _measure(lambda: bob.unprotect("PRIV.Q", padded))
    assert isinstance(error, ams.errors.MalformedMessageError) and "more than 1024" in error.message
    assert elapsed < FIXED_SECONDS + SECONDS_PER_MB * len(padded) / 1e6
    # the twin: a deployment that needs more recipients raises the bound
    roomy = ams.Protector(pki.keystore("bob"), bob.policies, limits=ams.Limits(recipients=400_000))
    assert roomy.unprotect("PRIV.Q", padded).body == b"order 42"


def test_a_tampered_signing_time_is_shown_unreadable(pki: Pki, bob: ams.Protector) -> None:
    alice = ams.Protector(pki.keystore("alice"), bob.policies)
    message = bytearray(alice.protect("INT.Q", b"hello").body)
    # the UTCTime of the signingTime attribute, found by its OID (1.2.840.113549.1.9.5): a bare UTCTime tag
    # and length (17 0D) also turn up in the signature's random bytes about once in 250 messages
    signing_time = bytes.fromhex("06092a864886f70d010905") + b"\x31\x0f\x17\x0d"
    at = message.index(signing_time) + len(signing_time)
    message[at : at + 2] = b"9Z"
    report = inspect_message(bytes(message))
    assert report["signing_time"] == "unreadable" and report["qop"] == "INTEGRITY"
    with pytest.raises(ams.errors.BadSignatureError):
        bob.unprotect("INT.Q", bytes(message))


def test_the_cli_reports_hostile_shapes_in_a_few_lines(
    pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, message = _hostile_messages(pki)["20,000 RecipientInfos"]
    path = tmp_path / "hostile.bin"
    path.write_bytes(message)
    assert main(["inspect", "-i", str(path)]) == 3
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and len(captured.err) < 1200 and "more than 1024" in captured.err
