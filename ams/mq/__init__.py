"""MQ integration: the transport interface, the embedded queue manager, protected queues."""

from ams.mq.connect import connect
from ams.mq.dlh import MQDLH
from ams.mq.embedded import EmbeddedQueueManager
from ams.mq.mqmd import MQMD
from ams.mq.protected import (
    ERROR_QUEUE,
    POLICY_QUEUE,
    ProtectedMessage,
    ProtectedQueue,
    ProtectedQueueManager,
    policies_from_queue_manager,
    write_policies_to_queue_manager,
)
from ams.mq.transport import WAIT_UNLIMITED, Match, Message, MQError, NoMessageAvailable, QueueHandle, QueueManager

__all__ = [
    "ERROR_QUEUE",
    "MQDLH",
    "MQMD",
    "POLICY_QUEUE",
    "WAIT_UNLIMITED",
    "EmbeddedQueueManager",
    "MQError",
    "Match",
    "Message",
    "NoMessageAvailable",
    "ProtectedMessage",
    "ProtectedQueue",
    "ProtectedQueueManager",
    "QueueHandle",
    "QueueManager",
    "connect",
    "policies_from_queue_manager",
    "write_policies_to_queue_manager",
]
