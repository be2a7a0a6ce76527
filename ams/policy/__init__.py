"""AMS policies: the model, setmqspl and MQSC commands, dspmqspl output, PCF records, stores."""

from ams.policy.dspmqspl import parse_dspmqspl, render_dspmqspl
from ams.policy.model import Policy, key_reuse_label
from ams.policy.mqsc import MqscCommand, parse_mqsc, to_mqsc
from ams.policy.pcf import PcfMessage, decode_policy_queue, encode_policy_queue
from ams.policy.setmqspl import PolicyRemoval, parse_setmqspl
from ams.policy.store import PolicyStore

__all__ = [
    "MqscCommand",
    "PcfMessage",
    "Policy",
    "PolicyRemoval",
    "PolicyStore",
    "decode_policy_queue",
    "encode_policy_queue",
    "key_reuse_label",
    "parse_dspmqspl",
    "parse_mqsc",
    "parse_setmqspl",
    "render_dspmqspl",
    "to_mqsc",
]
