"""Running the properties against a peer with Hypothesis: cases drawn within what the peer can do,
a failure shrunk to a minimal counterexample and saved with the command that replays it.

Hypothesis's own shrinking makes the counterexample small; its database (under the output
directory) tries a failing example first on the next run. Shrinking a slow peer is bounded by
``Options.shrink_time``: once it is spent, every case not already known to fail passes at once,
so Hypothesis ends with the smallest failure found so far.
"""

from __future__ import annotations

import json
import secrets
import shlex
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import attrs
from hypothesis import HealthCheck, Phase, Verbosity, example, given, seed, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from ams.algorithms import EncryptionAlgorithm, QoP, SignatureAlgorithm
from ams.errors import AmsDeprecationWarning, UsageError
from ams.testing.algorithms import QOPS
from ams.testing.conformance.cases import (
    case_strategy,
    must_accept_cases,
    must_check_cases,
    other_qops,
    qop_matrix_cases,
    weaker_choices,
)
from ams.testing.conformance.checks import Verdict, evaluate
from ams.testing.conformance.coverage import Coverage
from ams.testing.conformance.peers import Peer, make_peer, run_step
from ams.testing.conformance.properties import (
    BY_NAME,
    PROPERTIES,
    QOP_MATRIX,
    Case,
    Check,
    Property,
    Step,
    build_step,
)
from ams.testing.conformance.protocol import IN_POLICY_FILE, Outcome, PeerSpec
from ams.testing.conformance.report import FAILED, NOT_RUN, PASSED, SKIPPED, Failure, PropertyResult, Report
from ams.testing.conformance.sandbox import (
    CaseDirectory,
    UnsafeDirectoryError,
    copy_tree,
    fresh_directory,
    printable,
    remove_tree,
)
from ams.testing.conformance.world import World
from ams.testing.headers import ClearChain
from ams.testing.payloads import PayloadSpec


@attrs.frozen
class Options:
    """How to run: examples per property, the seed, which properties, where the files go, and the
    time allowed for shrinking each failure."""

    max_examples: int = 25
    seed: int | None = None
    only: tuple[str, ...] = ()
    output: Path = Path("ams-conformance")
    shrink_time: float = 60.0
    key_bits: int = 2048
    junit: Path | None = None  # default: junit.xml in the output directory
    counterexamples: int = 3  # distinct kinds of failure each property keeps, each shrunk on its own
    must_check: bool = True  # every must-check (and must-accept) field change is sent (tampering.MUST_CHECK)


class Progress(Protocol):
    """Told about each property as it runs (``ams conformance`` shows it on a terminal)."""

    def started(self, prop: Property) -> None:
        """A property starts."""

    def example(self, prop: Property, number: int, shrinking: bool) -> None:
        """The ``number``-th peer call of ``prop`` is about to run."""

    def finished(self, result: PropertyResult) -> None:
        """A property is done."""


class _Failed(Exception):
    """Raised inside the Hypothesis test for a case whose step failed (Hypothesis then shrinks it).
    Each kind of failure (:func:`failure_kind`) raises its own subclass, so Hypothesis keeps and
    shrinks one counterexample per kind rather than let the first hide the others."""

    kind = ""

    def __init__(self, case: Case, step: Step, outcome: Outcome, verdict: Verdict, workdir: Path) -> None:
        super().__init__(verdict.found)
        self.case, self.step, self.outcome, self.verdict, self.workdir = case, step, outcome, verdict, workdir


_FAILED_KINDS: dict[str, type[_Failed]] = {}


def _failed_class(kind: str) -> type[_Failed]:
    if kind not in _FAILED_KINDS:
        _FAILED_KINDS[kind] = type(f"_Failed_{kind.replace(' ', '_')}", (_Failed,), {"kind": kind})
    return _FAILED_KINDS[kind]


def failure_kind(outcome: Outcome) -> str:
    """What sort of wrong a failing outcome is: the peer did the step but wrongly (``done``),
    ``refused``, ``crashed``, gave ``no answer``, or left output the kit would not take (``unsafe output``)."""
    if outcome.problem:
        return "unsafe output"
    if outcome.status is None:
        return "no answer"
    if outcome.status == 0:
        return "done"
    return "refused" if outcome.refused else "crashed"


def run_conformance(
    spec: PeerSpec,
    options: Options,
    *,
    world: World | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> Report:
    """Run every property (or ``options.only``) against the peer ``spec`` describes, write the report
    files into ``options.output`` and return the report.

    ``stop`` set (``ams conformance`` sets it on Ctrl-C) ends the run after the peer call under way,
    as a KeyboardInterrupt does at once: the partial report is written and :class:`Interrupted`,
    carrying it, is raised."""
    unknown = [name for name in options.only if name not in BY_NAME]
    if unknown:
        raise UsageError(f"unknown property {', '.join(unknown)}: expected one of {', '.join(BY_NAME)}")
    started = time.monotonic()
    options = attrs.evolve(options, output=options.output.resolve())  # the peer runs in another directory
    chosen_seed = options.seed if options.seed is not None else secrets.randbelow(2**32)
    options.output.mkdir(parents=True, exist_ok=True)
    fresh_directory(options.output / "failures")  # an earlier run's would read as this one's
    fresh_directory(options.output / "work")  # an earlier (interrupted) run's may hold the peer's links
    (options.output / "peer.json").write_text(json.dumps(spec.to_json(), indent=2), encoding="utf-8")
    world = world or World.create(options.output / "world", key_bits=options.key_bits)
    peer = make_peer(spec)
    chosen = [p for p in PROPERTIES if not options.only or p.name in options.only]
    refusing = {p.operation for p in chosen if p.check is Check.REFUSE}
    controls = {operation: _control(peer, world, options, operation) for operation in sorted(refusing)}
    results: list[PropertyResult] = []
    interrupted = False
    coverage = Coverage()
    try:
        for prop in chosen:
            _stop_if_asked(stop)
            if progress is not None:
                progress.started(prop)
            control = controls.get(prop.operation) if prop.check is Check.REFUSE else None
            if control is not None:
                result = PropertyResult(prop.name, prop.summary, SKIPPED, reason=control)
            else:
                result = _run_property(prop, peer, world, options, (chosen_seed, stop), progress, coverage)
            if progress is not None:
                progress.finished(result)
            results.append(result)
    except KeyboardInterrupt:  # Ctrl-C: what ran is reported, the rest is marked as not run
        interrupted = True
        done = {r.name for r in results}
        results += [PropertyResult(p.name, p.summary, SKIPPED, reason=NOT_RUN) for p in chosen if p.name not in done]
    stopped_at = len(chosen) if interrupted else 0
    return _finish(spec, options, chosen_seed, results, coverage, started, interrupted=stopped_at)


def _finish(
    spec: PeerSpec,
    options: Options,
    chosen_seed: int,
    results: list[PropertyResult],
    coverage: Coverage,
    started: float,
    interrupted: int = 0,
) -> Report:
    """The report of ``results``, written; ``interrupted``: the number of properties the run was to
    check, when it was stopped (then :class:`Interrupted` carries the report)."""
    remove_tree(options.output / "work")
    report = Report(
        spec.name, chosen_seed, options.max_examples, options.output, tuple(results), time.monotonic() - started,
        tuple(spec.capabilities.not_covered()), tuple(coverage.table(spec.capabilities)),
        coverage.to_json(spec.capabilities), interrupted,
    )  # fmt: skip
    report.write(options.junit)
    if interrupted:
        raise Interrupted(report)
    return report


def _stop_if_asked(stop: threading.Event | None) -> None:
    # raised here, between peer calls, rather than from a signal handler at an arbitrary point
    # (one raised inside Hypothesis's garbage-collector callback is printed and ignored)
    if stop is not None and stop.is_set():
        raise KeyboardInterrupt("stop requested")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run; ``report`` is the partial report, already written to the output directory."""

    def __init__(self, report: Report) -> None:
        super().__init__("interrupted")
        self.report = report


def _control(peer: Peer, world: World, options: Options, operation: str) -> str | None:
    """Why refusals would prove nothing (the peer does not ``operation`` even the simplest message), or None."""
    if not peer.spec.can(operation):
        return None
    caps = peer.spec.capabilities
    qop = next((q for q in QOPS if q in caps.qops), QoP.INTEGRITY)
    digest = caps.digests[0] if qop is not QoP.CONFIDENTIALITY else SignatureAlgorithm.NONE
    cipher = caps.ciphers[0] if qop is not QoP.INTEGRITY else EncryptionAlgorithm.NONE
    case = Case(qop, digest, cipher, int(qop is not QoP.INTEGRITY), 0, PayloadSpec("text", 5), ClearChain(), "Q")
    roundtrip = "roundtrip-to-peer" if operation == "unprotect" else "roundtrip-from-peer"
    step = build_step(BY_NAME[roundtrip], case, world)
    workdir = options.output / "work" / f"control-{operation}"
    outcome = peer.run(step.request, world, workdir)
    if evaluate(step, outcome, world).passed:
        return None
    return (
        f"the peer does not {operation} even the simplest message ({case.describe()}): {outcome.describe()[:300]}; "
        f"a refusal would prove nothing: fix the peer's wiring first (see {roundtrip})"
    )


def skip_reason(prop: Property, spec: PeerSpec) -> str | None:
    """Why ``prop`` cannot run against ``spec`` (None when it can)."""
    caps = spec.capabilities
    if not spec.can(prop.operation):
        return f"the peer has no {prop.operation} command (--peer-{prop.operation})"
    if prop.needs_policies and not caps.policies:
        return "the peer does not enforce policies' algorithms (say --peer-policies if it does)"
    if not [q for q in prop.qops if q in caps.qops]:
        return f"the peer implements none of {', '.join(q.name for q in prop.qops)} (--peer-qop)"
    if prop.name == "peer-refuses-weaker-algorithm" and not weaker_choices(caps):
        return "no algorithm the peer implements has a weaker one below it"
    if prop.name == "peer-refuses-other-qop" and not other_qops(caps.qops):
        return "the peer implements one QoP only: there is no other to refuse (--peer-qop)"
    if prop.name == "peer-accepts-higher-qop" and QoP.INTEGRITY not in caps.qops:
        return "the peer does not implement integrity, the policy a privacy message must be accepted on"
    if prop.needs_placeholder and not spec.takes(prop.needs_placeholder, prop.operation):
        wanted = f"{{{prop.needs_placeholder}}}"
        wanted = f"neither {wanted} nor {{policies}}" if prop.needs_placeholder in IN_POLICY_FILE else f"no {wanted}"
        return f"the peer's {prop.operation} template takes {wanted}: add it to be tried (docs/conformance.md)"
    return None


@attrs.define
class _State:
    """One property's run: peer calls made, failures by case, when the first failure was found."""

    shrink_time: float
    coverage: Coverage
    limit: int = 3
    calls: int = 0
    failures: dict[str, _Failed] = attrs.field(factory=dict)
    kinds: list[str] = attrs.field(factory=list)
    first_failure: float | None = None

    def failed(self, case: Case, step: Step, outcome: Outcome, verdict: Verdict, workdir: Path) -> _Failed:
        """The failure of ``case``, of its kind's class (the first kind's once ``limit`` kinds are kept)."""
        kind = failure_kind(outcome)
        if kind not in self.kinds and len(self.kinds) < self.limit:
            self.kinds.append(kind)
        failed = _failed_class(kind if kind in self.kinds else self.kinds[0])(case, step, outcome, verdict, workdir)
        self.failures[repr(case)] = failed
        self.first_failure = self.first_failure or time.monotonic()
        return failed

    def out_of_time(self) -> bool:
        return self.first_failure is not None and time.monotonic() - self.first_failure > self.shrink_time


def _run_property(
    prop: Property,
    peer: Peer,
    world: World,
    options: Options,
    seeded: tuple[int, threading.Event | None],
    progress: Progress | None,
    coverage: Coverage,
) -> PropertyResult:
    reason = skip_reason(prop, peer.spec)
    if reason is not None:
        return PropertyResult(prop.name, prop.summary, SKIPPED, reason=reason)
    started = time.monotonic()
    state = _State(options.shrink_time, coverage, max(1, options.counterexamples))
    work = fresh_directory(options.output / "work" / prop.name)
    test = _hypothesis_test(prop, peer, world, options, seeded, state, work, progress)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AmsDeprecationWarning)
            test()
    except (_Failed, BaseExceptionGroup) as error:
        failures = _save_failures(prop, peer, world, _collected(error), options.output / "failures")
        seconds, more = time.monotonic() - started, tuple(failures[1:])
        return PropertyResult(prop.name, prop.summary, FAILED, state.calls, seconds, "", failures[0], more)
    finally:
        remove_tree(work)
    return PropertyResult(prop.name, prop.summary, PASSED, state.calls, time.monotonic() - started)


def _collected(error: BaseException) -> list[_Failed]:
    """The failures Hypothesis raised: one, or a group of them (one per kind); anything else goes on."""
    if isinstance(error, _Failed):
        return [error]
    assert isinstance(error, BaseExceptionGroup)
    matched, rest = error.split(_Failed)
    if rest is not None or matched is None:
        raise error
    out: list[_Failed] = []
    for item in matched.exceptions:
        out += _collected(item)
    return out


def _save_failures(prop: Property, peer: Peer, world: World, faileds: list[_Failed], root: Path) -> list[Failure]:
    """Each kind's counterexample saved: the first under ``failures/PROPERTY``, the others under
    ``failures/PROPERTY--KIND``."""
    order = {kind: n for n, kind in enumerate(("done", "refused", "crashed", "no answer", "unsafe output"))}
    first: dict[str, _Failed] = {}
    for failed in faileds:  # failing must-check cases come all at once: the first of each kind stands for it
        first.setdefault(failed.kind, failed)
    faileds = sorted(first.values(), key=lambda f: order.get(f.kind, 9))
    names = [prop.name] + [f"{prop.name}--{f.kind.replace(' ', '-')}" for f in faileds[1:]]
    return [_save_failure(prop, peer, world, f, root / name) for f, name in zip(faileds, names, strict=True)]


def _hypothesis_test(
    prop: Property,
    peer: Peer,
    world: World,
    options: Options,
    seeded: tuple[int, threading.Event | None],
    state: _State,
    work: Path,
    progress: Progress | None,
) -> Callable[[], None]:
    chosen_seed, stop = seeded
    database = DirectoryBasedExampleDatabase(str(options.output / "hypothesis" / prop.name))
    phases = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink)  # no explain: no extra calls

    @settings(
        max_examples=stream_examples(options.max_examples) if prop.check is Check.FRESH else options.max_examples,
        deadline=None,
        database=database,
        phases=phases,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=True,  # one counterexample per kind of failure (see _Failed)
        verbosity=Verbosity.quiet,
        print_blob=False,
    )
    @seed(chosen_seed)
    @given(case=case_strategy(prop, peer.spec.capabilities))
    def check(case: Case) -> None:
        _stop_if_asked(stop)
        failed = state.failures.get(repr(case))
        if failed is None:
            if state.out_of_time():
                return  # the shrink budget is spent: only cases known to fail still fail
            state.calls += 1
            if progress is not None:
                progress.example(prop, state.calls, state.first_failure is not None)
            workdir = work / str(state.calls)
            step = build_step(prop, case, world)
            for _ in range(step.repeat):  # a stream's every call
                state.coverage.add(case, case.tamper_class())
            outcome, workdir = run_step(peer, step, world, workdir)
            verdict = _judge(step, outcome, world)
            if verdict.passed:
                remove_tree(workdir)
                return
            failed = state.failed(case, step, outcome, verdict, workdir)
        raise failed  # one place, so that Hypothesis tells failures apart by their kind alone

    if options.must_check:  # the must-check (must-accept) changes and the QoP grid, then Hypothesis's own cases
        explicit = {
            "peer-refuses-tampered": must_check_cases,
            "peer-accepts-unchecked-fields": must_accept_cases,
            QOP_MATRIX: qop_matrix_cases,
        }
        for case in explicit[prop.name](peer.spec.capabilities) if prop.name in explicit else []:
            check = example(case=case)(check)
    return check


def stream_examples(max_examples: int) -> int:
    """Cases of a stream property: each makes 3-4 peer calls, so a third of ``--max-examples`` (at least 1)."""
    return max(1, max_examples // 3)


def _judge(step: Step, outcome: Outcome, world: World) -> Verdict:
    """:func:`evaluate`, with a bug of the kit's reported as a failure that says so, not as a crash."""
    try:
        return evaluate(step, outcome, world)
    except Exception as error:  # the peer's output may be anything: say what broke, and go on shrinking
        found = f"the kit could not judge the outcome ({type(error).__name__}: {error}); please report this as a bug"
        return Verdict(False, "a judgement", found)


def _save_failure(prop: Property, peer: Peer, world: World, failed: _Failed, target: Path) -> Failure:
    """The minimal failure's files under ``target``, with the peer's command re-aimed at them."""
    remove_tree(target)
    try:
        with CaseDirectory.open(failed.workdir) as case:
            skipped = copy_tree(case, target)  # no link followed: the peer's links are left out
    except UnsafeDirectoryError as error:
        target.mkdir()
        skipped = [str(error)]
    remove_tree(target / "world")  # the peer's, if it wrote one: ours replaces it
    saved_world = world.copy_to(target / "world")
    step = failed.step
    (target / "payload.bin").write_bytes(step.expected)
    (target / "found.bin").write_bytes(failed.outcome.output or b"")
    for number, earlier in enumerate(failed.outcome.earlier, 1):  # a stream's messages before the last
        (target / f"stream-{number}.bin").write_bytes(earlier)
    message = step.request.data if prop.operation == "unprotect" else (failed.outcome.output or b"")
    (target / "message.bin").write_bytes(message)
    (target / "step.json").write_text(json.dumps(step.to_json(), indent=2), encoding="utf-8")
    (target / "peer.json").write_text(json.dumps(peer.spec.to_json(), indent=2), encoding="utf-8")
    command = peer.command(step.request, saved_world, target)
    failure = Failure(
        failed.kind,
        failed.case.describe(),
        failed.verdict.expected,
        failed.verdict.found,
        target,
        tuple(command) if command else None,
        failed.case.to_json(),
    )
    if command:
        (target / "replay.sh").write_text(
            "#!/bin/sh\n# the peer's step, as the kit ran it\n" + shlex.join(command) + "\n"
        )
    left_out = f"not copied from the peer's directory: {'; '.join(skipped)}\n" if skipped else ""
    (target / "failure.txt").write_text(
        printable(f"{prop.name}: {prop.summary}") + f"\ncounterexample: {printable(failure.case)}\n"
        f"expected: {printable(failure.expected)}\nfound: {printable(failure.found)}\n"
        f"replay: {printable(failure.replay)}\n{left_out}",
        encoding="utf-8",
    )
    return failure
