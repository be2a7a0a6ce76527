"""What a :class:`~ams.protector.Protector` holds that its send side and its receive side share.

The Protector is one object made of three classes: :class:`ProtectorState` (its settings, its
counters, its sender, and which policy protects a queue), the send side
(:class:`ams._protecting.Protecting`) and the receive side (:class:`ams._unprotecting.Unprotecting`).
Each side declares the caches it keeps; ``Protector.__init__`` sets them all.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping

import attrs

from ams._sending import Sender
from ams.algorithms import QoP
from ams.errors import PolicyRequiredError, summarise
from ams.keys.keystore import Keystore
from ams.limits import Limits
from ams.policy.model import Policy
from ams.verify import Verifier

# from this size the allocating calls write their bytes object straight (hazmat.buffers)
DIRECT_FROM = 64 * 1024


@attrs.define
class ProtectorStats:
    """Counts of the expensive operations, so tests and benchmarks can see the work done."""

    rsa_private_operations: int = 0
    key_reuse_hits: int = 0
    messages_protected: int = 0
    messages_unprotected: int = 0


class ProtectorState:
    """The settings and the shared parts of a Protector (see :class:`~ams.protector.Protector`)."""

    keystore: Keystore
    policies: Mapping[str, Policy]
    require_policy: bool
    at: datetime.datetime | None
    limits: Limits
    verifier: Verifier
    stats: ProtectorStats
    _sender: Sender

    def _policy(self, queue: str) -> Policy | None:
        """``queue``'s policy; with ``require_policy``, PolicyRequiredError where none protects it."""
        policy = self.policies.get(queue)
        if self.require_policy and (policy is None or policy.qop is QoP.NONE):
            raise policy_required(queue, self.policies, policy)
        return policy


def policy_required(queue: str, policies: Mapping[str, Policy], policy: Policy | None) -> PolicyRequiredError:
    """The error of ``require_policy`` for ``queue``, naming where its policy was looked for."""
    source = getattr(policies, "source", None) or (
        f"the {len(policies)} policies given ({summarise(sorted(policies), 5) or 'none'})"
    )
    found = "has no policy" if policy is None else "has a policy that sets no algorithm (-s NONE -e NONE)"
    return PolicyRequiredError(
        f"queue {queue} {found} in {source}, and a policy is required (require_policy, --require-policy): "
        f"nothing is sent or read in the clear. Add one (ams policy set --policies DIR -p {queue} -s SHA256 -e "
        "AES256 -r DN ...; setmqspl on IBM MQ), or name the queue its policy protects"
    )
