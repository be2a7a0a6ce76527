"""MQSC ``SET POLICY`` and ``DELETE POLICY`` commands: parse, apply (REPLACE/ADD/REMOVE), render.

MQSC rules followed here: keywords are case-insensitive; unquoted values are folded to upper
case (so DNs and mixed-case names must be quoted); a quote inside a quoted value is doubled;
a line ending in ``+`` or ``-`` continues on the next; lines starting with ``*`` are comments.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

import attrs

from ams.algorithms import KEYREUSE_DISABLED, KEYREUSE_UNLIMITED, EncryptionAlgorithm, SignatureAlgorithm
from ams.dn import DistinguishedName
from ams.errors import PolicyError
from ams.policy.model import Policy, key_reuse_label

_SIGNATURE_NAMES = ", ".join(a.label for a in SignatureAlgorithm)
_ENCRYPTION_NAMES = ", ".join(a.label for a in EncryptionAlgorithm)
_TOKEN = re.compile(r"\s*([A-Za-z][A-Za-z0-9]*)\s*(\(\s*('(?:[^']|'')*'|[^)]*?)\s*\))?")


@attrs.frozen
class MqscCommand:
    """One SET POLICY or DELETE POLICY command, with the line it started on."""

    verb: str  # "SET" or "DELETE"
    name: str
    signature_algorithm: SignatureAlgorithm | None = None
    encryption_algorithm: EncryptionAlgorithm | None = None
    recipients: tuple[DistinguishedName, ...] = ()
    signers: tuple[DistinguishedName, ...] = ()
    tolerate: bool | None = None
    key_reuse: int | None = None
    action: str = "REPLACE"
    line: int = 0

    def apply(self, policies: Mapping[str, Policy]) -> Policy | None:
        """The policy this command leaves behind (None when it deletes it)."""
        if self.verb == "DELETE":
            return None
        existing = policies.get(self.name)
        if self.action == "REPLACE":
            return Policy(
                name=self.name,
                signature_algorithm=self.signature_algorithm or SignatureAlgorithm.NONE,
                encryption_algorithm=self.encryption_algorithm or EncryptionAlgorithm.NONE,
                recipients=self.recipients,
                signers=self.signers,
                tolerate=bool(self.tolerate),
                key_reuse=KEYREUSE_DISABLED if self.key_reuse is None else self.key_reuse,
            )
        if existing is None:
            raise PolicyError(
                f"SET POLICY({self.name}) ACTION({self.action}) changes an existing policy, but there is no "
                f"policy {self.name}: create it first with ACTION(REPLACE)"
            )
        if self.action == "ADD":
            recipients = existing.recipients + tuple(
                dn for dn in self.recipients if not any(dn.matches(old) for old in existing.recipients)
            )
            signers = existing.signers + tuple(
                dn for dn in self.signers if not any(dn.matches(old) for old in existing.signers)
            )
        else:
            for given, current, what in (
                (self.recipients, existing.recipients, "RECIP"),
                (self.signers, existing.signers, "SIGNER"),
            ):
                for dn in given:
                    if not any(dn.matches(old) for old in current):
                        listed = "; ".join(str(d) for d in current) or "none"
                        raise PolicyError(
                            f"SET POLICY({self.name}) ACTION(REMOVE) {what}('{dn}'): the policy has no such "
                            f"{what}; it has: {listed}"
                        )
            recipients = tuple(d for d in existing.recipients if not any(d.matches(r) for r in self.recipients))
            signers = tuple(d for d in existing.signers if not any(d.matches(s) for s in self.signers))
        return attrs.evolve(existing, recipients=recipients, signers=signers)


def _statements(text: str) -> Iterator[tuple[int, str]]:
    """Whole commands with continuations joined, and the line each starts on.

    ``+`` at the end continues with the next line's first non-blank; ``-`` with its column 1.
    """
    current: list[str] = []
    start = 0
    strip_next = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not current and (not line.strip() or line.lstrip().startswith("*")):
            continue
        if not current:
            start = number
            line = line.lstrip()
        elif strip_next:
            line = line.lstrip()
        if line.endswith(("+", "-")):
            strip_next = line.endswith("+")
            current.append(line[:-1])
            continue
        current.append(line)
        yield start, "".join(current)
        current = []
    if current:
        raise PolicyError(f"line {start}: the MQSC command ends with a continuation character but no next line")


def _value(raw: str | None, keyword: str, line: int) -> str:
    if raw is None:
        raise PolicyError(f"line {line}: {keyword} needs a value in parentheses, e.g. {keyword}(...)")
    raw = raw.strip()
    if raw.startswith("'"):
        if not raw.endswith("'") or len(raw) < 2:
            raise PolicyError(f"line {line}: unterminated quoted value in {keyword}({raw}")
        return raw[1:-1].replace("''", "'")
    return raw.upper()


def parse_mqsc(text: str) -> list[MqscCommand]:
    """Every SET POLICY and DELETE POLICY command in an MQSC script; the first error is raised."""
    commands, errors = parse_mqsc_collecting(text)
    if errors:
        raise errors[0]
    return commands


def parse_mqsc_collecting(text: str) -> tuple[list[MqscCommand], list[PolicyError]]:
    """The commands that parse, and an error for each one that does not."""
    commands: list[MqscCommand] = []
    errors: list[PolicyError] = []
    try:
        for line, statement in _statements(text):
            try:
                commands.append(_parse_statement(statement, line))
            except PolicyError as error:
                errors.append(error)
    except PolicyError as error:
        errors.append(error)
    return commands, errors


def _parse_statement(statement: str, line: int) -> MqscCommand:
    tokens = [(m.group(1).upper(), m.group(3)) for m in _TOKEN.finditer(statement)]
    consumed = "".join(m.group(0) for m in _TOKEN.finditer(statement))
    if consumed.strip() != statement.strip() or len(tokens) < 2:
        raise PolicyError(f"line {line}: cannot parse {statement.strip()!r} as SET POLICY(...) or DELETE POLICY(...)")
    (verb, _), (noun, name_raw) = tokens[0], tokens[1]
    if verb not in ("SET", "DELETE") or noun != "POLICY":
        raise PolicyError(f"line {line}: expected SET POLICY(...) or DELETE POLICY(...), found {verb} {noun}")
    name = _value(name_raw, "POLICY", line)
    fields: dict[str, object] = {}
    recipients: list[DistinguishedName] = []
    signers: list[DistinguishedName] = []
    for keyword, raw in tokens[2:]:
        if verb == "DELETE":
            raise PolicyError(f"line {line}: DELETE POLICY takes only the policy name, not {keyword}")
        try:
            if keyword == "SIGNALG":
                label = _value(raw, keyword, line)
                fields["signature_algorithm"] = SignatureAlgorithm.from_label(label)
            elif keyword == "ENCALG":
                label = _value(raw, keyword, line)
                fields["encryption_algorithm"] = EncryptionAlgorithm.from_label(label)
            elif keyword in ("RECIP", "SIGNER"):
                if raw is None or not raw.strip().startswith("'"):
                    raise PolicyError(
                        f"line {line}: {keyword} values must be quoted, e.g. {keyword}('CN=bob,O=ORG,C=GB'): "
                        "MQSC folds unquoted values to upper case"
                    )
                dn = DistinguishedName.parse(_value(raw, keyword, line))
                (recipients if keyword == "RECIP" else signers).append(dn)
            elif keyword in ("ENFORCE", "TOLERATE"):
                if raw is not None or "tolerate" in fields:
                    raise PolicyError(f"line {line}: give one of ENFORCE or TOLERATE, without a value")
                fields["tolerate"] = keyword == "TOLERATE"
            elif keyword == "KEYREUSE":
                value = _value(raw, keyword, line)
                fields["key_reuse"] = _key_reuse(value, line)
            elif keyword == "ACTION":
                action = _value(raw, keyword, line)
                if action not in ("REPLACE", "ADD", "REMOVE"):
                    raise PolicyError(f"line {line}: ACTION({action}): expected REPLACE, ADD or REMOVE")
                fields["action"] = action
            else:
                raise PolicyError(
                    f"line {line}: unknown SET POLICY keyword {keyword}; accepted: SIGNALG ENCALG RECIP SIGNER "
                    "ENFORCE TOLERATE KEYREUSE ACTION"
                )
        except KeyError:
            names = _SIGNATURE_NAMES if keyword == "SIGNALG" else _ENCRYPTION_NAMES
            raise PolicyError(f"line {line}: {keyword}({raw}) is not accepted; expected one of {names}") from None
    command = MqscCommand(
        verb=verb,
        name=name,
        recipients=tuple(recipients),
        signers=tuple(signers),
        line=line,
        **fields,  # type: ignore[arg-type]
    )
    if command.action in ("ADD", "REMOVE"):
        given = [a for a in (command.signature_algorithm, command.encryption_algorithm) if a is not None]
        if not given or all(a.value == 0 for a in given):
            raise PolicyError(
                f"line {line}: SET POLICY({name}) ACTION({command.action}) still needs SIGNALG or ENCALG with a "
                "value other than NONE (MQSC requires it; only ACTION(REPLACE) applies it)"
            )
    return command


def _key_reuse(value: str, line: int) -> int:
    if value == "DISABLED":
        return KEYREUSE_DISABLED
    if value == "UNLIMITED":
        return KEYREUSE_UNLIMITED
    if value.isdigit():
        return int(value)
    raise PolicyError(f"line {line}: KEYREUSE({value}): expected DISABLED, UNLIMITED or 1 to 9999999")


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def to_mqsc(policy: Policy) -> str:
    """One SET POLICY command that recreates ``policy`` (ACTION(REPLACE), every keyword explicit)."""
    parts = [
        f"SET POLICY({_quote(policy.name)})",
        f"SIGNALG({policy.signature_algorithm.label})",
        f"ENCALG({policy.encryption_algorithm.label})",
    ]
    parts += [f"SIGNER({_quote(str(dn))})" for dn in policy.signers]
    parts += [f"RECIP({_quote(str(dn))})" for dn in policy.recipients]
    parts += [
        "TOLERATE" if policy.tolerate else "ENFORCE",
        f"KEYREUSE({key_reuse_label(policy.key_reuse)})",
        "ACTION(REPLACE)",
    ]
    return " ".join(parts)


def delete_mqsc(name: str) -> str:
    return f"DELETE POLICY({_quote(name)})"
