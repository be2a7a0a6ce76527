"""Compare two sets of policies, and the commands that turn one into the other."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from ams.policy.model import Policy, key_reuse_label
from ams.policy.mqsc import delete_mqsc, to_mqsc


@attrs.frozen
class PolicyChange:
    """One policy that differs: added (``before`` None), removed (``after`` None) or changed."""

    name: str
    before: Policy | None
    after: Policy | None

    @property
    def kind(self) -> str:
        """``add``, ``remove`` or ``change``."""
        return "add" if self.before is None else "remove" if self.after is None else "change"

    def details(self) -> list[str]:
        """For a changed policy, each setting that differs (``label: old -> new``) and each DN added or removed."""
        if self.before is None or self.after is None:
            return []
        out = []
        for label, old, new in (
            ("signature algorithm", self.before.signature_algorithm.label, self.after.signature_algorithm.label),
            ("encryption algorithm", self.before.encryption_algorithm.label, self.after.encryption_algorithm.label),
            ("toleration", int(self.before.tolerate), int(self.after.tolerate)),
            ("key reuse", key_reuse_label(self.before.key_reuse), key_reuse_label(self.after.key_reuse)),
        ):
            if old != new:
                out.append(f"{label}: {old} -> {new}")
        for label, old_dns, new_dns in (
            ("recipient", self.before.recipients, self.after.recipients),
            ("signer", self.before.signers, self.after.signers),
        ):
            for dn in new_dns:
                if not any(dn.matches(o, strict=True) for o in old_dns):
                    out.append(f"+ {label} {dn}")
            for dn in old_dns:
                if not any(dn.matches(n, strict=True) for n in new_dns):
                    out.append(f"- {label} {dn}")
        return out


def diff_policies(current: Mapping[str, Policy], wanted: Mapping[str, Policy]) -> list[PolicyChange]:
    """What must change so that ``current`` (e.g. a queue manager's dump) equals ``wanted``."""
    changes = []
    for name in sorted(set(current) | set(wanted)):
        before, after = current.get(name), wanted.get(name)
        if before != after:
            changes.append(PolicyChange(name, before, after))
    return changes


def commands_for(changes: list[PolicyChange], qmgr: str, *, mqsc: bool = False) -> list[str]:
    """setmqspl (or MQSC) commands that apply ``changes`` to queue manager ``qmgr``."""
    out = []
    for change in changes:
        if change.after is None:
            out.append(delete_mqsc(change.name) if mqsc else f"setmqspl -m {qmgr} -p {change.name} -remove")
        else:
            out.append(to_mqsc(change.after) if mqsc else change.after.to_setmqspl(qmgr))
    return out
