"""Outside vectors: messages written by an independent implementation on Bouncy Castle 1.72.

Read from ../shared/vectors/bouncycastle when it is there (the source of truth), else from the
copy under tests/vectors/bouncycastle.
"""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

import ams
import ams.errors
import ams.hazmat.pdmq
from tests.conftest import SHARED_VECTORS, VECTORS, store

LOCAL = VECTORS / "bouncycastle"
HERE = SHARED_VECTORS if SHARED_VECTORS.is_dir() else LOCAL
PAYLOAD = (HERE / "payload.txt").read_bytes()
BOB = "CN=bob,O=VECTORS,C=GB"
CAROL = "CN=carol,O=VECTORS,C=GB"
ALICE = "CN=alice,O=VECTORS,C=GB"


def keystore(name: str) -> ams.Keystore:
    others = [HERE / "pki" / f"{o}.pem" for o in ("alice", "bob", "carol") if o != name]
    return ams.Keystore.from_pem(
        private=HERE / "pki" / f"{name}.key.pem",
        public=HERE / "pki" / f"{name}.pem",
        certificates=[HERE / "pki" / "ca.pem", *others],
    )


def read(name: str) -> bytes:
    return (HERE / name).read_bytes()


def test_local_copy_matches_shared() -> None:
    if not SHARED_VECTORS.is_dir():
        pytest.skip("../shared/vectors/bouncycastle is not beside this checkout")
    names = sorted(p.name for p in SHARED_VECTORS.iterdir() if p.is_file())
    _, mismatch, errors = filecmp.cmpfiles(SHARED_VECTORS, LOCAL, names, shallow=False)
    assert (mismatch, errors) == ([], []), "refresh tests/vectors/bouncycastle from ../shared"


INTEGRITY = [
    ("integrity-sha256.bin", ams.SignatureAlgorithm.SHA256),
    ("integrity-sha512.bin", ams.SignatureAlgorithm.SHA512),
]


@pytest.mark.parametrize("name,digest", INTEGRITY)
def test_integrity_vectors(name: str, digest: ams.SignatureAlgorithm) -> None:
    policies = store(f'setmqspl -m QM -p INT.Q -s SHA256 -a "{ALICE}"')
    message = ams.Protector(keystore("bob"), policies).unprotect("INT.Q", read(name))
    assert message.body == PAYLOAD and message.format == "MQSTR   "
    assert message.signature_algorithm is digest and str(message.signer_dn) == ALICE
    wrong_signer = store(f'setmqspl -m QM -p INT.Q -s SHA256 -a "{CAROL}"')
    with pytest.raises(ams.errors.UnauthorisedSignerError, match="CN=alice,O=VECTORS,C=GB"):
        ams.Protector(keystore("bob"), wrong_signer).unprotect("INT.Q", read(name))


def test_integrity_sha1_is_weaker_than_a_sha256_policy() -> None:
    weak_ok = store("setmqspl -m QM -p INT.Q -s SHA1")
    assert ams.Protector(keystore("bob"), weak_ok).unprotect("INT.Q", read("integrity-sha1.bin")).body == PAYLOAD
    with pytest.raises(ams.errors.AlgorithmTooWeakError, match="SHA1"):
        ams.Protector(keystore("bob"), store("setmqspl -m QM -p INT.Q -s SHA256")).unprotect(
            "INT.Q", read("integrity-sha1.bin")
        )


def test_integrity_empty() -> None:
    data = read("integrity-empty.bin")
    assert data[40] == 1
    message = ams.Protector(keystore("bob"), store("setmqspl -m QM -p INT.Q -s SHA256")).unprotect("INT.Q", data)
    assert message.body == b"" == (HERE / "empty.txt").read_bytes()


def test_integrity_is_refused_under_a_privacy_policy() -> None:
    policies = store(f'setmqspl -m QM -p INT.Q -s SHA256 -e AES256 -r "{BOB}"')
    with pytest.raises(ams.errors.QopMismatchError):
        ams.Protector(keystore("bob"), policies).unprotect("INT.Q", read("integrity-sha256.bin"))


@pytest.mark.parametrize("name", ["privacy-aes256-bob.bin", "privacy-aes256-bob-le-header.bin"])
def test_privacy_for_bob_only(name: str) -> None:
    policies = store(f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "{BOB}" -a "{ALICE}"')
    message = ams.Protector(keystore("bob"), policies).unprotect("PRIV.Q", read(name))
    assert message.body == PAYLOAD and message.encryption_algorithm is ams.EncryptionAlgorithm.AES256
    assert str(message.signer_dn) == ALICE
    with pytest.raises(ams.errors.NotARecipientError, match="CN=bob,O=VECTORS,C=GB"):
        ams.Protector(keystore("carol"), policies).unprotect("PRIV.Q", read(name))


def test_byte_swapped_header_vector_really_is_swapped() -> None:
    data = read("privacy-aes256-bob-le-header.bin")
    assert data[6] == 2 and data[8:12] == (104).to_bytes(4, "little")
    assert ams.hazmat.pdmq.PdmqHeader.unpack(data).orig_size == len(PAYLOAD)


def test_privacy_for_bob_and_carol_aes128() -> None:
    policies = store(f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES128 -r "{BOB}"')
    for reader in ("bob", "carol"):
        message = ams.Protector(keystore(reader), policies).unprotect("PRIV.Q", read("privacy-aes128-bob-carol.bin"))
        assert message.body == PAYLOAD and message.signature_algorithm is ams.SignatureAlgorithm.SHA384
    with pytest.raises(ams.errors.NotARecipientError):
        ams.Protector(keystore("alice"), policies).unprotect("PRIV.Q", read("privacy-aes128-bob-carol.bin"))
    strict = store(f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "{BOB}"')
    with pytest.raises(ams.errors.AlgorithmTooWeakError, match="AES128"):
        ams.Protector(keystore("bob"), strict).unprotect("PRIV.Q", read("privacy-aes128-bob-carol.bin"))


def test_privacy_3des_is_read_but_weaker_than_aes() -> None:
    deprecated_ok = store(f'setmqspl -m QM -p PRIV.Q -s SHA256 -e 3DES -r "{BOB}"')
    message = ams.Protector(keystore("bob"), deprecated_ok).unprotect("PRIV.Q", read("privacy-3des-bob.bin"))
    assert message.body == PAYLOAD and message.encryption_algorithm is ams.EncryptionAlgorithm.TDES
    with pytest.raises(ams.errors.AlgorithmTooWeakError, match="3DES"):
        ams.Protector(keystore("bob"), store(f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES128 -r "{BOB}"')).unprotect(
            "PRIV.Q", read("privacy-3des-bob.bin")
        )


def test_privacy_with_rfh2_in_the_clear() -> None:
    policies = store(f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "{BOB}"')
    data = read("privacy-aes256-bob-rfh2.bin")
    assert b"<usr><Colour>blue</Colour>" in data  # properties stay readable on the queue
    message = ams.Protector(keystore("bob"), policies).unprotect("PRIV.Q", data, "MQHRF2", encoding=546, ccsid=1208)
    assert message.format == "MQHRF2"
    assert message.body == read("privacy-aes256-bob-rfh2.expected")


@pytest.mark.parametrize(
    "name,payload,reuse",
    [
        ("confidentiality-aes256-bob.bin", "payload.txt", False),
        ("confidentiality-aes256-bob-reuse.bin", "payload.txt", True),
        ("confidentiality-aes128-empty.bin", "empty.txt", False),
    ],
)
def test_confidentiality_vectors(name: str, payload: str, reuse: bool) -> None:
    policies = store(f'setmqspl -m QM -p CONF.Q -e AES128 -r "{BOB}" -c 5')
    bob = ams.Protector(keystore("bob"), policies)
    message = bob.unprotect("CONF.Q", read(name))
    assert message.body == (HERE / payload).read_bytes() and message.signer is None
    assert message.header is not None and message.header.key_reuse is reuse
    if reuse:
        bob.unprotect("CONF.Q", read(name))
        assert bob.stats.key_reuse_hits == 1 and bob.stats.rsa_private_operations == 1
    with pytest.raises(ams.errors.NotARecipientError):
        ams.Protector(keystore("carol"), policies).unprotect("CONF.Q", read(name))
    with pytest.raises(ams.errors.QopMismatchError):
        ams.Protector(keystore("bob"), store(f'setmqspl -m QM -p CONF.Q -s SHA256 -e AES256 -r "{BOB}"')).unprotect(
            "CONF.Q", read(name)
        )


def test_every_vector_is_covered() -> None:
    tested = {name for name, _ in INTEGRITY} | {
        "integrity-sha1.bin",
        "integrity-empty.bin",
        "privacy-aes256-bob.bin",
        "privacy-aes256-bob-le-header.bin",
        "privacy-aes128-bob-carol.bin",
        "privacy-3des-bob.bin",
        "privacy-aes256-bob-rfh2.bin",
        "confidentiality-aes256-bob.bin",
        "confidentiality-aes256-bob-reuse.bin",
        "confidentiality-aes128-empty.bin",
    }
    assert {p.name for p in Path(HERE).glob("*.bin")} == tested
