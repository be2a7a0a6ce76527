"""Golden vectors (tests/vectors/golden, made once by make_golden.py): every later version of
ams must still read them. Validation happens at the time recorded when they were made."""

from __future__ import annotations

import datetime
import json
import struct
from typing import Any

import pytest

import ams
import ams.errors
from tests.conftest import VECTORS

GOLDEN = VECTORS / "golden"
MANIFEST = json.loads((GOLDEN / "manifest.json").read_text(encoding="utf-8"))
AT = datetime.datetime.fromisoformat(MANIFEST["validate_at"])


def keystore(name: str) -> ams.Keystore:
    pki = GOLDEN / "pki"
    others = [pki / f"{o}.pem" for o in ("alice", "bob", "carol") if o != name]
    return ams.Keystore.from_pem(
        private=pki / f"{name}.key.pem", public=pki / f"{name}.pem", certificates=[pki / "ca.pem", *others]
    )


@pytest.mark.parametrize("entry", MANIFEST["messages"], ids=lambda e: e["file"])
def test_golden_vector_still_reads(entry: dict[str, Any]) -> None:
    policies = ams.PolicyStore.of(ams.Policy.from_setmqspl(entry["policy"]))
    reader = ams.Protector(keystore(entry["reader"]), policies, at=AT)
    data = (GOLDEN / entry["file"]).read_bytes()
    message = reader.unprotect(entry["queue"], data, entry["mqmd_format"])
    assert message.body == (GOLDEN / entry["expected"]).read_bytes()
    assert message.qop.name == entry["qop"]
    if entry["mqmd_format"].strip():
        # the MQRFH2 stays in the clear: the MQMD keeps MQHRF2 and the RFH2's Format comes back
        assert message.format == entry["mqmd_format"] == entry["original_format"]
        assert message.body[20:28] == b"MQSTR   "
    else:
        assert message.format == entry["original_format"].ljust(8)


SIGNED = [e for e in MANIFEST["messages"] if e["qop"] != "CONFIDENTIALITY"]  # confidentiality has no signer


@pytest.mark.parametrize("entry", SIGNED, ids=lambda e: e["file"])
def test_golden_vector_refused_once_its_certificates_expired(entry: dict[str, Any]) -> None:
    policies = ams.PolicyStore.of(ams.Policy.from_setmqspl(entry["policy"]))
    reader = ams.Protector(keystore(entry["reader"]), policies, at=AT + datetime.timedelta(days=400))
    with pytest.raises(ams.errors.CertificateValidityError, match="expired"):
        reader.unprotect(entry["queue"], (GOLDEN / entry["file"]).read_bytes(), entry["mqmd_format"])


@pytest.mark.parametrize("entry", MANIFEST["messages"], ids=lambda e: e["file"])
def test_golden_header_bytes_at_the_documented_offsets(entry: dict[str, Any]) -> None:
    data = (GOLDEN / entry["file"]).read_bytes()
    expected = (GOLDEN / entry["expected"]).read_bytes()
    if entry["mqmd_format"].strip():
        (length,) = struct.unpack("<i", data[8:12])  # the MQRFH2 stays in the clear, Format blanked
        assert data[20:28] == b" " * 8
        data, expected = data[length:], expected[length:]
        original_format = "MQSTR"
    else:
        original_format = entry["original_format"]
    qop = ams.QoP[entry["qop"]]
    v3 = entry["qop"] == "CONFIDENTIALITY"
    size = 112 if v3 else 104
    assert data[0:4] == b"PDMQ"
    assert (data[4], data[5], data[6], data[7]) == (3 if v3 else 2, 0, 1, 0)
    header_size, data_offset, prot_type, ccsid, orig_size, reserved1 = struct.unpack(">iiiiii", data[8:32])
    assert (header_size, data_offset, ccsid) == (size, size, 1208)
    assert prot_type & ~0x20 == qop.value
    assert orig_size == max(1, len(expected))
    assert data[32:40] == original_format.ljust(8).encode()
    assert data[40] == (1 if not expected else 0) and data[41:56] == bytes(15)
    assert data[56:104] == entry["queue"].encode().ljust(48, b"\x00")
    if v3:
        iv_size, tag_size, enc_size = struct.unpack(">hhi", data[104:112])
        assert tag_size == 0 and iv_size in (8, 16)
        assert reserved1 + iv_size + enc_size == len(data) - size
        assert (prot_type & 0x20 != 0) == ("-c 0" not in entry["policy"] and "-c" in entry["policy"])
    else:
        assert reserved1 == 0
    assert data[size] == 0x30


def test_reused_key_blocks_are_identical_across_the_pair() -> None:
    first = (GOLDEN / "confidentiality-aes256-reuse-1.bin").read_bytes()
    second = (GOLDEN / "confidentiality-aes256-reuse-2.bin").read_bytes()
    size = struct.unpack(">i", first[28:32])[0]
    assert first[112 : 112 + size] == second[112 : 112 + size]
    policies = ams.PolicyStore.of(ams.Policy.from_setmqspl(MANIFEST["messages"][6]["policy"]))
    bob = ams.Protector(keystore("bob"), policies, at=AT)
    bob.unprotect("GOLD.CONF", first)
    bob.unprotect("GOLD.CONF", second)
    assert bob.stats.rsa_private_operations == 1
