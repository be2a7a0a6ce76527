"""The PCF records AMS keeps in ``SYSTEM.PROTECTION.POLICY.QUEUE`` (format.md §8).

One index message (CorrelId = 24 x 0xFF) lists every policy with the CorrelId of its own
message; each policy message carries the policy's fields as PCF parameters. Both integer
encodings are written and read. The MQCFH header values AMS writes are not documented;
these records use Type MQCFT_USER and accept any header on read (assumed). Parameter 8
holds the cipher in its low 8 bits and the key reuse count above them; counts above 2**23
wrap in the signed 32-bit field and are unwrapped on read (assumed).

The records come from a queue anyone with put authority may have written, so reading is
defensive: every count and length is checked against the bytes present before anything is
sliced or allocated (work and memory grow with the message size only), and whatever the bytes
the decoders raise only :class:`~ams.errors.PolicyError`, naming the parameter at fault.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Callable, Iterable

import attrs

from ams.algorithms import KEYREUSE_UNLIMITED, EncryptionAlgorithm, SignatureAlgorithm
from ams.dn import DistinguishedName
from ams.errors import DistinguishedNameError, PolicyError
from ams.mqconstants import integer_order
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


def _pad(data: bytes) -> bytes:
    return data + b" " * (-len(data) % 4)


class _Writer:
    def __init__(self, encoding: int) -> None:
        self.order = integer_order(encoding)
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
    """One policy's message body: an MQCFH and the policy's fields as PCF parameters 5 to 14."""
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
    """The index message body: the error queue, and per policy its name padded to 48 and CorrelId in 48 hex digits."""
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


Value = int | str | list[str]
Parameter = tuple[int, Value]

_PARAMETER_NAMES = {
    P_INDEX_ENTRIES: "index entries",
    P_INDEX_VERSION: "index version",
    P_ERROR_QUEUE: "error queue",
    P_VERSION: "policy version",
    P_NAME: "policy name",
    P_SIGNATURE: "signature algorithm",
    P_ENCRYPTION: "encryption algorithm and key reuse",
    P_AUDIT: "audit",
    P_SIGNER_COUNT: "signer count",
    P_SIGNER: "signer DN",
    P_RECIPIENT_COUNT: "recipient count",
    P_RECIPIENT: "recipient DN",
    P_TOLERATE: "toleration",
}
_MIN_PARAMETER_LENGTH = 12
_HEX_CORREL_ID = re.compile(r"[0-9A-Fa-f]{48}")


def _named(parameter: int) -> str:
    known = _PARAMETER_NAMES.get(parameter)
    return f"PCF parameter {parameter} ({known})" if known else f"PCF parameter {parameter}"


def _kind(value: object) -> str:
    return "a string list" if isinstance(value, list) else "a string" if isinstance(value, str) else "an integer"


def _label(name: str) -> str:
    """A policy name for an error text: quoted and cut to a queue name's 48 characters."""
    return repr(name) if len(name) <= 48 else repr(name[:48]) + "..."


def _text(raw: bytes, parameter: int, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PolicyError(
            f"{_named(parameter)}{what} is not valid UTF-8 (byte {error.start} of {len(raw)}): policy records "
            "hold text in CCSID 1208; rewrite the policy (setmqspl or SET POLICY)"
        ) from None


def parse_pcf(body: bytes) -> list[Parameter]:
    """The parameters of a PCF message, in order; the integer encoding is detected from the MQCFH.

    Every count and length is checked against the bytes present before anything is sliced or
    allocated, so the work is proportional to ``len(body)``. Only :class:`PolicyError` is raised.
    """
    order = _byte_order(body)
    count = struct.unpack_from(order + "i", body, 32)[0]
    room = len(body) - MQCFH_LENGTH
    if count < 0 or count > room // _MIN_PARAMETER_LENGTH:
        raise PolicyError(
            f"the MQCFH claims {count} PCF parameters but {room} bytes follow it, and each parameter takes at "
            f"least {_MIN_PARAMETER_LENGTH}: the message is truncated or not a policy record"
        )
    offset = MQCFH_LENGTH
    out: list[Parameter] = []
    for index in range(count):
        parameter, length = _parameter(body, order, offset, f"{index + 1} of {count}")
        out.append(parameter)
        offset += length
    return out


def _byte_order(body: bytes) -> str:
    """The struct byte order of a PCF message: the one in which the MQCFH StrucLength reads 36."""
    if len(body) < MQCFH_LENGTH:
        raise PolicyError(f"PCF message of {len(body)} bytes is shorter than an MQCFH ({MQCFH_LENGTH})")
    if struct.unpack_from(">i", body, 4)[0] == MQCFH_LENGTH:
        return ">"
    if struct.unpack_from("<i", body, 4)[0] == MQCFH_LENGTH:
        return "<"
    raise PolicyError("not a PCF message: MQCFH StrucLength is not 36 in either integer encoding")


def _parameter(body: bytes, order: str, offset: int, number: str) -> tuple[Parameter, int]:
    """The parameter at ``offset`` (``number`` says which, e.g. ``2 of 9``) and its StrucLength."""
    left = len(body) - offset
    if left < _MIN_PARAMETER_LENGTH:
        raise PolicyError(f"PCF parameter {number} is truncated: {left} bytes are left")
    kind, length, parameter = struct.unpack_from(order + "iii", body, offset)
    found = _PARAMETER_TYPES.get(kind)
    if found is None:
        raise PolicyError(
            f"{_named(parameter)} (number {number}) has type {kind}; expected "
            f"{MQCFT_INTEGER} (integer), {MQCFT_STRING} (string) or {MQCFT_STRING_LIST} (string list)"
        )
    fixed, read = found
    if length < fixed or length > left:
        raise PolicyError(
            f"{_named(parameter)} has StrucLength {length}, beyond the message ({left} bytes left) or shorter "
            f"than its fixed part ({fixed} bytes): the message is truncated or damaged"
        )
    return (parameter, read(body, order, offset, parameter, length, fixed)), length


def _integer_value(body: bytes, order: str, offset: int, parameter: int, length: int, fixed: int) -> Value:
    """An MQCFIN's Value."""
    if length != fixed:
        raise PolicyError(f"{_named(parameter)} is an integer with StrucLength {length}; expected {fixed}")
    value: int = struct.unpack_from(order + "i", body, offset + 12)[0]
    return value


def _string_value(body: bytes, order: str, offset: int, parameter: int, length: int, fixed: int) -> Value:
    """An MQCFST's String, trailing blanks and NULs removed."""
    size = struct.unpack_from(order + "i", body, offset + 16)[0]
    if size < 0 or size > length - fixed:
        raise PolicyError(
            f"{_named(parameter)} claims a string of {size} bytes but its StrucLength {length} leaves room "
            f"for {length - fixed}: the message is damaged"
        )
    raw = body[offset + fixed : offset + fixed + size]
    return _text(raw, parameter, "").rstrip(" \x00")


def _string_list_value(body: bytes, order: str, offset: int, parameter: int, length: int, fixed: int) -> Value:
    """An MQCFSL's Strings, each of StringLength bytes, as they are (padding kept)."""
    number, size = struct.unpack_from(order + "ii", body, offset + 16)
    # an entry takes at least one byte of room even when StringLength is 0, so the number of
    # entries made is bounded by the message size
    if number < 0 or size < 0 or number * max(size, 1) > length - fixed:
        raise PolicyError(
            f"{_named(parameter)} claims {number} strings of {size} bytes but its StrucLength {length} "
            f"leaves room for {length - fixed} bytes: the message is damaged"
        )
    start = offset + fixed
    return [_text(body[start + i * size : start + (i + 1) * size], parameter, f" entry {i + 1}") for i in range(number)]


# Each parameter type: the length of its fixed part (Type, StrucLength, Parameter, then Value for
# MQCFIN, CodedCharSetId and StringLength for MQCFST, CodedCharSetId, Count and StringLength for
# MQCFSL), and how its value is read.
_PARAMETER_TYPES: dict[int, tuple[int, Callable[[bytes, str, int, int, int, int], Value]]] = {
    MQCFT_INTEGER: (16, _integer_value),
    MQCFT_STRING: (20, _string_value),
    MQCFT_STRING_LIST: (24, _string_list_value),
}


def _integer(values: dict[int, Value], parameter: int, default: int | None = None) -> int:
    value = values.get(parameter, default)
    if not isinstance(value, int):
        found = "nothing" if value is None else _kind(value)
        raise PolicyError(f"{_named(parameter)} should be an integer, found {found}")
    return value


def _string(values: dict[int, Value], parameter: int, default: str | None = None) -> str:
    value = values.get(parameter, default)
    if not isinstance(value, str):
        found = "nothing" if value is None else _kind(value)
        raise PolicyError(f"{_named(parameter)} should be a string, found {found}")
    return value


def _unique(parameters: Iterable[Parameter], repeatable: tuple[int, ...] = ()) -> dict[int, Value]:
    values: dict[int, Value] = {}
    for parameter, value in parameters:
        if parameter in repeatable:
            continue
        if parameter in values:
            raise PolicyError(f"{_named(parameter)} appears more than once; a record holds it once")
        values[parameter] = value
    return values


def _dns(texts: list[str], parameter: int, policy: str) -> tuple[DistinguishedName, ...]:
    out = []
    for number, text in enumerate(texts, start=1):
        try:
            out.append(DistinguishedName.parse(text))
        except DistinguishedNameError as error:
            raise DistinguishedNameError(
                f"policy {_label(policy)}: {_named(parameter)} number {number}: {error.message}"
            ) from None
    return tuple(out)


def _algorithm(
    enum: type[SignatureAlgorithm] | type[EncryptionAlgorithm], value: int, policy: str, parameter: int
) -> int:
    if value not in {member.value for member in enum}:
        accepted = ", ".join(f"{member.value} ({member.label})" for member in enum)
        raise PolicyError(f"policy {_label(policy)}: {_named(parameter)} holds {value}; expected one of {accepted}")
    return value


def decode_policy(body: bytes) -> Policy:
    """The policy of one policy message. Only :class:`PolicyError` is raised, whatever the bytes."""
    parameters = parse_pcf(body)
    values = _unique(parameters, repeatable=(P_SIGNER, P_RECIPIENT))
    signers: list[str] = []
    recipients: list[str] = []
    for parameter, value in parameters:
        if parameter in (P_SIGNER, P_RECIPIENT):
            if not isinstance(value, str):
                raise PolicyError(f"{_named(parameter)} should be a string, found {_kind(value)}")
            (signers if parameter == P_SIGNER else recipients).append(value)
    for required in (P_NAME, P_SIGNATURE, P_ENCRYPTION):
        if required not in values:
            raise PolicyError(f"policy message lacks {_named(required)}")
    name = _string(values, P_NAME)
    for count_parameter, found, what in (
        (P_SIGNER_COUNT, signers, "signer"),
        (P_RECIPIENT_COUNT, recipients, "recipient"),
    ):
        if count_parameter in values and _integer(values, count_parameter) != len(found):
            raise PolicyError(
                f"policy {_label(name)}: {what} count says {values[count_parameter]} but {len(found)} {what} DNs follow"
            )
    combined = _integer(values, P_ENCRYPTION)
    signature = SignatureAlgorithm(_algorithm(SignatureAlgorithm, _integer(values, P_SIGNATURE), name, P_SIGNATURE))
    encryption = EncryptionAlgorithm(_algorithm(EncryptionAlgorithm, combined & 0xFF, name, P_ENCRYPTION))
    tolerate = _integer(values, P_TOLERATE, 0)
    if tolerate not in (0, 1):
        raise PolicyError(f"policy {_label(name)}: {_named(P_TOLERATE)} holds {tolerate}; expected 0 or 1")
    reuse = combined >> 8
    if reuse < KEYREUSE_UNLIMITED:  # a count above 2**23 that wrapped when encoded
        reuse += 1 << 24
    return Policy(
        name=name,
        signature_algorithm=signature,
        encryption_algorithm=encryption,
        recipients=_dns(recipients, P_RECIPIENT, name),
        signers=_dns(signers, P_SIGNER, name),
        tolerate=tolerate == 1,
        key_reuse=KEYREUSE_UNLIMITED if reuse == KEYREUSE_UNLIMITED else reuse,
    )


@attrs.frozen
class PolicyIndex:
    """The index message, decoded: its version, the error queue it names, and each policy's name and CorrelId."""

    version: int
    error_queue: str
    entries: tuple[tuple[str, bytes], ...]  # (policy name, CorrelId)


def decode_index(body: bytes) -> PolicyIndex:
    """The index message. Only :class:`PolicyError` is raised, whatever the bytes."""
    values = _unique(parse_pcf(body))
    raw_entries = values.get(P_INDEX_ENTRIES, [])
    if not isinstance(raw_entries, list):
        raise PolicyError(f"{_named(P_INDEX_ENTRIES)} should be a string list, found {_kind(raw_entries)}")
    entries = []
    for number, entry in enumerate(raw_entries, start=1):
        if len(entry) != 96:
            raise PolicyError(
                f"{_named(P_INDEX_ENTRIES)} entry {number} has {len(entry)} characters; expected 96 (a policy name "
                "padded to 48 and its CorrelId as 48 hex digits)"
            )
        name, hex_id = entry[:48].rstrip(), entry[48:]
        if not _HEX_CORREL_ID.fullmatch(hex_id):
            raise PolicyError(
                f"{_named(P_INDEX_ENTRIES)} entry {number} ({name!r}) has a CorrelId that is not 48 hex digits"
            )
        entries.append((name, bytes.fromhex(hex_id)))
    return PolicyIndex(_integer(values, P_INDEX_VERSION, 1), _string(values, P_ERROR_QUEUE, ""), tuple(entries))


def decode_policy_queue(messages: Iterable[PcfMessage]) -> tuple[PolicyIndex | None, list[Policy]]:
    """The index (if present) and the policies, checked against each other.

    Only :class:`PolicyError` is raised, whatever the messages hold.
    """
    index = None
    policies: dict[bytes, Policy] = {}
    names: set[str] = set()
    for message in messages:
        if message.correl_id == INDEX_CORREL_ID:
            if index is not None:
                raise PolicyError("the policy queue holds two index messages; expected one")
            index = decode_index(message.body)
            continue
        if message.correl_id in policies:
            raise PolicyError(
                f"two policy messages share CorrelId {message.correl_id.hex()}; expected one message per policy"
            )
        policy = decode_policy(message.body)
        if policy.name in names:
            raise PolicyError(f"two policy messages define policy {policy.name}; expected one message per policy")
        names.add(policy.name)
        policies[message.correl_id] = policy
    if index is not None:
        for name, correl_id in index.entries:
            found = policies.get(correl_id)
            if found is None or found.name != name:
                raise PolicyError(f"the index lists policy {name} with CorrelId {correl_id.hex()}, but no such message")
    return index, sorted(policies.values(), key=lambda p: p.name)
