"""``dspmqspl`` output: print IBM's block layout and read it back (to import a real dump)."""

from __future__ import annotations

from collections.abc import Iterable

from ams.algorithms import KEYREUSE_UNLIMITED, EncryptionAlgorithm, SignatureAlgorithm
from ams.dn import DistinguishedName
from ams.errors import PolicyError
from ams.policy.model import Policy

SEPARATOR = " ".join(["-"] * 35)


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
    """Policies from ``dspmqspl`` output; the printed QoP must agree with the algorithms."""
    policies: list[Policy] = []
    block: dict[str, object] = {}
    current_list: list[DistinguishedName] | None = None
    start = 0

    def finish() -> None:
        if block:
            policies.append(_policy(block, f"{source}:{start}"))
            block.clear()

    for number, raw in enumerate(text.splitlines(), start=1):
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
                raise PolicyError(f"{source}:{number}: unexpected line {line!r} in dspmqspl output")
            try:
                current_list.append(DistinguishedName.parse(line))
            except PolicyError as error:
                raise PolicyError(f"{source}:{number}: {error.message}") from None
            continue
        if field == "name":
            finish()
            start = number
        value = value.strip()
        if field in ("signers", "recipients"):
            current_list = []
            block[field] = current_list
            if value and value != "-":
                current_list.append(DistinguishedName.parse(value))
            if value == "-":
                current_list = None
        else:
            current_list = None
            block[field] = value
    finish()
    return policies


def _policy(block: dict[str, object], where: str) -> Policy:
    missing = [k for k in ("name", "signature", "encryption") if k not in block]
    if missing:
        raise PolicyError(f"{where}: policy block lacks {', '.join(missing)}")
    try:
        signature = SignatureAlgorithm.from_label(str(block["signature"]))
        encryption = EncryptionAlgorithm.from_label(str(block["encryption"]))
    except KeyError as error:
        raise PolicyError(f"{where}: unknown algorithm {error}") from None
    reuse_text = str(block.get("reuse", "0")).upper()
    reuse = KEYREUSE_UNLIMITED if reuse_text in ("UNLIMITED", "*", "-1") else int(reuse_text)
    policy = Policy(
        name=str(block["name"]),
        signature_algorithm=signature,
        encryption_algorithm=encryption,
        recipients=tuple(block.get("recipients", ())),  # type: ignore[arg-type]
        signers=tuple(block.get("signers", ())),  # type: ignore[arg-type]
        tolerate=str(block.get("tolerate", "0")) == "1",
        key_reuse=reuse,
    )
    printed = block.get("qop")
    if printed is not None and printed != policy.qop.name:
        raise PolicyError(
            f"{where}: policy {policy.name} says quality of protection {printed} but its algorithms make it "
            f"{policy.qop.name}"
        )
    return policy
