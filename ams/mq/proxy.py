"""The re-protection proxy: get from one protected queue, check, and put to another under a new policy.

A gateway reads what a partner protected for it (checking the partner's signature and the
policy's authorised signers), then protects each message again for its own side, signed by the
gateway. With both queues on one connection, the get, the put and any move to the error queue
are one unit of work: a crash or a failed put leaves the message where it was. Between two queue
managers the put is committed before the get, so a crash can repeat a message but never lose one.

No single message stops the proxy: one that fails a check goes to the error queue; one that
fails for any other reason is backed out and tried again until its backout count reaches the
queue's threshold, when the get moves it aside. Only a configuration error (which every message
would meet) stops the run, with the message backed out.
"""

from __future__ import annotations

import attrs

from ams.errors import AmsError, ConfigurationError, InternalError, SecurityError
from ams.mq.protected import PoisonMessageError, ProtectedQueueManager
from ams.mq.transport import NoMessageAvailable


@attrs.define
class ProxyStats:
    """What a run did: messages moved, refused (now on the error or backout queue), and failed
    attempts (backed out, so still on the source queue)."""

    moved: int = 0
    refused: int = 0
    failed: int = 0
    reasons: list[str] = attrs.field(factory=list)

    def record(self, error: BaseException) -> None:
        """Keep the reason for a message not moved (the first 1,000 of them)."""
        detail = error.message if isinstance(error, AmsError) else "(unexpected)"
        if len(self.reasons) < 1000:
            self.reasons.append(f"{type(error).__name__}: {detail}")


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
        """Move one message; False when none arrived within ``wait`` seconds.

        Refusals and failed attempts are counted in ``stats``; a ConfigurationError is raised.
        """
        try:
            message = self._in.get(wait=wait, syncpoint=True)
        except NoMessageAvailable:
            return False
        except (SecurityError, PoisonMessageError) as error:
            self.source.commit()  # the message is on the error (or backout) queue: make that final
            self.stats.refused += 1
            self.stats.record(error)
            return True
        except ConfigurationError:
            raise  # backed out by the get; every message would fail the same way
        except AmsError as error:
            self.stats.failed += 1  # backed out by the get: the message is back on the source queue
            self.stats.record(error)
            return True
        md = attrs.evolve(message.md, msg_id=bytes(24), backout_count=0)
        try:
            self._out.put(md, message.body, syncpoint=True)
            if not self._one_unit:
                self.target.commit()
            self.source.commit()
        except BaseException as error:
            self.target.backout()
            if not self._one_unit:
                self.source.backout()
            if isinstance(error, ConfigurationError) or not isinstance(error, Exception):
                raise
            self.stats.failed += 1
            self.stats.record(error if isinstance(error, AmsError) else InternalError(type(error).__name__))
            return True
        self.stats.moved += 1
        return True

    def run(self, *, limit: int | None = None, wait: float = 0.0) -> ProxyStats:
        """Move messages until the source queue stays empty for ``wait`` seconds (or ``limit`` moves)."""
        while limit is None or self.stats.moved + self.stats.refused + self.stats.failed < limit:
            if not self.move_one(wait=wait):
                break
        return self.stats

    def close(self) -> None:
        """Close both queues."""
        self._in.close()
        self._out.close()
