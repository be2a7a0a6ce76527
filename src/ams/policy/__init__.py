"""AMS policies: the model, setmqspl command lines and policy stores."""

from ams.policy.model import Policy, key_reuse_label
from ams.policy.setmqspl import SetmqsplCommand, parse_setmqspl
from ams.policy.store import PolicyStore

__all__ = ["Policy", "PolicyStore", "SetmqsplCommand", "key_reuse_label", "parse_setmqspl"]
