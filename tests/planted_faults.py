"""Planted faults: this project's own peer with one fault put between it and the kit.

Each :class:`Planted` peer wraps a correct peer of this project, either in process (``--peer self``)
or through its command line (``--peer self-cli``: ``python -m ams protect`` / ``unprotect``, one
process per call), and changes the request it passes on or the outcome it hands back, as a wrong
implementation would behave. :data:`FAULTS` lists them, one per property class of issue 20 (the
seven of its items 1-5 and 7 among them), each with the property that must report it and the
properties that must still pass beside it (its twins).
"""

from __future__ import annotations

import datetime
import signal
from collections.abc import Callable
from pathlib import Path

import attrs
from cryptography import x509

from ams.algorithms import EncryptionAlgorithm, QoP, SignatureAlgorithm
from ams.hazmat import mqheaders, pdmq, signed
from ams.mqconstants import MQENC_NATIVE
from ams.protector import Protector
from ams.testing.conformance.peers import Peer
from ams.testing.conformance.protocol import Capabilities, Outcome, Request
from ams.testing.conformance.streams import message_iv
from ams.testing.conformance.world import World


class Planted:
    """``base`` with a fault: :meth:`before` may change the request it gets, :meth:`after` the outcome."""

    def __init__(self, base: Peer) -> None:
        self.base, self.spec = base, base.spec

    def command(self, request: Request, world: World, workdir: Path) -> list[str] | None:
        """None: the fault lives in the kit's process, so the base's command alone would not replay it."""
        return None

    def run(self, request: Request, world: World, workdir: Path) -> Outcome:
        """The base's outcome for the (changed) request, changed in turn."""
        return self.after(request, world, workdir, self.base.run(self.before(request), world, workdir))

    def before(self, request: Request) -> Request:
        """The request the base gets (the kit's, unless the fault changes it)."""
        return request

    def after(self, request: Request, world: World, workdir: Path, outcome: Outcome) -> Outcome:
        """The outcome the kit gets (the base's, unless the fault changes it)."""
        return outcome


def _pdmq_start(request: Request) -> int:
    return mqheaders.walk(request.data, request.format).payload_offset


def _header(request: Request) -> pdmq.PdmqHeader | None:
    start = _pdmq_start(request)
    return pdmq.PdmqHeader.unpack(request.data[start:]) if request.data[start : start + 4] == b"PDMQ" else None


def _signed_content(request: Request) -> tuple[signed.SignedContent, pdmq.PdmqHeader] | None:
    """An integrity message's SignedData and header (None for any other message)."""
    header = _header(request)
    if header is None or header.qop is not QoP.INTEGRITY:
        return None
    return signed.parse_signed_data(request.data[_pdmq_start(request) + header.size :], wrapped=True), header


class FlipByte(Planted):
    """Flips a bit of the last byte of every message it protects."""

    def after(self, request: Request, world: World, workdir: Path, outcome: Outcome) -> Outcome:
        if request.operation != "protect" or outcome.output is None:
            return outcome
        return attrs.evolve(outcome, output=outcome.output[:-1] + bytes([outcome.output[-1] ^ 0x01]))


class DropRecipient(Planted):
    """Encrypts for every recipient of the policy but the last."""

    def before(self, request: Request) -> Request:
        if request.operation != "protect" or len(request.recipients) < 2:
            return request
        return attrs.evolve(request, recipients=request.recipients[:-1])


class PdmqField(Planted):
    """Writes a PDMQ reserved byte (offset 48, which must be zero) as 1."""

    def after(self, request: Request, world: World, workdir: Path, outcome: Outcome) -> Outcome:
        if request.operation != "protect" or outcome.output is None:
            return outcome
        data, start = bytearray(outcome.output), _pdmq_start(request)
        data[start + 48] = 0x01
        return attrs.evolve(outcome, output=bytes(data))


class SkipSignerCheck(Planted):
    """On a refusal about an integrity message's signer certificate, hands out the signed content anyway."""

    CODES = ("[untrusted_signer]", "[certificate_validity]", "[certificate_usage]")

    def after(self, request: Request, world: World, workdir: Path, outcome: Outcome) -> Outcome:
        opened = _signed_content(request) if request.operation == "unprotect" else None
        if opened is None or not any(code in outcome.stderr for code in self.CODES):
            return outcome
        content, header = opened
        payload = b"" if header.empty else bytes(content.content)
        chain = mqheaders.walk(request.data, request.format)
        if chain.format_offset is not None:  # the clear headers, their last Format restored
            restored = mqheaders.encode_format(header.orig_format, chain.format_charset)
            rest = request.data[chain.format_offset + 8 : chain.payload_offset]
            payload = request.data[: chain.format_offset] + restored + rest + payload
        return Outcome(0, payload, "", outcome.command, outcome.seconds)


class WeakerAlgorithm(Planted):
    """Reads with the weakest algorithms of the policy's QoP (MD5, RC2), whatever the policy says."""

    def before(self, request: Request) -> Request:
        if request.operation != "unprotect":
            return request
        digest = SignatureAlgorithm.MD5 if request.digest.value else request.digest
        return attrs.evolve(
            request, digest=digest, cipher=EncryptionAlgorithm.RC2 if request.cipher.value else request.cipher
        )


class Crash(Planted):
    """Dies with SIGSEGV on every message it does not unprotect."""

    def after(self, request: Request, world: World, workdir: Path, outcome: Outcome) -> Outcome:
        if request.operation != "unprotect" or outcome.accepted:
            return outcome
        return Outcome(-signal.SIGSEGV, None, outcome.stderr, outcome.command, outcome.seconds)


class AcceptDowngrade(Planted):
    """On a refusal, reads the message again with a policy of the message's own QoP (its weakest algorithms)."""

    def after(self, request: Request, world: World, workdir: Path, outcome: Outcome) -> Outcome:
        header = _header(request) if request.operation == "unprotect" else None
        if header is None or outcome.accepted:
            return outcome
        qop = header.qop
        signs, encrypts = qop is not QoP.CONFIDENTIALITY, qop is not QoP.INTEGRITY
        own = attrs.evolve(
            request,
            qop=qop,
            digest=SignatureAlgorithm.MD5 if signs else SignatureAlgorithm.NONE,
            cipher=EncryptionAlgorithm.RC2 if encrypts else EncryptionAlgorithm.NONE,
            recipients=(request.recipients or (request.identity,)) if encrypts else (),
        )
        return self.base.run(own, world, workdir.with_name(f"{workdir.name}-again"))


class Ignoring(Planted):
    """One check planted away: a refusal for ``code`` becomes a success (with nothing written)."""

    def __init__(self, base: Peer, code: str, operation: str = "unprotect") -> None:
        super().__init__(base)
        self.code, self.operation = code, operation

    def after(self, request: Request, world: World, workdir: Path, outcome: Outcome) -> Outcome:
        if request.operation == self.operation and f"[{self.code}]" in outcome.stderr:
            return attrs.evolve(outcome, status=0, output=b"")
        return outcome


class TolerateAnything(Planted):
    """Reads -t 1 as "let through what cannot be accepted": with toleration, a message of a QoP the
    policy refuses is handed back as is (format.md §6 tolerates only a message not protected)."""

    def after(self, request: Request, world: World, workdir: Path, outcome: Outcome) -> Outcome:
        if request.operation == "unprotect" and request.tolerate and "[qop_mismatch]" in outcome.stderr:
            return Outcome(0, request.data, "", outcome.command, outcome.seconds)
        return outcome


class Pedantic(Planted):
    """A check planted in that AMS does not make: it refuses a message whose PDMQ ``field`` is not what
    this project writes (the reserved bytes, the byte order)."""

    def __init__(self, base: Peer, field: str) -> None:
        super().__init__(base)
        self.field = field

    def after(self, request: Request, world: World, workdir: Path, outcome: Outcome) -> Outcome:
        start = _pdmq_start(request)
        header = request.data[start : start + 56]
        if request.operation == "unprotect" and header[:4] == b"PDMQ":
            odd = header[48:56] != bytes(8) if self.field == "reserved" else header[6] != 2
            if odd:
                return Outcome(3, None, f"pedantic: the PDMQ {self.field} is not as we write it")
        return outcome


class SigningTimeOnly(Planted):
    """The time check planted wrong: a signer's certificate passes when the message's signingTime lies
    within its validity, valid now or not (integrity: privacy's signature is inside the envelope)."""

    def after(self, request: Request, world: World, workdir: Path, outcome: Outcome) -> Outcome:
        opened = _signed_content(request)
        if request.operation != "unprotect" or "[certificate_validity]" not in outcome.stderr or opened is None:
            return outcome
        content, _ = opened
        when = signed.signing_time(content.signer_infos[0])
        certificate = x509.load_der_x509_certificate(content.certificates[0])
        if when is not None and certificate.not_valid_before_utc <= when <= certificate.not_valid_after_utc:
            return Outcome(0, bytes(content.content), "", outcome.command, outcome.seconds)
        return outcome


class NoFutureSignatures(Planted):
    """A rule planted in that AMS does not have: a signingTime more than five minutes ahead is refused
    (format.md §6 checks the certificate's validity now, not the signingTime)."""

    def after(self, request: Request, world: World, workdir: Path, outcome: Outcome) -> Outcome:
        opened = _signed_content(request)
        if request.operation != "unprotect" or outcome.status != 0 or opened is None:
            return outcome
        when = signed.signing_time(opened[0].signer_infos[0])
        if when is not None and when > datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5):
            return Outcome(3, None, f"pedantic: signingTime {when} is in the future")
        return outcome


def protected_format_of(request: Request) -> str:
    """The MQMD Format of what a protect request gives: blank without clear headers (format.md §1)."""
    chain = mqheaders.walk(request.data, request.format)
    return request.format if chain.format_offset is not None else " " * 8


class ZeroIv(Planted):
    """The IV planted wrong: every message it protects has an all-zero IV."""

    def after(self, request: Request, world: World, workdir: Path, outcome: Outcome) -> Outcome:
        if request.operation != "protect" or outcome.output is None:
            return outcome
        iv = message_iv(outcome.output, protected_format_of(request))
        return attrs.evolve(outcome, output=outcome.output.replace(iv, bytes(len(iv)), 1))


class KeyReusing(Planted):
    """One sender kept across calls (as one open queue handle) whose key reuse is planted wrong:
    unlimited whatever the policy says, or one message more than its count."""

    def __init__(self, base: Peer, extra: str) -> None:
        super().__init__(base)
        self.extra = extra
        self.senders: dict[str, Protector] = {}

    def after(self, request: Request, world: World, workdir: Path, outcome: Outcome) -> Outcome:
        if request.operation != "protect" or outcome.output is None:
            return outcome
        policy = request.policy(world)
        count = -1 if self.extra == "unlimited" or policy.key_reuse < 0 else policy.key_reuse + 1
        policy = attrs.evolve(policy, key_reuse=count)
        keystore, policies = world.keystore(request.identity), {policy.name: policy}
        sender = self.senders.setdefault(repr(policy), Protector(keystore, policies, allow_deprecated=True))
        body = sender.protect(request.queue, request.data, request.format, encoding=MQENC_NATIVE).body
        return attrs.evolve(outcome, output=body)


class FormatDropping(Planted):
    """The Format planted wrong: it hands back the MQMD Format it was given (blank without clear
    headers) rather than the origFormat the message carries."""

    def after(self, request: Request, world: World, workdir: Path, outcome: Outcome) -> Outcome:
        return attrs.evolve(outcome, format=request.format) if outcome.format is not None else outcome


@attrs.frozen
class Fault:
    """A planted fault, the property that must report it (the failure's kind and a phrase of what it
    says), and the properties beside it that must still pass."""

    name: str
    plant: Callable[[Peer], Peer]
    prop: str
    kind: str
    says: str  # a phrase of what the failure expected or found ('|' between alternatives)
    twins: tuple[str, ...] = ()
    capabilities: Capabilities | None = None  # what the peer says it does, when not all (--peer-qop...)

    @property
    def only(self) -> tuple[str, ...]:
        """The properties the run tries: the one that must fail, and the twins."""
        return (self.prop, *self.twins)


UNCHECKED = "peer-accepts-unchecked-fields"
CONFIDENTIAL = Capabilities(qops=(QoP.CONFIDENTIALITY,), policies=True)  # where this project reuses a key

FAULTS = (
    # item 1: the QoP of a message against the policy's, with and without toleration
    Fault("accept-downgrade", AcceptDowngrade, "peer-refuses-other-qop", "done", "done (exit 0)"),
    Fault("tolerate-anything", TolerateAnything, "peer-follows-qop-matrix", "done", "format.md §6 says refuse it"),
    # item 2: time
    Fault(
        "signing-time-only", SigningTimeOnly, "peer-refuses-backdated-signer", "done", "which does not hold now",
        ("peer-refuses-invalid-signer",),
    ),
    Fault(
        "no-future-signatures", NoFutureSignatures, "peer-accepts-future-signing-time", "refused", "ahead of now",
        ("roundtrip-to-peer",),
    ),
    # item 3: what a reader must accept
    Fault("pedantic-reserved", lambda p: Pedantic(p, "reserved"), UNCHECKED, "refused", "pedantic"),
    Fault("pedantic-encoding", lambda p: Pedantic(p, "encoding"), UNCHECKED, "refused", "pedantic"),
    # item 4: properties over several messages
    Fault("zero-iv", ZeroIv, "peer-writes-fresh-keys", "done", "has an all-zero IV"),
    Fault(
        "unlimited-key-reuse", lambda p: KeyReusing(p, "unlimited"), "peer-writes-fresh-keys", "done",
        "share one content-encryption key", capabilities=CONFIDENTIAL,
    ),
    Fault(
        "one-more-key-use", lambda p: KeyReusing(p, "one-more"), "peer-honours-key-reuse", "done",
        "where the key reuse count", capabilities=CONFIDENTIAL,
    ),
    # item 5: refusals that were found only by chance
    Fault("skip-signature", lambda p: Ignoring(p, "bad_signature"), "peer-refuses-tampered", "done", "signature"),
    Fault("skip-orig-size", lambda p: Ignoring(p, "size_mismatch"), "peer-refuses-tampered", "done", "origSize"),
    Fault("skip-last-format", lambda p: Ignoring(p, "not_protected"), "peer-refuses-tampered", "done",
        "(PDMQ StrucId: |(the last clear Format: "),
    # item 6: whole areas
    Fault(
        "ignore-authorised-signers", lambda p: Ignoring(p, "unauthorised_signer"), "peer-refuses-unauthorised-signer",
        "done", "the peer's policy authorises", ("peer-accepts-authorised-signer",),
    ),
    Fault(
        "ignore-revocation", lambda p: Ignoring(p, "certificate_revoked"), "peer-refuses-revoked-signer", "done",
        "revoked", ("peer-accepts-unrevoked-signer",),
    ),
    Fault(
        "ignore-recipient-key-usage", lambda p: Ignoring(p, "recipient_certificate", "protect"),
        "peer-refuses-unusable-recipient", "done", "keyEncipherment", ("roundtrip-from-peer",),
    ),
    Fault("drop-format", FormatDropping, "peer-restores-format", "done", "the Format handed back is '        '"),
    Fault("weaker-algorithm", WeakerAlgorithm, "peer-refuses-weaker-algorithm", "done", "done (exit 0)"),
    # item 7: a crash is no refusal
    Fault("crash", Crash, "peer-refuses-non-recipient", "crashed", "killed by SIGSEGV, which is no refusal"),
    # what the peer writes, and the signer it trusts
    Fault("flip-byte", FlipByte, "roundtrip-from-peer", "done", "refused it"),
    Fault("drop-recipient", DropRecipient, "roundtrip-from-peer", "done", "refused it"),
    Fault("pdmq-field", PdmqField, "peer-writes-strict", "done", "PDMQ reserved bytes 48-55: expected zeros"),
    Fault("skip-signer-check", SkipSignerCheck, "peer-refuses-untrusted-signer", "done", "done (exit 0)"),
)  # fmt: skip
