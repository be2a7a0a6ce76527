"""Reading AMS's error queue: decode each MQDLH and explain why the message failed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ams.errors import AmsError, SecurityError
from ams.inspect import inspect_message
from ams.keys import Keystore
from ams.mq.dlh import MQDLH, MQDLH_LENGTH
from ams.mq.mqmd import MQMD
from ams.mq.protected import ERROR_QUEUE
from ams.mq.transport import Message, NoMessageAvailable, QueueManager, unit_of_work
from ams.policy.model import Policy
from ams.protect import Protector


@attrs.frozen
class FailedMessage:
    """One message on the error queue: its MQDLH and the failed message, still protected."""

    index: int
    md: MQMD
    dlh: MQDLH
    body: bytes

    @property
    def original_md(self) -> MQMD:
        """The failed message's MQMD as the DLH recorded it."""
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
    """Browse the error queue (nothing is removed)."""
    handle = qm.open(queue, browse=True)
    out: list[FailedMessage] = []
    try:
        message = handle.browse_first()
        while True:
            out.append(_decode(len(out) + 1, message))
            message = handle.browse_next()
    except NoMessageAvailable:
        pass
    finally:
        handle.close()
    return out


def _decode(index: int, message: Message) -> FailedMessage:
    dlh = MQDLH.unpack(message.body, message.md.encoding)
    return FailedMessage(index, message.md, dlh, message.body[MQDLH_LENGTH:])


def explain(failed: FailedMessage, keystore: Keystore, policies: Mapping[str, Policy]) -> dict[str, Any]:
    """Why this identity could not read the message: the check that fails now, and the context."""
    queue = failed.dlh.dest_q_name
    md = failed.original_md
    report: dict[str, Any] = {
        "queue": queue,
        "queue_manager": failed.dlh.dest_qmgr_name,
        "reason": failed.dlh.reason,
        "put": f"{failed.dlh.put_date} {failed.dlh.put_time} by {failed.dlh.put_appl_name or '?'}",
        "identity": str(keystore.identity.dn) if keystore.identity else "(no private key)",
    }
    try:
        result = Protector(keystore, policies).unprotect(
            queue, failed.body, md.format, encoding=md.encoding, ccsid=md.ccsid
        )
    except SecurityError as error:
        report["verdict"] = f"{type(error).__name__} [{error.code}]: {error.message}"
    except AmsError as error:
        report["verdict"] = f"configuration: {error}"
    else:
        signer = f", signed by {result.signer_dn}" if result.signer_dn else ""
        report["verdict"] = (
            f"this identity can read it now ({result.qop}{signer}): the cause was elsewhere (another identity, a "
            "policy or certificate since changed); --requeue puts it back"
        )
    policy = policies.get(queue)
    report["policy"] = policy.to_setmqspl(failed.dlh.dest_qmgr_name or "QM") if policy else "(none)"
    try:
        report["message"] = inspect_message(
            failed.body, md.format, keystore=keystore, encoding=md.encoding, ccsid=md.ccsid
        )
    except AmsError as error:
        report["message"] = {"unreadable": str(error)}
    return report


def take(qm: QueueManager, failed: FailedMessage, *, requeue: bool, queue: str = ERROR_QUEUE) -> None:
    """Remove ``failed`` from the error queue; with ``requeue`` put it back on its queue (one unit of work)."""
    handle = qm.open(queue, input=True)
    try:
        with unit_of_work(qm):
            handle.get(syncpoint=True, msg_id=failed.md.msg_id)
            if requeue:
                original = attrs.evolve(failed.original_md, msg_id=bytes(24))
                qm.put1(failed.dlh.dest_q_name, original, failed.body, syncpoint=True)
    finally:
        handle.close()
