"""What a conformance run found: per property passed, failed or skipped; for a failure the shrunk
counterexample, saved as files with the command that replays it; as text, JSON and JUnit XML.

The output directory::

    report.txt  report.json  junit.xml  peer.json
    failures/<property>/   payload.bin (the original body), message.bin (the protected message),
                           in.bin / out.bin (the peer's input and what it wrote), policies/,
                           world/ (keys, certificates, keystore.conf, trust.pem), step.json,
                           peer.json, failure.txt, replay.sh (the peer's command)
    hypothesis/<property>/ Hypothesis's database: a failing example is tried first next time
"""

from __future__ import annotations

import json
import shlex
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import attrs

from ams.testing.conformance.sandbox import printable

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


NOT_RUN = "not run: the run was interrupted"  # the reason of a property an interrupted run did not reach


@attrs.frozen
class Failure:
    """A property's shrunk counterexample: its kind of failure (done wrongly, refused, crashed...), the
    case, what was expected and found, and how to replay it."""

    kind: str
    case: str
    expected: str
    found: str
    directory: Path
    peer_command: tuple[str, ...] | None
    case_json: dict[str, Any] = attrs.field(factory=dict)

    @property
    def replay(self) -> str:
        """The one command that runs the failing step again and judges it."""
        return shlex.join(["ams", "conformance", "--replay", str(self.directory)])


@attrs.frozen
class PropertyResult:
    """One property's result: ``status`` passed, failed or skipped; the examples run and what was left out."""

    name: str
    summary: str
    status: str
    examples: int = 0
    seconds: float = 0.0
    reason: str = ""  # why it was skipped
    failure: Failure | None = None
    more_failures: tuple[Failure, ...] = ()  # other kinds of failure, each with its counterexample

    @property
    def failures(self) -> list[Failure]:
        """Every counterexample, the first one first."""
        return ([self.failure] if self.failure else []) + list(self.more_failures)


@attrs.frozen
class Report:
    """A whole run: the peer, the settings, and each property's result."""

    peer: str
    seed: int
    max_examples: int
    output: Path
    results: tuple[PropertyResult, ...]
    seconds: float
    not_covered: tuple[str, ...] = ()
    coverage: tuple[str, ...] = ()  # the coverage table's lines
    coverage_json: dict[str, Any] = attrs.field(factory=dict)
    interrupted: int = 0  # when the run was stopped: how many properties it was to check

    @property
    def ok(self) -> bool:
        """True when no property failed (skipped ones do not count against the peer)."""
        return all(r.status != FAILED for r in self.results)

    def counts(self) -> dict[str, int]:
        """How many properties passed, failed and were skipped."""
        return {s: sum(r.status == s for r in self.results) for s in (PASSED, FAILED, SKIPPED)}

    def text(self) -> str:
        """The report as people read it: one line per property, then each failure in full."""
        lines = [
            f"ams conformance against peer {self.peer!r}: seed {self.seed}, up to {self.max_examples} examples "
            f"per property; files in {self.output}",
        ]
        if self.interrupted:
            checked = sum(1 for r in self.results if r.reason != NOT_RUN)
            lines.append(
                f"INTERRUPTED: a partial report, {checked} of {self.interrupted} properties checked "
                f"(the same --seed {self.seed} runs them again; those not run are skipped)"
            )
        if self.not_covered:
            lines.append(f"not tried (the peer does not implement them): {'; '.join(self.not_covered)}")
        lines.append("")
        for result in self.results:
            lines.append(f"  {result.status.upper():<8} {result.name:<32} {_detail(result)}")
        if self.coverage:
            lines += ["", "coverage (peer calls per value; what the peer can do but no case tried):", *self.coverage]
        for result in self.results:
            for failure in result.failures:
                lines += ["", *_failure_lines(result, failure)]
        counts = self.counts()
        lines += [
            "",
            f"{counts[FAILED]} failed, {counts[PASSED]} passed, {counts[SKIPPED]} skipped in {self.seconds:.1f} s",
        ]
        return "\n".join(printable(line) for line in lines) + "\n"  # a peer's words cannot fake a line

    def to_json(self) -> dict[str, Any]:
        """The report as JSON values."""
        return {
            "peer": self.peer,
            "seed": self.seed,
            "max_examples": self.max_examples,
            "seconds": round(self.seconds, 3),
            "ok": self.ok,
            "interrupted": bool(self.interrupted),
            "not_covered": list(self.not_covered),
            "coverage": self.coverage_json,
            "properties": [_result_json(r) for r in self.results],
        }

    def junit(self) -> str:
        """JUnit XML for CI: a test case per property, with its failure or the reason it was skipped."""
        counts = self.counts()
        suite = ElementTree.Element(
            "testsuite",
            name=printable(f"ams conformance ({self.peer})"),
            tests=str(len(self.results)),
            failures=str(counts[FAILED]),
            skipped=str(counts[SKIPPED]),
            errors="0",
            time=f"{self.seconds:.3f}",
        )
        for result in self.results:
            case = ElementTree.SubElement(
                suite,
                "testcase",
                classname=printable(f"ams.conformance.{self.peer}"),
                name=result.name,
                time=f"{result.seconds:.3f}",
            )
            if result.status == SKIPPED:
                ElementTree.SubElement(case, "skipped", message=printable(result.reason))
            elif result.failure is not None:
                found = printable(f"found: {result.failure.found}")[:500]
                element = ElementTree.SubElement(case, "failure", message=found)
                lines = [line for failure in result.failures for line in ["", *_failure_lines(result, failure)]]
                element.text = "\n".join(printable(line) for line in lines[1:])
        text: str = ElementTree.tostring(suite, encoding="unicode", xml_declaration=True)
        return text + "\n"

    def write(self, junit: Path | None = None) -> None:
        """report.txt, report.json and junit.xml (or ``junit``) in the output directory."""
        self.output.mkdir(parents=True, exist_ok=True)
        (self.output / "report.txt").write_text(self.text(), encoding="utf-8")
        (self.output / "report.json").write_text(json.dumps(self.to_json(), indent=2), encoding="utf-8")
        (junit or self.output / "junit.xml").write_text(self.junit(), encoding="utf-8")


def _detail(result: PropertyResult) -> str:
    if result.status == SKIPPED:
        return result.reason
    return f"{result.examples} example(s), {result.seconds:.1f} s"


def _failure_lines(result: PropertyResult, failure: Failure) -> list[str]:
    kinds = f" ({len(result.failures)} kinds of failure; this one: {failure.kind})" if result.more_failures else ""
    lines = [
        f"FAILED {result.name}{kinds}: {result.summary}",
        f"  counterexample: {failure.case}",
        f"  expected: {failure.expected}",
        f"  found:    {failure.found}",
        f"  files:    {failure.directory}/ (payload.bin, message.bin, world/ with the keys, step.json)",
        f"  replay:   {failure.replay}",
    ]
    if failure.peer_command:
        lines.append(f"  the peer's command: {shlex.join(failure.peer_command)}")
    return lines


def _result_json(result: PropertyResult) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": result.name,
        "status": result.status,
        "examples": result.examples,
        "seconds": round(result.seconds, 3),
        "reason": result.reason,
    }
    if result.failure is not None:
        data["failure"] = _failure_json(result.failure)
        data["more_failures"] = [_failure_json(f) for f in result.more_failures]
    return data


def _failure_json(failure: Failure) -> dict[str, Any]:
    return {
        "kind": failure.kind,
        "case": failure.case,
        "case_values": failure.case_json,
        "expected": failure.expected,
        "found": failure.found,
        "directory": str(failure.directory),
        "replay": failure.replay,
        "peer_command": list(failure.peer_command) if failure.peer_command else None,
    }
