"""The re-protection proxy: get from one protected queue, check, and put to another under a new policy.

A gateway reads what a partner protected for it (checking the partner's signature and the
policy's authorised signers), then protects each message again for its own side, signed by the
gateway. Messages move in batches: up to ``batch_size`` messages (or ``batch_seconds``) per unit
of work, then one commit.

* **One queue manager** (both sides on one connection): the gets, the puts and any moves to the
  error queue are one unit of work: every message arrives exactly once.
* **Two queue managers**: the target is committed before the source, so a crash in between can
  only repeat a message; with a :class:`~ams.mq.ledger.DeliveryLedger` on the target, the repeat
  is recognised and not put again (at least once, duplicates suppressed).

No single message stops the proxy: one that fails a check goes to the error queue (in the unit
of work); one that fails for any other reason backs the unit of work out, and the next messages
then move one per unit of work, so that the failing one alone counts its backouts until the
queue's threshold moves it aside. Only a configuration error (which every message would meet)
stops the run, with the unit of work backed out.

The MQMD travels with the message (MsgId, CorrelId, ReplyToQ and ReplyToQMgr, persistence,
priority, remaining expiry, Format), and the clear headers and MQRFH2 properties byte for byte;
with ``signer_property`` the original signer's DN is added as an MQRFH2 ``usr`` property.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import attrs
from cryptography import x509

from ams.dn import DistinguishedName
from ams.errors import AmsError, ConfigurationError, ForgedPropertyError, InternalError, SecurityError
from ams.mq.ledger import DeliveryLedger
from ams.mq.mqmd import MQMD
from ams.mq.properties import read_properties
from ams.mq.protected import AlreadyDelivered, PoisonMessageError, ProtectedMessage, ProtectedQueueManager
from ams.mq.proxy.events import ProxyEvent
from ams.mq.rfh2 import with_usr_property
from ams.mq.transport import Message, MQError, NoMessageAvailable

log = logging.getLogger(__name__)

# MQ reasons that say the route, not the message, is in trouble: the unit of work is backed out
# and RouteUnavailable raised, so that a worker waits instead of wearing out every message's
# backout count (a full or put-inhibited target, a lost connection, a missing authority...)
ROUTE_REASONS = frozenset({2009, 2016, 2018, 2035, 2051, 2053, 2059, 2161, 2162, 2195, 2202})


class RouteUnavailable(AmsError):
    """The route cannot move messages for now (the MQ reason says why); nothing was moved aside."""

    code = "route_unavailable"


def _route_level(error: BaseException) -> bool:
    return isinstance(error, MQError) and error.reason in ROUTE_REASONS


@attrs.define
class ProxyStats:
    """What a run did: messages moved, refused (they failed a check: now on the error queue),
    poison (backed out BOTHRESH times: now on the backout or error queue), duplicates not put
    again, and failed attempts (backed out, so still on the source queue)."""

    moved: int = 0
    refused: int = 0
    failed: int = 0
    duplicates: int = 0
    poison: int = 0
    reasons: list[str] = attrs.field(factory=list)

    def record(self, error: BaseException) -> None:
        """Keep the reason for a message not moved (the first 1,000 of them)."""
        if len(self.reasons) < 1000:
            self.reasons.append(reason_of(error))

    @property
    def handled(self) -> int:
        """Every message outcome counted so far."""
        return self.moved + self.refused + self.failed + self.duplicates + self.poison


def reason_of(error: BaseException) -> str:
    """``ClassName: message`` for an AmsError (public facts only), the class alone otherwise."""
    detail = error.message if isinstance(error, AmsError) else "(unexpected)"
    return f"{type(error).__name__}: {detail}"


@functools.lru_cache(maxsize=256)  # a route sees few signers: rendering the DN was 5 % of a 1 KiB message
def _subject_text(certificate: x509.Certificate) -> str:
    return str(DistinguishedName.from_x509(certificate.subject))


class _Handled(NamedTuple):
    """One message of a unit of work, as cheap to keep as a tuple: its event is made only once the
    unit of work is settled, and only when someone hears of events (``on_event``). ``certificate``:
    the verified signer, whose DN is rendered then (``signer`` when the route rendered it already)."""

    outcome: str
    started: float  # when its get began
    md: MQMD | None = None
    signer: str = ""
    certificate: x509.Certificate | None = None
    qop_in: str = ""
    reason: str = ""


@attrs.define
class _Batch:
    """The messages of one unit of work, to count and report once it commits."""

    events: list[_Handled] = attrs.field(factory=list)
    started: float = attrs.field(factory=time.monotonic)


# messages a moved one holds under syncpoint on each connection at most: its get and a put to the
# error or backout queue on the source; its put and its ledger entry on the target (one of each on one)
_UNCOMMITTED_PER_MESSAGE = 2


def _bounded(batch_size: int, source: ProtectedQueueManager, target: ProtectedQueueManager, route: str) -> int:
    """``batch_size``, lowered to what the queue managers' MaxUncommittedMsgs (inquired) allow: a
    batch beyond it fails with 2024 at the same message every time, and always backs out."""
    limit = min(source.qm.max_uncommitted(), target.qm.max_uncommitted()) // _UNCOMMITTED_PER_MESSAGE
    if batch_size <= limit:
        return batch_size
    log.warning(
        "route %s: batches of %d messages would hold up to %d under syncpoint, over the queue manager's "
        "MaxUncommittedMsgs (%d): moving %d per unit of work (or ALTER QMGR MAXUMSGS)",
        route,
        batch_size,
        batch_size * _UNCOMMITTED_PER_MESSAGE,
        limit * _UNCOMMITTED_PER_MESSAGE,
        max(1, limit),
    )
    return max(1, limit)


class ReprotectionProxy:
    """Moves messages from ``source_queue`` (read as the source's identity) to ``target_queue``.

    ``batch_size`` messages (or as many as arrive within ``batch_seconds``) share a unit of work;
    ``ledger`` (two queue managers only) suppresses duplicates; ``keep_msg_id`` keeps the source
    MsgId on the target message (reply correlation depends on it); ``signer_property`` names an
    MQRFH2 ``usr`` property that receives the original signer's DN; ``on_event`` hears of each
    message once its unit of work is settled; ``backout`` overrides the source queue's BOTHRESH
    and BOQNAME.
    """

    def __init__(
        self,
        source: ProtectedQueueManager,
        source_queue: str,
        target: ProtectedQueueManager,
        target_queue: str,
        *,
        route: str = "",
        batch_size: int = 1,
        batch_seconds: float = 1.0,
        ledger: DeliveryLedger | None = None,
        keep_msg_id: bool = True,
        signer_property: str | None = None,
        on_event: Callable[[ProxyEvent], None] | None = None,
        backout_threshold: int | None = None,
        backout_queue: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigurationError(f"a batch holds at least 1 message (found {batch_size})")
        self.source, self.target = source, target
        self.source_queue, self.target_queue = source_queue, target_queue
        self.route = route or f"{source_queue}->{target_queue}"
        self.batch_size, self.batch_seconds = _bounded(batch_size, source, target, self.route), batch_seconds
        self._one_unit = source.qm is target.qm
        if ledger is not None and self._one_unit:
            raise ConfigurationError("a delivery ledger is for two queue managers: on one, delivery is exactly once")
        self.ledger = ledger
        self.keep_msg_id, self.signer_property = keep_msg_id, signer_property
        self.on_event = on_event
        self._in = source.open(
            source_queue, input=True, backout_threshold=backout_threshold, backout_queue=backout_queue
        )
        self._out = target.open(target_queue, output=True)  # recipients' certificates checked now
        target_policy = self._out.protector.policies.get(target_queue)
        self._qop_out = target_policy.qop.name if target_policy is not None else "NONE"
        self.stats = ProxyStats()
        # after a backout, or a message got again (its worker may have died on it), this many
        # messages move one per unit of work, so that a failing one alone counts its backouts
        self._careful = 0
        self._last_signer: tuple[x509.Certificate | None, str] = (None, "")

    # -- one unit of work ------------------------------------------------------------------------

    def move_batch(self, *, wait: float = 0.0, at_most: int | None = None) -> int:
        """Move up to one batch (at most ``at_most`` messages); how many messages it handled (0:
        none arrived within ``wait`` s).

        Refusals, duplicates and failed attempts are counted in ``stats``; a ConfigurationError
        is raised, with the unit of work backed out.
        """
        batch = _Batch()
        size = 1 if self._careful else min(self.batch_size, at_most or self.batch_size)
        for index in range(size):
            if index and (self._careful or time.monotonic() - batch.started >= self.batch_seconds):
                break
            try:
                if not self._move_next(batch, wait if index == 0 else 0.0):
                    break
            except _BackedOut as backed_out:
                ids = [backed_out.md.msg_id.hex()] if backed_out.md is not None else []
                return len(batch.events) + self._failed(backed_out.error, backed_out.started, msg_ids=ids)
        if not batch.events:
            return 0
        return self._commit(batch)

    def move_one(self, *, wait: float = 0.0) -> bool:
        """Move one message in a unit of work of its own; False when none arrived within ``wait`` s."""
        return self.move_batch(wait=wait, at_most=1) > 0

    def _move_next(self, batch: _Batch, wait: float) -> bool:
        """Get, check and put one message inside the batch's unit of work; False when none arrived."""
        started = time.monotonic()
        try:
            seen = self._delivered_before if self.ledger is not None else None
            check = self._no_forged_signer if self.signer_property else None
            message = self._in.get(wait=wait, syncpoint=True, seen=seen, check=check)
        except NoMessageAvailable:
            return False
        except AlreadyDelivered:  # in the ledger: its get goes with this unit of work, and no put
            batch.events.append(_Handled("duplicate", started, self._in.last_md))
            return True
        except SecurityError as error:  # moved to the error queue inside the unit of work
            batch.events.append(
                _Handled("refused", started, self._in.last_md, signer=error.signer, reason=reason_of(error))
            )
            return True
        except PoisonMessageError as error:  # backed out BOTHRESH times: moved aside inside the unit of work
            batch.events.append(_Handled("poison", started, self._in.last_md, reason=reason_of(error)))
            return True
        except ConfigurationError:
            self._back_out_both()
            raise
        except AmsError as error:  # the get backed out the whole unit of work
            if _route_level(error):
                self._back_out_both()
                raise RouteUnavailable(f"getting from {self.source_queue}: {error.message}") from None
            raise _BackedOut(error, started, self._in.last_md) from None
        if message.md.backout_count > 0:
            self._careful = max(self._careful, self.batch_size if self.batch_size > 1 else 0)
        try:
            batch.events.append(self._deliver(message, started))
        except ConfigurationError:
            self._back_out_both()
            raise
        except Exception as error:
            if _route_level(error):
                self._back_out_both()
                raise RouteUnavailable(f"putting to {self.target_queue}: {reason_of(error)}") from None
            raise _BackedOut(error, started, message.md) from None
        return True

    def _no_forged_signer(self, message: ProtectedMessage) -> None:
        """Refuse a message that already carries the property this route sets to the verified
        signer's DN. MQRFH2 headers travel in the clear, outside AMS's protection, so anyone on the
        way can add one; and which of two same-named properties a reader sees is the queue
        manager's to decide when it re-renders the headers, so the proxy's must be the only one."""
        name = self.signer_property
        assert name is not None  # asked only of a route that sets the property
        properties = read_properties(message.md, message.body)
        carried = properties.folders.get("usr", {})
        if not properties.complete:  # more than can be read within bounds: a copy could hide past them
            raise ForgedPropertyError(
                f"message on {self.source_queue} carries more message properties than this route reads (1,000, "
                f"nested at most 32 deep), so it cannot tell whether one of them poses as usr.{name}, the "
                "property it sets to the verified signer's DN: refused; send fewer properties"
            )
        if name.lower() in {n.lower() for n in carried}:  # property names differ by case only: refused too
            raise ForgedPropertyError(
                f"message on {self.source_queue} already carries the property usr.{name}, which this route sets "
                "to the verified signer's DN: refused so that no reader can take that copy for the proxy's. Remove "
                "the property at the sender (or anyone adding it on the way), or give the route another "
                "signer_property"
            )

    def _delivered_before(self, message: Message) -> bool:
        """Whether a redelivered message is in the ledger: asked before its backout count could move
        it aside, since only a message backed out before can have been delivered already."""
        assert self.ledger is not None  # asked only of a route with a ledger
        return self.ledger.delivered(message.md.msg_id, message.body)

    def _deliver(self, message: ProtectedMessage, started: float) -> _Handled:
        """Put ``message`` to the target (and its ledger entry), under syncpoint."""
        md, body = message.md, message.body
        if self.signer_property:
            signer = self._signer_dn(message.signer)
            # always first, empty for an unsigned message: a sender's own copy further in cannot pose as it
            md, body = with_usr_property(md, body, self.signer_property, signer)
            handled = _Handled("moved", started, message.md, signer=signer, qop_in=message.qop.name)
        else:
            handled = _Handled("moved", started, message.md, certificate=message.signer, qop_in=message.qop.name)
        self._out.forward(md, body, syncpoint=True, keep_msg_id=self.keep_msg_id)
        if self.ledger is not None:
            self.ledger.record(message.md.msg_id, message.raw_body)
        return handled

    def _signer_dn(self, certificate: x509.Certificate | None) -> str:
        """The signer's DN as text ("" for none): the last one is kept, as a route's messages mostly
        come from one signer, and the verifier hands out the certificate object it cached."""
        if certificate is None:
            return ""
        if certificate is not self._last_signer[0]:
            self._last_signer = (certificate, _subject_text(certificate))
        return self._last_signer[1]

    def _commit(self, batch: _Batch) -> int:
        """Commit the batch (target first between two queue managers); report its events."""
        try:
            if not self._one_unit:
                self.target.commit()
            self.source.commit()
            self.target.pending = False
        except BaseException as error:
            self._back_out_both()
            if not isinstance(error, Exception):
                raise
            if _route_level(error):
                raise RouteUnavailable(f"committing: {reason_of(error)}") from None
            ids = [handled.md.msg_id.hex() if handled.md is not None else "" for handled in batch.events]
            return self._failed(error, batch.started, count=len(batch.events), msg_ids=ids)
        if self._careful:
            self._careful = max(0, self._careful - len(batch.events))
        settled = time.monotonic()
        stats = self.stats
        for handled in batch.events:
            outcome = handled.outcome
            if outcome == "moved":
                stats.moved += 1
            else:
                counter = _COUNTERS[outcome]
                setattr(stats, counter, getattr(stats, counter) + 1)
                if outcome in ("refused", "poison") and len(stats.reasons) < 1000:
                    stats.reasons.append(handled.reason)
            if self.on_event is not None:  # made only for someone to hear it
                self.on_event(self._event(handled, settled))
        return len(batch.events)

    def _failed(self, error: BaseException, started: float, *, count: int = 1, msg_ids: Sequence[str] = ()) -> int:
        """A backed-out attempt: counted once, reported with the MsgId of each message ``msg_ids``
        names (the one whose get or put failed; every message of a unit of work whose commit
        failed), and the next messages move one at a time. Other messages of a batch backed out
        for one message's failure are not reported: they move again, and are reported then."""
        self._back_out_both()
        typed = error if isinstance(error, AmsError) else InternalError(type(error).__name__)
        self.stats.failed += 1
        self.stats.record(typed)
        self._careful = self.batch_size if self.batch_size > 1 else 0
        if self.on_event is not None:
            failed_at = time.monotonic()
            for msg_id in msg_ids or [""]:
                event = self._event(_Handled("backed_out", started, reason=reason_of(typed)), failed_at)
                self.on_event(attrs.evolve(event, msg_id=msg_id))
        return count

    def _back_out_both(self) -> None:
        self.target.backout()
        if not self._one_unit:
            self.source.backout()

    def _event(self, handled: _Handled, settled: float) -> ProxyEvent:
        """The event of a message handled, settled (committed, or backed out) at ``settled``."""
        return ProxyEvent(
            route=self.route,
            outcome=handled.outcome,
            msg_id=handled.md.msg_id.hex() if handled.md is not None else "",
            signer=handled.signer or self._signer_dn(handled.certificate),
            qop_in=handled.qop_in,
            qop_out=self._qop_out if handled.outcome == "moved" else "",
            elapsed_ms=(settled - handled.started) * 1000,  # from its get to its settled unit of work
            reason=handled.reason,
        )

    def probe(self) -> MQError | None:
        """Whether the target, its ledger and the source's error queue would take a put now: an
        empty message is put to each under syncpoint and backed out. None when they would; the MQ
        error otherwise. Nothing is got, so waiting for a target to recover costs no message a
        backout."""
        try:
            self._out.handle.put(MQMD(persistence=0), b"", syncpoint=True)
            if self.ledger is not None:
                self.ledger.probe()
            self.source.qm.put1(self.source.error_queue, MQMD(persistence=0), b"", syncpoint=True)
        except MQError as error:
            return error
        finally:
            self._back_out_both()
        return None

    # -- runs ---------------------------------------------------------------------------------

    def run(
        self, *, limit: int | None = None, wait: float = 0.0, should_stop: Callable[[], bool] | None = None
    ) -> ProxyStats:
        """Move messages until the source queue stays empty for ``wait`` seconds, ``limit``
        messages were handled, or ``should_stop()`` says so (checked between units of work)."""
        while limit is None or self.stats.handled < limit:
            if should_stop is not None and should_stop():
                break
            if not self.move_batch(wait=wait, at_most=None if limit is None else limit - self.stats.handled):
                break
        return self.stats

    def close(self) -> None:
        """Back out anything in flight and close the queues (and the ledger's)."""
        self._back_out_both()
        self._in.close()
        self._out.close()
        if self.ledger is not None:
            self.ledger.close()


_COUNTERS = {
    "moved": "moved",
    "refused": "refused",
    "poison": "poison",
    "duplicate": "duplicates",
    "backed_out": "failed",
}


class _BackedOut(Exception):
    """A message's attempt failed and its unit of work was (or is to be) backed out."""

    def __init__(self, error: BaseException, started: float, md: MQMD | None = None) -> None:
        super().__init__(type(error).__name__)
        self.error, self.started, self.md = error, started, md
