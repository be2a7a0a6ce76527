"""The re-protection proxy: get from one protected queue, check, and put to another under a new policy.

A gateway reads what a partner protected for it (checking the partner's signature and the
policy's authorised signers), then protects each message again for its own side, signed by the
gateway. With both queues on one connection, the get, the put and any move to the error queue
are one unit of work: a crash or a failed put leaves the message where it was. Between two queue
managers the put is committed before the get, so a crash can repeat a message but never lose one.
"""

from __future__ import annotations

import attrs

from ams.errors import SecurityError
from ams.mq.protected import ProtectedQueueManager
from ams.mq.transport import NoMessageAvailable


@attrs.define
class ProxyStats:
    moved: int = 0
    refused: int = 0
    reasons: list[str] = attrs.field(factory=list)


class ReprotectionProxy:
    """Moves messages from ``source_queue`` (read as the source's identity) to ``target_queue``."""

    def __init__(
        self,
        source: ProtectedQueueManager,
        source_queue: str,
        target: ProtectedQueueManager,
        target_queue: str,
    ) -> None:
        self.source, self.target = source, target
        self.source_queue, self.target_queue = source_queue, target_queue
        self._in = source.open(source_queue, input=True)
        self._out = target.open(target_queue, output=True)  # recipients' certificates checked now
        self.stats = ProxyStats()
        self._one_unit = source.qm is target.qm

    def move_one(self, *, wait: float = 0.0) -> bool:
        """Move one message; False when none arrived within ``wait`` seconds."""
        try:
            message = self._in.get(wait=wait, syncpoint=True)
        except NoMessageAvailable:
            return False
        except SecurityError as error:
            self.source.commit()  # the refused message is on the error queue: make that final
            self.stats.refused += 1
            self.stats.reasons.append(f"{type(error).__name__}: {error.message}")
            return True
        md = attrs.evolve(message.md, msg_id=bytes(24), backout_count=0)
        try:
            self._out.put(md, message.body, syncpoint=True)
            if not self._one_unit:
                self.target.commit()
            self.source.commit()
        except BaseException:
            self.target.backout()
            if not self._one_unit:
                self.source.backout()
            raise
        self.stats.moved += 1
        return True

    def run(self, *, limit: int | None = None, wait: float = 0.0) -> ProxyStats:
        """Move messages until the source queue stays empty for ``wait`` seconds (or ``limit`` moves)."""
        while limit is None or self.stats.moved + self.stats.refused < limit:
            if not self.move_one(wait=wait):
                break
        return self.stats

    def close(self) -> None:
        self._in.close()
        self._out.close()
