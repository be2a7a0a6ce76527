"""``dspmqspl`` output: print IBM's block layout and read it back (to import a real dump).

Reading any text gives policies or a :class:`~ams.errors.PolicyError` naming the line.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ams._files import read_bounded
from ams.algorithms import KEYREUSE_MAX, KEYREUSE_UNLIMITED, EncryptionAlgorithm, SignatureAlgorithm
from ams.dn import DistinguishedName
from ams.errors import DistinguishedNameError, PolicyError, quoted
from ams.limits import DEFAULT_LIMITS
from ams.policy.model import Policy, algorithm_from_label, key_reuse_count
from ams.policy.mqsc import decode_text, split_lines

SEPARATOR = " ".join(["-"] * 35)
_REQUIRED = (("name", "Policy name"), ("signature", "Signature algorithm"), ("encryption", "Encryption algorithm"))


def _dn_lines(title: str, dns: tuple[DistinguishedName, ...]) -> list[str]:
    if not dns:
        return [f"{title}: -"]
    return [f"{title}:", *(_ibm_dn(dn) for dn in dns)]


def _ibm_dn(dn: DistinguishedName) -> str:
    # dspmqspl prints DNs with ", " between components
    return str(dn).replace(",", ", ").replace("\\, ", "\\,")


def render_dspmqspl(policies: Iterable[Policy]) -> str:
    """The same block per policy that ``dspmqspl -m QM`` prints."""
    blocks = []
    for policy in policies:
        reuse = "UNLIMITED" if policy.key_reuse == KEYREUSE_UNLIMITED else str(policy.key_reuse)
        lines = [
            "Policy Details:",
            f"Policy name: {policy.name}",
            f"Quality of protection: {policy.qop.name}",
            f"Signature algorithm: {policy.signature_algorithm.label}",
            f"Encryption algorithm: {policy.encryption_algorithm.label}",
            *_dn_lines("Signer DNs", policy.signers),
            *_dn_lines("Recipient DNs", policy.recipients),
            f"Toleration: {1 if policy.tolerate else 0}",
            f"Key Reuse Count: {reuse}",
        ]
        blocks.append("\n".join(lines))
    return ("\n" + SEPARATOR + "\n").join(blocks) + ("\n" if blocks else "")


_FIELDS = {
    "policy name": "name",
    "quality of protection": "qop",
    "signature algorithm": "signature",
    "encryption algorithm": "encryption",
    "signer dns": "signers",
    "recipient dns": "recipients",
    "toleration": "tolerate",
    "key reuse count": "reuse",
}


def parse_dspmqspl(text: str, *, source: str = "dspmqspl output") -> list[Policy]:
    """Policies from ``dspmqspl`` output; the printed QoP must agree with the algorithms.

    Any text gives policies or a :class:`PolicyError` naming ``source`` and the line.
    """
    policies: list[Policy] = []
    fields: dict[str, str] = {}
    dns: dict[str, list[DistinguishedName]] = {}
    field_lines: dict[str, str] = {}  # the file:line of each field, for errors
    current_list: list[DistinguishedName] | None = None
    start = 0

    def finish() -> None:
        if fields or dns:
            policies.append(_policy(fields, dns, field_lines, f"{source}:{start}"))
            fields.clear()
            dns.clear()
            field_lines.clear()

    for number, raw in enumerate(split_lines(text), start=1):
        here = f"{source}:{number}"
        if "\x00" in raw:
            raise PolicyError(f"{here}: holds a NUL character; dspmqspl output is text: remove it")
        line = raw.strip()
        if not line or line.startswith("- -") or line.startswith("Policy Details"):
            current_list = None
            if line.startswith("- -"):
                finish()
            continue
        key, colon, value = line.partition(":")
        field = _FIELDS.get(key.strip().lower()) if colon else None
        if field is None:
            if current_list is None:
                raise PolicyError(
                    f"{here}: unexpected line {quoted(line)} in dspmqspl output; expected 'Field: value', or a DN "
                    "after 'Signer DNs:' or 'Recipient DNs:'"
                )
            current_list.append(_dn(line, here))
            continue
        if field == "name":
            finish()
        if field in fields or field in dns:
            raise PolicyError(f"{here}: {key.strip()} is given twice in one policy block; expected it once")
        if not fields and not dns:
            start = number
        value = value.strip()
        field_lines[field] = here
        if field in ("signers", "recipients"):
            current_list = dns[field] = []
            if value == "-":
                current_list = None
            elif value:
                current_list.append(_dn(value, here))
        else:
            current_list = None
            fields[field] = value
    finish()
    return policies


def read_dspmqspl(path: str | Path) -> list[Policy]:
    """Policies from a file of ``dspmqspl`` output; an unreadable or non-UTF-8 file is a PolicyError."""
    data = read_bounded(path, "dspmqspl output", limit=DEFAULT_LIMITS.file_size, error=PolicyError)
    return parse_dspmqspl(decode_text(data, str(path)), source=str(path))


def _dn(text: str, where: str) -> DistinguishedName:
    try:
        return DistinguishedName.parse(text)
    except DistinguishedNameError as error:
        raise DistinguishedNameError(f"{where}: {error.message}") from None


def _policy(
    fields: dict[str, str], dns: dict[str, list[DistinguishedName]], lines: dict[str, str], block: str
) -> Policy:
    missing = [label for key, label in _REQUIRED if key not in fields]
    if missing:
        raise PolicyError(f"{block}: policy block lacks {', '.join(missing)}")
    signature = algorithm_from_label(
        SignatureAlgorithm, fields["signature"], f"{lines['signature']}: signature algorithm"
    )
    encryption = algorithm_from_label(
        EncryptionAlgorithm, fields["encryption"], f"{lines['encryption']}: encryption algorithm"
    )
    tolerate = fields.get("tolerate", "0")
    if tolerate not in ("0", "1"):
        raise PolicyError(
            f"{lines.get('tolerate', block)}: Toleration {quoted(tolerate)}: expected 0 (enforce) or 1 (tolerate)"
        )
    key_reuse = _key_reuse(fields.get("reuse", "0"), lines.get("reuse", block))
    try:
        policy = Policy(
            name=fields["name"],
            signature_algorithm=signature,
            encryption_algorithm=encryption,
            recipients=tuple(dns.get("recipients", ())),
            signers=tuple(dns.get("signers", ())),
            tolerate=tolerate == "1",
            key_reuse=key_reuse,
        )
    except PolicyError as error:
        raise type(error)(f"{block}: {error.message}") from None
    printed = fields.get("qop")
    if printed is not None and printed != policy.qop.name:
        raise PolicyError(
            f"{lines['qop']}: policy {policy.name} says quality of protection {printed[:60]} but its "
            f"algorithms make it {policy.qop.name}"
        )
    return policy


def _key_reuse(text: str, where: str) -> int:
    value = text.upper()
    if value in ("UNLIMITED", "*", "-1"):
        return KEYREUSE_UNLIMITED
    count = key_reuse_count(value, f"{where}: Key Reuse Count")
    if count is None:
        raise PolicyError(
            f"{where}: Key Reuse Count {quoted(text)}: expected 0 (disabled), 1 to {KEYREUSE_MAX} or UNLIMITED"
        )
    return count
