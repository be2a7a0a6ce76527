"""Replaying a saved failure: the failing step run again against the same peer, with the same
files, and judged the same way (``ams conformance --replay DIR``)."""

from __future__ import annotations

import json
from pathlib import Path

import attrs

from ams.errors import AmsError, UsageError
from ams.limits import DEFAULT_LIMITS
from ams.testing.conformance.checks import Verdict, evaluate
from ams.testing.conformance.peers import make_peer, run_step
from ams.testing.conformance.properties import Step
from ams.testing.conformance.protocol import Outcome, PeerSpec
from ams.testing.conformance.sandbox import remove_tree
from ams.testing.conformance.world import World, saved_file


@attrs.frozen
class Replayed:
    """A replayed step: what ran, what the peer did, and the verdict."""

    step: Step
    command: tuple[str, ...] | None
    outcome: Outcome
    verdict: Verdict


def load_step(directory: Path) -> tuple[PeerSpec, Step, World]:
    """The peer, the step and the identities a failure's directory holds."""
    try:
        peer = PeerSpec.from_json(json.loads(saved_file(directory / "peer.json", DEFAULT_LIMITS.file_size)))
        data = json.loads(saved_file(directory / "step.json", DEFAULT_LIMITS.file_size))
        step = Step.from_json(data, saved_file(directory / "in.bin"), saved_file(directory / "payload.bin"))
    except (AmsError, ValueError, KeyError) as error:
        raise UsageError(
            f"{directory} is not a saved conformance failure ({error}): expected the directory a run wrote under "
            "failures/<property>/, with peer.json, step.json, in.bin and payload.bin"
        ) from None
    return peer, step, World.load(directory / "world")


def replay(directory: Path) -> Replayed:
    """Run the step saved in ``directory`` once more (in a new ``replay/`` inside it) and judge it."""
    directory = directory.resolve()  # the peer runs in it, and its command names files in it
    spec, step, world = load_step(directory)
    peer = make_peer(spec)
    workdir = directory / "replay"
    for path in (workdir, *(directory / f"replay-{n}" for n in range(1, step.repeat))):
        remove_tree(path)  # an earlier replay's: the peer gets a directory the kit has just created
    command = peer.command(step.request, world, workdir)
    outcome, _ = run_step(peer, step, world, workdir)
    return Replayed(step, tuple(command) if command else None, outcome, evaluate(step, outcome, world))
