"""What a proxy reports about each message: one event per message handled, written as one line
of text or JSON. Events name public facts only (MsgIds, DNs, QoPs, timings, the refusal's
reason), never a payload byte.

Every line, per message or about the service, carries a ``level`` named as the :mod:`logging`
module names its levels: INFO for a message delivered (or recognised as delivered before),
WARNING for one refused or moved aside as poison, ERROR for a failed attempt (backed out).
"""

from __future__ import annotations

import datetime
import json
import logging
import operator
from typing import Any

import attrs

OUTCOMES = ("moved", "refused", "poison", "duplicate", "backed_out")

LEVELS = {
    "moved": logging.INFO,
    "duplicate": logging.INFO,
    "refused": logging.WARNING,
    "poison": logging.WARNING,
    "backed_out": logging.ERROR,
}
"""The :mod:`logging` level of each outcome's line."""


def level_name(level: int) -> str:
    """``INFO``, ``WARNING``, ``ERROR``: the :mod:`logging` module's name for ``level``."""
    return logging.getLevelName(level)


def stamp() -> str:
    """The current UTC time as the service's lines show it (ISO 8601, milliseconds, ``Z``)."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@attrs.frozen
class ProxyEvent:
    """One message handled by a route: ``outcome`` is "moved" (committed to the target),
    "refused" (it failed a check: moved to the error queue), "poison" (backed out BOTHRESH times:
    moved to the backout or error queue), "duplicate" (delivered before, per the ledger: not put
    again) or "backed_out" (a failed attempt; the message is back on its queue). ``elapsed_ms``:
    milliseconds from the message's get to its settled unit of work."""

    route: str
    outcome: str
    msg_id: str = ""
    signer: str = ""
    qop_in: str = ""
    qop_out: str = ""
    elapsed_ms: float = 0.0
    reason: str = ""

    @property
    def level(self) -> int:
        """The :mod:`logging` level of this event's line."""
        return LEVELS.get(self.outcome, logging.ERROR)

    def fields(self) -> dict[str, Any]:
        """The event's fields by name (``attrs.asdict`` without its walk: one per message, each side
        of the worker's pipe)."""
        return dict(zip(_EVENT_FIELDS, _event_values(self), strict=True))

    def to_json(self) -> str:
        """The event as one line of JSON."""
        return json.dumps(self.fields(), separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> ProxyEvent:
        """An event read back from :meth:`to_json`'s line (unknown keys ignored)."""
        return cls.from_fields(json.loads(line))

    @classmethod
    def from_fields(cls, raw: dict[str, Any]) -> ProxyEvent:
        """An event from :meth:`fields`' mapping, read back (unknown keys ignored)."""
        return cls(**{key: value for key, value in raw.items() if key in _EVENT_NAMES})

    def to_text(self) -> str:
        """The event as one line of ``key=value`` text."""
        parts = [f"route={self.route}", f"outcome={self.outcome}", f"msg_id={self.msg_id or '-'}"]
        if self.signer:
            parts.append(f"signer={json.dumps(self.signer)}")
        if self.qop_in or self.qop_out:
            parts.append(f"qop={self.qop_in or '-'}->{self.qop_out or '-'}")
        parts.append(f"elapsed_ms={self.elapsed_ms:.1f}")
        if self.reason:
            parts.append(f"reason={json.dumps(self.reason)}")
        return " ".join(parts)


_EVENT_FIELDS = tuple(field.name for field in attrs.fields(ProxyEvent))
_EVENT_NAMES = frozenset(_EVENT_FIELDS)
_event_values = operator.attrgetter(*_EVENT_FIELDS)


def log_line(event: ProxyEvent, *, as_json: bool, worker: str = "") -> str:
    """The service's line for ``event``: a UTC time stamp, the level, then text or JSON."""
    level = level_name(event.level)
    if as_json:
        fields = {"time": stamp(), "level": level, **({"worker": worker} if worker else {}), **event.fields()}
        fields["elapsed_ms"] = round(event.elapsed_ms, 3)
        return json.dumps(fields, separators=(",", ":"))
    return f"{stamp()} level={level} {'worker=' + worker + ' ' if worker else ''}{event.to_text()}"
