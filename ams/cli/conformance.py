"""``ams conformance``: property-based conformance tests against another AMS implementation.

The peer is named (``--peer self|self-cli|openssl``) or given as two command templates
(``--peer-protect`` and ``--peer-unprotect``, docs/conformance.md); ``--peer-*`` options say
what it implements. The report goes to standard output and to files in ``--output``; the exit
status is 0 when no property failed, 1 when one did, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TextIO, TypeVar

import attrs

from ams.algorithms import EncryptionAlgorithm, QoP, SignatureAlgorithm
from ams.errors import UsageError
from ams.testing.conformance.peers import BUILTIN
from ams.testing.conformance.properties import BY_NAME, PROPERTIES, Property
from ams.testing.conformance.protocol import PLACEHOLDERS, Capabilities, PeerSpec, Template
from ams.testing.conformance.report import SKIPPED, PropertyResult
from ams.testing.conformance.sandbox import Limits, printable


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this command group's subcommands to ``commands``."""
    parser = commands.add_parser(
        "conformance",
        help="property-based conformance tests against another AMS implementation (pip install ams[testing])",
        description="Drive another AMS implementation through command templates and check that every combination "
        "round-trips, that what must be refused is, and that what it writes is AMS's format (docs/conformance.md).",
    )
    peer = parser.add_argument_group("the peer")
    peer.add_argument("--peer", choices=sorted(BUILTIN), help="a peer that ships with ams (templates override its own)")
    peer.add_argument("--peer-protect", metavar="TEMPLATE", help="the command that protects, with {placeholders}")
    peer.add_argument("--peer-unprotect", metavar="TEMPLATE", help="the command that unprotects, with {placeholders}")
    peer.add_argument(
        "--peer-name", default=None, help="the peer's name in reports (default: from --peer, else 'peer')"
    )
    peer.add_argument("--peer-qop", metavar="LIST", help="qualities of protection it implements: integrity,privacy,...")
    peer.add_argument("--peer-digest", metavar="LIST", help="digests it implements: SHA256,SHA384,SHA512,SHA1,MD5")
    peer.add_argument("--peer-cipher", metavar="LIST", help="ciphers it implements: AES256,AES128,3DES,DES,RC2")
    peer.add_argument("--peer-max-recipients", type=int, metavar="N", help="most recipients it handles (default 10)")
    peer.add_argument("--peer-max-payload", type=int, metavar="BYTES", help="largest payload it handles (1 MiB)")
    peer.add_argument("--peer-no-clear-headers", action="store_true", help="it handles no clear MQ header chains")
    peer.add_argument("--peer-policies", action="store_true", help="it refuses algorithms weaker than its policy's")
    peer.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="per peer call (default 60)")
    peer.add_argument("--peer-memory", type=int, default=None, metavar="MIB", help="address space limit per call")
    peer.add_argument("--peer-cpu", type=int, default=None, metavar="SECONDS", help="CPU time limit per call")
    run = parser.add_argument_group("the run")
    run.add_argument("--max-examples", type=int, default=25, metavar="N", help="cases per property (default 25)")
    run.add_argument("--seed", type=int, default=None, help="the random seed (default: a new one, printed)")
    run.add_argument("--only", action="append", default=[], metavar="PROPERTY", choices=list(BY_NAME), help="repeat")
    run.add_argument("--output", type=Path, default=Path("ams-conformance"), help="report and failure files")
    run.add_argument("--junit", type=Path, default=None, metavar="FILE", help="JUnit XML (default OUTPUT/junit.xml)")
    run.add_argument(
        "--no-must-check", action="store_true", help="quicker: no must-check field changes (random ones only)"
    )
    run.add_argument("--shrink-time", type=float, default=60.0, metavar="SECONDS", help="per failure (default 60)")
    run.add_argument("--key-bits", type=int, default=2048, help="RSA key size of the test identities (default 2048)")
    run.add_argument("--no-progress", action="store_true", help="no progress: no live line, no line per property")
    run.add_argument("--list", action="store_true", help="list the properties and placeholders, then exit")
    run.add_argument("--replay", type=Path, metavar="DIR", help="run a saved failure (OUTPUT/failures/PROPERTY) again")
    parser.set_defaults(run=run_conformance_command)


def run_conformance_command(args: argparse.Namespace) -> int:
    """``ams conformance``: the exit status (0 no failure, 1 a property failed, 2 usage)."""
    if args.list:
        print(describe_kit(), end="")
        return 0
    try:
        from ams.testing.conformance import runner
    except ImportError as error:
        raise UsageError(
            f"ams conformance needs Hypothesis ({error}): install it with pip install 'ams[testing]'"
        ) from None
    if args.replay is not None:
        return _replay(args.replay)
    spec = peer_spec(args)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**32)
    # first, so that an interrupted or crashed run can be repeated with the same cases
    print(f"ams conformance: seed {seed}, files in {args.output.resolve()}", file=sys.stderr, flush=True)
    options = runner.Options(
        max_examples=args.max_examples,
        seed=seed,
        only=tuple(args.only),
        output=args.output,
        shrink_time=args.shrink_time,
        key_bits=args.key_bits,
        junit=args.junit,
        must_check=not args.no_must_check,
    )
    progress = None if args.no_progress else TerminalProgress(sys.stderr, live=sys.stderr.isatty())
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, _stop_on_first_interrupt(stop))
    try:
        report = runner.run_conformance(spec, options, progress=progress, stop=stop)
    except runner.Interrupted as stopped:
        print(stopped.report.text(), end="")
        print(f"ams conformance: interrupted; the partial report is in {stopped.report.output}", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
    print(report.text(), end="")
    return 0 if report.ok else 1


def _stop_on_first_interrupt(stop: threading.Event) -> Callable[[int, FrameType | None], None]:
    """A SIGINT handler: the first Ctrl-C ends the run after the peer call under way (with a partial
    report), a second one at once."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        os.write(2, b"\nams conformance: stopping after this peer call (Ctrl-C again to stop at once)\n")

    return handler


def peer_spec(args: argparse.Namespace) -> PeerSpec:
    """The peer the options describe: a built-in one, changed by templates and capability options."""
    if args.peer is None and args.peer_protect is None and args.peer_unprotect is None:
        raise UsageError(
            "no peer: name one with --peer (self, self-cli, openssl) or give its commands with --peer-protect and "
            "--peer-unprotect (docs/conformance.md)"
        )
    spec = BUILTIN[args.peer] if args.peer else PeerSpec("peer")
    changes: dict[str, object] = {"name": args.peer_name or spec.name}
    for operation, template in (("protect", args.peer_protect), ("unprotect", args.peer_unprotect)):
        if template is not None:  # a template replaces the named peer's own for that operation
            changes.update({"kind": "command", operation: anchored(template)})
    if args.timeout is not None:
        changes["timeout"] = args.timeout
    if args.peer_memory is not None or args.peer_cpu is not None:
        changes["limits"] = Limits(args.peer_memory, args.peer_cpu)
    spec = attrs.evolve(spec, capabilities=_capabilities(args, spec.capabilities), **changes)  # type: ignore[arg-type]
    for operation in ("protect", "unprotect"):
        text = spec.protect if operation == "protect" else spec.unprotect
        if text is not None:
            Template.parse(text, operation)  # refuse a bad template before anything runs
    return spec


def anchored(template: str) -> str:
    """``template`` with each word that names an existing file relative to this directory made absolute.

    The kit runs the peer in each case's own folder (so that it sees only that case's files), where
    ``sh docs/examples/peer_adapter.sh`` would name nothing; it means the script the caller sees.
    Placeholders, options and absolute paths are left alone, and so is a bare command name (PATH's).
    """
    try:
        words = shlex.split(template)
    except ValueError:
        return template  # Template.parse reports it
    changed = False
    for index, word in enumerate(words):
        if "{" in word or "}" in word or word.startswith("-") or "/" not in word or os.path.isabs(word):
            continue
        if os.path.isfile(word):
            words[index] = os.path.abspath(word)
            changed = True
    return shlex.join(words) if changed else template


def _capabilities(args: argparse.Namespace, base: Capabilities) -> Capabilities:
    changes: dict[str, object] = {}
    if args.peer_qop:
        changes["qops"] = _parse(args.peer_qop, "--peer-qop", lambda n: QoP[n.upper()], "integrity,privacy")
    if args.peer_digest:
        changes["digests"] = _parse(args.peer_digest, "--peer-digest", SignatureAlgorithm.from_label, "SHA256,SHA512")
    if args.peer_cipher:
        changes["ciphers"] = _parse(args.peer_cipher, "--peer-cipher", EncryptionAlgorithm.from_label, "AES256,3DES")
    if args.peer_max_recipients is not None:
        changes["max_recipients"] = max(1, min(10, args.peer_max_recipients))
    if args.peer_max_payload is not None:
        changes["max_payload"] = max(0, args.peer_max_payload)
    if args.peer_no_clear_headers:
        changes["clear_headers"] = False
    if args.peer_policies:
        changes["policies"] = True
    return attrs.evolve(base, **changes)  # type: ignore[arg-type]


Named = TypeVar("Named", QoP, SignatureAlgorithm, EncryptionAlgorithm)


def _parse(text: str, option: str, convert: Callable[[str], Named], example: str) -> tuple[Named, ...]:
    """A comma-separated list of names; UsageError naming the one that is not AMS's (or is NONE)."""
    out = []
    for name in (n.strip() for n in text.split(",") if n.strip()):
        try:
            value = convert(name)
        except KeyError:
            raise UsageError(
                f"{option}: {name!r} is not one AMS defines; expected a comma-separated list such as {example}"
            ) from None
        if value.value == 0:
            raise UsageError(
                f"{option}: NONE is not an algorithm or quality of protection; list the ones the peer implements"
            )
        out.append(value)
    return tuple(out)


def _replay(directory: Path) -> int:
    from ams.testing.conformance.replay import replay

    replayed = replay(directory)
    if replayed.command:
        print(f"ran:      {shlex.join(replayed.command)}")
    print(f"property: {replayed.step.property}")
    print(f"expected: {replayed.verdict.expected}")
    print(f"found:    {replayed.verdict.found}")
    print("passes now" if replayed.verdict.passed else "still fails")
    return 0 if replayed.verdict.passed else 1


def describe_kit() -> str:
    """The properties and placeholders, for ``--list``."""
    width = max(len(p.name) for p in PROPERTIES)
    lines = ["properties:"]
    lines += [f"  {p.name:<{width}}  {p.direction:<12}  {p.summary}" for p in PROPERTIES]
    lines += ["", "placeholders (docs/conformance.md):"]
    width = max(len(name) for name in PLACEHOLDERS) + 2
    lines += [f"  {'{' + name + '}':<{width}}  {text}" for name, text in PLACEHOLDERS.items()]
    return "\n".join(lines) + "\n"


class TerminalProgress:
    """One line per property on ``stream`` as it finishes; on a terminal also a live count of peer calls."""

    def __init__(self, stream: TextIO, *, live: bool) -> None:
        self.stream = stream
        self.live = live

    def started(self, prop: Property) -> None:
        """Show that ``prop`` starts."""
        self._live(f"  running  {prop.name}")

    def example(self, prop: Property, number: int, shrinking: bool) -> None:
        """Show the peer call count (and whether a failure is being shrunk)."""
        self._live(f"  running  {prop.name:<32} call {number}{' (shrinking a failure)' if shrinking else ''}")

    def finished(self, result: PropertyResult) -> None:
        """One line for the property's result."""
        self._live("")
        detail = (
            result.reason if result.status == SKIPPED else f"{result.examples} peer call(s), {result.seconds:.1f} s"
        )
        print(printable(f"  {result.status:<8} {result.name:<32} {detail}"), file=self.stream, flush=True)

    def _live(self, text: str) -> None:
        if self.live:
            self.stream.write("\r\x1b[2K" + text)
            self.stream.flush()
