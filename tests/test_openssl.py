"""Interoperability with a real peer: the openssl command line, in both directions."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

import ams
import ams.errors
import ams.hazmat.pdmq
from ams.hazmat import der
from ams.hazmat.oids import ID_SIGNED_DATA
from tests.conftest import Pki, needs_openssl, store

pytestmark = needs_openssl
PAYLOAD = b"Interop payload: \x00\x01\x02 binary and text \xe2\x82\xac\n" * 3


def _run(args: tuple[str | Path, ...], stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *map(str, args)], input=stdin, capture_output=True, check=False)


def openssl(*args: str | Path, stdin: bytes | None = None) -> bytes:
    result = _run(args, stdin)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


def openssl_refuses(*args: str | Path) -> bool:
    return _run(args).returncode != 0


@pytest.fixture(scope="module")
def files(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("openssl")
    (root / "ca.pem").write_bytes(pki.ca.certificate.public_bytes(serialization.Encoding.PEM))
    for name in ("alice", "bob", "carol"):
        issued = pki.users[name]
        (root / f"{name}.pem").write_bytes(issued.certificate.public_bytes(serialization.Encoding.PEM))
        (root / f"{name}.key.pem").write_bytes(
            issued.key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    (root / "payload.bin").write_bytes(PAYLOAD)
    return root


@pytest.fixture(scope="module")
def policies(pki: Pki) -> ams.PolicyStore:
    return store(
        "setmqspl -m QM -p INT.Q -s SHA256",
        f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES256 -r "{pki.dn("bob")}"',
        f'setmqspl -m QM -p CONF.Q -e AES256 -r "{pki.dn("bob")}"',
    )


def _blob(data: bytes) -> tuple[ams.hazmat.pdmq.PdmqHeader, bytes]:
    header = ams.hazmat.pdmq.PdmqHeader.unpack(data)
    return header, data[header.size :]


def _content_info_signed(content_octets: bytes) -> bytes:
    signed = der.header(der.SEQUENCE, len(content_octets)) + content_octets
    return der.tlv(der.SEQUENCE, der.oid(ID_SIGNED_DATA) + der.tlv(der.CONTEXT_0_CONSTRUCTED, signed))


# -- openssl reads what we write ---------------------------------------------------------------


def test_openssl_verifies_our_integrity_blob(pki: Pki, files: Path, policies: ams.PolicyStore) -> None:
    _, blob = _blob(ams.Protector(pki.keystore("alice"), policies).protect("INT.Q", PAYLOAD).body)
    (files / "int.der").write_bytes(blob)
    out = openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", files / "int.der", "-CAfile", files / "ca.pem")
    assert out == PAYLOAD


def test_openssl_refuses_our_tampered_integrity_blob(pki: Pki, files: Path, policies: ams.PolicyStore) -> None:
    _, blob = _blob(ams.Protector(pki.keystore("alice"), policies).protect("INT.Q", PAYLOAD).body)
    tampered = blob.replace(b"Interop", b"Intercept"[:7])
    (files / "bad.der").write_bytes(tampered)
    assert openssl_refuses(
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        files / "bad.der",
        "-CAfile",
        files / "ca.pem",
    )


def test_openssl_decrypts_our_privacy_envelope_and_verifies_the_signed_data(
    pki: Pki, files: Path, policies: ams.PolicyStore
) -> None:
    _, blob = _blob(ams.Protector(pki.keystore("alice"), policies).protect("PRIV.Q", PAYLOAD).body)
    (files / "priv.der").write_bytes(blob)
    content_octets = openssl(
        "cms",
        "-decrypt",
        "-binary",
        "-inform",
        "DER",
        "-in",
        files / "priv.der",
        "-recip",
        files / "bob.pem",
        "-inkey",
        files / "bob.key.pem",
    )
    assert content_octets[:3] == b"\x02\x01\x01"  # SignedData content octets, as AMS encrypts them
    (files / "inner.der").write_bytes(_content_info_signed(content_octets))
    out = openssl(
        "cms", "-verify", "-binary", "-inform", "DER", "-in", files / "inner.der", "-CAfile", files / "ca.pem"
    )
    assert out == PAYLOAD


def test_openssl_cannot_decrypt_for_a_non_recipient(pki: Pki, files: Path, policies: ams.PolicyStore) -> None:
    _, blob = _blob(ams.Protector(pki.keystore("alice"), policies).protect("PRIV.Q", PAYLOAD).body)
    (files / "priv2.der").write_bytes(blob)
    assert openssl_refuses(
        "cms",
        "-decrypt",
        "-binary",
        "-inform",
        "DER",
        "-in",
        files / "priv2.der",
        "-recip",
        files / "carol.pem",
        "-inkey",
        files / "carol.key.pem",
    )


def test_openssl_opens_our_confidentiality_key_block(pki: Pki, files: Path, policies: ams.PolicyStore) -> None:
    header, blob = _blob(ams.Protector(pki.keystore("alice"), policies).protect("CONF.Q", PAYLOAD).body)
    key_block = blob[: header.key_block_size]
    iv = blob[header.key_block_size : header.key_block_size + header.iv_block_size]
    ciphertext = blob[header.key_block_size + header.iv_block_size :]
    (files / "kb.der").write_bytes(key_block)
    key = openssl(
        "cms",
        "-decrypt",
        "-binary",
        "-inform",
        "DER",
        "-in",
        files / "kb.der",
        "-recip",
        files / "bob.pem",
        "-inkey",
        files / "bob.key.pem",
    )
    assert len(key) == 32
    (files / "ct.bin").write_bytes(ciphertext)
    out = openssl("enc", "-d", "-aes-256-cbc", "-K", key.hex(), "-iv", iv.hex(), "-in", files / "ct.bin")
    assert out == PAYLOAD


# -- we read what openssl writes ---------------------------------------------------------------


def _openssl_signed(files: Path, signer: str, md: str = "sha256", *extra: str) -> bytes:
    return openssl(
        "cms",
        "-sign",
        "-binary",
        "-nodetach",
        "-nosmimecap",
        "-md",
        md,
        "-outform",
        "DER",
        *extra,
        "-in",
        files / "payload.bin",
        "-signer",
        files / f"{signer}.pem",
        "-inkey",
        files / f"{signer}.key.pem",
    )


def test_we_unprotect_an_integrity_message_signed_by_openssl(pki: Pki, files: Path, policies: ams.PolicyStore) -> None:
    blob = _openssl_signed(files, "alice")
    header = ams.hazmat.pdmq.PdmqHeader(ams.QoP.INTEGRITY, len(PAYLOAD), "MQSTR", "INT.Q").pack()
    message = ams.Protector(pki.keystore("bob"), policies).unprotect("INT.Q", header + blob)
    assert message.body == PAYLOAD and str(message.signer_dn) == pki.dn("alice")
    authorised_carol = store(f'setmqspl -m QM -p INT.Q -s SHA256 -a "{pki.dn("carol")}"')
    with pytest.raises(ams.errors.UnauthorisedSignerError):
        ams.Protector(pki.keystore("bob"), authorised_carol).unprotect("INT.Q", header + blob)


def _openssl_envelope(
    files: Path, plaintext: bytes, cipher: str = "-aes256", recipient: str = "bob", *extra: str
) -> bytes:
    (files / "plain.bin").write_bytes(plaintext)
    return openssl(
        "cms",
        "-encrypt",
        "-binary",
        cipher,
        *extra,
        "-outform",
        "DER",
        "-in",
        files / "plain.bin",
        files / f"{recipient}.pem",
    )


def _as_signed_data_envelope(envelope: bytes) -> bytes:
    # openssl labels every envelope id-data; AMS labels the privacy one id-signedData. The label
    # is not protected, so changing its last byte gives exactly the envelope AMS writes.
    data_oid, signed_oid = der.oid("1.2.840.113549.1.7.1"), der.oid(ID_SIGNED_DATA)
    position = envelope.rindex(data_oid)
    return envelope[:position] + signed_oid + envelope[position + len(data_oid) :]


def test_we_unprotect_a_privacy_message_made_by_openssl(pki: Pki, files: Path, policies: ams.PolicyStore) -> None:
    signed = _openssl_signed(files, "alice")
    octets = _content_octets(signed)
    blob = _as_signed_data_envelope(_openssl_envelope(files, octets))
    header = ams.hazmat.pdmq.PdmqHeader(ams.QoP.PRIVACY, len(PAYLOAD), "MQSTR", "PRIV.Q").pack()
    message = ams.Protector(pki.keystore("bob"), policies).unprotect("PRIV.Q", header + blob)
    assert message.body == PAYLOAD and str(message.signer_dn) == pki.dn("alice")
    with pytest.raises(ams.errors.NotARecipientError):
        ams.Protector(pki.keystore("carol"), policies).unprotect("PRIV.Q", header + blob)
    # the variant a generic CMS library writes, the whole ContentInfo encrypted, is read too
    whole = _as_signed_data_envelope(_openssl_envelope(files, signed))
    assert ams.Protector(pki.keystore("bob"), policies).unprotect("PRIV.Q", header + whole).body == PAYLOAD


@pytest.mark.parametrize("cipher,enc,algorithm", [("-aes256", "aes-256-cbc", 32), ("-aes128", "aes-128-cbc", 16)])
def test_we_unprotect_a_confidentiality_message_made_by_openssl(
    pki: Pki, files: Path, policies: ams.PolicyStore, cipher: str, enc: str, algorithm: int
) -> None:
    import os

    key, iv = os.urandom(algorithm), os.urandom(16)
    key_block = _openssl_envelope(files, key, cipher)
    ciphertext = openssl("enc", "-e", f"-{enc}", "-K", key.hex(), "-iv", iv.hex(), "-in", files / "payload.bin")
    header = ams.hazmat.pdmq.PdmqHeader(
        ams.QoP.CONFIDENTIALITY,
        len(PAYLOAD),
        "MQSTR",
        "CONF.Q",
        key_block_size=len(key_block),
        iv_block_size=16,
        enc_block_size=len(ciphertext),
    ).pack()
    data = header + key_block + iv + ciphertext
    relaxed = store(f'setmqspl -m QM -p CONF.Q -e AES128 -r "{pki.dn("bob")}"')
    assert ams.Protector(pki.keystore("bob"), relaxed).unprotect("CONF.Q", data).body == PAYLOAD
    if algorithm == 16:
        with pytest.raises(ams.errors.AlgorithmTooWeakError):
            ams.Protector(pki.keystore("bob"), policies).unprotect("CONF.Q", data)


def test_we_read_signed_data_without_signed_attributes(pki: Pki, files: Path, policies: ams.PolicyStore) -> None:
    blob = _openssl_signed(files, "alice", "sha256", "-noattr")  # a variant some CMS libraries write
    header = ams.hazmat.pdmq.PdmqHeader(ams.QoP.INTEGRITY, len(PAYLOAD), "MQSTR", "INT.Q").pack()
    bob = ams.Protector(pki.keystore("bob"), policies)
    assert bob.unprotect("INT.Q", header + blob).body == PAYLOAD
    tampered = (header + blob).replace(b"Interop", b"Interco")
    with pytest.raises(ams.errors.BadSignatureError, match="does not verify"):
        bob.unprotect("INT.Q", tampered)


def _content_octets(signed: bytes) -> bytes:
    _, start, _ = der.read_header(signed, 0)  # ContentInfo
    _, start, _ = der.read_header(signed, start + 11)  # [0] after the 11-byte OID
    _, content_start, content_size = der.read_header(signed, start)  # SignedData SEQUENCE
    return signed[content_start : content_start + content_size]


def test_subject_key_identifiers_instead_of_issuer_and_serial(pki: Pki, files: Path, policies: ams.PolicyStore) -> None:
    """AMS writes issuer and serial; a reader also accepts subjectKeyIdentifier (openssl -keyid)."""
    signed = _openssl_signed(files, "alice", "sha256", "-keyid")
    assert b"\x02\x01\x03" in signed[:40]  # SignedData version 3, as RFC 5652 asks with a keyid
    blob = _as_signed_data_envelope(_openssl_envelope(files, _content_octets(signed), "-aes256", "bob", "-keyid"))
    header = ams.hazmat.pdmq.PdmqHeader(ams.QoP.PRIVACY, len(PAYLOAD), "MQSTR", "PRIV.Q").pack()
    message = ams.Protector(pki.keystore("bob"), policies).unprotect("PRIV.Q", header + blob)
    assert message.body == PAYLOAD and str(message.signer_dn) == pki.dn("alice")
    with pytest.raises(ams.errors.NotARecipientError, match="subjectKeyIdentifier"):
        ams.Protector(pki.keystore("carol"), policies).unprotect("PRIV.Q", header + blob)
    integrity = ams.hazmat.pdmq.PdmqHeader(ams.QoP.INTEGRITY, len(PAYLOAD), "MQSTR", "INT.Q").pack() + signed
    assert ams.Protector(pki.keystore("bob"), policies).unprotect("INT.Q", integrity).body == PAYLOAD
