"""The delivery ledger of a proxy between two queue managers: which source messages reached the
target, kept on the target queue manager, inside the unit of work of the puts themselves.

Between two queue managers a proxy commits the target before the source; a crash in between
leaves the message on the source queue, backed out (its BackoutCount raised), and the next
attempt would deliver it twice. So each put to the target goes with a ledger entry in the same
target unit of work: a small persistent message on the ledger queue whose MsgId is a key for
that source message: the first 24 bytes of the SHA-256 of the route's scope (its name, source
queue manager and queue), the source MsgId and the source message's protected bytes as got. A
message got again with a BackoutCount above 0 is looked up by its key before it is delivered;
an entry means it was delivered already, and the source get is committed without a second put.

The bytes are in the key because an application may set MsgIds itself: a MsgId alone must never
be enough to drop a message. Only redeliveries are looked up, so a message sent twice on purpose
(same MsgId, same bytes) is still delivered twice. Define the source queue with HARDENBO, so that
a BackoutCount survives a queue manager restart.

Entries expire (MQMD Expiry) after ``retention`` seconds: a redelivery later than that would be
delivered again. An expired message still counts towards CURDEPTH and MAXDEPTH until a get or
browse would have returned it (MQ's expiry scan, EXPRYINT, is off by default), and a lookup by
key passes over no other entry: so every ``SWEEP_EVERY`` entries, and at open, the ledger browses
its first message, which makes the queue manager discard the expired entries at the head, where
entries of one retention age first. Redeliveries follow a restart,
so a day (the default) is generous. One entry is kept per message for that long: give the ledger
queue a MAXDEPTH above a day's traffic (IBM MQ's default is 5,000), and the proxy's user +put
+browse +inq on it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json

from ams.mq.mqmd import MQMD
from ams.mq.transport import NoMessageAvailable, QueueHandle, QueueManager
from ams.mqconstants import MQFMT_STRING, MQPER_PERSISTENT

DEFAULT_LEDGER_QUEUE = "AMS.PROXY.LEDGER"
DEFAULT_RETENTION_SECONDS = 24 * 3600
SWEEP_EVERY = 100  # entries recorded between two browses of the head
MAX_RETENTION_SECONDS = 99_999_999  # MQMD Expiry is a 4-byte count of tenths of a second


class DeliveryLedger:
    """Delivered source messages of one route (``scope``), on ``queue`` of the target connection ``qm``."""

    def __init__(
        self,
        qm: QueueManager,
        queue: str = DEFAULT_LEDGER_QUEUE,
        *,
        retention: float = DEFAULT_RETENTION_SECONDS,
        scope: str = "",
    ) -> None:
        if not 1 <= retention <= MAX_RETENTION_SECONDS:
            raise ValueError(f"a ledger keeps entries 1 to {MAX_RETENTION_SECONDS} seconds (found {retention})")
        self.qm = qm
        self.queue = queue
        self.retention = retention
        self.scope = scope
        self._handle: QueueHandle = qm.open(queue, output=True, browse=True)
        self._recorded = 0
        scope_bytes = scope.encode("utf-8")
        self._scoped = hashlib.sha256(len(scope_bytes).to_bytes(8, "big") + scope_bytes)  # copied per key
        self._note = json.dumps({"scope": scope, "source_msg_id": ""})[:-3]  # the entry's text, but the MsgId
        self.sweep()

    def key(self, msg_id: bytes, body: bytes) -> bytes:
        """The entry's MsgId for a source message: 24 bytes of SHA-256 over scope, MsgId and bytes
        (each after its length, 8 bytes big-endian)."""
        digest = self._scoped.copy()
        digest.update(len(msg_id).to_bytes(8, "big"))
        digest.update(msg_id)
        digest.update(len(body).to_bytes(8, "big"))
        digest.update(body)
        return digest.digest()[:24]

    def delivered(self, msg_id: bytes, body: bytes) -> bool:
        """Whether this source message (scope, MsgId and bytes) was delivered already."""
        try:
            self._handle.browse_first(msg_id=self.key(msg_id, body))
        except NoMessageAvailable:
            return False
        return True

    def record(self, msg_id: bytes, body: bytes) -> None:
        """Add the entry for a delivered message, under syncpoint (in the unit of work of its put)."""
        md = MQMD(
            format=MQFMT_STRING,
            msg_id=self.key(msg_id, body),
            persistence=MQPER_PERSISTENT,
            expiry=int(self.retention * 10),
        )
        note = f'{self._note}"{msg_id.hex()}"}}'.encode()  # as json.dumps writes it, its scope quoted once
        self._handle.put(md, note, syncpoint=True)
        self._recorded += 1
        if self._recorded % SWEEP_EVERY == 0:
            self.sweep()

    def sweep(self) -> None:
        """Browse the first entry: the queue manager discards the expired ones it passes over."""
        with contextlib.suppress(NoMessageAvailable):
            self._handle.browse_first()

    def probe(self) -> None:
        """Put an empty entry under syncpoint (the caller backs it out): raises what a real one would meet."""
        self._handle.put(MQMD(format=MQFMT_STRING, persistence=0), b"", syncpoint=True)

    def close(self) -> None:
        """Close the ledger queue."""
        self._handle.close()
