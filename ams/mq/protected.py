"""Protected queues: AMS on put, get and browse, with the error queue, over any transport.

Each open queue owns one Protector, so key reuse follows the queue handle as in IBM's AMS.
A destructive get always runs inside a unit of work, so that no failure can lose the message:
one that fails a check goes to SYSTEM.PROTECTION.ERROR.QUEUE with an MQDLH in the same unit of
work; any other failure (an MQ error, a configuration error, a bug) backs the unit of work out,
so the message is back on its queue with its backout count raised; and a message whose backout
count reached the queue's threshold (BOTHRESH) is moved to the backout queue (BOQNAME) or the
error queue instead of being tried again, so one poison message never blocks those behind it.
Browse never moves a message. The caller's MQMD is never changed.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from cryptography import x509

from ams.algorithms import QoP
from ams.errors import AmsError, InternalError, SecurityError, UsageError
from ams.keys import Keystore
from ams.limits import DEFAULT_LIMITS, Limits
from ams.mq.backout import ChannelTooSmallError, MessageStuckError, cannot_move, read_backout_settings
from ams.mq.dlh import MQDLH
from ams.mq.mqmd import MQMD, md_with
from ams.mq.transport import (
    BackoutSettings,
    Message,
    MQError,
    NoMessageAvailable,
    QueueHandle,
    QueueManager,
    unit_of_work,
)
from ams.mqconstants import (
    MQFMT_ADMIN,
    MQFMT_DEAD_LETTER_HEADER,
    MQPER_PERSISTENT,
    MQRC_BACKOUT_THRESHOLD_REACHED,
    MQRC_DATA_LENGTH_ERROR,
    MQRC_SECURITY_ERROR,
)
from ams.policy.model import Policy
from ams.policy.pcf import PcfMessage, decode_policy_queue
from ams.policy.store import PolicyStore
from ams.protector import Protector
from ams.verify import Verifier

log = logging.getLogger(__name__)
_CONTROLS = {code: f"\\x{code:02x}" for code in [*range(0x20), *range(0x7F, 0xA0)]}


def _printable(text: str) -> str:
    """``text`` for one log line: control characters (newlines, terminal escapes) shown, never obeyed."""
    return text.translate(_CONTROLS)


ERROR_QUEUE = "SYSTEM.PROTECTION.ERROR.QUEUE"
POLICY_QUEUE = "SYSTEM.PROTECTION.POLICY.QUEUE"


def never_protected(queue: str) -> bool:
    """AMS leaves the queue manager's own SYSTEM.* queues alone."""
    return queue.startswith("SYSTEM.")


def browse_all(qm: QueueManager, queue: str) -> list[Message]:
    """Every message on ``queue``, browsed in order (nothing is removed)."""
    handle = qm.open(queue, browse=True)
    messages: list[Message] = []
    try:
        messages.append(handle.browse_first())
        while True:
            messages.append(handle.browse_next())
    except NoMessageAvailable:
        return messages
    finally:
        handle.close()


def policies_from_queue_manager(qm: QueueManager) -> dict[str, Policy]:
    """The policies in the queue manager's SYSTEM.PROTECTION.POLICY.QUEUE (browsed, not removed)."""
    messages = [PcfMessage(message.md.correl_id, message.body) for message in browse_all(qm, POLICY_QUEUE)]
    _, policies = decode_policy_queue(messages)
    return {p.name: p for p in policies}


def write_policies_to_queue_manager(qm: QueueManager, policies: Mapping[str, Policy]) -> int:
    """Replace the policy queue's contents with ``policies`` (as setmqspl would leave it)."""
    from ams.policy.pcf import encode_policy_queue

    handle = qm.open(POLICY_QUEUE, input=True, output=True)
    try:
        with unit_of_work(qm):
            with contextlib.suppress(NoMessageAvailable):
                while True:
                    handle.get(syncpoint=True)
            for message in encode_policy_queue(policies.values()):
                md = MQMD(format=MQFMT_ADMIN, correl_id=message.correl_id, persistence=MQPER_PERSISTENT)
                handle.put(md, message.body, syncpoint=True)
    finally:
        handle.close()
    return len(policies)


DEFAULT_BACKOUT_THRESHOLD = 5


class PoisonMessageError(MQError):
    """A message was backed out BOTHRESH times; it was moved aside (backout or error queue), not delivered."""

    code = "backout_threshold"

    def __init__(self, message: str) -> None:
        super().__init__(message, MQRC_BACKOUT_THRESHOLD_REACHED)


class AlreadyDelivered(MQError):
    """A redelivered message its getter recognised (``get(seen=...)``) as one it handled before: it
    was got in the unit of work, to go at its commit, and is not delivered again."""

    code = "already_delivered"

    def __init__(self, message: str) -> None:
        super().__init__(message, MQRC_BACKOUT_THRESHOLD_REACHED)


@attrs.frozen
class ProtectedMessage:
    """What a protected get or browse returns: the original MQMD Format and body, and how it was protected."""

    md: MQMD
    body: bytes
    qop: QoP
    signer: x509.Certificate | None = None
    raw_body: bytes = attrs.field(default=b"", repr=False, eq=False)  # as it was on the queue, still protected


class ProtectedQueueManager:
    """A queue-manager connection with AMS: policies from a store or from the queue manager.

    One :class:`~ams.verify.Verifier` (``verifier``, or one made from the keystore with
    ``clock_skew`` and ``strict_dn``) serves every handle of the connection, so its certificate,
    chain and revocation caches live as long as the connection; each open handle has its own
    Protector (key reuse follows the handle). ``allow_deprecated`` and ``limits`` are the
    Protector's, and so is ``require_policy`` (every queue opened, SYSTEM.* apart, must have a policy
    that protects it: the open fails otherwise). ``default_backout_threshold`` applies to queues whose
    BOTHRESH is 0 (IBM MQ's default, which means "none"): without a threshold one poison message
    would be tried for ever.
    """

    def __init__(
        self,
        qm: QueueManager,
        keystore: Keystore,
        policies: Mapping[str, Policy] | None = None,
        *,
        verifier: Verifier | None = None,
        error_queue: str = ERROR_QUEUE,
        allow_deprecated: bool = False,
        strict_dn: bool = False,
        clock_skew: datetime.timedelta = datetime.timedelta(minutes=5),
        limits: Limits = DEFAULT_LIMITS,
        default_backout_threshold: int = DEFAULT_BACKOUT_THRESHOLD,
        require_policy: bool = False,
    ) -> None:
        self.qm = qm
        self.require_policy = require_policy
        self.keystore = keystore
        self._policies = policies
        self.verifier = verifier or Verifier.from_keystore(keystore, clock_skew=clock_skew, strict_dn=strict_dn)
        self.error_queue = error_queue
        self.allow_deprecated = allow_deprecated
        self.limits = limits
        self.default_backout_threshold = default_backout_threshold
        self.pending = False  # whether this connection holds uncommitted work done through it
        self._one_shot: Protector | None = None

    @property
    def policies(self) -> Mapping[str, Policy]:
        """The policies in force: the store given, else the queue manager's policy queue (read once)."""
        if self._policies is None:
            store = PolicyStore(policies_from_queue_manager(self.qm).values())
            store.source = f"{self.qm.name}'s {POLICY_QUEUE}"
            self._policies = store
        return self._policies

    def protector(self) -> Protector:
        """A Protector for one handle of this connection, sharing the connection's verifier."""
        return Protector(
            self.keystore,
            self.policies,
            verifier=self.verifier,
            allow_deprecated=self.allow_deprecated,
            limits=self.limits,
            require_policy=self.require_policy,
        )

    def open(
        self,
        queue: str,
        *,
        output: bool = False,
        input: bool = False,
        browse: bool = False,
        backout_threshold: int | None = None,
        backout_queue: str | None = None,
    ) -> ProtectedQueue:
        """Open ``queue``; its recipients' certificates are looked up now, so a missing one fails here.

        ``backout_threshold`` and ``backout_queue`` override the queue's BOTHRESH and BOQNAME for
        this handle's gets (a proxy route's settings, say)."""
        if backout_threshold is not None and backout_threshold < 1:
            raise UsageError(f"a backout threshold counts at least 1 backout (found {backout_threshold})")
        protector = self.protector()
        if not never_protected(queue):
            protector.prepare(queue, sending=output, receiving=input or browse)
        handle = self.qm.open(queue, output=output, input=input, browse=browse)
        opened = ProtectedQueue(self, queue, handle, protector)
        if input:  # read now, outside any unit of work: a failure inside a get's would back the message out
            try:
                found = self.backout_settings(queue)
            except AmsError:
                handle.close()
                raise
            opened.backout = BackoutSettings(
                found.threshold if backout_threshold is None else backout_threshold,
                found.queue if backout_queue is None else backout_queue,
            )
        return opened

    def put1(
        self, queue: str, md: MQMD, body: bytes, *, syncpoint: bool = False, set_all_context: bool = False
    ) -> MQMD:
        """MQPUT1: a one-shot put that never reuses a confidentiality key."""
        if never_protected(queue):
            done = self.qm.put1(queue, md, body, syncpoint=syncpoint, set_all_context=set_all_context)
        else:
            if self._one_shot is None:
                self._one_shot = self.protector()
            self._one_shot.prepare(queue, sending=True, receiving=False)
            protected = self._one_shot.protect(
                queue, body, md.format, encoding=md.encoding, ccsid=md.ccsid, one_shot=True
            )
            done = self.qm.put1(
                queue,
                attrs.evolve(md, format=protected.format),
                protected.body,
                syncpoint=syncpoint,
                set_all_context=set_all_context,
            )
        self.pending = self.pending or syncpoint
        return done

    def commit(self) -> None:
        """MQCMIT: make this connection's unit of work final."""
        self.qm.commit()
        self.pending = False

    def backout(self) -> None:
        """MQBACK: undo this connection's unit of work (gets return to their queues, counted)."""
        self.qm.backout()
        self.pending = False

    def close(self) -> None:
        """Back out any uncommitted work, then disconnect (MQDISC alone would commit it)."""
        self.qm.close()

    def backout_settings(self, queue: str) -> BackoutSettings:
        """The queue's BOTHRESH (``default_backout_threshold`` when it says 0) and BOQNAME; an
        alias's from its base queue; the defaults when the queue cannot be inquired (no +inq)."""
        return read_backout_settings(self.qm, queue, self.default_backout_threshold)

    def move_to_error_queue(
        self, queue: str, failed: Message, *, syncpoint: bool, reason: int = MQRC_SECURITY_ERROR
    ) -> MQMD:
        """Put ``failed`` (still protected) on the error queue behind an MQDLH, as AMS does."""
        dlh = MQDLH.for_message(reason, queue, self.qm.name, failed.md)
        md = MQMD(
            format=MQFMT_DEAD_LETTER_HEADER,
            encoding=failed.md.encoding,
            ccsid=failed.md.ccsid,
            persistence=MQPER_PERSISTENT,
            correl_id=failed.md.correl_id,
        )
        done = self.qm.put1(self.error_queue, md, dlh.pack(failed.md.encoding) + failed.body, syncpoint=syncpoint)
        self.pending = self.pending or syncpoint
        return done

    def move_aside(self, queue: str, poison: Message, settings: BackoutSettings) -> PoisonMessageError:
        """Move a message backed out ``settings.threshold`` times, under syncpoint: to BOQNAME as it
        is (as MQ's own clients do), or to the error queue behind an MQDLH (reason 2362)."""
        try:
            if settings.queue:
                self.qm.put1(settings.queue, poison.md, poison.body, syncpoint=True)
                where = f"its backout queue {settings.queue}"
            else:
                self.move_to_error_queue(queue, poison, syncpoint=True, reason=MQRC_BACKOUT_THRESHOLD_REACHED)
                where = f"{self.error_queue} with an MQDLH (reason {MQRC_BACKOUT_THRESHOLD_REACHED})"
        except MQError as failed:
            if not cannot_move(failed):
                raise
            why = f"backed out {poison.md.backout_count} times, its backout threshold"
            raise MessageStuckError(queue, poison, settings.queue or self.error_queue, failed, why) from None
        self.pending = True
        return PoisonMessageError(
            f"a message on {queue} was backed out {poison.md.backout_count} times, reaching its backout threshold "
            f"({settings.threshold}); it was moved to {where} so that the messages behind it can be read. Find "
            "out why it keeps failing (the earlier errors say), then put it back"
        )


class ProtectedQueue:
    """An open queue with AMS applied; one Protector per handle."""

    def __init__(self, manager: ProtectedQueueManager, name: str, handle: QueueHandle, protector: Protector) -> None:
        self.manager = manager
        self.name = name
        self.handle = handle
        self.protector = protector
        self._protected = not never_protected(name)
        self.backout: BackoutSettings | None = None  # BOTHRESH and BOQNAME, read when opened for input
        self.last_md: MQMD | None = None  # the descriptor of the message the last get took, as it was

    def put(self, md: MQMD, body: bytes, *, syncpoint: bool = False) -> MQMD:
        """Protect ``body`` under the queue's policy and put it; the caller's MQMD is left as it was.

        Returns the descriptor as the queue manager completed it (the Format as on the queue): the
        MsgId given, or the one generated (a requester keeps it to match the reply's CorrelId);
        CorrelId, ReplyToQ and ReplyToQMgr pass through unchanged."""
        return self._put(md, body, syncpoint, {})

    def forward(self, md: MQMD, body: bytes, *, syncpoint: bool = False, keep_msg_id: bool = True) -> MQMD:
        """:meth:`put` a message got from another queue, with the descriptor it had there: its
        BackoutCount set to 0, and its MsgId kept (``keep_msg_id``) or left for the queue manager to
        generate; the caller's MQMD is left as it was (one copy is made, with the Format too)."""
        changes: dict[str, Any] = {"backout_count": 0}
        if not keep_msg_id:
            changes["msg_id"] = bytes(24)
        return self._put(md, body, syncpoint, changes)

    def _put(self, md: MQMD, body: bytes, syncpoint: bool, changes: dict[str, Any]) -> MQMD:
        if not self._protected:
            done = self.handle.put(md_with(md, **changes) if changes else md, body, syncpoint=syncpoint)
        else:
            protected = self.protector.protect(self.name, body, md.format, encoding=md.encoding, ccsid=md.ccsid)
            done = self.handle.put(md_with(md, format=protected.format, **changes), protected.body, syncpoint=syncpoint)
        self.manager.pending = self.manager.pending or syncpoint
        return done

    def get(
        self,
        *,
        wait: float = 0.0,
        syncpoint: bool = False,
        msg_id: bytes | None = None,
        correl_id: bytes | None = None,
        seen: Callable[[Message], bool] | None = None,
        check: Callable[[ProtectedMessage], None] | None = None,
    ) -> ProtectedMessage:
        """Get and unprotect, inside a unit of work so that no failure loses the message.

        ``wait``: seconds to wait for a message (MQGMO_WAIT; ``WAIT_UNLIMITED`` for ever; 0: no
        wait), then NoMessageAvailable (2033). ``msg_id`` / ``correl_id``: the first message with
        that MsgId and/or CorrelId (MQMO_MATCH_*; up to 24 bytes, padded with nulls; all nulls
        matches any), as a requester gets its reply by the CorrelId its responder copied from the
        request's MsgId.

        A message that fails a check moves to the error queue and the check's SecurityError is
        raised (MQRC 2063); one past the backout threshold moves aside and PoisonMessageError is
        raised; any other failure backs the unit of work out (the message is back on the queue)
        and raises. With ``syncpoint`` the caller commits; without it the get is a unit of work
        of its own, committed before this returns, so the connection must hold no other
        uncommitted work (commit or back it out first). ``seen``: asked first of a redelivered
        message (BackoutCount above 0) as it was on the queue; True means the caller handled it
        before (a proxy's delivery ledger), and AlreadyDelivered is raised with the message got
        in the unit of work, before any backout threshold could move it aside. ``check``: a rule of
        the caller's own, run on the unprotected message; a SecurityError it raises refuses the
        message as AMS's own checks do (moved to the error queue, the error raised).
        """
        if not syncpoint and self.manager.pending:
            raise UsageError(
                f"a get from {self.name} without syncpoint runs in a unit of work of its own, but this connection "
                "holds uncommitted work: commit or back it out first, or get with syncpoint=True"
            )
        self.last_md = None  # a get that fails before it has a message names none
        try:
            message = self.handle.get(wait=wait, syncpoint=True, msg_id=msg_id, correl_id=correl_id)
        except MQError as error:
            if error.reason == MQRC_DATA_LENGTH_ERROR:  # longer than the channel: no retry can get it
                raise ChannelTooSmallError(self.name, error) from None
            raise
        self.last_md = message.md
        self.manager.pending = True
        try:
            outcome = self._settle(message, seen, check)
            if not syncpoint:
                self.manager.commit()
        except BaseException as error:
            raise self._back_out(error) from error
        if isinstance(outcome, AmsError):
            raise outcome
        return outcome

    def _settle(
        self,
        message: Message,
        seen: Callable[[Message], bool] | None,
        check: Callable[[ProtectedMessage], None] | None = None,
    ) -> ProtectedMessage | AmsError:
        """The message delivered, or the error to raise once it was moved (in the unit of work)."""
        if self.backout is None:
            self.backout = self.manager.backout_settings(self.name)
        if seen is not None and message.md.backout_count > 0 and seen(message):
            return AlreadyDelivered(f"message {message.md.msg_id.hex()} on {self.name} was handled before")
        if message.md.backout_count >= self.backout.threshold:
            log.warning(  # as a refusal: the message is safe aside, and the next ones move on
                "message %s on %s backed out %d times (threshold %d): moved aside",
                message.md.msg_id.hex(),
                self.name,
                message.md.backout_count,
                self.backout.threshold,
            )
            return self.manager.move_aside(self.name, message, self.backout)
        try:
            delivered = self._unprotect(message)
            if check is not None:
                check(delivered)
            return delivered
        except SecurityError as error:
            where = self._move_refused(message, error)
            error.add_note(f"the message was moved to {where}")
            log.warning(
                "refused message %s on %s, moved to %s: %s: %s",
                message.md.msg_id.hex(),
                self.name,
                where,
                type(error).__name__,
                _printable(error.message),
            )
            return error

    def _move_refused(self, message: Message, error: SecurityError) -> str:
        """Move a refused message to the error queue behind an MQDLH; when it can never fit there,
        to BOQNAME as it is, or MessageStuckError. Where it went."""
        manager = self.manager
        try:
            manager.move_to_error_queue(self.name, message, syncpoint=True)
            return f"{manager.error_queue} with an MQDLH (reason 2063)"
        except MQError as failed:
            if not cannot_move(failed):
                raise
            backout_queue = self.backout.queue if self.backout else ""
            if not backout_queue:
                raise MessageStuckError(
                    self.name, message, manager.error_queue, failed, f"refused: {error.code}"
                ) from None
            try:
                manager.qm.put1(backout_queue, message.md, message.body, syncpoint=True)
            except MQError as again:
                if not cannot_move(again):
                    raise
                raise MessageStuckError(self.name, message, backout_queue, again, f"refused: {error.code}") from None
            return (
                f"its backout queue {backout_queue}, as it is ({manager.error_queue} cannot take it: {failed.message})"
            )

    def _back_out(self, error: BaseException) -> BaseException:
        """Back out the unit of work holding the get; the error to raise (typed, with what happened)."""
        try:
            self.manager.backout()
        except AmsError as failed:
            failed.add_note(f"backing out after {type(error).__name__} failed too: the queue manager backs it out")
            return failed
        if not isinstance(error, Exception):
            return error  # KeyboardInterrupt and the like: the message is safe, let it through
        typed = (
            error
            if isinstance(error, AmsError)
            else InternalError(
                f"unexpected {type(error).__name__} while reading a message from {self.name} (a bug in ams: please "
                "report it)"
            )
        )
        log.error(
            "a get of message %s from %s was backed out: %s: %s",
            self.last_md.msg_id.hex() if self.last_md is not None else "-",
            self.name,
            type(typed).__name__,
            _printable(typed.message),
        )
        typed.add_note(
            f"the unit of work was backed out: the message is back on {self.name}, and is moved aside once it "
            f"has been backed out {self.backout.threshold if self.backout else 'BOTHRESH'} times"
        )
        return typed

    def browse_first(self, *, msg_id: bytes | None = None, correl_id: bytes | None = None) -> ProtectedMessage:
        """Browse the first message (the first with ``msg_id`` and/or ``correl_id``, if given),
        unprotected; a failed check raises and moves nothing."""
        return self._unprotect(self.handle.browse_first(msg_id=msg_id, correl_id=correl_id))

    def browse_next(self, *, msg_id: bytes | None = None, correl_id: bytes | None = None) -> ProtectedMessage:
        """Browse the next message (the next with ``msg_id`` and/or ``correl_id``, if given),
        unprotected; a failed check raises and moves nothing."""
        return self._unprotect(self.handle.browse_next(msg_id=msg_id, correl_id=correl_id))

    def _unprotect(self, message: Message) -> ProtectedMessage:
        if not self._protected:
            return ProtectedMessage(message.md, message.body, QoP.NONE, raw_body=message.body)
        md = message.md
        result = self.protector.unprotect(self.name, message.body, md.format, encoding=md.encoding, ccsid=md.ccsid)
        return ProtectedMessage(
            md_with(md, format=result.format), result.body, result.qop, result.signer, raw_body=message.body
        )

    def close(self) -> None:
        """MQCLOSE the handle."""
        self.handle.close()


__all__ = [
    "DEFAULT_BACKOUT_THRESHOLD",
    "ERROR_QUEUE",
    "POLICY_QUEUE",
    "PoisonMessageError",
    "ProtectedMessage",
    "ProtectedQueue",
    "ProtectedQueueManager",
    "browse_all",
    "never_protected",
    "policies_from_queue_manager",
    "write_policies_to_queue_manager",
]
