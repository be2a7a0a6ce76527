"""Where a message that cannot be delivered goes, and what happens when it cannot go there.

* A queue's BOTHRESH and BOQNAME are read when it is opened for input, never inside a get's unit
  of work: an inquiry that failed there backed the message out, raising its BackoutCount for
  ever. MQ answers an inquiry of BOTHRESH on an alias with 2068 (MQRC_SELECTOR_NOT_FOR_TYPE), so
  the alias's base queue (MQCA_BASE_Q_NAME) is asked; a queue that cannot be asked (no ``+inq``,
  a remote or cluster queue) gets the default threshold and no BOQNAME, with a warning.
* A message that cannot be moved to the error or backout queue for a reason that will not pass
  by itself (longer than that queue's or the queue manager's MAXMSGL, longer than the client
  channel allows) is not retried at the head of its queue for ever: the get raises
  :class:`MessageStuckError` (a ConfigurationError: a proxy route pauses), naming the message and
  the fix.
"""

from __future__ import annotations

import logging

from ams.errors import ConfigurationError
from ams.mq.transport import BackoutSettings, Message, MQError, QueueManager
from ams.mqconstants import (
    MQDLH_LENGTH,
    MQRC_DATA_LENGTH_ERROR,
    MQRC_MSG_TOO_BIG_FOR_CHANNEL,
    MQRC_MSG_TOO_BIG_FOR_Q,
    MQRC_MSG_TOO_BIG_FOR_Q_MGR,
    MQRC_NOT_AUTHORIZED,
    MQRC_SELECTOR_NOT_FOR_TYPE,
)

log = logging.getLogger(__name__)

# a put that failed for one of these fails the same way every time: retrying cannot help
PERMANENT_PUT_FAILURES = frozenset(
    {MQRC_MSG_TOO_BIG_FOR_Q, MQRC_MSG_TOO_BIG_FOR_Q_MGR, MQRC_DATA_LENGTH_ERROR, MQRC_MSG_TOO_BIG_FOR_CHANNEL}
)
# an inquiry that failed for one of these will fail again: the defaults apply instead
_CANNOT_INQUIRE = frozenset({MQRC_SELECTOR_NOT_FOR_TYPE, MQRC_NOT_AUTHORIZED})


def read_backout_settings(qm: QueueManager, queue: str, default_threshold: int) -> BackoutSettings:
    """BOTHRESH (``default_threshold`` when 0 or unknown) and BOQNAME of ``queue``, or of the
    queue an alias names; the defaults, with a warning, when neither can be inquired."""
    try:
        found = qm.backout_settings(queue)
    except MQError as error:
        if error.reason not in _CANNOT_INQUIRE:
            raise
        found = _of_base_queue(qm, queue, error, default_threshold)
    return found if found.threshold > 0 else BackoutSettings(default_threshold, found.queue)


def _of_base_queue(qm: QueueManager, queue: str, error: MQError, default_threshold: int) -> BackoutSettings:
    try:
        base = qm.resolve(queue) if error.reason == MQRC_SELECTOR_NOT_FOR_TYPE else queue
        if base != queue:
            return qm.backout_settings(base)
    except MQError as again:
        if again.reason not in _CANNOT_INQUIRE:
            raise
        error = again
    log.warning(
        "cannot read BOTHRESH and BOQNAME of %s (%s): using a backout threshold of %d and no backout queue; "
        "grant +inq on the queue (and on an alias's base queue) to use its own",
        queue,
        error.message,
        default_threshold,
    )
    return BackoutSettings(default_threshold, "")


class MessageStuckError(ConfigurationError):
    """A message could not be moved aside (error or backout queue) for a reason that will not pass
    by itself; it was backed out and stays at the head of its queue until the queue is fixed."""

    code = "message_stuck"

    def __init__(self, queue: str, message: Message, target: str, failure: MQError, why: str) -> None:
        size = len(message.body)
        super().__init__(
            f"message {message.md.msg_id.hex()} on {queue} ({why}) cannot be moved to {target}: {failure.message}. "
            f"It was backed out and stays at the head of {queue}, so this stops rather than retry it for ever. "
            f"Fix: let {target} take it (ALTER QLOCAL({target}) MAXMSGL of at least {size + MQDLH_LENGTH:,} bytes: "
            f"the {size:,}-byte message as it is on the queue plus a {MQDLH_LENGTH}-byte MQDLH, and the queue "
            f"manager's MAXMSGL and the client channel's too), or give {queue} a BOQNAME that can, then start again"
        )
        self.reason = failure.reason


class ChannelTooSmallError(ConfigurationError):
    """MQRC 2010 on a get: the message at the head of the queue is longer than the client channel
    takes. It stays there (nothing was got, so nothing backs out) and every get fails the same way."""

    code = "channel_too_small"

    def __init__(self, queue: str, failure: MQError) -> None:
        super().__init__(
            f"a message on {queue} is longer than the client channel's MaxMsgLength (MQRC 2010): it stays at the head "
            f"of {queue} and every get fails the same way, so this stops. Fix: raise MAXMSGL on the SVRCONN channel "
            "(ALTER CHANNEL(...) CHLTYPE(SVRCONN) MAXMSGL(...); the lower of it and the client's applies, and ams asks "
            f"for 100 MiB on the client side) and the queue manager's MAXMSGL, then start again ({failure.message})"
        )
        self.reason = failure.reason


def cannot_move(error: MQError) -> bool:
    """Whether a failed move aside will fail the same way every time it is tried."""
    return error.reason in PERMANENT_PUT_FAILURES
