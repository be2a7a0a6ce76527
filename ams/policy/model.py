"""The policy value: one queue's AMS protection settings, with IBM's validation rules."""

from __future__ import annotations

import re
import shlex
import warnings
from typing import TypeVar

import attrs

from ams.algorithms import (
    KEYREUSE_DISABLED,
    KEYREUSE_MAX,
    KEYREUSE_UNLIMITED,
    EncryptionAlgorithm,
    QoP,
    SignatureAlgorithm,
)
from ams.dn import DistinguishedName
from ams.errors import AmsDeprecationWarning, PolicyError, quoted

Algorithm = TypeVar("Algorithm", SignatureAlgorithm, EncryptionAlgorithm)
_NAME_RE = re.compile(r"[A-Za-z0-9._/%]{1,48}")


def key_reuse_label(value: int) -> str:
    """A key reuse count as setmqspl and MQSC write it: ``DISABLED`` (0), ``UNLIMITED`` (-1) or the number."""
    if value == KEYREUSE_DISABLED:
        return "DISABLED"
    if value == KEYREUSE_UNLIMITED:
        return "UNLIMITED"
    return str(value)


def _implied_qop(signature: SignatureAlgorithm, encryption: EncryptionAlgorithm) -> QoP:
    """Both algorithms: PRIVACY; a signature algorithm alone: INTEGRITY; an encryption algorithm
    alone: CONFIDENTIALITY; neither: NONE."""
    signs = signature is not SignatureAlgorithm.NONE
    encrypts = encryption is not EncryptionAlgorithm.NONE
    if signs and encrypts:
        return QoP.PRIVACY
    if signs:
        return QoP.INTEGRITY
    if encrypts:
        return QoP.CONFIDENTIALITY
    return QoP.NONE


@attrs.frozen
class Policy:
    """One queue's protection, as ``setmqspl`` or ``SET POLICY`` define it.

    ``recipients`` are ``-r`` / RECIP (who can decrypt); ``signers`` are ``-a`` / SIGNER (whose
    signatures are accepted; empty means any trusted signer). ``key_reuse`` is 0 (DISABLED),
    -1 (UNLIMITED) or 1..9999999.
    """

    name: str
    signature_algorithm: SignatureAlgorithm = SignatureAlgorithm.NONE
    encryption_algorithm: EncryptionAlgorithm = EncryptionAlgorithm.NONE
    recipients: tuple[DistinguishedName, ...] = ()
    signers: tuple[DistinguishedName, ...] = ()
    tolerate: bool = False
    key_reuse: int = KEYREUSE_DISABLED
    _qop: QoP = attrs.field(init=False, eq=False, repr=False)  # derived once: asked for on every message

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_qop", _implied_qop(self.signature_algorithm, self.encryption_algorithm))
        self.validate()
        for algorithm in (self.signature_algorithm, self.encryption_algorithm):
            if algorithm.deprecated:
                warnings.warn(
                    f"policy {self.name} uses {algorithm}, which IBM MQ deprecates: prefer SHA256 or stronger "
                    "and AES128/AES256",
                    AmsDeprecationWarning,
                    stacklevel=3,
                )

    @classmethod
    def from_setmqspl(cls, line: str) -> Policy:
        """The policy a ``setmqspl`` command line sets (``-remove`` is refused here)."""
        from ams.policy.setmqspl import parse_setmqspl

        command = parse_setmqspl(line)
        if not isinstance(command, Policy):
            raise PolicyError(f"{line!r} removes policy {command.name}; it does not define one")
        return command

    @property
    def qop(self) -> QoP:
        """The quality of protection the algorithms imply (format.md §8).

        Both algorithms: PRIVACY; a signature algorithm alone: INTEGRITY; an encryption algorithm
        alone: CONFIDENTIALITY; neither: NONE.
        """
        return self._qop

    def validate(self) -> None:
        """Apply IBM's rules; each error names the rule and the offending value."""
        if not _NAME_RE.fullmatch(self.name):
            raise PolicyError(
                f"policy name {self.name!r} is not a valid queue name: expected 1 to 48 characters "
                "from A-Z a-z 0-9 . / _ %"
            )
        signs = self.signature_algorithm is not SignatureAlgorithm.NONE
        encrypts = self.encryption_algorithm is not EncryptionAlgorithm.NONE
        check_swapped(self)
        if encrypts and not self.recipients:
            raise PolicyError(
                f"policy {self.name}: encryption algorithm {self.encryption_algorithm} needs at least "
                "one recipient: add -r DN (RECIP) for each identity that must read the queue"
            )
        if self.recipients and not encrypts:
            raise PolicyError(
                f"policy {self.name}: recipients (-r/RECIP) are given but the encryption algorithm is "
                "NONE: choose -e AES256 (or another cipher), or remove the -r options"
            )
        if self.signers and not signs:
            raise PolicyError(
                f"policy {self.name}: authorised signers (-a/SIGNER) are given but the signature "
                "algorithm is NONE: choose -s SHA256 (or another digest), or remove the -a options"
            )
        if self.key_reuse != KEYREUSE_DISABLED:
            if self.qop is not QoP.CONFIDENTIALITY:
                raise PolicyError(
                    f"policy {self.name}: key reuse (-c/KEYREUSE) {key_reuse_label(self.key_reuse)} "
                    f"applies only to confidentiality (-s NONE with -e set); this policy's quality of "
                    f"protection is {self.qop}: use -c 0"
                )
            if not (self.key_reuse == KEYREUSE_UNLIMITED or 1 <= self.key_reuse <= KEYREUSE_MAX):
                raise PolicyError(
                    f"policy {self.name}: key reuse {self.key_reuse} is out of range: expected 0 "
                    f"(DISABLED), * (UNLIMITED) or 1 to {KEYREUSE_MAX}"
                )

    def to_setmqspl(self, qmgr: str) -> str:
        """One ``setmqspl`` command with every flag explicit (as ``dspmqspl -export``)."""
        words = setmqspl_words(
            qmgr, self.name, self.signature_algorithm, self.encryption_algorithm, self.signers, self.recipients
        )
        reuse = "*" if self.key_reuse == KEYREUSE_UNLIMITED else str(self.key_reuse)
        words += ["-c", reuse, "-t", "1" if self.tolerate else "0"]
        return shlex.join(words)


def algorithm_from_label(kind: type[Algorithm], label: str, what: str) -> Algorithm:
    """The ``kind`` member named ``label``; a PolicyError naming ``what`` and the accepted names if none."""
    try:
        return kind.from_label(label)
    except KeyError:
        hint = " (names are upper case)" if label.upper() in kind.labels().split(", ") else ""
        raise PolicyError(f"unknown {what} {quoted(label)}{hint}; accepted: {kind.labels()}") from None


def key_reuse_count(text: str, what: str) -> int | None:
    """A key reuse count written in ASCII digits (None when ``text`` is not digits). Longer than the
    largest count is a PolicyError naming ``what``, found before ``int()`` (which refuses more than
    4,300 digits with a ValueError)."""
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(KEYREUSE_MAX)):
        raise PolicyError(f"{what} has {len(digits):,} digits: out of range: expected at most {KEYREUSE_MAX}")
    return int(digits)


def setmqspl_words(
    qmgr: str,
    name: str,
    signature: SignatureAlgorithm,
    encryption: EncryptionAlgorithm,
    signers: tuple[DistinguishedName, ...],
    recipients: tuple[DistinguishedName, ...],
) -> list[str]:
    """The words of a setmqspl command up to its -c and -t: ``-a`` for each signer, ``-r`` for each recipient."""
    words = ["setmqspl", "-m", qmgr, "-p", name, "-s", signature.label, "-e", encryption.label]
    for dn in signers:
        words += ["-a", str(dn)]
    for dn in recipients:
        words += ["-r", str(dn)]
    return words


def check_swapped(policy: Policy, qmgr: str = "QMGR") -> None:
    """Refuse a policy whose -r and -a look exchanged, and show the corrected command."""
    encrypts = policy.encryption_algorithm is not EncryptionAlgorithm.NONE
    signs = policy.signature_algorithm is not SignatureAlgorithm.NONE
    if encrypts and not policy.recipients and policy.signers:
        what = (
            f"encryption algorithm {policy.encryption_algorithm} needs at least one recipient (-r), "
            f"but the policy names {len(policy.signers)} authorised signer(s) (-a) and no recipient"
        )
    elif not encrypts and signs and policy.recipients and not policy.signers:
        what = (
            f"recipients (-r) need an encryption algorithm, but -e is NONE while -s is "
            f"{policy.signature_algorithm} and no authorised signer (-a) is given"
        )
    else:
        return
    # swapped: the recipients given become authorised signers, and the other way round
    words = setmqspl_words(
        qmgr, policy.name, policy.signature_algorithm, policy.encryption_algorithm, policy.recipients, policy.signers
    )
    raise PolicyError(
        f"policy {policy.name}: {what}. This looks like -r and -a swapped: in setmqspl -r "
        "(RECIP) names the recipients who can decrypt and -a (SIGNER) names the authorised "
        f"signers whose signatures are accepted. Did you mean: {shlex.join(words)}"
    )
