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
from ams.errors import PolicyError, quoted
from ams.policy.model import Policy, algorithm_from_label, key_reuse_count
from ams.policy.shell_words import ShellSyntaxError, split_words


@attrs.frozen
class PolicyRemoval:
    """``setmqspl -remove``: the policy ``name`` to delete on queue manager ``qmgr``."""

    name: str
    qmgr: str


def _key_reuse(value: str) -> int:
    if value == "*":
        return KEYREUSE_UNLIMITED
    count = key_reuse_count(value, "key reuse -c")
    if count is None:
        raise PolicyError(
            f"key reuse -c {quoted(value)} is not a number: expected 0 (disabled), * (unlimited) or 1 to {KEYREUSE_MAX}"
        )
    return count


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
        raise PolicyError(f"toleration -t {quoted(tolerate)}: expected 0 (enforce) or 1 (tolerate)")
    try:
        return Policy(
            name=name,
            signature_algorithm=algorithm_from_label(
                SignatureAlgorithm, values.get("-s", "NONE"), "signature algorithm -s"
            ),
            encryption_algorithm=algorithm_from_label(
                EncryptionAlgorithm, values.get("-e", "NONE"), "encryption algorithm -e"
            ),
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
        raise PolicyError(f"cannot split {quoted(line)} as a shell command line: {error}") from None
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
                f"unknown setmqspl option {quoted(flag)}; accepted: -m QMGR -p POLICY -s SIGNALG -e ENCALG "
                "-r RECIPIENT-DN -a SIGNER-DN -t 0|1 -c N|* -remove"
            )
        if index + 1 >= len(words):
            raise PolicyError(f"setmqspl option {flag} needs a value")
        value = words[index + 1]
        index += 2
        if flag in ("-r", "-a"):
            (recipients if flag == "-r" else signers).append(DistinguishedName.parse(value))
        elif flag in values:
            raise PolicyError(f"setmqspl option {flag} given twice ({quoted(values[flag])}, {quoted(value)})")
        else:
            values[flag] = value
    return _Options(values, tuple(recipients), tuple(signers), remove)
