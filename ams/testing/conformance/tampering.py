"""The fields a receiver must check, per quality of protection (format.md §2-6), each changed once
per run (and the fields it must not check, :data:`MUST_ACCEPT`, each changed once too):
``peer-refuses-tampered`` sends these before its random mutations, so that a peer that skips one
check (the signature, origSize, the blanked last Format...) is caught on every seed, not only on
the seeds whose random change happens to land there.

The list is explicit: a name per check, and where its bytes are in a canonical message (a 40
byte text payload behind one MQRFH2, protected for one recipient). Each change is a flipped bit
that :mod:`ams.testing.mutations` also says a correct receiver must refuse.
"""

from __future__ import annotations

import datetime
import hashlib

import attrs
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ams.algorithms import EncryptionAlgorithm, QoP, SignatureAlgorithm
from ams.hazmat.signed import parse_signed_data
from ams.hazmat.signed_writer import SignedDataWriter
from ams.pki import Issued
from ams.testing.headers import ClearChain, HeaderSpec
from ams.testing.mutations import (
    Layout,
    Mutation,
    ProtectedMessage,
    append,
    field_changes,
    flip_bit,
    layout,
    truncate,
)
from ams.testing.payloads import PayloadSpec

_PDMQ = ("PDMQ StrucId", "PDMQ major version", "PDMQ headerSize", "PDMQ dataOffset", "PDMQ protType", "PDMQ origSize")
_EVERY = (*_PDMQ, "PDMQ empty flag", "the last clear Format", "a cut after the clear headers", "bytes appended")
MUST_CHECK: dict[QoP, tuple[str, ...]] = {
    QoP.INTEGRITY: (
        *_EVERY, "the signed content", "the messageDigest attribute", "the signer's certificate", "the signature value",
    ),
    QoP.PRIVACY: (*_EVERY, "the reader's RecipientInfo", "the encrypted content"),
    QoP.CONFIDENTIALITY: (
        *_EVERY, "PDMQ keyBlockSize", "PDMQ IVBlockSize", "PDMQ EncBlockSize",
        "the reader's recipient identifier", "the reader's encryptedKey",
    ),
}  # fmt: skip
_UNCHECKED = ("the dynamic-queue byte", "the flags' other bytes", "the reserved bytes", "the policy name")
MUST_ACCEPT: dict[QoP, tuple[str, ...]] = {  # in the order of mutations.field_changes' ACCEPT changes
    QoP.INTEGRITY: (*_UNCHECKED, "the header byte-swapped (encoding 2)"),
    QoP.PRIVACY: (*_UNCHECKED, "the header byte-swapped (encoding 2)"),
    QoP.CONFIDENTIALITY: (*_UNCHECKED, "the key-reuse flag", "the header byte-swapped (encoding 2)"),
}
CANONICAL_PAYLOAD = PayloadSpec("text", 40)
CANONICAL_CHAIN = ClearChain((HeaderSpec("MQHRF2"),))


def must_check_change(
    message: ProtectedMessage,
    name: str,
    *,
    reader: x509.Certificate,
    signer: x509.Certificate,
    digest: SignatureAlgorithm = SignatureAlgorithm.SHA256,
) -> Mutation:
    """The change of the field ``name`` (one of :data:`MUST_CHECK` for the message's QoP) in ``message``,
    signed by ``signer`` with ``digest`` and read by ``reader``; ValueError when the message has no
    such field (no clear header, an empty payload)."""
    if name == "a cut after the clear headers":
        return _named(truncate(message, len(message.body) - 1), name)
    if name == "bytes appended":
        return _named(append(message, b"\x00"), name)
    if name == "PDMQ empty flag":
        change = next((m for m in field_changes(message) if "empty flag" in m.description and m.must_refuse), None)
        if change is None:
            raise ValueError("the empty flag of an empty payload may be either")
        return _named(change, name)
    offset = _offset(message, layout(message, reader), name, signer, digest)
    for bit in range(8):
        change = flip_bit(message, offset, bit, reader=reader)
        if change.must_refuse:
            return _named(change, name)
    raise ValueError(f"no bit of {name} at byte {offset} must be refused")


def _named(change: Mutation, name: str) -> Mutation:
    return attrs.evolve(change, description=f"{name}: {change.description}")


_REGIONS = {
    "the last clear Format": "the last clear header's Format",
    "the reader's RecipientInfo": "(the reader's)",
    "the reader's recipient identifier": "recipient identifier (the reader's)",
    "the reader's encryptedKey": "encryptedKey (the reader's)",
}


def _offset(
    message: ProtectedMessage, where: Layout, name: str, signer: x509.Certificate, digest: SignatureAlgorithm
) -> int:
    """Where the field ``name`` is in ``message``: a byte a change of which must be refused."""
    if name.startswith("PDMQ") or name in _REGIONS:
        wanted = _REGIONS.get(name, name)
        region = next((r for r in where.regions if r.name == wanted or (wanted in r.name and name in _REGIONS)), None)
        if region is None:
            raise ValueError(f"the message has no {name}")
        return region.start
    body = message.body
    if name in ("the signature value", "the encrypted content"):
        return len(body) - 1  # the last thing in a SignedData (its signature) and in an EnvelopedData
    needles = {
        "the signed content": message.payload,
        "the messageDigest attribute": hashlib.new(digest.label.lower(), message.payload).digest(),
        "the signer's certificate": signer.public_bytes(Encoding.DER),
    }
    needle = needles[name]
    found = body.find(needle, where.blob_offset) if needle else -1
    if found < 0:
        raise ValueError(f"the message has no {name} to find")
    # the certificate's last byte is in its issuer's signature; the others: a byte in the middle
    return found + len(needle) - 1 if name == "the signer's certificate" else found + len(needle) // 2


def canonical_algorithms(
    qop: QoP, digests: tuple[SignatureAlgorithm, ...], ciphers: tuple[EncryptionAlgorithm, ...]
) -> tuple[SignatureAlgorithm, EncryptionAlgorithm]:
    """The canonical message's algorithms: the peer's first (SHA256 and AES256 when it has them)."""
    digest = digests[0] if qop is not QoP.CONFIDENTIALITY else SignatureAlgorithm.NONE
    return digest, ciphers[0] if qop is not QoP.INTEGRITY else EncryptionAlgorithm.NONE


def resigned_at(
    message: ProtectedMessage, signer: Issued, digest: SignatureAlgorithm, when: datetime.datetime
) -> bytes:
    """The integrity ``message`` signed again by ``signer`` with the signingTime ``when`` (the PDMQ
    header and clear headers unchanged): a backdated or forward-dated signature."""
    start = layout(message).blob_offset
    content = bytes(parse_signed_data(message.body[start:], wrapped=True).content)
    writer = SignedDataWriter(signer.certificate, signer.key, digest)
    return message.body[:start] + b"".join(bytes(part) for part in writer.content_info(content, now=when))
