"""Judging one peer call: whether its outcome is what the step required, and if not, what was found."""

from __future__ import annotations

import datetime
import warnings

import attrs

from ams.errors import AmsDeprecationWarning, AmsError
from ams.hazmat import mqheaders
from ams.mqconstants import MQENC_NATIVE
from ams.protector import Protector
from ams.testing.conformance.properties import Check, Step
from ams.testing.conformance.protocol import Outcome
from ams.testing.conformance.sandbox import printable
from ams.testing.conformance.streams import stream_problems
from ams.testing.conformance.strict import deviations
from ams.testing.conformance.world import World
from ams.testing.mutations import ProtectedMessage, refusing


@attrs.frozen
class Verdict:
    """Whether a step passed, what it expected and what it found (in words)."""

    passed: bool
    expected: str
    found: str


_EXPECTED = {
    Check.REFUSE: "the peer refuses the message (exit 1-125; a signal, a status over 125 or a timeout is a crash)",
    Check.ACCEPT: "the peer unprotects the message (exit 0) and writes the original body",
    Check.READABLE: "the peer protects (exit 0), and each recipient of ours gets the original body and Format back",
    Check.STRICT: "the peer protects (exit 0) exactly as AMS writes, and our strictest reader accepts it",
    Check.WE_REFUSE: "the peer protects (exit 0), and we refuse its message changed where a change must be noticed",
    Check.RESTORES: "the peer unprotects the message (exit 0), writes the original body, and writes the original "
    "MQMD Format to {out_format}",
    Check.FRESH: "the peer protects each message (exit 0); each has an IV of its own, not all zero, and keys are "
    "renewed as the key reuse count says (format.md §4-5); each recipient of ours reads each",
}


def evaluate(step: Step, outcome: Outcome, world: World) -> Verdict:
    """Judge ``outcome`` against ``step``."""
    expected = _EXPECTED[step.check] + (f" ({step.note})" if step.note else "")
    if step.check is Check.REFUSE:
        return Verdict(outcome.refused, expected, outcome.describe())
    if not outcome.accepted or outcome.output is None:
        return Verdict(False, expected, outcome.describe())
    if step.check is Check.ACCEPT:
        return Verdict(outcome.output == step.expected, expected, _compare(outcome.output, step.expected))
    if step.check is Check.RESTORES:
        return _restores(step, outcome, expected)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AmsDeprecationWarning)
        if step.check is Check.READABLE:
            problems = _read_as_each(step, outcome.output, world, strict=False)
        elif step.check is Check.STRICT:
            problems = deviations(outcome.output, step.request, world) or _read_as_each(
                step, outcome.output, world, strict=True
            )
        elif step.check is Check.FRESH:
            bodies = [*outcome.earlier, outcome.output]
            reader = world.issued(step.readers[0])
            problems = stream_problems(bodies, protected_format(step), reader, step.request.key_reuse)
            for number, body in enumerate(bodies, 1):
                problems += [f"message {number}: {p}" for p in _read_as_each(step, body, world, strict=False)]
        else:
            problems = _refuse_changed(step, outcome.output, world)
    return Verdict(not problems, expected, "; ".join(problems) if problems else outcome.describe())


def _restores(step: Step, outcome: Outcome, expected: str) -> Verdict:
    """The original body, and the original MQMD Format handed back (trailing blanks aside)."""
    assert outcome.output is not None
    if outcome.output != step.expected:
        return Verdict(False, expected, _compare(outcome.output, step.expected))
    if outcome.format is None:
        return Verdict(False, expected, "the peer wrote the body but nothing to {out_format}")
    same = outcome.format.rstrip(" ") == step.expected_format.rstrip(" ")
    return Verdict(same, expected, f"the Format handed back is {printable(repr(outcome.format))}")


def _compare(found: bytes, expected: bytes) -> str:
    if found == expected:
        return f"the original body ({len(found):,} bytes)"
    differs = next(
        (i for i, (a, b) in enumerate(zip(found, expected, strict=False)) if a != b), min(len(found), len(expected))
    )
    return (
        f"the peer wrote {len(found):,} bytes where the original body has {len(expected):,}; "
        f"the first difference is at offset {differs}"
    )


def protected_format(step: Step) -> str:
    """The MQMD Format of what the peer protected: blank without clear headers, unchanged with them (format.md §1)."""
    chain = mqheaders.walk(step.expected, step.expected_format, MQENC_NATIVE)
    return step.expected_format if chain.format_offset is not None else " " * 8


def _reader(step: Step, world: World, name: str, *, strict: bool) -> Protector:
    policy = step.request.policy(world)
    skew = datetime.timedelta(0) if strict else datetime.timedelta(minutes=5)
    return Protector(world.keystore(name), {policy.name: policy}, strict_dn=strict, clock_skew=skew)


def _read_as_each(step: Step, output: bytes, world: World, *, strict: bool) -> list[str]:
    """What goes wrong when each of the step's readers unprotects ``output`` (nothing: an empty list)."""
    problems = []
    fmt = protected_format(step)
    for name in step.readers:
        try:
            message = _reader(step, world, name, strict=strict).unprotect(step.request.queue, output, fmt)
        except AmsError as error:
            problems.append(f"{name} ({'strict' if strict else 'default'} reader) refused it: {error}")
            continue
        if message.body != step.expected:
            problems.append(f"{name} read it, but {_compare(message.body, step.expected)}")
        elif message.format.ljust(8) != step.expected_format.ljust(8):
            problems.append(
                f"{name} read it, but the Format handed back is {message.format!r}, not {step.expected_format!r}"
            )
    return problems


def _refuse_changed(step: Step, output: bytes, world: World) -> list[str]:
    """What goes wrong when the first reader reads ``output`` changed by the step's mutation."""
    if step.mutation is None:
        return ["the step names no mutation"]
    reader = step.readers[0]
    message = ProtectedMessage(
        output, protected_format(step), step.expected, step.expected_format, step.request.queue, step.request.qop
    )
    kind, index, bit = step.mutation
    try:
        mutation = refusing(message, kind, index, bit, reader=world.issued(reader).certificate)
    except (AmsError, ValueError, IndexError) as error:
        return [_blame_layout(step, output, world, reader, error)]
    try:
        _reader(step, world, reader, strict=False).unprotect(step.request.queue, mutation.body, mutation.format)
    except AmsError:
        return []
    return [f"{reader} accepted the peer's message after it was changed: {mutation.description}"]


def _blame_layout(step: Step, output: bytes, world: World, reader: str, error: Exception) -> str:
    """Whose fault it is that the kit cannot lay out the peer's message for a change: the peer's when
    our reader refuses the message unchanged, the kit's when our reader accepts it."""
    try:
        _reader(step, world, reader, strict=False).unprotect(step.request.queue, output, protected_format(step))
    except AmsError as refusal:
        return (
            f"the peer's message is not AMS's format: {reader} refuses it even unchanged ({refusal}), so there is "
            f"nothing to tamper with (see roundtrip-from-peer)"
        )
    return (
        f"the kit cannot lay out the peer's message for a change ({type(error).__name__}: {error}), although "
        f"{reader} reads it unchanged: a bug of the kit's, please report it"
    )
