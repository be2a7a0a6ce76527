"""What a conformance run actually exercised: qualities of protection, algorithms, clear header
kinds, recipient counts and tamper classes, counted over every peer call; and what it never did.

A property draws its cases at random, so a short run may never draw AES128 or an MQCIH: the
coverage table in the report says so, rather than let a pass suggest more than was tried.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs

from ams.algorithms import QoP
from ams.testing.conformance.properties import Case
from ams.testing.conformance.protocol import Capabilities
from ams.testing.headers import CLEAR_FORMATS
from ams.testing.mutations import MUTATION_KINDS

DIMENSIONS = ("qops", "digests", "ciphers", "header kinds", "recipient counts", "tamper classes")


@attrs.define
class Coverage:
    """Counts per dimension (see :data:`DIMENSIONS`) of the cases sent to the peer."""

    counts: dict[str, Counter[str]] = attrs.field(factory=lambda: {d: Counter() for d in DIMENSIONS})

    def add(self, case: Case, tamper_class: str | None = None) -> None:
        """Count one peer call's case (and, for a tampered message, the class of its change)."""
        self.counts["qops"]["not protected" if case.unprotected else case.qop.name.lower()] += 1
        if case.digest.value and not case.unprotected:
            self.counts["digests"][case.digest.label] += 1
        if case.cipher.value and not case.unprotected:
            self.counts["ciphers"][case.cipher.label] += 1
        for header in case.chain.headers:
            self.counts["header kinds"][header.kind] += 1
        if not case.chain.headers:
            self.counts["header kinds"]["none"] += 1
        if case.qop is not QoP.INTEGRITY and not case.unprotected:
            self.counts["recipient counts"][str(case.recipients)] += 1
        if tamper_class is not None:
            self.counts["tamper classes"][tamper_class] += 1

    def merge(self, other: Coverage) -> None:
        """Add ``other``'s counts to these."""
        for dimension, counter in other.counts.items():
            self.counts[dimension].update(counter)

    def never(self, caps: Capabilities) -> dict[str, list[str]]:
        """Per dimension, what the peer can do but no case exercised (tamper classes: the kinds of
        random change; the named classes of the deterministic list are in the counts)."""
        possible = {
            "qops": [q.name.lower() for q in caps.qops],
            "digests": [d.label for d in caps.digests],
            "ciphers": [c.label for c in caps.ciphers],
            "header kinds": ["none", *CLEAR_FORMATS] if caps.clear_headers else ["none"],
            "recipient counts": [str(n) for n in range(1, max(1, caps.max_recipients) + 1)],
            "tamper classes": list(MUTATION_KINDS),
        }
        return {d: [v for v in values if not self.counts[d][v]] for d, values in possible.items()}

    def table(self, caps: Capabilities) -> list[str]:
        """The coverage table, a line per dimension, each followed by what it never exercised."""
        never = self.never(caps)
        lines = []
        for dimension in DIMENSIONS:
            counter = self.counts[dimension]
            if dimension == "tamper classes" and not counter:
                continue  # no refusal property ran
            ordered = sorted(counter.items(), key=lambda item: (int(item[0]) if item[0].isdigit() else -1, item[0]))
            drawn = ", ".join(f"{name} {count}" for name, count in ordered) or "nothing"  # 2 before 10
            lines.append(f"  {dimension:<17} {drawn}")
            if never[dimension]:
                lines.append(f"  {'':<17} never exercised: {', '.join(never[dimension])}")
        return lines

    def to_json(self, caps: Capabilities) -> dict[str, Any]:
        """The counts and what was never exercised, as JSON values."""
        return {"counts": {d: dict(c) for d, c in self.counts.items()}, "never": self.never(caps)}
