"""Protected queues: AMS on put, get and browse, with the error queue, over any transport.

Each open queue owns one Protector, so key reuse follows the queue handle as in IBM's AMS.
A message that fails any check on a destructive get goes to SYSTEM.PROTECTION.ERROR.QUEUE with
an MQDLH, inside the getter's unit of work when the get was under syncpoint; browse never moves
a message. The caller's MQMD is never changed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import attrs
from cryptography import x509

from ams.algorithms import QualityOfProtection
from ams.errors import SecurityError
from ams.keys import Keystore
from ams.mq.dlh import MQDLH
from ams.mq.mqmd import MQFMT_DEAD_LETTER_HEADER, MQMD, MQPER_PERSISTENT, MQRC_SECURITY_ERROR
from ams.mq.transport import Message, NoMessageAvailable, QueueHandle, QueueManager, unit_of_work
from ams.policy.model import Policy
from ams.policy.pcf import PcfMessage, decode_policy_queue
from ams.protect import Protector

ERROR_QUEUE = "SYSTEM.PROTECTION.ERROR.QUEUE"
POLICY_QUEUE = "SYSTEM.PROTECTION.POLICY.QUEUE"


def never_protected(queue: str) -> bool:
    """AMS leaves the queue manager's own SYSTEM.* queues alone."""
    return queue.startswith("SYSTEM.")


def policies_from_queue_manager(qm: QueueManager) -> dict[str, Policy]:
    """The policies in the queue manager's SYSTEM.PROTECTION.POLICY.QUEUE (browsed, not removed)."""
    handle = qm.open(POLICY_QUEUE, browse=True)
    messages = []
    try:
        message = handle.browse_first()
        while True:
            messages.append(PcfMessage(message.md.correl_id, message.body))
            message = handle.browse_next()
    except NoMessageAvailable:
        pass
    finally:
        handle.close()
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
                md = MQMD(format="MQADMIN ", correl_id=message.correl_id, persistence=MQPER_PERSISTENT)
                handle.put(md, message.body, syncpoint=True)
    finally:
        handle.close()
    return len(policies)


@attrs.frozen
class ProtectedMessage:
    """What a protected get or browse returns: the original MQMD Format and body, and how it was protected."""

    md: MQMD
    body: bytes
    qop: QualityOfProtection
    signer: x509.Certificate | None = None


class ProtectedQueueManager:
    """A queue-manager connection with AMS: policies from a store or from the queue manager."""

    def __init__(
        self,
        qm: QueueManager,
        keystore: Keystore,
        policies: Mapping[str, Policy] | None = None,
        *,
        error_queue: str = ERROR_QUEUE,
        allow_deprecated: bool = False,
        strict_dn: bool = False,
    ) -> None:
        self.qm = qm
        self.keystore = keystore
        self._policies = policies
        self.error_queue = error_queue
        self.allow_deprecated = allow_deprecated
        self.strict_dn = strict_dn

    @property
    def policies(self) -> Mapping[str, Policy]:
        if self._policies is None:
            self._policies = policies_from_queue_manager(self.qm)
        return self._policies

    def _protector(self) -> Protector:
        return Protector(self.keystore, self.policies, allow_deprecated=self.allow_deprecated, strict_dn=self.strict_dn)

    def open(self, queue: str, *, output: bool = False, input: bool = False, browse: bool = False) -> ProtectedQueue:
        """Open ``queue``; its recipients' certificates are looked up now, so a missing one fails here."""
        protector = self._protector()
        if not never_protected(queue):
            protector.prepare(queue, sending=output, receiving=input or browse)
        handle = self.qm.open(queue, output=output, input=input, browse=browse)
        return ProtectedQueue(self, queue, handle, protector)

    def put1(self, queue: str, md: MQMD, body: bytes, *, syncpoint: bool = False) -> MQMD:
        """MQPUT1: a one-shot put that never reuses a confidentiality key."""
        protector = self._protector()
        if never_protected(queue):
            return self.qm.put1(queue, md, body, syncpoint=syncpoint)
        protector.prepare(queue, sending=True, receiving=False)
        protected = protector.protect_message(
            queue, body, md.format, encoding=md.encoding, ccsid=md.ccsid, one_shot=True
        )
        return self.qm.put1(queue, attrs.evolve(md, format=protected.format), protected.body, syncpoint=syncpoint)

    def commit(self) -> None:
        self.qm.commit()

    def backout(self) -> None:
        self.qm.backout()

    def close(self) -> None:
        self.qm.close()

    def move_to_error_queue(self, queue: str, failed: Message, *, syncpoint: bool) -> MQMD:
        """Put ``failed`` (still protected) on the error queue behind an MQDLH, as AMS does."""
        dlh = MQDLH.for_message(MQRC_SECURITY_ERROR, queue, self.qm.name, failed.md)
        md = MQMD(
            format=MQFMT_DEAD_LETTER_HEADER,
            encoding=failed.md.encoding,
            ccsid=failed.md.ccsid,
            persistence=MQPER_PERSISTENT,
            correl_id=failed.md.correl_id,
        )
        return self.qm.put1(self.error_queue, md, dlh.pack(failed.md.encoding) + failed.body, syncpoint=syncpoint)


class ProtectedQueue:
    """An open queue with AMS applied; one Protector per handle."""

    def __init__(self, manager: ProtectedQueueManager, name: str, handle: QueueHandle, protector: Protector) -> None:
        self.manager = manager
        self.name = name
        self.handle = handle
        self.protector = protector
        self._protected = not never_protected(name)

    def put(self, md: MQMD, body: bytes, *, syncpoint: bool = False) -> MQMD:
        if not self._protected:
            return self.handle.put(md, body, syncpoint=syncpoint)
        protected = self.protector.protect_message(self.name, body, md.format, encoding=md.encoding, ccsid=md.ccsid)
        return self.handle.put(attrs.evolve(md, format=protected.format), protected.body, syncpoint=syncpoint)

    def get(self, *, wait: float = 0.0, syncpoint: bool = False) -> ProtectedMessage:
        """Get and unprotect; a message that fails moves to the error queue and raises (MQRC 2063)."""
        message = self.handle.get(wait=wait, syncpoint=syncpoint)
        try:
            return self._unprotect(message)
        except SecurityError as error:
            self.manager.move_to_error_queue(self.name, message, syncpoint=syncpoint)
            error.add_note(f"the message was moved to {self.manager.error_queue} with an MQDLH (reason 2063)")
            raise

    def browse_first(self) -> ProtectedMessage:
        return self._unprotect(self.handle.browse_first())

    def browse_next(self) -> ProtectedMessage:
        return self._unprotect(self.handle.browse_next())

    def _unprotect(self, message: Message) -> ProtectedMessage:
        if not self._protected:
            return ProtectedMessage(message.md, message.body, QualityOfProtection.NONE)
        md = message.md
        result = self.protector.unprotect(self.name, message.body, md.format, encoding=md.encoding, ccsid=md.ccsid)
        return ProtectedMessage(attrs.evolve(md, format=result.format), result.body, result.qop, result.signer)

    def close(self) -> None:
        self.handle.close()


__all__ = [
    "ERROR_QUEUE",
    "POLICY_QUEUE",
    "ProtectedMessage",
    "ProtectedQueue",
    "ProtectedQueueManager",
    "never_protected",
    "policies_from_queue_manager",
    "write_policies_to_queue_manager",
]
