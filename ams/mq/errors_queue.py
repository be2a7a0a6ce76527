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
from ams.errors import AmsError, MalformedMessageError, SecurityError, UsageError
from ams.inspect import inspect_message
from ams.keys import Keystore
from ams.mq.dlh import MQDLH
from ams.mq.mqmd import MQMD
from ams.mq.protected import ERROR_QUEUE, browse_all
from ams.mq.transport import Message, QueueManager, unit_of_work
from ams.mqconstants import MQDLH_LENGTH
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


def take(qm: QueueManager, failed: FailedMessage, *, requeue: bool, queue: str = ERROR_QUEUE) -> None:
    """Remove ``failed`` from the error queue; with ``requeue`` put it back on its queue (one unit of work)."""
    if requeue and failed.dlh is None:
        raise UsageError(f"entry {failed.index} has no MQDLH, so its queue is unknown: it can be removed, not requeued")
    handle = qm.open(queue, input=True)
    try:
        with unit_of_work(qm):
            handle.get(syncpoint=True, msg_id=failed.md.msg_id)
            if requeue and failed.dlh is not None:
                original = attrs.evolve(failed.original_md, msg_id=bytes(24))
                qm.put1(failed.dlh.dest_q_name, original, failed.body, syncpoint=True)
    finally:
        handle.close()
