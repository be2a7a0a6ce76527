"""What the attacks in tests/security share: an attacker's view of a protected message.

The attacker can put messages on a protected queue and read every error text the receiver
prints. These helpers take genuine messages apart the way such an attacker would (they need
no key), and, for the assertions only, compute what the receiver's decryption of a corrupted
message really held, so that a test can check that none of it reached an error text.
"""

from __future__ import annotations

import attrs
from cryptography.hazmat.primitives import padding as symmetric_padding
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import Cipher, modes

import ams
from ams.hazmat.enveloped import parse_enveloped_data
from ams.hazmat.pdmq import PdmqHeader

V2 = 104
V3 = 112


def flip(data: bytes, offset: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[offset] ^= mask
    return bytes(out)


def put_byte(data: bytes, offset: int, value: int) -> bytes:
    out = bytearray(data)
    out[offset] = value
    return bytes(out)


@attrs.frozen
class PrivacyLayout:
    """Where the parts of a privacy message sit (all public: found without any key)."""

    blob_start: int
    ciphertext_start: int
    ciphertext_size: int
    iv_start: int
    block: int
    wrapped_start: int
    wrapped_size: int


def privacy_layout(message: bytes, wrapped_for: bytes) -> PrivacyLayout:
    """The ciphertext, IV and one recipient's encryptedKey (``wrapped_for``: its bytes) of a message."""
    envelope = parse_enveloped_data(message[V2:])
    ciphertext = bytes(envelope.ciphertext)
    start = message.rindex(ciphertext)
    iv_start = message.index(envelope.iv)
    return PrivacyLayout(
        V2,
        start,
        len(ciphertext),
        iv_start,
        envelope.algorithm.spec.block_size,
        message.index(wrapped_for),
        len(wrapped_for),
    )


def wrapped_key_for(message: bytes, identity: ams.Identity, *, offset: int = V2) -> bytes:
    """The encryptedKey of ``identity``'s RecipientInfo, as an attacker reads it from the message."""
    envelope = parse_enveloped_data(message[offset:])
    index = envelope.recipient_index(identity.certificate)
    assert index is not None
    return envelope.wrapped_key(index)


def raw_plaintext(message: bytes, identity: ams.Identity, *, key_block: bool = False) -> bytes:
    """What CBC decryption of the (possibly corrupted) content yields with the real key (empty
    when the corruption left nothing to decrypt). For the assertions only: the attacker never
    has this."""
    try:
        return _raw_plaintext(message, identity, key_block=key_block)
    except (ams.AmsError, ValueError):
        return b""


def _raw_plaintext(message: bytes, identity: ams.Identity, *, key_block: bool) -> bytes:
    header = PdmqHeader.unpack(message)
    blob = message[header.size :]
    envelope = parse_enveloped_data(blob[: header.key_block_size] if header.key_block_size else blob)
    index = envelope.recipient_index(identity.certificate)
    assert index is not None
    key = identity.private_key.decrypt(envelope.wrapped_key(index), padding.PKCS1v15())
    algorithm = envelope.algorithm.spec
    decryptor = Cipher(algorithm.factory(key), modes.CBC(envelope.iv)).decryptor()
    plain = decryptor.update(bytes(envelope.ciphertext)) + decryptor.finalize()
    if header.key_block_size and not key_block:
        unpadder = symmetric_padding.PKCS7(algorithm.block_size * 8).unpadder()
        try:
            message_key = unpadder.update(plain) + unpadder.finalize()
        except ValueError:
            return plain
        iv = blob[header.key_block_size : header.key_block_size + header.iv_block_size]
        ciphertext = blob[header.key_block_size + header.iv_block_size :]
        try:
            decryptor = Cipher(algorithm.factory(message_key), modes.CBC(iv)).decryptor()
            return plain + decryptor.update(ciphertext) + decryptor.finalize()
        except ValueError:
            return plain
    return plain


def leaked(text: str, plaintext: bytes, *, window: int = 6) -> list[str]:
    """Pieces of ``plaintext`` that appear in ``text``: as hex (either case), or as text of
    ``window`` + 2 printable characters (a DN or a number the receiver would print anyway is
    shorter than that, or is public)."""
    found = []
    lowered = text.lower()
    for start in range(0, max(0, len(plaintext) - window + 1)):
        piece = plaintext[start : start + window]
        if piece.hex() in lowered:
            found.append(piece.hex())
    wide = window + 2
    for start in range(0, max(0, len(plaintext) - wide + 1)):
        piece = plaintext[start : start + wide]
        if all(0x20 <= b < 0x7F for b in piece) and piece.decode("ascii") in text:
            found.append(piece.decode("ascii"))
    return found


def outcome(action: object) -> tuple[str, str, int, str] | str:
    """How a receiver's call ended, as the attacker sees it: the error's class, code, reason and
    text, or "accepted"."""
    assert callable(action)
    try:
        action()
    except ams.AmsError as error:
        return (type(error).__name__, error.code, error.reason, str(error))
    return "accepted"
