"""The command protocol that drives another implementation (docs/conformance.md).

A peer is two command templates, one to protect and one to unprotect, and what it can do. A
template is split into words once, as a POSIX shell would split it; then each placeholder is
replaced *inside its word*, so a value is always exactly one argument (or, for the repeated
placeholders, one per recipient) and no shell ever sees it. The peer runs with a timeout, in the
case's working directory, without standard input. Exit status 0 means done and the output file
holds the result; 1 to 125 mean refused; anything else (126 and 127: it could not be run; 128 and
over, or a signal: it crashed) and a timeout fail the case.

``{recipient_cert}`` and ``{recipient_dn}`` repeat: a word holding one is written once per
recipient (``--to={recipient_cert}``, or a bare ``{recipient_cert}`` for positional arguments),
and the whole-word form ``{recipient_cert:-r}`` becomes ``-r FILE`` for each recipient. ``{{``
and ``}}`` are literal braces.
"""

from __future__ import annotations

import re
import shlex
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from ams.algorithms import KEYREUSE_DISABLED, KEYREUSE_UNLIMITED, EncryptionAlgorithm, QoP, SignatureAlgorithm
from ams.errors import UsageError
from ams.policy.model import Policy
from ams.testing.algorithms import CIPHERS, DIGESTS, QOPS
from ams.testing.conformance.sandbox import CaseDirectory, Limits, printable, run_bounded
from ams.testing.conformance.world import World

MIB = 1 << 20
OPERATIONS = ("protect", "unprotect")

PLACEHOLDERS: dict[str, str] = {
    "python": "the Python interpreter running the kit (for adapters written in Python)",
    "qop": "the quality of protection: integrity, privacy or confidentiality",
    "digest": "the policy's signature algorithm: SHA256, SHA384, SHA512, SHA1, MD5 (NONE for confidentiality)",
    "cipher": "the policy's encryption algorithm: AES256, AES128, 3DES, DES, RC2 (NONE for integrity)",
    "key": "this side's private key, unencrypted PKCS#8 PEM (protect: the signer's; unprotect: the reader's)",
    "cert": "this side's certificate, PEM (protect: the signer's; unprotect: the reader's)",
    "signer_key": "protect only: the signer's private key (the same file as {key})",
    "signer_cert": "protect only: the signer's certificate (the same file as {cert})",
    "keystore_conf": "a keystore.conf (pkcs12.*): this side's key, the trust anchor, every valid certificate of the CA",
    "pkcs12": "the PKCS#12 that keystore.conf names",
    "password": "the PKCS#12's password",
    "trust": "a PEM bundle of the trust anchors (the CA that issues every valid certificate)",
    "crl": "the CA's CRL (PEM), which revokes one signer: a peer given it must check signers against it",
    "recipient_cert": "repeated: each recipient's certificate, PEM (none for integrity)",
    "recipient_dn": "repeated: each recipient's DN, as setmqspl -r takes it",
    "authorised_dn": "repeated: each authorised signer's DN, as setmqspl -a takes it (none: any signer)",
    "queue": "the queue (policy) name",
    "format": "the MQMD Format of the input, trailing blanks removed (empty for MQFMT_NONE)",
    "encoding": "the MQMD Encoding of the input (546: integers little-endian)",
    "ccsid": "the MQMD CodedCharSetId of the input (1208)",
    "tolerate": "1 when the policy tolerates unprotected messages (setmqspl -t 1), else 0",
    "key_reuse": "the policy's key reuse count as setmqspl -c takes it: 0 (DISABLED), * (UNLIMITED) or N",
    "policies": "a directory holding the policy as setmqspl in policy.spl (for implementations that read policy files)",
    "in": "the input file: the message body after the MQMD (clear headers, then the payload or PDMQ header and blob)",
    "out": "the output file the peer writes: the protected or unprotected body",
    "out_format": "unprotect only: a file the peer writes the MQMD Format it hands back to (8 characters or fewer)",
    "workdir": "the case's working directory (also the peer's current directory)",
}
LIST_PLACEHOLDERS = frozenset({"recipient_cert", "recipient_dn", "authorised_dn"})
PROTECT_ONLY = frozenset({"signer_key", "signer_cert"})
UNPROTECT_ONLY = frozenset({"out_format"})
IN_POLICY_FILE = frozenset({"authorised_dn", "tolerate", "key_reuse"})  # what {policies}' policy.spl carries too
_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_]+)(?::([^{}]*))?\}|[{}]")


@attrs.frozen
class Template:
    """A command template for one operation, split into words and checked."""

    operation: str
    text: str
    words: tuple[str, ...]

    @classmethod
    def parse(cls, text: str, operation: str) -> Template:
        """Split ``text`` as a POSIX shell would and check every placeholder; UsageError naming what is wrong."""
        if operation not in OPERATIONS:
            raise UsageError(f"operation {operation!r}: expected protect or unprotect")
        try:
            words = tuple(shlex.split(text))
        except ValueError as error:
            raise UsageError(f"the {operation} template {text!r} cannot be split into words: {error}") from None
        if not words:
            raise UsageError(f"the {operation} template is empty: give the command that {operation}s a message")
        for word in words:
            _check_word(word, operation)
        return cls(operation, text, words)

    def render(self, values: Mapping[str, str | Sequence[str]]) -> list[str]:
        """The argument list: each placeholder replaced by its value (repeated ones once per item)."""
        out: list[str] = []
        for word in self.words:
            out += _render_word(word, values)
        return out


def _check_word(word: str, operation: str) -> None:
    repeated = []
    for token in _TOKEN.finditer(word):
        if token.group(0) in ("{", "}"):
            raise UsageError(
                f"the {operation} template word {word!r} has an unmatched {token.group(0)!r}: placeholders are "
                "{name}; write {{ or }} for a literal brace"
            )
        name, flag = token.group(1), token.group(2)
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            raise UsageError(
                f"unknown placeholder {{{name}}} in the {operation} template: expected one of "
                f"{', '.join('{' + n + '}' for n in PLACEHOLDERS)} (docs/conformance.md)"
            )
        if name in PROTECT_ONLY and operation != "protect":
            raise UsageError(f"{{{name}}} is for protect templates only: use {{key}} and {{cert}}, the reader's")
        if name in UNPROTECT_ONLY and operation != "unprotect":
            raise UsageError(f"{{{name}}} is for unprotect templates only: protect's Format follows from its input")
        if flag is not None and (name not in LIST_PLACEHOLDERS or token.group(0) != word or not flag):
            raise UsageError(
                f"{token.group(0)!r} in the {operation} template: only the repeated placeholders "
                f"({', '.join(sorted(LIST_PLACEHOLDERS))}) take a flag, as a whole word such as {{recipient_cert:-r}}"
            )
        if name in LIST_PLACEHOLDERS:
            repeated.append(name)
    if len(repeated) > 1:
        raise UsageError(
            f"the {operation} template word {word!r} holds {len(repeated)} repeated placeholders: use one per word"
        )


def _render_word(word: str, values: Mapping[str, str | Sequence[str]]) -> list[str]:
    def substitute(item: str | None) -> str:
        def one(token: re.Match[str]) -> str:
            if token.group(0) in ("{{", "}}"):
                return token.group(0)[0]
            name = token.group(1)
            return item if name in LIST_PLACEHOLDERS and item is not None else str(values[name])

        return _TOKEN.sub(one, word)

    whole = _TOKEN.fullmatch(word)
    if whole and whole.group(1) in LIST_PLACEHOLDERS and whole.group(2):
        return [part for item in values[whole.group(1)] for part in (whole.group(2), item)]
    names = [t.group(1) for t in _TOKEN.finditer(word) if t.group(1) in LIST_PLACEHOLDERS]
    if names:
        return [substitute(item) for item in values[names[0]]]
    return [substitute(None)]


# -- what a peer can do, and how to reach it ---------------------------------------------------------------------------


def _names(items: Sequence[Any]) -> str:
    return ",".join(getattr(item, "label", str(item)) for item in items)


@attrs.frozen
class Capabilities:
    """What a peer implements: the kit tries nothing else, and reports what it left out."""

    qops: tuple[QoP, ...] = QOPS
    digests: tuple[SignatureAlgorithm, ...] = DIGESTS
    ciphers: tuple[EncryptionAlgorithm, ...] = CIPHERS
    max_recipients: int = 10
    max_payload: int = MIB
    clear_headers: bool = True
    policies: bool = False

    def not_covered(self) -> list[str]:
        """What the kit will not try with this peer, in words (for the report)."""
        out = []
        if missing := [q for q in QOPS if q not in self.qops]:
            out.append(f"qualities of protection {_names(missing)} (--peer-qop)")
        if missing_digests := [d for d in DIGESTS if d not in self.digests]:
            out.append(f"digests {_names(missing_digests)} (--peer-digest)")
        if missing_ciphers := [c for c in CIPHERS if c not in self.ciphers]:
            out.append(f"ciphers {_names(missing_ciphers)} (--peer-cipher)")
        if self.max_recipients < 10:
            out.append(f"more than {self.max_recipients} recipient(s) (--peer-max-recipients)")
        if self.max_payload < MIB:
            out.append(f"payloads over {self.max_payload:,} bytes (--peer-max-payload)")
        if not self.clear_headers:
            out.append("clear header chains (--peer-no-clear-headers)")
        return out

    def to_json(self) -> dict[str, Any]:
        """The capabilities as JSON values."""
        return {
            "qops": [q.name for q in self.qops],
            "digests": [d.label for d in self.digests],
            "ciphers": [c.label for c in self.ciphers],
            "max_recipients": self.max_recipients,
            "max_payload": self.max_payload,
            "clear_headers": self.clear_headers,
            "policies": self.policies,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Capabilities:
        """Capabilities from :meth:`to_json`."""
        return cls(
            qops=tuple(QoP[q] for q in data["qops"]),
            digests=tuple(SignatureAlgorithm.from_label(d) for d in data["digests"]),
            ciphers=tuple(EncryptionAlgorithm.from_label(c) for c in data["ciphers"]),
            max_recipients=int(data["max_recipients"]),
            max_payload=int(data["max_payload"]),
            clear_headers=bool(data["clear_headers"]),
            policies=bool(data["policies"]),
        )


@attrs.frozen
class PeerSpec:
    """A peer: a name, its templates (``kind`` ``command``) or the project itself in process (``self``)."""

    name: str
    protect: str | None = None
    unprotect: str | None = None
    capabilities: Capabilities = attrs.field(factory=Capabilities)
    timeout: float = 60.0
    kind: str = "command"
    limits: Limits = attrs.field(factory=Limits)  # --peer-memory, --peer-cpu

    def template(self, operation: str) -> Template | None:
        """The parsed template for ``operation``, or None when the peer has none."""
        text = self.protect if operation == "protect" else self.unprotect
        return None if text is None else Template.parse(text, operation)

    def takes(self, placeholder: str, operation: str) -> bool:
        """Whether the ``operation`` template takes ``placeholder`` (or {policies}, for what policy.spl carries)."""
        if self.kind == "self":
            return True
        text = (self.protect if operation == "protect" else self.unprotect) or ""
        names = (placeholder, "policies") if placeholder in IN_POLICY_FILE else (placeholder,)
        return any(f"{{{name}" in text.replace("{{", "") for name in names)

    def can(self, operation: str) -> bool:
        """Whether the peer does ``operation`` at all."""
        return self.kind == "self" or (self.protect if operation == "protect" else self.unprotect) is not None

    def to_json(self) -> dict[str, Any]:
        """The peer as JSON values (saved with every failure, so that it can be replayed)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "protect": self.protect,
            "unprotect": self.unprotect,
            "timeout": self.timeout,
            "memory_mib": self.limits.memory_mib,
            "cpu_seconds": self.limits.cpu_seconds,
            "capabilities": self.capabilities.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PeerSpec:
        """A peer from :meth:`to_json`."""
        return cls(
            name=data["name"],
            protect=data["protect"],
            unprotect=data["unprotect"],
            capabilities=Capabilities.from_json(data["capabilities"]),
            timeout=float(data["timeout"]),
            limits=Limits(data.get("memory_mib"), data.get("cpu_seconds")),  # absent before limits existed
            kind=data["kind"],
        )


# -- one call of a peer ------------------------------------------------------------------------------------------------


@attrs.frozen
class Request:
    """What one peer call gets: the operation, the policy's values, whose key, and the input."""

    operation: str
    qop: QoP
    digest: SignatureAlgorithm
    cipher: EncryptionAlgorithm
    identity: str
    recipients: tuple[str, ...]
    queue: str
    format: str
    data: bytes = attrs.field(repr=False)
    tolerate: bool = False  # -t 1: an unprotected message is handed back as is
    signers: tuple[str, ...] = ()  # -a: the authorised signers (none: any signer the keystore trusts)
    key_reuse: int = KEYREUSE_DISABLED  # -c: messages per confidentiality key (-1 UNLIMITED)

    def policy(self, world: World) -> Policy:
        """The policy the request describes (-a, -c and -t as asked)."""
        recipients = tuple(world.dn(name) for name in self.recipients)
        signers = tuple(world.dn(name) for name in self.signers)
        return Policy(
            self.queue, self.digest, self.cipher, recipients, signers, tolerate=self.tolerate, key_reuse=self.key_reuse
        )

    def to_json(self) -> dict[str, Any]:
        """The request without its data (saved as a file next to it)."""
        return {
            "operation": self.operation,
            "qop": self.qop.name,
            "digest": self.digest.label,
            "cipher": self.cipher.label,
            "identity": self.identity,
            "recipients": list(self.recipients),
            "queue": self.queue,
            "format": self.format,
            "tolerate": self.tolerate,
            "signers": list(self.signers),
            "key_reuse": self.key_reuse,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], body: bytes) -> Request:
        """A request from :meth:`to_json` and its data."""
        return cls(
            operation=data["operation"],
            qop=QoP[data["qop"]],
            digest=SignatureAlgorithm.from_label(data["digest"]),
            cipher=EncryptionAlgorithm.from_label(data["cipher"]),
            identity=data["identity"],
            recipients=tuple(data["recipients"]),
            queue=data["queue"],
            format=data["format"],
            data=body,
            tolerate=bool(data.get("tolerate", False)),  # absent from a step saved before -t was tried
            signers=tuple(data.get("signers", ())),
            key_reuse=int(data.get("key_reuse", KEYREUSE_DISABLED)),
        )


REFUSED = range(1, 126)  # 126, 127: the command could not be run; 128 + N: a shell's report of signal N


@attrs.frozen
class Outcome:
    """What a peer did: its exit status (None when it timed out, minus N when signal N killed it),
    after exit 0 what it wrote, and what the kit refused to take from it (``problem``)."""

    status: int | None
    output: bytes | None = attrs.field(default=None, repr=False)
    stderr: str = ""
    command: tuple[str, ...] = ()
    seconds: float = 0.0
    problem: str = ""  # e.g. {out} is a link, or over the size cap: the case fails whatever it checks
    earlier: tuple[bytes, ...] = attrs.field(default=(), repr=False)  # a stream step's outputs before this call's
    format: str | None = None  # after an unprotect, the MQMD Format the peer wrote to {out_format} (None: none)

    @property
    def accepted(self) -> bool:
        """Exit status 0, and nothing the kit refused: the peer did what was asked."""
        return self.status == 0 and not self.problem

    @property
    def refused(self) -> bool:
        """Exit status 1-125: a refusal (a signal, a status over 125 or a timeout is a crash, not a refusal)."""
        return self.status in REFUSED and not self.problem

    def describe(self) -> str:
        """The outcome in words, with the end of the peer's standard error (escaped)."""
        said = f": {printable(self.stderr.strip()[-600:])}" if self.stderr.strip() else ""
        if self.problem:
            return f"{self.problem}{said}"
        if self.status is None:
            return f"no answer within {self.seconds:.0f} s (the peer was stopped)"
        if self.status < 0:
            return f"crashed: killed by {_signal_name(-self.status)}, which is no refusal{said}"
        if self.status in (126, 127):
            return f"could not be run (exit {self.status}: not found or not executable){said}"
        if self.status >= 128:
            return (
                f"crashed (exit {self.status}, as a shell reports a command killed by "
                f"{_signal_name(self.status - 128)}), which is no refusal{said}"
            )
        if self.status != 0:
            return f"refused (exit {self.status}){said}"
        if self.output is None:
            return f"exit 0 but the output file was not written{said}"
        return f"done (exit 0), wrote {len(self.output):,} bytes"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def placeholder_values(request: Request, world: World, workdir: Path) -> dict[str, str | list[str]]:
    """Every placeholder's value for ``request`` (files in ``world`` and ``workdir``)."""
    key, cert = str(world.file(request.identity, "key.pem")), str(world.file(request.identity, "cert.pem"))
    return {
        "python": sys.executable,
        "qop": request.qop.name.lower(),
        "digest": request.digest.label,
        "cipher": request.cipher.label,
        "key": key,
        "cert": cert,
        "signer_key": key,
        "signer_cert": cert,
        "keystore_conf": str(world.file(request.identity, "keystore.conf")),
        "pkcs12": str(world.file(request.identity, "keystore.p12")),
        "password": world.password,
        "trust": str(world.trust_file),
        "crl": str(world.crl_file),
        "recipient_cert": [str(world.file(name, "cert.pem")) for name in request.recipients],
        "recipient_dn": [str(world.dn(name)) for name in request.recipients],
        "authorised_dn": [str(world.dn(name)) for name in request.signers],
        "queue": request.queue,
        "format": request.format.rstrip(" "),
        "encoding": "546",
        "ccsid": "1208",
        "tolerate": str(int(request.tolerate)),
        "key_reuse": "*" if request.key_reuse == KEYREUSE_UNLIMITED else str(request.key_reuse),
        "policies": str(workdir / "policies"),
        "in": str(workdir / "in.bin"),
        "out": str(workdir / "out.bin"),
        "out_format": str(workdir / "out_format.txt"),
        "workdir": str(workdir),
    }


def write_case_files(request: Request, world: World, case: CaseDirectory) -> None:
    """The input file and the policy directory a command peer reads, in the kit's new directory."""
    case.write("in.bin", request.data)
    with case.subdirectory("policies") as policies:
        policies.write("policy.spl", (request.policy(world).to_setmqspl("QM") + "\n").encode("utf-8"))


def run_command(args: list[str], workdir: Path, timeout: float, limits: Limits | None = None) -> Outcome:
    """Run ``args`` (no shell) in ``workdir`` within ``timeout`` seconds; read ``out.bin`` after exit 0
    (only a regular file, within :data:`~ams.testing.conformance.sandbox.OUTPUT_CAP`)."""
    with CaseDirectory.open(workdir) as case:
        try:
            finished = run_bounded(args, workdir, timeout, limits=limits)
        except OSError as error:
            return Outcome(127, None, f"cannot run {args[0]!r}: {error.strerror or error}", tuple(args))
        stderr = printable(finished.stderr.decode("utf-8", "replace").strip()[-4000:])
        output, problem = case.read("out.bin") if finished.status == 0 else (None, "")
        written, format_problem = case.read("out_format.txt", 64) if finished.status == 0 else (None, "")
    if problem or format_problem:
        problem = f"exit 0, but the kit did not take its output: {problem or format_problem}"
    fmt = None if written is None else written.decode("ascii", "replace").rstrip("\r\n")
    return Outcome(finished.status, output, stderr, tuple(args), finished.seconds, problem, format=fmt)
