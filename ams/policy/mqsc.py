"""MQSC ``SET POLICY`` and ``DELETE POLICY`` commands: parse, apply (REPLACE/ADD/REMOVE), render.

MQSC rules followed here: keywords are case-insensitive; unquoted values are folded to upper
case (so DNs and mixed-case names must be quoted); a quote inside a quoted value is doubled;
a line ending in ``+`` or ``-`` continues on the next; lines starting with ``*`` are comments.

Any text gives commands or :class:`~ams.errors.PolicyError` (naming the line), with work linear
in its length: commands are scanned left to right once, never by a backtracking pattern.
"""

from __future__ import annotations

import codecs
import re
import string
from collections.abc import Callable, Iterator, Mapping

import attrs

from ams.algorithms import (
    KEYREUSE_DISABLED,
    KEYREUSE_MAX,
    KEYREUSE_UNLIMITED,
    EncryptionAlgorithm,
    SignatureAlgorithm,
)
from ams.dn import DistinguishedName
from ams.errors import PolicyError, quoted
from ams.policy.model import Policy, key_reuse_count, key_reuse_label

_KEYWORD_START = frozenset(string.ascii_letters)
_KEYWORD_CHARACTERS = frozenset(string.ascii_letters + string.digits)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def split_lines(text: str) -> list[str]:
    """``text`` split at CR LF, CR or LF only, as editors number lines (not at form feeds or U+2028)."""
    return _LINE_BREAK.split(text)


_LINE_BREAK_BYTES = re.compile(rb"\r\n|\r|\n")


def decode_text(data: bytes, source: str) -> str:
    """A policy file's bytes as text (UTF-8, a leading byte-order mark ignored).

    Bytes that are not UTF-8 give a :class:`PolicyError` naming ``source`` and the line, without
    quoting the bytes.
    """
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as error:
        offset = skip + error.start
        line = len(_LINE_BREAK_BYTES.split(data[:offset]))
        raise PolicyError(
            f"{source}:{line}: not UTF-8 text (byte {offset + 1} of the file cannot be decoded): policy files are "
            "UTF-8; convert the file (e.g. iconv -f LATIN1 -t UTF-8) or remove the binary content"
        ) from None


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
    for number, raw in enumerate(split_lines(text), start=1):
        if "\x00" in raw:
            raise PolicyError(f"line {number}: holds a NUL character; an MQSC script is text: remove it")
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
            raise PolicyError(f"line {line}: unterminated quoted value in {keyword}({quoted(raw)}")
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


def _tokens(statement: str, line: int) -> list[tuple[str, str | None]]:
    """``KEYWORD`` and ``KEYWORD(value)`` tokens (the value raw, quotes kept), in one forward scan."""
    tokens: list[tuple[str, str | None]] = []
    index, length = 0, len(statement)
    while True:
        while index < length and statement[index].isspace():
            index += 1
        if index == length:
            return tokens
        start = index
        if statement[index] not in _KEYWORD_START:
            raise PolicyError(
                f"line {line}: cannot parse {quoted(statement)} as SET POLICY(...) or DELETE POLICY(...): "
                f"expected a keyword at character {index + 1} of the command"
            )
        while index < length and statement[index] in _KEYWORD_CHARACTERS:
            index += 1
        keyword = statement[start:index].upper()
        probe = index
        while probe < length and statement[probe].isspace():
            probe += 1
        if probe == length or statement[probe] != "(":
            tokens.append((keyword, None))
            continue
        index = probe + 1
        while index < length and statement[index].isspace():
            index += 1
        if index < length and statement[index] == "'":
            end = index + 1
            while True:
                end = statement.find("'", end)
                if end < 0:
                    raise PolicyError(f"line {line}: unterminated quoted value in {keyword}(...): close it with '")
                if statement.startswith("''", end):  # a doubled quote stands for one quote
                    end += 2
                    continue
                break
            value = statement[index : end + 1]
            index = end + 1
            while index < length and statement[index].isspace():
                index += 1
            if index == length or statement[index] != ")":
                raise PolicyError(
                    f"line {line}: {keyword}({quoted(value)} is not closed by ')' after the quoted value; "
                    "double a quote inside a value ('')"
                )
            index += 1
        else:
            close = statement.find(")", index)
            if close < 0:
                raise PolicyError(f"line {line}: {keyword}( has no closing ')'")
            value = statement[index:close].rstrip()
            index = close + 1
        tokens.append((keyword, value))


def _parse_statement(statement: str, line: int) -> MqscCommand:
    """One SET POLICY or DELETE POLICY command; PolicyError naming ``line`` when it is not one."""
    tokens = _tokens(statement, line)
    if len(tokens) < 2:
        raise PolicyError(f"line {line}: cannot parse {quoted(statement)} as SET POLICY(...) or DELETE POLICY(...)")
    (verb, _), (noun, name_raw) = tokens[0], tokens[1]
    if verb not in ("SET", "DELETE") or noun != "POLICY":
        raise PolicyError(f"line {line}: expected SET POLICY(...) or DELETE POLICY(...), found {verb} {noun}")
    name = _value(name_raw, "POLICY", line)
    found = _Keywords()
    for keyword, raw in tokens[2:]:
        if verb == "DELETE":
            raise PolicyError(f"line {line}: DELETE POLICY takes only the policy name, not {keyword}")
        _read_keyword(found, keyword, raw, line)
    command = MqscCommand(
        verb=verb,
        name=name,
        recipients=tuple(found.recipients),
        signers=tuple(found.signers),
        line=line,
        **found.fields,  # type: ignore[arg-type]
    )
    if command.action in ("ADD", "REMOVE"):
        given = [a for a in (command.signature_algorithm, command.encryption_algorithm) if a is not None]
        if not given or all(a.value == 0 for a in given):
            raise PolicyError(
                f"line {line}: SET POLICY({name}) ACTION({command.action}) still needs SIGNALG or ENCALG with a "
                "value other than NONE (MQSC requires it; only ACTION(REPLACE) applies it)"
            )
    return command


@attrs.define
class _Keywords:
    """What a SET POLICY command's keywords have given so far: MqscCommand fields, and the DN lists."""

    fields: dict[str, object] = attrs.Factory(dict)
    recipients: list[DistinguishedName] = attrs.Factory(list)
    signers: list[DistinguishedName] = attrs.Factory(list)


def _read_keyword(found: _Keywords, keyword: str, raw: str | None, line: int) -> None:
    """Add one keyword (``raw`` its value, quotes kept, or None) to ``found``, by the :data:`_KEYWORDS` table."""
    handler = _KEYWORDS.get(keyword)
    if handler is None:
        raise PolicyError(f"line {line}: unknown SET POLICY keyword {keyword}; accepted: {' '.join(_KEYWORDS)}")
    try:
        handler(found, keyword, raw, line)
    except KeyError:
        names = (SignatureAlgorithm if keyword == "SIGNALG" else EncryptionAlgorithm).labels()
        raise PolicyError(
            f"line {line}: {keyword}({quoted(raw or '')}) is not accepted; expected one of {names}"
        ) from None


def _signature_algorithm(found: _Keywords, keyword: str, raw: str | None, line: int) -> None:
    found.fields["signature_algorithm"] = SignatureAlgorithm.from_label(_value(raw, keyword, line))


def _encryption_algorithm(found: _Keywords, keyword: str, raw: str | None, line: int) -> None:
    found.fields["encryption_algorithm"] = EncryptionAlgorithm.from_label(_value(raw, keyword, line))


def _distinguished_name(found: _Keywords, keyword: str, raw: str | None, line: int) -> None:
    if raw is None or not raw.strip().startswith("'"):
        raise PolicyError(
            f"line {line}: {keyword} values must be quoted, e.g. {keyword}('CN=bob,O=ORG,C=GB'): "
            "MQSC folds unquoted values to upper case"
        )
    dn = DistinguishedName.parse(_value(raw, keyword, line))
    (found.recipients if keyword == "RECIP" else found.signers).append(dn)


def _toleration(found: _Keywords, keyword: str, raw: str | None, line: int) -> None:
    if raw is not None or "tolerate" in found.fields:
        raise PolicyError(f"line {line}: give one of ENFORCE or TOLERATE, without a value")
    found.fields["tolerate"] = keyword == "TOLERATE"


def _key_reuse_keyword(found: _Keywords, keyword: str, raw: str | None, line: int) -> None:
    found.fields["key_reuse"] = _key_reuse(_value(raw, keyword, line), line)


def _action(found: _Keywords, keyword: str, raw: str | None, line: int) -> None:
    action = _value(raw, keyword, line)
    if action not in ("REPLACE", "ADD", "REMOVE"):
        raise PolicyError(f"line {line}: ACTION({action}): expected REPLACE, ADD or REMOVE")
    found.fields["action"] = action


# Each SET POLICY keyword and how it is read, in the order an error lists them.
_KEYWORDS: dict[str, Callable[[_Keywords, str, str | None, int], None]] = {
    "SIGNALG": _signature_algorithm,
    "ENCALG": _encryption_algorithm,
    "RECIP": _distinguished_name,
    "SIGNER": _distinguished_name,
    "ENFORCE": _toleration,
    "TOLERATE": _toleration,
    "KEYREUSE": _key_reuse_keyword,
    "ACTION": _action,
}


def _key_reuse(value: str, line: int) -> int:
    if value == "DISABLED":
        return KEYREUSE_DISABLED
    if value == "UNLIMITED":
        return KEYREUSE_UNLIMITED
    count = key_reuse_count(value, f"line {line}: KEYREUSE")
    if count is None:
        expected = f"DISABLED, UNLIMITED or 1 to {KEYREUSE_MAX}"
        raise PolicyError(f"line {line}: KEYREUSE({quoted(value)}): expected {expected}")
    return count


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
    """The MQSC command that deletes policy ``name``: ``DELETE POLICY('name')``."""
    return f"DELETE POLICY({_quote(name)})"
