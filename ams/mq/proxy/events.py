"""What a proxy reports about each message: one event per message handled, written as one line
of text or JSON. Events name public facts only (MsgIds, DNs, QoPs, timings, the refusal's
reason), never a payload byte."""

from __future__ import annotations

import datetime
import json
from typing import Any

import attrs

OUTCOMES = ("moved", "refused", "duplicate", "backed_out")


@attrs.frozen
class ProxyEvent:
    """One message handled by a route: ``outcome`` is "moved" (committed to the target),
    "refused" (moved to the error or backout queue), "duplicate" (delivered before, per the
    ledger: not put again) or "backed_out" (a failed attempt; the message is back on its queue)."""

    route: str
    outcome: str
    msg_id: str = ""
    signer: str = ""
    qop_in: str = ""
    qop_out: str = ""
    elapsed: float = 0.0
    reason: str = ""

    def to_json(self) -> str:
        """The event as one line of JSON."""
        return json.dumps(attrs.asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> ProxyEvent:
        """An event read back from :meth:`to_json`'s line (unknown keys ignored)."""
        raw: dict[str, Any] = json.loads(line)
        names = {field.name for field in attrs.fields(cls)}
        return cls(**{key: value for key, value in raw.items() if key in names})

    def to_text(self) -> str:
        """The event as one line of ``key=value`` text."""
        parts = [f"route={self.route}", f"outcome={self.outcome}", f"msg_id={self.msg_id or '-'}"]
        if self.signer:
            parts.append(f"signer={json.dumps(self.signer)}")
        if self.qop_in or self.qop_out:
            parts.append(f"qop={self.qop_in or '-'}->{self.qop_out or '-'}")
        parts.append(f"elapsed_ms={self.elapsed * 1000:.1f}")
        if self.reason:
            parts.append(f"reason={json.dumps(self.reason)}")
        return " ".join(parts)


def log_line(event: ProxyEvent, *, as_json: bool, worker: str = "") -> str:
    """The service's line for ``event``: a UTC time stamp, then text or JSON."""
    stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if as_json:
        fields = {"time": stamp, **({"worker": worker} if worker else {}), **attrs.asdict(event)}
        return json.dumps(fields, separators=(",", ":"))
    return f"{stamp} {'worker=' + worker + ' ' if worker else ''}{event.to_text()}"
