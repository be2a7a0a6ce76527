"""The delivery ledger of a proxy between two queue managers: which source messages reached the
target, kept on the target queue manager, inside the unit of work of the puts themselves.

Between two queue managers a proxy commits the target before the source; a crash in between
leaves the message on the source queue, and the next attempt would deliver it twice. So each put
to the target goes with a ledger entry in the same target unit of work: a small persistent
message on the ledger queue whose MsgId is the source message's MsgId and whose body is the
SHA-256 of the source message's bytes (an application may set its own MsgIds: a MsgId alone
must never be enough to drop a message). Before a message is delivered, the ledger is browsed by
its MsgId; a matching entry means it was delivered already, and the source get is committed
without a second put.

Entries expire (MQMD Expiry) after ``retention`` seconds, so the queue manager forgets them on
its own: a redelivery later than that would be delivered again. Redeliveries follow a restart,
so a day (the default) is generous.
"""

from __future__ import annotations

import hashlib

from ams.mq.mqmd import MQMD
from ams.mq.transport import NoMessageAvailable, QueueHandle, QueueManager
from ams.mqconstants import MQPER_PERSISTENT

DEFAULT_LEDGER_QUEUE = "AMS.PROXY.LEDGER"
DEFAULT_RETENTION_SECONDS = 24 * 3600
_MAX_EXPIRY_TENTHS = 999_999_999  # MQMD Expiry is a 4-byte count of tenths of a second


class DeliveryLedger:
    """Delivered source messages, by MsgId and digest, on ``queue`` of the target connection ``qm``."""

    def __init__(
        self, qm: QueueManager, queue: str = DEFAULT_LEDGER_QUEUE, *, retention: float = DEFAULT_RETENTION_SECONDS
    ) -> None:
        self.qm = qm
        self.queue = queue
        self.retention = retention
        self._handle: QueueHandle = qm.open(queue, output=True, browse=True)

    @staticmethod
    def digest(body: bytes) -> bytes:
        """What an entry records of a source message: the SHA-256 of its bytes as got."""
        return hashlib.sha256(body).digest()

    def delivered(self, msg_id: bytes, body: bytes) -> bool:
        """Whether this source message (MsgId and bytes) was delivered already."""
        if not any(msg_id):
            return False
        try:
            entry = self._handle.browse_first(msg_id=msg_id)
        except NoMessageAvailable:
            return False
        return entry.body == self.digest(body)

    def record(self, msg_id: bytes, body: bytes) -> None:
        """Add the entry for a delivered message, under syncpoint (in the unit of work of its put)."""
        if not any(msg_id):
            return
        expiry = min(_MAX_EXPIRY_TENTHS, max(1, int(self.retention * 10)))
        md = MQMD(format="        ", msg_id=msg_id, persistence=MQPER_PERSISTENT, expiry=expiry)
        self._handle.put(md, self.digest(body), syncpoint=True)

    def close(self) -> None:
        """Close the ledger queue."""
        self._handle.close()
