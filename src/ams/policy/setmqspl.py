"""``setmqspl`` command lines: parse them into policies and render them back."""

from __future__ import annotations

import shlex

import attrs

from ams.algorithms import (
    KEYREUSE_DISABLED,
    KEYREUSE_UNLIMITED,
    EncryptionAlgorithm,
    SignatureAlgorithm,
)
from ams.dn import DistinguishedName
from ams.errors import PolicyError
from ams.policy.model import Policy

_SIGNATURE_NAMES = ", ".join(a.label for a in SignatureAlgorithm)
_ENCRYPTION_NAMES = ", ".join(a.label for a in EncryptionAlgorithm)


@attrs.frozen
class SetmqsplCommand:
    """One parsed command: a policy to set, or (``remove``) a policy name to delete."""

    qmgr: str
    name: str
    policy: Policy | None
    remove: bool = False


def _signature(value: str) -> SignatureAlgorithm:
    try:
        return SignatureAlgorithm.from_label(value)
    except KeyError:
        hint = " (names are upper case)" if value.upper() in _SIGNATURE_NAMES.split(", ") else ""
        raise PolicyError(f"unknown signature algorithm -s {value!r}{hint}; accepted: {_SIGNATURE_NAMES}") from None


def _encryption(value: str) -> EncryptionAlgorithm:
    try:
        return EncryptionAlgorithm.from_label(value)
    except KeyError:
        hint = " (names are upper case)" if value.upper() in _ENCRYPTION_NAMES.split(", ") else ""
        raise PolicyError(f"unknown encryption algorithm -e {value!r}{hint}; accepted: {_ENCRYPTION_NAMES}") from None


def _key_reuse(value: str) -> int:
    if value == "*":
        return KEYREUSE_UNLIMITED
    if value.isdigit():
        return int(value)
    raise PolicyError(f"key reuse -c {value!r} is not a number: expected 0 (disabled), * (unlimited) or 1 to 9999999")


def parse_setmqspl(line: str) -> SetmqsplCommand:
    """Parse one ``setmqspl`` command line (shell quoting; the word ``setmqspl`` is optional)."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError as error:
        raise PolicyError(f"cannot split {line!r} as a shell command line: {error}") from None
    if words and words[0] == "setmqspl":
        words = words[1:]
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
                f"unknown setmqspl option {flag!r}; accepted: -m QMGR -p POLICY -s SIGNALG -e ENCALG "
                "-r RECIPIENT-DN -a SIGNER-DN -t 0|1 -c N|* -remove"
            )
        if index + 1 >= len(words):
            raise PolicyError(f"setmqspl option {flag} needs a value")
        value = words[index + 1]
        index += 2
        if flag == "-r":
            recipients.append(DistinguishedName.parse(value))
        elif flag == "-a":
            signers.append(DistinguishedName.parse(value))
        else:
            if flag in values:
                raise PolicyError(f"setmqspl option {flag} given twice ({values[flag]!r}, {value!r})")
            values[flag] = value
    if "-m" not in values:
        raise PolicyError("setmqspl needs -m QMGR (the queue manager)")
    if "-p" not in values:
        raise PolicyError("setmqspl needs -p POLICY (the queue name)")
    qmgr, name = values["-m"], values["-p"]
    if remove:
        extra = sorted(set(values) - {"-m", "-p"}) + (["-r"] if recipients else []) + (["-a"] if signers else [])
        if extra:
            raise PolicyError(f"setmqspl -remove takes only -m and -p, not {' '.join(extra)}")
        return SetmqsplCommand(qmgr, name, None, remove=True)
    tolerate = values.get("-t", "0")
    if tolerate not in ("0", "1"):
        raise PolicyError(f"toleration -t {tolerate!r}: expected 0 (enforce) or 1 (tolerate)")
    try:
        policy = Policy(
            name=name,
            signature_algorithm=_signature(values.get("-s", "NONE")),
            encryption_algorithm=_encryption(values.get("-e", "NONE")),
            recipients=tuple(recipients),
            signers=tuple(signers),
            tolerate=tolerate == "1",
            key_reuse=_key_reuse(values.get("-c", str(KEYREUSE_DISABLED))),
        )
    except PolicyError as error:
        # the corrected command shown for a swapped -r/-a names this queue manager
        raise type(error)(error.message.replace("-m QMGR ", f"-m {shlex.quote(qmgr)} ")) from None
    return SetmqsplCommand(qmgr, name, policy)
