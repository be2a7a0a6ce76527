"""The peers: any implementation behind command templates, and the ones that ship with the kit.

* ``self``: this project, called in process (fast: self-conformance in every test run);
* ``self-cli``: this project through its own command line (``ams protect`` / ``ams unprotect``),
  one process per call, exactly as another implementation is driven;
* ``openssl``: the ``openssl cms`` command line behind a small adapter
  (:mod:`ams.testing.conformance.openssl_peer`): it signs, verifies, encrypts and decrypts the
  CMS inside integrity, privacy and confidentiality messages; the adapter writes and reads the
  PDMQ header and clear headers itself. Without the legacy provider it has no RC2 or DES.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import attrs

from ams.algorithms import EncryptionAlgorithm
from ams.errors import AmsDeprecationWarning, AmsError, SecurityError, UsageError
from ams.keys.revocation_settings import RevocationSettings
from ams.mqconstants import MQENC_NATIVE
from ams.protector import Protector
from ams.testing.conformance.protocol import (
    Capabilities,
    Outcome,
    PeerSpec,
    Request,
    Template,
    placeholder_values,
    run_command,
    write_case_files,
)
from ams.testing.conformance.sandbox import CaseDirectory, UnsafeDirectoryError, remove_tree
from ams.testing.conformance.world import World

if TYPE_CHECKING:  # properties builds steps; peers only run them
    from ams.testing.conformance.properties import Step

SELF_CLI_PROTECT = (
    "{python} -m ams protect -p {queue} --policies {policies} --keystore-conf {keystore_conf} "
    "--format {format} --allow-deprecated -i {in} -o {out}"
)
SELF_CLI_UNPROTECT = (
    "{python} -m ams unprotect -p {queue} --policies {policies} --keystore-conf {keystore_conf} "
    "--format {format} --crl {crl} --format-out {out_format} -i {in} -o {out}"
)
OPENSSL_PROTECT = (
    "{python} -m ams.testing.conformance.openssl_peer protect --qop {qop} --digest {digest} --cipher {cipher} "
    "--key {key} --cert {cert} {recipient_cert:--recipient} --queue {queue} --format {format} --in {in} --out {out}"
)
OPENSSL_UNPROTECT = (
    "{python} -m ams.testing.conformance.openssl_peer unprotect --qop {qop} --key {key} --cert {cert} "
    "--trust {trust} --crl {crl} --format {format} --format-out {out_format} --in {in} --out {out}"
)
BUILTIN: dict[str, PeerSpec] = {
    "self": PeerSpec("self", kind="self", capabilities=Capabilities(policies=True)),
    "self-cli": PeerSpec("self-cli", SELF_CLI_PROTECT, SELF_CLI_UNPROTECT, Capabilities(policies=True)),
    "openssl": PeerSpec(
        "openssl",
        OPENSSL_PROTECT,
        OPENSSL_UNPROTECT,
        # DES and RC2 need openssl's legacy provider: add them with --peer-cipher where it is installed
        Capabilities(ciphers=(EncryptionAlgorithm.AES256, EncryptionAlgorithm.AES128, EncryptionAlgorithm.TDES)),
    ),
}


class Peer(Protocol):
    """An implementation the kit drives: it runs one request and says what came of it."""

    spec: PeerSpec

    def run(self, request: Request, world: World, workdir: Path) -> Outcome:
        """Do ``request`` (files in ``world`` and ``workdir``) and report the outcome."""
        ...

    def command(self, request: Request, world: World, workdir: Path) -> list[str] | None:
        """The command line ``run`` would use, or None for an in-process peer."""
        ...


class CommandPeer:
    """A peer behind command templates (docs/conformance.md)."""

    def __init__(self, spec: PeerSpec) -> None:
        self.spec = spec
        self._templates = {op: spec.template(op) for op in ("protect", "unprotect")}

    def __repr__(self) -> str:
        return f"CommandPeer({self.spec.name!r})"

    def command(self, request: Request, world: World, workdir: Path) -> list[str] | None:
        """The argument list for ``request``: the template with every placeholder replaced."""
        template: Template | None = self._templates[request.operation]
        if template is None:
            raise UsageError(f"peer {self.spec.name} has no {request.operation} command (--peer-{request.operation})")
        return template.render(placeholder_values(request, world, workdir))

    def run(self, request: Request, world: World, workdir: Path) -> Outcome:
        """Create ``workdir`` with the case's files, run the command (no shell, with the timeout) and
        read its output."""
        try:
            with CaseDirectory.create(workdir) as case:
                write_case_files(request, world, case)
        except UnsafeDirectoryError as error:
            return Outcome(None, problem=str(error))
        args = self.command(request, world, workdir)
        assert args is not None
        return run_command(args, workdir, self.spec.timeout, self.spec.limits)


class InProcessPeer:
    """This project, called in process: a refusal is an :class:`~ams.AmsError` (exit 3 when it is a
    SecurityError, 2 otherwise, as ``ams unprotect`` would exit)."""

    def __init__(self, spec: PeerSpec = BUILTIN["self"]) -> None:
        self.spec = spec

    def __repr__(self) -> str:
        return "InProcessPeer()"

    def command(self, request: Request, world: World, workdir: Path) -> list[str] | None:
        """None: there is no command (a failure replays with ``ams conformance --replay``)."""
        return None

    def run(self, request: Request, world: World, workdir: Path) -> Outcome:
        """Protect or unprotect with a Protector holding the request's identity and policy."""
        try:
            case = CaseDirectory.create(workdir)
        except UnsafeDirectoryError as error:
            return Outcome(None, problem=str(error))
        with case:
            write_case_files(request, world, case)  # so that a failure's files are those a command peer gets
            return self._run(request, world, case)

    def _run(self, request: Request, world: World, case: CaseDirectory) -> Outcome:
        started = time.monotonic()
        policy = request.policy(world)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", AmsDeprecationWarning)
                keystore, policies = world.keystore(request.identity), {policy.name: policy}
                protector = Protector(keystore, policies, allow_deprecated=True, revocation=_revocation(world))
                if request.operation == "protect":
                    body = protector.protect(request.queue, request.data, request.format, encoding=MQENC_NATIVE).body
                    fmt = None
                else:
                    message = protector.unprotect(request.queue, request.data, request.format)
                    body, fmt = message.body, message.format
        except AmsError as error:
            return Outcome(
                3 if isinstance(error, SecurityError) else 2, None, str(error), (), time.monotonic() - started
            )
        case.write("out.bin", body)
        return Outcome(0, body, "", (), time.monotonic() - started, format=fmt)


def _revocation(world: World) -> RevocationSettings | None:
    """The CA's CRL, as ``--crl {crl}`` gives it to ``ams unprotect`` (none in a world saved before it had one)."""
    return RevocationSettings(crl_files=(world.crl_file,)) if world.crl_file.is_file() else None


def make_peer(spec: PeerSpec) -> Peer:
    """The peer a spec describes."""
    return InProcessPeer(spec) if spec.kind == "self" else CommandPeer(spec)


def run_step(peer: Peer, step: Step, world: World, workdir: Path) -> tuple[Outcome, Path]:
    """The step's peer call, or for a stream (``step.repeat`` > 1) its calls, each in a directory of its
    own (the last in ``workdir``): the first call that does not succeed ends the stream. Returns the last
    outcome, carrying the earlier outputs, and the directory of the call it describes."""
    outputs: list[bytes] = []
    for number in range(1, step.repeat):
        directory = workdir.with_name(f"{workdir.name}-{number}")
        outcome = peer.run(step.request, world, directory)
        if not outcome.accepted or outcome.output is None:
            return outcome, directory
        outputs.append(outcome.output)
        remove_tree(directory)
    outcome = peer.run(step.request, world, workdir)
    return attrs.evolve(outcome, earlier=tuple(outputs)), workdir
