"""Round trips through protect() and unprotect() for every quality of protection."""

from __future__ import annotations

import struct

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ams
import ams.hazmat.pdmq
import ams.mqconstants
from ams.algorithms import EncryptionAlgorithm, SignatureAlgorithm
from ams.testing.strategies import encryption_algorithms, formats, payloads, signature_algorithms
from tests.conftest import Pki, store

SLOW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _policies(
    pki: Pki, recipients: tuple[str, ...] = ("bob",), s: str = "SHA256", e: str = "AES256"
) -> ams.PolicyStore:
    r = " ".join(f'-r "{pki.dn(name)}"' for name in recipients)
    return store(
        f"setmqspl -m QM -p INT.Q -s {s}",
        f"setmqspl -m QM -p PRIV.Q -s {s} -e {e} {r}",
        f"setmqspl -m QM -p CONF.Q -e {e} {r}",
    )


@pytest.mark.parametrize(
    "queue,qop", [("INT.Q", ams.QoP.INTEGRITY), ("PRIV.Q", ams.QoP.PRIVACY), ("CONF.Q", ams.QoP.CONFIDENTIALITY)]
)
@pytest.mark.parametrize("body", [b"", b"x", b"\x00", b"hello AMS" * 100, bytes(range(256)) * 4096])
def test_every_qop_round_trips(pki: Pki, queue: str, qop: ams.QoP, body: bytes) -> None:
    policies = _policies(pki)
    alice = ams.Protector(pki.keystore("alice"), policies)
    bob = ams.Protector(pki.keystore("bob"), policies)
    protected = alice.protect(queue, body, "MQSTR")
    assert protected.format == ams.mqconstants.MQFMT_NONE
    assert protected.body[:4] == b"PDMQ"
    message = bob.unprotect(queue, protected.body, protected.format)
    assert message.body == body
    assert message.format == "MQSTR   "
    assert message.qop is qop
    if qop is ams.QoP.CONFIDENTIALITY:
        assert message.signer is None
    else:
        assert str(message.signer_dn) == pki.dn("alice")


def test_integrity_payload_stays_readable_and_privacy_hides_it(pki: Pki) -> None:
    policies = _policies(pki)
    alice = ams.Protector(pki.keystore("alice"), policies)
    body = b"a readable but signed payload"
    assert body in alice.protect("INT.Q", body).body
    assert body not in alice.protect("PRIV.Q", body).body
    assert body not in alice.protect("CONF.Q", body).body


@pytest.mark.parametrize("digest", [a for a in SignatureAlgorithm if a is not SignatureAlgorithm.NONE])
@pytest.mark.parametrize("cipher", [a for a in EncryptionAlgorithm if a is not EncryptionAlgorithm.NONE])
def test_every_algorithm_pair(pki: Pki, digest: SignatureAlgorithm, cipher: EncryptionAlgorithm) -> None:
    policies = _policies(pki, s=digest.label, e=cipher.label)
    alice = ams.Protector(pki.keystore("alice"), policies, allow_deprecated=True)
    bob = ams.Protector(pki.keystore("bob"), policies)
    for queue in ("PRIV.Q", "CONF.Q", "INT.Q"):
        message = bob.unprotect(queue, alice.protect(queue, b"payload").body)
        assert message.body == b"payload"
        if queue != "INT.Q":
            assert message.encryption_algorithm is cipher
        if queue != "CONF.Q":
            assert message.signature_algorithm is digest


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5])
def test_one_to_five_recipients_each_can_read(pki: Pki, count: int) -> None:
    names = ("bob", "carol", "dave", "erin", "alice")[:count]
    policies = _policies(pki, recipients=names)
    alice = ams.Protector(pki.keystore("alice"), policies)
    for queue in ("PRIV.Q", "CONF.Q"):
        data = alice.protect(queue, b"for several readers").body
        for name in names:
            assert ams.Protector(pki.keystore(name), policies).unprotect(queue, data).body == b"for several readers"


@SLOW
@given(body=payloads(), fmt=formats(), queue=st.sampled_from(["INT.Q", "PRIV.Q", "CONF.Q"]))
def test_round_trip_property(pki: Pki, body: bytes, fmt: str, queue: str) -> None:
    policies = _policies(pki)
    alice = ams.Protector(pki.keystore("alice"), policies)
    bob = ams.Protector(pki.keystore("bob"), policies)
    protected = alice.protect(queue, body, fmt)
    message = bob.unprotect(queue, protected.body, protected.format)
    assert message.body == body
    assert message.format == fmt.ljust(8)


@SLOW
@given(digest=signature_algorithms(), cipher=encryption_algorithms(), body=payloads())
def test_algorithm_property(pki: Pki, digest: SignatureAlgorithm, cipher: EncryptionAlgorithm, body: bytes) -> None:
    policies = _policies(pki, s=digest.label, e=cipher.label)
    alice = ams.Protector(pki.keystore("alice"), policies, allow_deprecated=True)
    bob = ams.Protector(pki.keystore("bob"), policies)
    for queue in ("PRIV.Q", "CONF.Q"):
        assert bob.unprotect(queue, alice.protect(queue, body).body).body == body


def test_queue_without_policy_passes_through(pki: Pki) -> None:
    alice = ams.Protector(pki.keystore("alice"), ams.PolicyStore())
    assert alice.protect("PLAIN.Q", b"as is", "MQSTR") == ams.Protected(b"as is", "MQSTR", ams.QoP.NONE)
    message = alice.unprotect("PLAIN.Q", b"as is", "MQSTR")
    assert (message.body, message.format, message.qop, message.protected) == (b"as is", "MQSTR", ams.QoP.NONE, False)


def test_header_fields_written_big_endian(pki: Pki) -> None:
    policies = _policies(pki)
    alice = ams.Protector(pki.keystore("alice"), policies)
    data = alice.protect("PRIV.Q", b"x" * 47).body
    assert data[:8] == b"PDMQ\x02\x00\x01\x00"
    assert struct.unpack(">iiiii", data[8:28]) == (104, 104, 8, 1208, 47)
    assert data[32:40] == b"MQSTR   "
    assert data[56:104] == b"PRIV.Q".ljust(48, b"\x00")
    conf = alice.protect("CONF.Q", b"x" * 47).body
    assert conf[4] == 3 and struct.unpack(">ii", conf[8:16]) == (112, 112)
    key_block, iv, enc = struct.unpack(">i", conf[28:32])[0], *struct.unpack(">hhi", conf[104:112])[0::2]
    assert iv == 16 and enc == 48 and len(conf) == 112 + key_block + iv + enc


def test_reading_byte_swapped_header(pki: Pki) -> None:
    policies = _policies(pki)
    alice = ams.Protector(pki.keystore("alice"), policies)
    bob = ams.Protector(pki.keystore("bob"), policies)
    for queue in ("INT.Q", "PRIV.Q", "CONF.Q"):
        data = alice.protect(queue, b"swapped").body
        header = ams.hazmat.pdmq.PdmqHeader.unpack(data)
        swapped = attrs.evolve(header, encoding=2).pack()
        assert swapped != data[: header.size]
        assert bob.unprotect(queue, swapped + data[header.size :]).body == b"swapped"
