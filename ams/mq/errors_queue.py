"""Reading AMS's error queue: decode each MQDLH and explain why the message failed.

Every entry is an attacker's message behind a header: an entry that is not what AMS writes is
shown as malformed, and the listing carries on.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from typing import Any

import attrs

from ams import _wire
from ams.algorithms import EncryptionAlgorithm, QoP, SignatureAlgorithm
from ams.errors import AmsError, MalformedMessageError, SecurityError, UsageError, clip
from ams.inspect import inspect_message
from ams.keys import Keystore
from ams.mq.dlh import MQDLH
from ams.mq.mqmd import MQMD
from ams.mq.protected import ERROR_QUEUE, browse_all
from ams.mq.transport import Message, MQError, QueueManager, unit_of_work
from ams.mqconstants import MQDLH_LENGTH, MQRC_NOT_AUTHORIZED
from ams.policy.model import Policy
from ams.protector import Protector
from ams.verify import Verifier

_QUEUE_NAME = re.compile(r"^[A-Za-z0-9._/%]{1,48}$")


@attrs.frozen
class FailedMessage:
    """One message on the error queue: its MQDLH and the failed message, still protected.

    ``dlh`` is None for an entry that does not start with an MQDLH; ``problem`` then says why,
    and ``body`` is the whole entry.
    """

    index: int
    md: MQMD
    dlh: MQDLH | None
    body: bytes
    problem: str | None = None

    @property
    def original_md(self) -> MQMD:
        """The failed message's MQMD as the DLH recorded it (the entry's own MQMD without one)."""
        if self.dlh is None:
            return self.md
        return attrs.evolve(
            self.md,
            format=self.dlh.format,
            encoding=self.dlh.encoding,
            ccsid=self.dlh.ccsid,
            put_appl_type=self.dlh.put_appl_type,
            put_appl_name=self.dlh.put_appl_name,
            put_date=self.dlh.put_date,
            put_time=self.dlh.put_time,
        )


def read_error_queue(qm: QueueManager, queue: str = ERROR_QUEUE) -> list[FailedMessage]:
    """Browse the error queue (nothing is removed); an entry that is not an MQDLH is kept, as malformed."""
    return [_decode(index, message) for index, message in enumerate(browse_all(qm, queue), start=1)]


def _decode(index: int, message: Message) -> FailedMessage:
    try:
        dlh = MQDLH.unpack(message.body, message.md.encoding)
    except MalformedMessageError as error:
        return FailedMessage(index, message.md, None, message.body, problem=error.message)
    return FailedMessage(index, message.md, dlh, message.body[MQDLH_LENGTH:])


def _policy_from_header(queue: str, failed: FailedMessage, keystore: Keystore) -> Policy | None:
    """With no policy at hand, the message's own PDMQ header says which QoP to try it as.

    The weakest algorithms of that QoP are asked for, so that any message of the QoP is judged
    by every other check; None when the message is not protected.
    """
    md = failed.original_md
    try:
        header = _wire.parse(failed.body, md.format, encoding=md.encoding, ccsid=md.ccsid).header
    except AmsError:
        return None
    if header is None:
        return None
    qop = header.qop
    me = (keystore.identity.dn,) if keystore.identity is not None else ()
    name = queue if _QUEUE_NAME.match(queue) else "UNNAMED"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MD5 and RC2 here mean "no minimum", not a choice to write them
        if qop is QoP.INTEGRITY:
            return Policy(name, signature_algorithm=SignatureAlgorithm.MD5)
        if not me:
            return None
        signature = SignatureAlgorithm.MD5 if qop is QoP.PRIVACY else SignatureAlgorithm.NONE
        return Policy(name, signature, EncryptionAlgorithm.RC2, recipients=me)


def explain(
    failed: FailedMessage, keystore: Keystore, policies: Mapping[str, Policy], *, verifier: Verifier | None = None
) -> dict[str, Any]:
    """Why this identity could not read the message: the check that fails now, and the context."""
    if failed.dlh is None:
        return {"index": failed.index, "malformed": failed.problem, "size": len(failed.body)}
    queue = failed.dlh.dest_q_name
    md = failed.original_md
    report: dict[str, Any] = {
        "queue": queue,
        "queue_manager": failed.dlh.dest_qmgr_name,
        "reason": failed.dlh.reason,
        "put": f"{failed.dlh.put_date} {failed.dlh.put_time} by {failed.dlh.put_appl_name or '?'}",
        "identity": str(keystore.identity.dn) if keystore.identity else "(no private key)",
    }
    policy = policies.get(queue)
    judged = policy if policy is not None else _policy_from_header(queue, failed, keystore)
    if policy is not None:
        report["policy"] = policy.to_setmqspl(failed.dlh.dest_qmgr_name or "QM")
    elif judged is not None:
        report["policy"] = (
            f"(none here: judged as its PDMQ header's {judged.qop}, with no minimum algorithm strength and any "
            "trusted signer)"
        )
    else:
        report["policy"] = "(none here, and the message is not protected)"
    if judged is None:
        report["verdict"] = "no policy applies and the message is not protected, or cannot be read as protected"
    else:
        report["verdict"] = _verdict(queue, failed, Protector(keystore, {}, verifier=verifier), judged)
    try:
        report["message"] = inspect_message(
            failed.body, md.format, keystore=keystore, encoding=md.encoding, ccsid=md.ccsid
        )
    except AmsError as error:
        report["message"] = {"unreadable": error.message}
    return report


def _verdict(queue: str, failed: FailedMessage, protector: Protector, policy: Policy) -> str:
    md = failed.original_md
    try:
        result = protector.unprotect(queue, failed.body, md.format, encoding=md.encoding, ccsid=md.ccsid, policy=policy)
    except SecurityError as error:
        return f"{type(error).__name__} [{error.code}]: {error.message}"
    except AmsError as error:
        return f"configuration: {error}"
    signer = f", signed by {result.signer_dn}" if result.signer_dn else ""
    return (
        f"this identity can read it now ({result.qop}{signer}): the cause was elsewhere (another identity, a "
        "policy or certificate since changed); --requeue puts it back"
    )


PROTECTION_QUEUES = "SYSTEM.PROTECTION."
"""The prefix of AMS's own queues (policies, errors): never a requeue's destination."""


@attrs.frozen
class Requeue:
    """A requeue to confirm: where the failed message goes and with which descriptor.

    Every field comes from the error-queue entry, which whoever may put to the error queue
    wrote, except ``destination`` when the operator named it (``named``). ``md`` is the entry's
    own MQMD (CorrelId, ReplyToQ, persistence, priority) with the Format, Encoding and CCSID the
    MQDLH gives for the body, and the original put application, date and time the MQDLH
    recorded, which a set-all-context put keeps.
    """

    index: int
    destination: str
    named: bool
    md: MQMD
    size: int

    def describe(self) -> list[str]:
        """What the operator is asked to confirm, one line each, every string escaped for a terminal."""
        source = "named on the command line" if self.named else "from the entry's MQDLH, which its putter wrote"
        md = self.md
        return [
            f"requeue entry {self.index} of {ERROR_QUEUE}",
            f"  to queue:          {clip(self.destination)} ({source})",
            f"  put by:            {clip(md.put_appl_name) or '?'} on {clip(md.put_date)} {clip(md.put_time)}",
            f"  format:            {clip(md.format.strip())}",
            f"  CorrelId:          {md.correl_id.hex()}",
            f"  ReplyToQ:          {clip(md.reply_to_q) or '(none)'} {clip(md.reply_to_qmgr)}".rstrip(),
            f"  size:              {self.size:,} bytes",
        ]


def plan_requeue(failed: FailedMessage, policies: Mapping[str, Policy], *, to: str | None = None) -> Requeue:
    """Where ``failed`` may be requeued: its MQDLH's queue, or ``to``, which the operator named.

    An entry's destination is what its putter wrote, so it is taken only for a queue a policy in
    ``policies`` protects and that is not a SYSTEM.* queue; another queue must be named with
    ``to``. AMS's own SYSTEM.PROTECTION.* queues are refused whoever names them: a message
    requeued there would become a policy (or an error) every reader believes. UsageError,
    with the destination escaped, for what is refused.
    """
    if failed.dlh is None:
        raise UsageError(f"entry {failed.index} has no MQDLH, so its queue is unknown: it can be removed, not requeued")
    destination = to if to is not None else failed.dlh.dest_q_name
    _check_destination(destination)
    if to is None and destination.startswith("SYSTEM."):
        raise UsageError(
            f"entry {failed.index} names {destination} as its queue, a SYSTEM queue, in an MQDLH that whoever may "
            f"put to {ERROR_QUEUE} can write: if it really belongs there, name it with --to {destination}"
        )
    if to is None and destination not in policies:
        raise UsageError(
            f"entry {failed.index} names {destination} as its queue, but no policy protects {destination}, and the "
            f"MQDLH that says so can be written by whoever may put to {ERROR_QUEUE}: if it really belongs there, "
            f"name it with --to {destination}"
        )
    md = attrs.evolve(failed.original_md, msg_id=bytes(24), backout_count=0)
    return Requeue(failed.index, destination, to is not None, md, len(failed.body))


def _check_destination(destination: str) -> None:
    if not _QUEUE_NAME.match(destination):
        raise UsageError(
            f"cannot requeue to {clip(destination)!s}: expected an MQ queue name (1 to 48 of A-Z a-z 0-9 . _ / %)"
        )
    if destination.upper().startswith(PROTECTION_QUEUES):
        raise UsageError(
            f"refusing to requeue to {destination}: nothing is ever requeued to AMS's own SYSTEM.PROTECTION queues "
            "(a message there would become a policy or an error entry every reader believes); remove the entry instead"
        )


def take(
    qm: QueueManager, failed: FailedMessage, *, requeue: Requeue | None = None, queue: str = ERROR_QUEUE
) -> list[str]:
    """Remove ``failed`` from the error queue; with ``requeue`` (from :func:`plan_requeue`) put it
    on its destination, in the same unit of work.

    The original put application, date and time are kept with a set-all-context put; where the
    transport or the authority does not allow that (MQRC 2035), the message is put with this
    application's context and the lines returned say what was not kept.
    """
    if requeue is not None:
        _check_destination(requeue.destination)
    handle = qm.open(queue, input=True)
    try:
        with unit_of_work(qm):
            handle.get(syncpoint=True, msg_id=failed.md.msg_id)
            if requeue is not None:
                return _put_back(qm, requeue, failed.body)
    finally:
        handle.close()
    return []


def _put_back(qm: QueueManager, requeue: Requeue, body: bytes) -> list[str]:
    md = requeue.md
    try:
        qm.put1(requeue.destination, md, body, syncpoint=True, set_all_context=True)
    except MQError as error:
        if error.reason != MQRC_NOT_AUTHORIZED:
            raise
    else:
        return []
    qm.put1(requeue.destination, md, body, syncpoint=True)
    return [
        f"the original put context was not kept (no set-all-context authority on {requeue.destination}, MQRC "
        f"{MQRC_NOT_AUTHORIZED}): it was put by {clip(md.put_appl_name) or '?'} on {clip(md.put_date)} "
        f"{clip(md.put_time)}; the requeued message carries this application's name and the time now"
    ]
