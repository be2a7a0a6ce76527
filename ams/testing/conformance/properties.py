"""The properties ``ams conformance`` checks, the cases they draw, and the one peer call each case makes.

Every case becomes one :class:`Step`: a request to the peer and what its outcome must be. In the
direction *ours to the peer* this side protects (in process) and the peer unprotects; in the
direction *the peer to ours* the peer protects and this side reads what it wrote. A step holds
everything needed to run it again, so that a saved failure replays with one command.
"""

from __future__ import annotations

import enum
import warnings
from typing import Any

import attrs

from ams.algorithms import EncryptionAlgorithm, QoP, SignatureAlgorithm
from ams.errors import AmsDeprecationWarning
from ams.policy.model import Policy
from ams.protector import Protector
from ams.testing.conformance.protocol import Request
from ams.testing.conformance.signing_times import backdated, forward_dated
from ams.testing.conformance.tampering import MUST_ACCEPT, MUST_CHECK, must_check_change
from ams.testing.conformance.world import (
    INVALID_SIGNERS,
    OUTSIDER,
    RECIPIENTS,
    REVOKED_SIGNERS,
    SENDER,
    UNTRUSTED_SIGNERS,
    UNUSABLE_RECIPIENT,
    World,
)
from ams.testing.headers import ClearChain
from ams.testing.mutations import Expect, Mutation, ProtectedMessage, field_changes, refusing
from ams.testing.payloads import PayloadSpec

OURS_TO_PEER = "ours -> peer"
PEER_TO_OURS = "peer -> ours"
SIGNED = (QoP.INTEGRITY, QoP.PRIVACY)
ENCRYPTED = (QoP.PRIVACY, QoP.CONFIDENTIALITY)
ALL = (QoP.INTEGRITY, QoP.PRIVACY, QoP.CONFIDENTIALITY)
QOP_MATRIX = "peer-follows-qop-matrix"


class Check(enum.Enum):
    """What a step's outcome must be."""

    REFUSE = "refuse"  # the peer refuses (exits 1-125: a crash is no refusal)
    ACCEPT = "accept"  # the peer unprotects and writes the original body
    READABLE = "readable"  # the peer protects, and every reader of ours gets the original body back
    STRICT = "strict"  # the peer protects exactly as AMS writes, and our strictest reader accepts it
    WE_REFUSE = "we-refuse"  # the peer protects, and we refuse its message once changed
    RESTORES = "restores"  # the peer unprotects, writes the original body and hands back the original Format
    FRESH = "fresh"  # the peer protects a stream of messages, each readable, with fresh IVs and keys (streams.py)


@attrs.frozen
class Property:
    """One property: its name, what it checks, its direction, and what a peer needs for it."""

    name: str
    summary: str
    direction: str
    qops: tuple[QoP, ...]
    check: Check
    needs_policies: bool = False
    needs_placeholder: str = ""  # the peer's template must take it (or {policies}) for the property to run

    @property
    def operation(self) -> str:
        """The peer's operation in every step: unprotect (ours to the peer) or protect (the peer to ours)."""
        return "unprotect" if self.direction == OURS_TO_PEER else "protect"


PROPERTIES = (
    Property(
        "roundtrip-to-peer", "the peer unprotects what we protect and gets the original body back", OURS_TO_PEER,
        ALL, Check.ACCEPT,
    ),
    Property(
        "roundtrip-from-peer", "we unprotect what the peer protects, as every recipient, and get the original body",
        PEER_TO_OURS, ALL, Check.READABLE,
    ),
    Property(
        "peer-writes-strict", "what the peer writes is AMS's format exactly, and our strictest reader accepts it",
        PEER_TO_OURS, ALL, Check.STRICT,
    ),
    Property(
        "peer-refuses-tampered", "the peer refuses our message with a byte changed where a change must be noticed",
        OURS_TO_PEER, ALL, Check.REFUSE,
    ),
    Property(
        "peer-refuses-non-recipient", "the peer refuses a message that is not encrypted for it", OURS_TO_PEER,
        ENCRYPTED, Check.REFUSE,
    ),
    Property(
        "peer-refuses-untrusted-signer", "the peer refuses a message signed by someone outside its trust anchors",
        OURS_TO_PEER, SIGNED, Check.REFUSE,
    ),
    Property(
        "peer-refuses-invalid-signer",
        "the peer refuses a signer whose certificate breaks AMS's rules (dates, usage, a CA)",
        OURS_TO_PEER, SIGNED, Check.REFUSE,
    ),
    Property(
        "peer-refuses-backdated-signer",
        "the peer refuses a signer whose certificate is not valid now, though the signingTime lies within its "
        "validity (expired since, or valid only later)",
        OURS_TO_PEER, (QoP.INTEGRITY,), Check.REFUSE,
    ),
    Property(
        "peer-accepts-future-signing-time",
        "the peer accepts an integrity message from a signer valid now whose signingTime lies 30 days ahead: AMS "
        "checks the certificate's validity now, not the signingTime (format.md §6, SECURITY.md)",
        OURS_TO_PEER, (QoP.INTEGRITY,), Check.ACCEPT,
    ),
    Property(
        "peer-refuses-revoked-signer",
        "given the CA's CRL ({crl}), the peer refuses a message signed by a signer the CRL revokes",
        OURS_TO_PEER, SIGNED, Check.REFUSE, needs_placeholder="crl",
    ),
    Property(
        "peer-accepts-unrevoked-signer",
        "given the CA's CRL ({crl}), the peer accepts a message signed by a signer the CRL does not revoke",
        OURS_TO_PEER, SIGNED, Check.ACCEPT, needs_placeholder="crl",
    ),
    Property(
        "peer-refuses-unusable-recipient",
        "the peer refuses to encrypt for a recipient whose certificate has keyUsage without keyEncipherment",
        PEER_TO_OURS, ENCRYPTED, Check.REFUSE,
    ),
    Property(
        "peer-refuses-unauthorised-signer",
        "with authorised signers (-a, {authorised_dn}) the peer refuses a message signed by someone not among them",
        OURS_TO_PEER, SIGNED, Check.REFUSE, needs_policies=True, needs_placeholder="authorised_dn",
    ),
    Property(
        "peer-accepts-authorised-signer",
        "with authorised signers (-a, {authorised_dn}) the peer accepts a message signed by one of them",
        OURS_TO_PEER, SIGNED, Check.ACCEPT, needs_policies=True, needs_placeholder="authorised_dn",
    ),
    Property(
        "peer-refuses-weaker-algorithm", "the peer refuses a digest or cipher weaker than its policy's",
        OURS_TO_PEER, ALL, Check.REFUSE, needs_policies=True,
    ),
    Property(
        "peer-refuses-other-qop",
        "the peer refuses a message of a QoP its policy does not accept: a downgrade or another QoP (format.md §6)",
        OURS_TO_PEER, ALL, Check.REFUSE, needs_policies=True,
    ),
    Property(
        "peer-accepts-higher-qop", "the peer accepts a privacy message on an integrity policy (format.md §6)",
        OURS_TO_PEER, (QoP.PRIVACY,), Check.ACCEPT, needs_policies=True,
    ),
    Property(
        "peer-refuses-unprotected", "the peer refuses a message that is not protected on a queue that must be (-t 0)",
        OURS_TO_PEER, ALL, Check.REFUSE, needs_policies=True,
    ),
    Property(
        "peer-tolerates-unprotected", "with -t 1 ({tolerate}) the peer hands an unprotected message back as is",
        OURS_TO_PEER, ALL, Check.ACCEPT, needs_policies=True, needs_placeholder="tolerate",
    ),
    Property(  # each step accepts or refuses, as its cell says (Check.REFUSE here: refusals need the control call)
        QOP_MATRIX,
        "with a policy of each QoP and -t 0 or 1 ({tolerate}), the peer accepts or refuses a message of each QoP, "
        "and one not protected, as format.md §6's table says",
        OURS_TO_PEER, ALL, Check.REFUSE, needs_policies=True, needs_placeholder="tolerate",
    ),
    Property(
        "peer-restores-format",
        "with no clear headers, the peer hands back the original MQMD Format ({out_format}), which the message "
        "carries in PDMQ origFormat (format.md §1-2)",
        OURS_TO_PEER, ALL, Check.RESTORES, needs_placeholder="out_format",
    ),
    Property(
        "peer-accepts-unchecked-fields",
        "the peer accepts our message with a field AMS does not check changed: reserved bytes, flags, the policy "
        "name, the dynamic-queue byte, the header byte-swapped (encoding 2)",
        OURS_TO_PEER, ALL, Check.ACCEPT,
    ),
    Property(
        "peer-writes-fresh-keys",
        "over a stream of 3-4 messages the peer protects, each has an IV of its own, not all zero, and a "
        "content-encryption key of its own (key reuse DISABLED, format.md §4-5)",
        PEER_TO_OURS, ENCRYPTED, Check.FRESH,
    ),
    Property(
        "peer-honours-key-reuse",
        "with key reuse -c N ({key_reuse}), over a stream of 3-4 messages the peer protects, a key serves at most N "
        "of them, each has an IV of its own and the key-reuse flag (format.md §5)",
        PEER_TO_OURS, (QoP.CONFIDENTIALITY,), Check.FRESH, needs_placeholder="key_reuse",
    ),
    Property(
        "we-refuse-tampered", "we refuse the peer's message with a byte changed where a change must be noticed",
        PEER_TO_OURS, ALL, Check.WE_REFUSE,
    ),
)  # fmt: skip
BY_NAME = {p.name: p for p in PROPERTIES}
MUST_CHECK_KIND = "must-check"  # a Case.mutation of this kind changes MUST_CHECK[qop][index]
MUST_ACCEPT_KIND = "accept"  # ... and of this kind, MUST_ACCEPT[qop][index] (peer-accepts-unchecked-fields)


@attrs.frozen
class Case:
    """One combination a property tries: protection, algorithms, recipients, payload, headers, queue,
    and what the property changes (a mutation, the signer, the peer's stronger policy)."""

    qop: QoP
    digest: SignatureAlgorithm
    cipher: EncryptionAlgorithm
    recipients: int
    reader: int
    payload: PayloadSpec
    chain: ClearChain
    queue: str
    mutation: tuple[str, int, int] | None = None  # (kind, index, bit) for mutations.refusing
    signer: str = SENDER
    policy_digest: SignatureAlgorithm | None = None  # the peer's policy, when it must be stronger
    policy_cipher: EncryptionAlgorithm | None = None
    policy_qop: QoP | None = None  # the peer's policy's QoP, when it is not the message's
    authorised: tuple[str, ...] = ()  # the peer's policy's authorised signers (-a)
    stream: int = 1  # messages the peer protects in a row (properties over several messages)
    key_reuse: int = 0  # the peer's policy's key reuse count (-c; -1 UNLIMITED)
    tolerate: bool = False  # the peer's policy tolerates unprotected messages (-t 1)
    unprotected: bool = False  # the message is the body as it was, not protected (``qop``: the policy's)

    @property
    def recipient_names(self) -> tuple[str, ...]:
        """The policy's recipients (none for integrity)."""
        return RECIPIENTS[: self.recipients]

    @property
    def reader_name(self) -> str:
        """Who reads: one of the recipients (for integrity, any identity the CA issued)."""
        return RECIPIENTS[self.reader]

    def tamper_class(self) -> str | None:
        """What the case changes in a message: a random kind (``flip``...) or a named must-check field."""
        if self.mutation is None:
            return None
        kind, index, _ = self.mutation
        if kind == MUST_CHECK_KIND:
            return MUST_CHECK[self.qop][index % len(MUST_CHECK[self.qop])]
        if kind == MUST_ACCEPT_KIND:
            return MUST_ACCEPT[self.qop][index % len(MUST_ACCEPT[self.qop])]
        return kind

    def algorithms(self) -> str:
        """``SHA256/AES256``, ``SHA512`` or ``AES128``: the message's algorithms."""
        return "/".join(a.label for a in (self.digest, self.cipher) if a.value)

    def describe(self) -> str:
        """The case in words, as a report shows a counterexample."""
        parts = ["not protected" if self.unprotected else f"{self.qop.name.lower()} {self.algorithms()}"]
        if self.policy_digest is not None or self.policy_cipher is not None:
            stronger = "/".join(a.label for a in (self.policy_digest, self.policy_cipher) if a is not None and a.value)
            parts[0] += f" (the peer's policy: {stronger})"
        if self.policy_qop is not None:
            tolerates = " -t 1" if self.tolerate else ""
            parts[0] += f" (the peer's policy: {self.policy_qop.name.lower()}{tolerates})"
        if self.recipients:
            parts.append(f"{self.recipients} recipient(s) {', '.join(self.recipient_names)}")
        parts.append(f"payload {self.payload.describe()}")
        parts.append(
            f"headers: {self.chain.describe()}" if self.chain.headers else f"Format {self.chain.final_format!r}"
        )
        parts.append(f"queue {self.queue!r}")
        if self.stream > 1:
            parts.append(f"a stream of {self.stream} messages, key reuse -c {_reuse_label(self.key_reuse)}")
        if self.signer != SENDER:
            fault = {**UNTRUSTED_SIGNERS, **INVALID_SIGNERS, **REVOKED_SIGNERS}[self.signer]
            parts.append(f"signed by {self.signer}: {fault.description}")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """The case as JSON values (for report.json)."""
        return {
            "qop": self.qop.name,
            "digest": self.digest.label,
            "cipher": self.cipher.label,
            "recipients": list(self.recipient_names),
            "reader": self.reader_name,
            "payload": attrs.asdict(self.payload),
            "headers": [attrs.asdict(h) for h in self.chain.headers],
            "encodings": list(self.chain.encodings),
            "final_format": self.chain.final_format,
            "queue": self.queue,
            "mutation": list(self.mutation) if self.mutation else None,
            "signer": self.signer,
            "policy_digest": self.policy_digest.label if self.policy_digest else None,
            "policy_cipher": self.policy_cipher.label if self.policy_cipher else None,
            "policy_qop": self.policy_qop.name if self.policy_qop else None,
            "authorised": list(self.authorised),
            "stream": self.stream,
            "key_reuse": self.key_reuse,
            "tolerate": self.tolerate,
            "unprotected": self.unprotected,
        }


@attrs.frozen
class Step:
    """One peer call and what its outcome must be: everything needed to run it again."""

    property: str
    request: Request
    check: Check
    expected: bytes = attrs.field(repr=False)  # the original body (clear headers and payload)
    expected_format: str = ""  # the original MQMD Format
    readers: tuple[str, ...] = ()  # who of ours reads what the peer writes
    mutation: tuple[str, int, int] | None = None
    note: str = ""  # what was done to the message, in words
    repeat: int = 1  # the peer is called this many times with the request (a stream: Check.FRESH)

    def to_json(self) -> dict[str, Any]:
        """The step as JSON values, without its data (saved as files next to it)."""
        return {
            "property": self.property,
            "request": self.request.to_json(),
            "check": self.check.value,
            "expected_format": self.expected_format,
            "readers": list(self.readers),
            "mutation": list(self.mutation) if self.mutation else None,
            "note": self.note,
            "repeat": self.repeat,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], request_data: bytes, expected: bytes) -> Step:
        """A step from :meth:`to_json` and its files."""
        mutation = data["mutation"]
        return cls(
            data["property"],
            Request.from_json(data["request"], request_data),
            Check(data["check"]),
            expected,
            data["expected_format"],
            tuple(data["readers"]),
            (mutation[0], int(mutation[1]), int(mutation[2])) if mutation else None,
            data["note"],
            int(data.get("repeat", 1)),
        )


def protect_ours(
    world: World,
    signer: str,
    queue: str,
    digest: SignatureAlgorithm,
    cipher: EncryptionAlgorithm,
    recipients: tuple[str, ...],
    original: bytes,
    chain: ClearChain,
) -> ProtectedMessage:
    """``original`` protected by this project, in process, as ``signer`` (deprecated algorithms allowed)."""
    policy = Policy(queue, digest, cipher, tuple(world.dn(r) for r in recipients))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AmsDeprecationWarning)
        protector = Protector(world.keystore(signer), {queue: policy}, allow_deprecated=True)
        protected = protector.protect(queue, original, chain.mqmd_format, encoding=chain.mqmd_encoding)
    return ProtectedMessage.of(protected, original, chain.mqmd_format, queue, encoding=chain.mqmd_encoding)


def build_step(prop: Property, case: Case, world: World) -> Step:
    """The peer call ``case`` makes for ``prop`` (protecting this side's message first when the peer reads)."""
    original = case.chain.message(case.payload.data())
    recipients = case.recipient_names
    if prop.name == "peer-refuses-unusable-recipient":
        return _unusable_recipient_step(prop, case, original)
    if prop.direction == PEER_TO_OURS:
        return _protect_step(prop, case, original)
    if prop.name in ("peer-refuses-unprotected", "peer-tolerates-unprotected"):
        return _unprotected_step(prop, case, original)
    if prop.name == QOP_MATRIX:
        return _matrix_step(prop, case, original, world)
    if case.policy_qop is not None:
        return _other_qop_step(prop, case, original, world)
    message = protect_ours(world, case.signer, case.queue, case.digest, case.cipher, recipients, original, case.chain)
    reader, data, note = case.reader_name, message.body, ""
    if prop.name == "peer-accepts-unchecked-fields" and case.mutation is not None:
        change = unchecked_changes(message)[case.mutation[1] % len(unchecked_changes(message))]
        data, note = change.body, change.description
    elif prop.name == "peer-refuses-non-recipient":
        reader, note = OUTSIDER, f"read by {OUTSIDER}, who is not a recipient"
    elif prop.name == "peer-refuses-tampered" and case.mutation is not None:
        kind, index, bit = case.mutation
        reader_cert = world.issued(reader).certificate
        if kind == MUST_CHECK_KIND:
            name, signer = MUST_CHECK[case.qop][index % len(MUST_CHECK[case.qop])], world.issued(case.signer)
            mutation = must_check_change(
                message, name, reader=reader_cert, signer=signer.certificate, digest=case.digest
            )
        else:
            mutation = refusing(message, kind, index, bit, reader=reader_cert)
        data, note = mutation.body, mutation.description
    elif prop.name == "peer-refuses-backdated-signer":
        data, note = backdated(message, world.issued(case.signer), case.signer, case.digest)
    elif prop.name == "peer-accepts-future-signing-time":
        data, note = forward_dated(message, world.issued(case.signer), case.signer, case.digest)
    elif prop.name in ("peer-refuses-untrusted-signer", "peer-refuses-invalid-signer", "peer-refuses-revoked-signer"):
        note = f"signed by {case.signer}"
    digest = case.policy_digest or case.digest
    cipher = case.policy_cipher or case.cipher
    if case.policy_digest or case.policy_cipher:
        policy = "/".join(a.label for a in (digest, cipher) if a.value)
        note = f"the message uses {case.algorithms()}, the peer's policy {policy}"
    if case.authorised:
        note = f"signed by {case.signer}; the peer's policy authorises {', '.join(case.authorised)} (-a)"
    request = Request(
        "unprotect", case.qop, digest, cipher, reader, recipients, case.queue, message.format, data,
        signers=case.authorised,
    )  # fmt: skip
    return Step(prop.name, request, prop.check, original, case.chain.mqmd_format, (), None, note)


def _reuse_label(count: int) -> str:
    """A key reuse count as setmqspl -c takes it: 0, * or N."""
    return "*" if count < 0 else str(count)


# -- the QoP matrix (format.md §6) -------------------------------------------------------------------------------------

# (the policy's QoP, the message's) that a receiver accepts; it refuses every other pair
ACCEPTED_QOPS = frozenset(
    {
        (QoP.INTEGRITY, QoP.INTEGRITY),
        (QoP.INTEGRITY, QoP.PRIVACY),
        (QoP.PRIVACY, QoP.PRIVACY),
        (QoP.CONFIDENTIALITY, QoP.CONFIDENTIALITY),
    }
)


def unchecked_changes(message: ProtectedMessage) -> list[Mutation]:
    """The changes of fields AMS does not check, which a receiver must accept (format.md §2)."""
    return [m for m in field_changes(message) if m.expect is Expect.ACCEPT]


def policy_algorithms(qop: QoP, case: Case) -> tuple[SignatureAlgorithm, EncryptionAlgorithm]:
    """The peer's policy's algorithms for ``qop``: the message's where it has them, else SHA256 / AES256."""
    digest = case.digest if case.digest.value else SignatureAlgorithm.SHA256
    cipher = case.cipher if case.cipher.value else EncryptionAlgorithm.AES256
    return (
        digest if qop is not QoP.CONFIDENTIALITY else SignatureAlgorithm.NONE,
        cipher if qop is not QoP.INTEGRITY else EncryptionAlgorithm.NONE,
    )


def _other_qop_step(prop: Property, case: Case, original: bytes, world: World) -> Step:
    """Our message of ``case.qop``, read by a peer whose policy's QoP is ``case.policy_qop``."""
    assert case.policy_qop is not None
    recipients = case.recipient_names
    message = protect_ours(world, case.signer, case.queue, case.digest, case.cipher, recipients, original, case.chain)
    digest, cipher = policy_algorithms(case.policy_qop, case)
    policy_recipients = (recipients or (case.reader_name,)) if cipher.value else ()
    note = f"a {case.qop.name.lower()} message, the peer's policy {case.policy_qop.name.lower()}"
    request = Request(
        "unprotect", case.policy_qop, digest, cipher, case.reader_name, policy_recipients, case.queue, message.format,
        message.body,
    )  # fmt: skip
    return Step(prop.name, request, prop.check, original, case.chain.mqmd_format, (), None, note)


def _matrix_step(prop: Property, case: Case, original: bytes, world: World) -> Step:
    """One cell of format.md §6's table: our message of ``case.qop`` (or the body not protected), read by a
    peer whose policy is ``case.policy_qop`` with ``-t case.tolerate``; the cell says accept or refuse."""
    policy_qop = case.policy_qop or case.qop
    digest, cipher = policy_algorithms(policy_qop, case)
    policy_recipients = (case.recipient_names or (case.reader_name,)) if cipher.value else ()
    if case.unprotected:
        data, fmt, accepted, sent = original, case.chain.mqmd_format, case.tolerate, "a message not protected"
    else:
        message = protect_ours(
            world, case.signer, case.queue, case.digest, case.cipher, case.recipient_names, original, case.chain
        )
        data, fmt, sent = message.body, message.format, f"a {case.qop.name.lower()} message"
        accepted = (policy_qop, case.qop) in ACCEPTED_QOPS
    must = "accept it (as is, when not protected)" if accepted else "refuse it"
    note = f"{sent} on a {policy_qop.name.lower()} queue with -t {int(case.tolerate)}: format.md §6 says {must}"
    request = Request(
        "unprotect", policy_qop, digest, cipher, case.reader_name, policy_recipients, case.queue, fmt, data,
        case.tolerate,
    )  # fmt: skip
    check = Check.ACCEPT if accepted else Check.REFUSE
    return Step(prop.name, request, check, original, case.chain.mqmd_format, (), None, note)


def _protect_step(prop: Property, case: Case, original: bytes) -> Step:
    """The peer protects the case's body (a stream: ``case.stream`` times), and recipients of ours read it."""
    recipients = case.recipient_names
    request = Request(
        "protect", case.qop, case.digest, case.cipher, SENDER, recipients, case.queue, case.chain.mqmd_format,
        original, key_reuse=case.key_reuse,
    )  # fmt: skip
    readers = recipients or (case.reader_name,)
    reuse = _reuse_label(case.key_reuse)
    note = f"{case.stream} messages in a row, key reuse -c {reuse}" if case.stream > 1 else ""
    return Step(
        prop.name, request, prop.check, original, case.chain.mqmd_format, readers, case.mutation, note, case.stream
    )


def _unusable_recipient_step(prop: Property, case: Case, original: bytes) -> Step:
    """A protect request whose recipients include, in the reader's place, one without keyEncipherment."""
    recipients = list(case.recipient_names)
    recipients[case.reader] = UNUSABLE_RECIPIENT
    note = f"recipient {case.reader + 1} of {len(recipients)} is {UNUSABLE_RECIPIENT}: keyUsage without keyEncipherment"
    request = Request(
        "protect", case.qop, case.digest, case.cipher, SENDER, tuple(recipients), case.queue, case.chain.mqmd_format,
        original,
    )  # fmt: skip
    return Step(prop.name, request, prop.check, original, case.chain.mqmd_format, (), None, note)


def _unprotected_step(prop: Property, case: Case, original: bytes) -> Step:
    """The body as it was, not protected, on a queue whose policy is ``case.qop`` (tolerating it or not)."""
    tolerate = prop.name == "peer-tolerates-unprotected"
    note = f"not protected, on a {case.qop.name.lower()} queue with -t {int(tolerate)}"
    request = Request(
        "unprotect", case.qop, case.digest, case.cipher, case.reader_name, case.recipient_names, case.queue,
        case.chain.mqmd_format, original, tolerate,
    )  # fmt: skip
    return Step(prop.name, request, prop.check, original, case.chain.mqmd_format, (), None, note)
