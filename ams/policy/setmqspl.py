"""``setmqspl`` command lines: parse them into policies and render them back.

Any line gives a command or :class:`~ams.errors.PolicyError`; error texts quote at most a short
prefix of the line.
"""

from __future__ import annotations

import shlex

import attrs

from ams.algorithms import (
    KEYREUSE_DISABLED,
    KEYREUSE_MAX,
    KEYREUSE_UNLIMITED,
    EncryptionAlgorithm,
    SignatureAlgorithm,
)
from ams.dn import DistinguishedName
from ams.errors import PolicyError
from ams.policy.model import Policy
from ams.policy.shell_words import ShellSyntaxError, split_words

_SIGNATURE_NAMES = ", ".join(a.label for a in SignatureAlgorithm)
_ENCRYPTION_NAMES = ", ".join(a.label for a in EncryptionAlgorithm)
_SHOWN = 60  # characters of a line or value quoted in an error text


def _shown(text: str) -> str:
    return repr(text) if len(text) <= _SHOWN else repr(text[:_SHOWN]) + f"... ({len(text):,} characters)"


@attrs.frozen
class PolicyRemoval:
    """``setmqspl -remove``: the policy ``name`` to delete on queue manager ``qmgr``."""

    name: str
    qmgr: str


def _signature(value: str) -> SignatureAlgorithm:
    try:
        return SignatureAlgorithm.from_label(value)
    except KeyError:
        hint = " (names are upper case)" if value.upper() in _SIGNATURE_NAMES.split(", ") else ""
        raise PolicyError(
            f"unknown signature algorithm -s {_shown(value)}{hint}; accepted: {_SIGNATURE_NAMES}"
        ) from None


def _encryption(value: str) -> EncryptionAlgorithm:
    try:
        return EncryptionAlgorithm.from_label(value)
    except KeyError:
        hint = " (names are upper case)" if value.upper() in _ENCRYPTION_NAMES.split(", ") else ""
        raise PolicyError(
            f"unknown encryption algorithm -e {_shown(value)}{hint}; accepted: {_ENCRYPTION_NAMES}"
        ) from None


def _key_reuse(value: str) -> int:
    if value == "*":
        return KEYREUSE_UNLIMITED
    if value.isascii() and value.isdigit():
        digits = value.lstrip("0") or "0"
        # longer than the largest count: out of range, and never handed to int() (which refuses
        # more than 4,300 digits with a ValueError)
        if len(digits) > len(str(KEYREUSE_MAX)):
            raise PolicyError(
                f"key reuse -c has {len(digits):,} digits: out of range: expected 0 (disabled), * (unlimited) "
                f"or 1 to {KEYREUSE_MAX}"
            )
        return int(digits)
    raise PolicyError(
        f"key reuse -c {_shown(value)} is not a number: expected 0 (disabled), * (unlimited) or 1 to {KEYREUSE_MAX}"
    )


@attrs.frozen
class _Options:
    values: dict[str, str]
    recipients: tuple[DistinguishedName, ...]
    signers: tuple[DistinguishedName, ...]
    remove: bool


def parse_setmqspl(line: str) -> Policy | PolicyRemoval:
    """Parse one ``setmqspl`` command line (shell quoting; the word ``setmqspl`` is optional): the
    policy it sets, or, for ``-remove``, the removal. IBM's rules are checked; PolicyError if not."""
    options = _options(_words(line))
    values = options.values
    for flag, what in (("-m", "-m QMGR (the queue manager)"), ("-p", "-p POLICY (the queue name)")):
        if flag not in values:
            raise PolicyError(f"setmqspl needs {what}")
    qmgr, name = values["-m"], values["-p"]
    if options.remove:
        extra = sorted(set(values) - {"-m", "-p"})
        extra += (["-r"] if options.recipients else []) + (["-a"] if options.signers else [])
        if extra:
            raise PolicyError(f"setmqspl -remove takes only -m and -p, not {' '.join(extra)}")
        return PolicyRemoval(name, qmgr)
    tolerate = values.get("-t", "0")
    if tolerate not in ("0", "1"):
        raise PolicyError(f"toleration -t {_shown(tolerate)}: expected 0 (enforce) or 1 (tolerate)")
    try:
        return Policy(
            name=name,
            signature_algorithm=_signature(values.get("-s", "NONE")),
            encryption_algorithm=_encryption(values.get("-e", "NONE")),
            recipients=options.recipients,
            signers=options.signers,
            tolerate=tolerate == "1",
            key_reuse=_key_reuse(values.get("-c", str(KEYREUSE_DISABLED))),
        )
    except PolicyError as error:
        # the corrected command shown for a swapped -r/-a names this queue manager
        raise type(error)(error.message.replace("-m QMGR ", f"-m {shlex.quote(qmgr)} ")) from None


def _words(line: str) -> list[str]:
    if "\x00" in line:
        raise PolicyError("the setmqspl line holds a NUL character; a command line is text: remove it")
    try:
        words = split_words(line)
    except ShellSyntaxError as error:
        raise PolicyError(f"cannot split {_shown(line)} as a shell command line: {error}") from None
    return words[1:] if words and words[0] == "setmqspl" else words


def _options(words: list[str]) -> _Options:
    values: dict[str, str] = {}
    recipients: list[DistinguishedName] = []
    signers: list[DistinguishedName] = []
    remove = False
    index = 0
    while index < len(words):
        flag = words[index]
        if flag == "-remove":
            remove = True
            index += 1
            continue
        if flag not in ("-m", "-p", "-s", "-e", "-r", "-a", "-t", "-c"):
            raise PolicyError(
                f"unknown setmqspl option {_shown(flag)}; accepted: -m QMGR -p POLICY -s SIGNALG -e ENCALG "
                "-r RECIPIENT-DN -a SIGNER-DN -t 0|1 -c N|* -remove"
            )
        if index + 1 >= len(words):
            raise PolicyError(f"setmqspl option {flag} needs a value")
        value = words[index + 1]
        index += 2
        if flag in ("-r", "-a"):
            (recipients if flag == "-r" else signers).append(DistinguishedName.parse(value))
        elif flag in values:
            raise PolicyError(f"setmqspl option {flag} given twice ({_shown(values[flag])}, {_shown(value)})")
        else:
            values[flag] = value
    return _Options(values, tuple(recipients), tuple(signers), remove)
