"""The PCF records AMS keeps in ``SYSTEM.PROTECTION.POLICY.QUEUE`` (AMS-FORMAT section 8).

One index message (CorrelId = 24 x 0xFF) lists every policy with the CorrelId of its own
message; each policy message carries the policy's fields as PCF parameters. Both integer
encodings are written and read. The MQCFH header values AMS writes are not documented;
these records use Type MQCFT_USER and accept any header on read [unconfirmed]. Parameter 8
holds the cipher in its low 8 bits and the key reuse count above them; counts above 2**23
wrap in the signed 32-bit field and are unwrapped on read [unconfirmed].
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable

import attrs

from ams.algorithms import KEYREUSE_UNLIMITED, EncryptionAlgorithm, SignatureAlgorithm
from ams.dn import DistinguishedName
from ams.errors import PolicyError
from ams.policy.model import Policy

INDEX_CORREL_ID = b"\xff" * 24
MQCFT_USER = 8
MQCFT_INTEGER = 3
MQCFT_STRING = 4
MQCFT_STRING_LIST = 6
MQCFH_LENGTH = 36
CCSID = 1208
ENCODING_NORMAL = 273  # big-endian integers
ENCODING_REVERSED = 546  # little-endian integers

P_INDEX_ENTRIES = 2
P_INDEX_VERSION = 3
P_ERROR_QUEUE = 4
P_VERSION = 5
P_NAME = 6
P_SIGNATURE = 7
P_ENCRYPTION = 8
P_AUDIT = 9
P_SIGNER_COUNT = 10
P_SIGNER = 11
P_RECIPIENT_COUNT = 12
P_RECIPIENT = 13
P_TOLERATE = 14


@attrs.frozen
class PcfMessage:
    """One message of the policy queue: its CorrelId and PCF body."""

    correl_id: bytes
    body: bytes


def _order(encoding: int) -> str:
    return "<" if encoding & 0x0F == 2 else ">"


def _pad(data: bytes) -> bytes:
    return data + b" " * (-len(data) % 4)


class _Writer:
    def __init__(self, encoding: int) -> None:
        self.order = _order(encoding)
        self.parts: list[bytes] = []

    def integer(self, parameter: int, value: int) -> None:
        self.parts.append(struct.pack(self.order + "iiii", MQCFT_INTEGER, 16, parameter, value))

    def string(self, parameter: int, value: str, length: int | None = None) -> None:
        raw = value.encode("utf-8")
        if length is not None:
            raw = raw.ljust(length, b" ")
        padded = _pad(raw)
        self.parts.append(
            struct.pack(self.order + "iiiii", MQCFT_STRING, 20 + len(padded), parameter, CCSID, len(raw)) + padded
        )

    def strings(self, parameter: int, values: list[str], length: int) -> None:
        raw = b"".join(v.encode("utf-8").ljust(length, b" ")[:length] for v in values)
        padded = _pad(raw)
        self.parts.append(
            struct.pack(
                self.order + "iiiiii", MQCFT_STRING_LIST, 24 + len(padded), parameter, CCSID, len(values), length
            )
            + padded
        )

    def message(self) -> bytes:
        header = struct.pack(self.order + "iiiiiiiii", MQCFT_USER, MQCFH_LENGTH, 1, 0, 1, 1, 0, 0, len(self.parts))
        return header + b"".join(self.parts)


def correl_id_for(name: str) -> bytes:
    """A stable CorrelId for a policy's message, so rewriting the same policy gives the same bytes."""
    return hashlib.sha256(b"ams-policy:" + name.encode("utf-8")).digest()[:24]


def encode_policy(policy: Policy, *, encoding: int = ENCODING_REVERSED) -> bytes:
    writer = _Writer(encoding)
    writer.integer(P_VERSION, 1)
    writer.string(P_NAME, policy.name, 48)
    writer.integer(P_SIGNATURE, policy.signature_algorithm.value)
    combined = ((policy.key_reuse << 8) | policy.encryption_algorithm.value) & 0xFFFFFFFF
    # key reuse counts above 2**23 do not fit a signed 24-bit field: they wrap, and decode unwraps
    writer.integer(P_ENCRYPTION, combined - (1 << 32) if combined >= 1 << 31 else combined)
    writer.integer(P_AUDIT, 0)
    writer.integer(P_SIGNER_COUNT, len(policy.signers))
    for dn in policy.signers:
        writer.string(P_SIGNER, str(dn))
    writer.integer(P_RECIPIENT_COUNT, len(policy.recipients))
    for dn in policy.recipients:
        writer.string(P_RECIPIENT, str(dn))
    writer.integer(P_TOLERATE, 1 if policy.tolerate else 0)
    return writer.message()


def encode_index(policies: Iterable[Policy], *, error_queue: str = "", encoding: int = ENCODING_REVERSED) -> bytes:
    writer = _Writer(encoding)
    writer.integer(P_INDEX_VERSION, 1)
    writer.string(P_ERROR_QUEUE, error_queue, 48)
    entries = [p.name.ljust(48) + correl_id_for(p.name).hex().upper() for p in policies]
    writer.strings(P_INDEX_ENTRIES, entries, 96)
    return writer.message()


def encode_policy_queue(
    policies: Iterable[Policy], *, error_queue: str = "", encoding: int = ENCODING_REVERSED
) -> list[PcfMessage]:
    """The index message followed by one message per policy."""
    ordered = sorted(policies, key=lambda p: p.name)
    messages = [PcfMessage(INDEX_CORREL_ID, encode_index(ordered, error_queue=error_queue, encoding=encoding))]
    messages += [PcfMessage(correl_id_for(p.name), encode_policy(p, encoding=encoding)) for p in ordered]
    return messages


Parameter = tuple[int, int | str | list[str]]


def parse_pcf(body: bytes) -> list[Parameter]:
    """The parameters of a PCF message, in order; the integer encoding is detected from the MQCFH."""
    if len(body) < MQCFH_LENGTH:
        raise PolicyError(f"PCF message of {len(body)} bytes is shorter than an MQCFH ({MQCFH_LENGTH})")
    if struct.unpack_from(">i", body, 4)[0] == MQCFH_LENGTH:
        order = ">"
    elif struct.unpack_from("<i", body, 4)[0] == MQCFH_LENGTH:
        order = "<"
    else:
        raise PolicyError("not a PCF message: MQCFH StrucLength is not 36 in either integer encoding")
    count = struct.unpack_from(order + "i", body, 32)[0]
    offset = MQCFH_LENGTH
    out: list[Parameter] = []
    for index in range(count):
        if offset + 12 > len(body):
            raise PolicyError(f"PCF parameter {index + 1} of {count} is truncated")
        kind, length, parameter = struct.unpack_from(order + "iii", body, offset)
        if length < 12 or offset + length > len(body):
            raise PolicyError(f"PCF parameter {parameter} has StrucLength {length}, beyond the message")
        if kind == MQCFT_INTEGER:
            out.append((parameter, struct.unpack_from(order + "i", body, offset + 12)[0]))
        elif kind == MQCFT_STRING:
            _, size = struct.unpack_from(order + "ii", body, offset + 12)
            raw = body[offset + 20 : offset + 20 + size]
            out.append((parameter, raw.decode("utf-8").rstrip(" \x00")))
        elif kind == MQCFT_STRING_LIST:
            _, number, size = struct.unpack_from(order + "iii", body, offset + 12)
            raw = body[offset + 24 : offset + 24 + number * size]
            out.append((parameter, [raw[i * size : (i + 1) * size].decode("utf-8") for i in range(number)]))
        else:
            raise PolicyError(f"PCF parameter {parameter} has type {kind}; expected integer, string or string list")
        offset += length
    return out


def _integer(values: dict[int, object], parameter: int, default: int | None = None) -> int:
    value = values.get(parameter, default)
    if not isinstance(value, int):
        raise PolicyError(f"PCF parameter {parameter} should be an integer, found {value!r}")
    return value


def decode_policy(body: bytes) -> Policy:
    values: dict[int, object] = {}
    signers: list[str] = []
    recipients: list[str] = []
    for parameter, value in parse_pcf(body):
        if parameter == P_SIGNER:
            signers.append(str(value))
        elif parameter == P_RECIPIENT:
            recipients.append(str(value))
        else:
            values[parameter] = value
    for required in (P_NAME, P_SIGNATURE, P_ENCRYPTION):
        if required not in values:
            raise PolicyError(f"policy message lacks PCF parameter {required}")
    name = str(values[P_NAME])
    for count_parameter, found, what in (
        (P_SIGNER_COUNT, signers, "signer"),
        (P_RECIPIENT_COUNT, recipients, "recipient"),
    ):
        if count_parameter in values and values[count_parameter] != len(found):
            raise PolicyError(
                f"policy {name}: {what} count says {values[count_parameter]} but {len(found)} {what} DNs follow"
            )
    combined = _integer(values, P_ENCRYPTION)
    try:
        signature = SignatureAlgorithm(_integer(values, P_SIGNATURE))
        encryption = EncryptionAlgorithm(combined & 0xFF)
    except ValueError as error:
        raise PolicyError(f"policy {name}: {error}") from None
    reuse = combined >> 8
    if reuse < KEYREUSE_UNLIMITED:  # a count above 2**23 that wrapped when encoded
        reuse += 1 << 24
    return Policy(
        name=name,
        signature_algorithm=signature,
        encryption_algorithm=encryption,
        recipients=tuple(DistinguishedName.parse(r) for r in recipients),
        signers=tuple(DistinguishedName.parse(s) for s in signers),
        tolerate=_integer(values, P_TOLERATE, 0) == 1,
        key_reuse=KEYREUSE_UNLIMITED if reuse == KEYREUSE_UNLIMITED else reuse,
    )


@attrs.frozen
class PolicyIndex:
    version: int
    error_queue: str
    entries: tuple[tuple[str, bytes], ...]  # (policy name, CorrelId)


def decode_index(body: bytes) -> PolicyIndex:
    values: dict[int, object] = dict(parse_pcf(body))
    raw_entries = values.get(P_INDEX_ENTRIES, [])
    entries = []
    for entry in raw_entries if isinstance(raw_entries, list) else []:
        name, hex_id = entry[:48].rstrip(), entry[48:96].strip()
        try:
            entries.append((name, bytes.fromhex(hex_id)))
        except ValueError:
            raise PolicyError(f"index entry for {name!r} has a CorrelId that is not hex: {hex_id!r}") from None
    return PolicyIndex(_integer(values, P_INDEX_VERSION, 1), str(values.get(P_ERROR_QUEUE, "")), tuple(entries))


def decode_policy_queue(messages: Iterable[PcfMessage]) -> tuple[PolicyIndex | None, list[Policy]]:
    """The index (if present) and the policies, checked against each other."""
    index = None
    policies: dict[bytes, Policy] = {}
    for message in messages:
        if message.correl_id == INDEX_CORREL_ID:
            index = decode_index(message.body)
        else:
            policies[message.correl_id] = decode_policy(message.body)
    if index is not None:
        for name, correl_id in index.entries:
            found = policies.get(correl_id)
            if found is None or found.name != name:
                raise PolicyError(f"the index lists policy {name} with CorrelId {correl_id.hex()}, but no such message")
    return index, sorted(policies.values(), key=lambda p: p.name)
