"""Properties over several messages: the IV and content-encryption key of each message a peer
protects in a stream, compared across the stream (format.md §4-5).

Every privacy or confidentiality message has a random IV of its own, even when the key is
reused (format.md §5); with key reuse DISABLED every message has a key of its own; with a key
reuse count N a key serves at most N messages (the same key block, byte for byte, until the
count is reached) and every message carries the key-reuse flag (0x20).
"""

from __future__ import annotations

from collections import Counter

from cryptography.hazmat.primitives.asymmetric import padding

from ams.algorithms import KEYREUSE_DISABLED, KEYREUSE_UNLIMITED, QoP
from ams.errors import AmsError
from ams.hazmat import mqheaders, pdmq
from ams.hazmat.enveloped import EnvelopedContent, parse_enveloped_data
from ams.mqconstants import MQENC_NATIVE
from ams.testing.pki import Issued


def _envelope(body: bytes, fmt: str) -> tuple[pdmq.PdmqHeader, EnvelopedContent, bytes]:
    """The PDMQ header, the EnvelopedData that carries the message key, and the message's IV."""
    start = mqheaders.walk(body, fmt, MQENC_NATIVE).payload_offset
    header = pdmq.PdmqHeader.unpack(body[start:])
    blob = body[start + header.size :]
    if header.qop is QoP.PRIVACY:
        envelope = parse_enveloped_data(blob)
        return header, envelope, envelope.iv
    if header.qop is not QoP.CONFIDENTIALITY:
        raise ValueError(f"a {header.qop.name.lower()} message has no content-encryption key")
    key_block = blob[: header.key_block_size]
    iv = blob[header.key_block_size : header.key_block_size + header.iv_block_size]
    return header, parse_enveloped_data(key_block), bytes(iv)


def message_iv(body: bytes, fmt: str) -> bytes:
    """The IV of a privacy or confidentiality message (the envelope's, or the v3 IV block)."""
    return _envelope(body, fmt)[2]


def message_key(body: bytes, fmt: str, reader: Issued) -> bytes:
    """The content-encryption key of a message (privacy: the envelope's; confidentiality: the raw
    message key inside the key block), unwrapped with ``reader``'s private key."""
    header, envelope, _ = _envelope(body, fmt)
    index = envelope.recipient_index(reader.certificate)
    if index is None:
        raise ValueError(f"the message is not encrypted for {reader.certificate.subject.rfc4514_string()}")
    key = reader.key.decrypt(envelope.wrapped_key(index), padding.PKCS1v15())
    if header.qop is QoP.PRIVACY:
        return key
    return bytes(envelope.decrypt(key, what="the key block"))


def stream_problems(bodies: list[bytes], fmt: str, reader: Issued, key_reuse: int) -> list[str]:
    """What is wrong with the IVs and keys of ``bodies``, a stream one peer protected with the
    policy's key reuse count ``key_reuse`` (nothing: an empty list)."""
    try:
        ivs = [message_iv(body, fmt) for body in bodies]
        keys = [message_key(body, fmt, reader) for body in bodies]
        flags = [_reuse_flag(body, fmt) for body in bodies]
    except (AmsError, ValueError, IndexError) as error:  # the peer's output may be anything
        return [f"the kit cannot find the IV and key of the peer's messages ({error})"]
    problems = [f"message {n} has an all-zero IV" for n, iv in enumerate(ivs, 1) if not any(iv)]
    problems += _repeats("IV", ivs)
    if key_reuse == KEYREUSE_DISABLED:
        problems += _repeats("content-encryption key", keys)
    elif key_reuse != KEYREUSE_UNLIMITED:
        for key, uses in Counter(keys).items():
            if uses > key_reuse:
                numbers = [n for n, k in enumerate(keys, 1) if k == key]
                problems.append(
                    f"one key encrypts {uses} messages ({', '.join(map(str, numbers))}) where the key reuse count "
                    f"(-c {key_reuse}) allows at most {key_reuse}"
                )
    if key_reuse != KEYREUSE_DISABLED and not all(flags):
        problems.append("the key-reuse flag (0x20 in protType) is missing where the policy's key reuse is on")
    return problems


def _reuse_flag(body: bytes, fmt: str) -> bool:
    start = mqheaders.walk(body, fmt, MQENC_NATIVE).payload_offset
    return pdmq.PdmqHeader.unpack(body[start:]).key_reuse


def _repeats(what: str, values: list[bytes]) -> list[str]:
    """Each value that occurs more than once, with the numbers of the messages that carry it."""
    out = []
    for value, count in Counter(values).items():
        if count > 1:
            numbers = ", ".join(str(n) for n, v in enumerate(values, 1) if v == value)
            out.append(f"messages {numbers} share one {what}")
    return out
