"""A stand-in for the pymqi module, over the embedded queue manager.

IBM MQ cannot run here, so this fake is the one place the tests pretend. It speaks pymqi's API
(connect, Queue, MD/GMO/PMO, CMQC constants, MQMIError with .reason and .original_length) and
behaves as pymqi over a real queue manager does where that could lose a message, so that the
adapter in ams.mq.pymqi_adapter fails a test if it forgets:

* ``QueueManager.disconnect`` is MQDISC: it commits uncommitted work;
* a get without MQGMO_PROPERTIES_FORCE_MQRFH2 gets what the queue's PROPCTL leaves;
* MQOO_INPUT_AS_Q_DEF follows the queue's DEFSOPT, and exclusive readers exclude each other;
* ``MatchOptions`` are not read below GMO version 2, where MQ matches the MQMD's MsgId and
  CorrelId (as if both match options were given);
* a message longer than the buffer is MQRC 2080 (the MQMD filled in, the message left on the
  queue), and with no buffer size pymqi's own two-step get is imitated, MQMD and all;
* every failure is MQMIError, commit, backout and inquire included, and a message longer than
  the client channel's MAXMSGL is MQRC 2010;
* the QueueManager object, dropped while connected, disconnects, and so commits, as pymqi's
  ``__del__`` does.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from ams.mq.embedded import EmbeddedConnection, EmbeddedQueue, EmbeddedQueueManager
from ams.mq.mqmd import MQMD
from ams.mq.transport import Match, Message, MQError, NoMessageAvailable
from ams.mqconstants import DEFAULT_MAX_MESSAGE_LENGTH, MQRC_DATA_LENGTH_ERROR

MANAGERS: dict[str, EmbeddedQueueManager] = {}
CHANNEL_MAX_MESSAGE_LENGTH = DEFAULT_MAX_MESSAGE_LENGTH
CALLS: list[tuple[str, dict[str, Any]]] = []  # what the adapter asked for, for the tests to read

CMQC = SimpleNamespace(
    MQGMO_WAIT=0x1,
    MQGMO_SYNCPOINT=0x2,
    MQGMO_NO_SYNCPOINT=0x4,
    MQGMO_BROWSE_FIRST=0x10,
    MQGMO_BROWSE_NEXT=0x20,
    MQGMO_ACCEPT_TRUNCATED_MSG=0x40,
    MQGMO_FAIL_IF_QUIESCING=0x2000,
    MQGMO_PROPERTIES_FORCE_MQRFH2=0x02000000,
    MQGMO_VERSION_1=1,
    MQGMO_VERSION_2=2,
    MQWI_UNLIMITED=-1,
    MQMO_NONE=0,
    MQMO_MATCH_MSG_ID=1,
    MQMO_MATCH_CORREL_ID=2,
    MQPMO_SYNCPOINT=0x2,
    MQPMO_NO_SYNCPOINT=0x4,
    MQPMO_FAIL_IF_QUIESCING=0x2000,
    MQOO_INPUT_AS_Q_DEF=0x1,
    MQOO_INPUT_SHARED=0x2,
    MQOO_INPUT_EXCLUSIVE=0x4,
    MQOO_BROWSE=0x8,
    MQOO_OUTPUT=0x10,
    MQOO_INQUIRE=0x20,
    MQOO_FAIL_IF_QUIESCING=0x2000,
    MQCC_OK=0,
    MQCC_WARNING=1,
    MQCC_FAILED=2,
    MQRC_NO_MSG_AVAILABLE=2033,
    MQRC_TRUNCATED_MSG_FAILED=2080,
    MQIA_CURRENT_Q_DEPTH=3,
    MQIA_BACKOUT_THRESHOLD=22,
    MQCA_BACKOUT_REQ_Q_NAME=2019,
)


class Error(Exception):
    """pymqi's base exception."""


class PYIFError(Error):
    """pymqi's own errors ("not connected", ...), not the queue manager's."""


class MQMIError(Error):
    def __init__(self, comp: int, reason: int, **kw: Any) -> None:
        super().__init__(f"MQI Error. Comp: {comp}, Reason {reason}")
        self.comp, self.reason = comp, reason
        self.original_length = kw.get("original_length")


def _failed(error: MQError) -> MQMIError:
    return MQMIError(CMQC.MQCC_FAILED, error.reason)


class MD:
    """pymqi's MQMD: text fields are bytes, blank padded; pymqi's defaults."""

    def __init__(self) -> None:
        self.Format, self.Encoding, self.CodedCharSetId = b" " * 8, 546, 1208
        self.Persistence, self.MsgType, self.Priority, self.Expiry = 2, 8, -1, -1
        self.MsgId, self.CorrelId, self.BackoutCount = bytes(24), bytes(24), 0
        self.ReplyToQ, self.ReplyToQMgr, self.UserIdentifier = b" " * 48, b" " * 48, b" " * 12
        self.PutApplType, self.PutApplName, self.PutDate, self.PutTime = 0, b" " * 28, b" " * 8, b" " * 8


class GMO:
    def __init__(self, Options: int = 0) -> None:
        self.Options, self.WaitInterval = Options, 0
        self.Version, self.MatchOptions = CMQC.MQGMO_VERSION_1, CMQC.MQMO_MATCH_MSG_ID | CMQC.MQMO_MATCH_CORREL_ID


class PMO:
    def __init__(self, Options: int = 0) -> None:
        self.Options = Options


def _text(value: bytes) -> str:
    return value.decode().rstrip(" ")


def _to_mqmd(raw: MD) -> MQMD:
    return MQMD(
        format=raw.Format.decode().ljust(8),
        encoding=raw.Encoding,
        ccsid=raw.CodedCharSetId,
        persistence=raw.Persistence,
        msg_type=raw.MsgType,
        priority=raw.Priority,
        expiry=raw.Expiry,
        msg_id=raw.MsgId,
        correl_id=raw.CorrelId,
        reply_to_q=_text(raw.ReplyToQ),
        reply_to_qmgr=_text(raw.ReplyToQMgr),
    )


def _fill(raw: MD, md: MQMD) -> None:
    raw.Format, raw.Encoding, raw.CodedCharSetId = md.format.encode(), md.encoding, md.ccsid
    raw.Persistence, raw.MsgType, raw.Priority, raw.Expiry = md.persistence, md.msg_type, md.priority, md.expiry
    raw.MsgId, raw.CorrelId, raw.BackoutCount = md.msg_id, md.correl_id, md.backout_count
    raw.ReplyToQ, raw.ReplyToQMgr = md.reply_to_q.encode().ljust(48), md.reply_to_qmgr.encode().ljust(48)
    raw.UserIdentifier, raw.PutApplType = md.user_identifier.encode().ljust(12), md.put_appl_type
    raw.PutApplName, raw.PutDate, raw.PutTime = (
        md.put_appl_name.encode().ljust(28),
        md.put_date.encode(),
        md.put_time.encode(),
    )


class QueueManager:
    def __init__(self, connection: EmbeddedConnection) -> None:
        self.connection = connection
        self.disconnect_on_exit = True
        self.__handle = 1  # as pymqi: __del__ disconnects while it is set

    def put1(self, queue: str, message: bytes, md: MD, pmo: PMO) -> None:
        _check_channel(message)
        try:
            syncpoint = bool(pmo.Options & CMQC.MQPMO_SYNCPOINT)
            done = self.connection.put1(queue, _to_mqmd(md), message, syncpoint=syncpoint)
        except MQError as error:
            raise _failed(error) from None
        _fill(md, done)

    def commit(self) -> None:
        try:
            self.connection.commit()
        except MQError as error:
            raise _failed(error) from None

    def backout(self) -> None:
        try:
            self.connection.backout()
        except MQError as error:
            raise _failed(error) from None

    def disconnect(self) -> None:
        if self.connection.closed:
            raise PYIFError("not connected")
        self.connection.disconnect()  # MQDISC: commits what is uncommitted

    def __del__(self) -> None:
        # pymqi's QueueManager.__del__ disconnects a connection still open: MQDISC, which commits
        if self.__handle and self.disconnect_on_exit and not self.connection.closed:
            with contextlib.suppress(Exception):
                self.connection.disconnect()


class Queue:
    def __init__(self, qmgr: QueueManager, name: str, options: int) -> None:
        self.qmgr, self.name = qmgr, name
        exclusive = True if options & CMQC.MQOO_INPUT_EXCLUSIVE else False if options & CMQC.MQOO_INPUT_SHARED else None
        reads = bool(options & (CMQC.MQOO_INPUT_AS_Q_DEF | CMQC.MQOO_INPUT_SHARED | CMQC.MQOO_INPUT_EXCLUSIVE))
        CALLS.append(("open", {"queue": name, "options": options}))
        try:
            self.handle: EmbeddedQueue | None = None
            if options & ~(CMQC.MQOO_INQUIRE | CMQC.MQOO_FAIL_IF_QUIESCING):
                self.handle = qmgr.connection.open(
                    name,
                    output=bool(options & CMQC.MQOO_OUTPUT),
                    input=reads,
                    browse=bool(options & CMQC.MQOO_BROWSE),
                    exclusive=exclusive,
                )
            else:
                qmgr.connection.resolve(name)  # MQOPEN for inquire: the queue must exist
        except MQError as error:
            raise _failed(error) from None

    def _open(self) -> EmbeddedQueue:
        assert self.handle is not None
        return self.handle

    def put(self, message: bytes, md: MD, pmo: PMO) -> None:
        _check_channel(message)
        try:
            done = self._open().put(_to_mqmd(md), message, syncpoint=bool(pmo.Options & CMQC.MQPMO_SYNCPOINT))
        except MQError as error:
            raise _failed(error) from None
        _fill(md, done)

    def get(self, max_length: int | None, md: MD, gmo: GMO) -> bytes:
        CALLS.append(
            (
                "get",
                {
                    "max_length": max_length,
                    "version": gmo.Version,
                    "match": gmo.MatchOptions,
                    "msg_id": bytes(md.MsgId),
                    "force_rfh2": bool(gmo.Options & CMQC.MQGMO_PROPERTIES_FORCE_MQRFH2),
                },
            )
        )
        if max_length is None:  # pymqi: a 4096-byte try, then once more with the MQMD it was given
            first = bytes(md.MsgId)
            try:
                return self.get(4096, md, gmo)
            except MQMIError as error:
                if error.reason != CMQC.MQRC_TRUNCATED_MSG_FAILED:
                    raise
                md.MsgId = first
                return self.get(int(error.original_length or 0), md, gmo)
        message = self._next(md, gmo, take=False)
        if len(message.body) > max_length and not gmo.Options & CMQC.MQGMO_ACCEPT_TRUNCATED_MSG:
            _fill(md, message.md)
            raise MQMIError(CMQC.MQCC_WARNING, CMQC.MQRC_TRUNCATED_MSG_FAILED, original_length=len(message.body))
        message = self._next(md, gmo, take=True)
        _fill(md, message.md)
        return message.body

    def _next(self, md: MD, gmo: GMO, *, take: bool) -> Message:
        """The message this get would return (``take`` False: left where it is)."""
        handle = self._open()
        force = bool(gmo.Options & CMQC.MQGMO_PROPERTIES_FORCE_MQRFH2)
        match = _match(md, gmo)
        try:
            if gmo.Options & CMQC.MQGMO_BROWSE_FIRST:
                if take:
                    return handle.browse_first(msg_id=match.msg_id, correl_id=match.correl_id, force_rfh2=force)
                return handle.peek_browse(None, msg_id=match.msg_id, correl_id=match.correl_id, force_rfh2=force)
            if gmo.Options & CMQC.MQGMO_BROWSE_NEXT:
                if take:
                    return handle.browse_next(msg_id=match.msg_id, correl_id=match.correl_id, force_rfh2=force)
                return handle.peek_browse(True, msg_id=match.msg_id, correl_id=match.correl_id, force_rfh2=force)
            wait = _wait(gmo)
            if not take:
                return _poll(
                    lambda: handle.peek(msg_id=match.msg_id, correl_id=match.correl_id, force_rfh2=force), wait
                )
            syncpoint = bool(gmo.Options & CMQC.MQGMO_SYNCPOINT)
            return handle.get(
                wait=wait, syncpoint=syncpoint, msg_id=match.msg_id, correl_id=match.correl_id, force_rfh2=force
            )
        except NoMessageAvailable:
            raise MQMIError(CMQC.MQCC_FAILED, CMQC.MQRC_NO_MSG_AVAILABLE) from None
        except MQError as error:
            raise _failed(error) from None

    def inquire(self, attribute: int) -> int | bytes:
        connection = self.qmgr.connection
        try:
            if attribute == CMQC.MQIA_BACKOUT_THRESHOLD:
                return connection.backout_settings(self.name).threshold
            if attribute == CMQC.MQCA_BACKOUT_REQ_Q_NAME:
                return connection.backout_settings(self.name).queue.encode().ljust(48)  # MQCA values: blank padded
            assert attribute == CMQC.MQIA_CURRENT_Q_DEPTH
            return connection.depth(self.name)
        except MQError as error:
            raise _failed(error) from None

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def _match(md: MD, gmo: GMO) -> Match:
    """What MQGET selects by: MatchOptions from a version-2 GMO; below version 2 MatchOptions is not
    read and MQ matches as if MQMO_MATCH_MSG_ID + MQMO_MATCH_CORREL_ID (its initial value) were
    given, so a reused MQMD's MsgId and CorrelId still select (IBM MQ docs, "MQGMO - Get-message
    options": "If Version is less than MQGMO_VERSION_2, the remaining fields are ignored", and
    "Getting a particular message": MQMI_NONE / MQCI_NONE match any)."""
    options = (
        gmo.MatchOptions if gmo.Version >= CMQC.MQGMO_VERSION_2 else CMQC.MQMO_MATCH_MSG_ID | CMQC.MQMO_MATCH_CORREL_ID
    )
    return Match.of(
        bytes(md.MsgId) if options & CMQC.MQMO_MATCH_MSG_ID else None,
        bytes(md.CorrelId) if options & CMQC.MQMO_MATCH_CORREL_ID else None,
    )


def _wait(gmo: GMO) -> float:
    """MQGMO_WAIT's interval in seconds (MQWI_UNLIMITED: for ever); no wait without MQGMO_WAIT."""
    if not gmo.Options & CMQC.MQGMO_WAIT:
        return 0.0
    return math.inf if gmo.WaitInterval == CMQC.MQWI_UNLIMITED else gmo.WaitInterval / 1000


def _check_channel(message: bytes) -> None:
    """A client channel's MAXMSGL (4 MiB unless the SVRCONN says otherwise): MQRC 2010 beyond it."""
    if len(message) > CHANNEL_MAX_MESSAGE_LENGTH:
        raise MQMIError(CMQC.MQCC_FAILED, MQRC_DATA_LENGTH_ERROR)


def _poll(peek: Callable[[], Message], wait: float) -> Message:
    """MQGET's wait, for a look that does not take the message."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return peek()
        except NoMessageAvailable:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def connect(
    qmgr: str, channel: str, conn_info: str, user: Any = None, password: Any = None, **options: Any
) -> QueueManager:
    """pymqi.connect; ``options`` are ibmmq's (``disconnect_on_exit``), for when this module stands
    in for ibmmq."""
    if qmgr not in MANAGERS:
        raise MQMIError(CMQC.MQCC_FAILED, 2059)  # MQRC_Q_MGR_NOT_AVAILABLE
    if user is not None and password is None:
        raise ValueError("Password must not be None if user is provided")  # what pymqi and ibmmq do
    CALLS.append(
        (
            "connect",
            {
                "intercept": os.environ.get("MQS_DISABLE_ALL_INTERCEPT"),
                "appl": os.environ.get("MQAPPLNAME"),
                "channel": channel,
                "conn_info": conn_info,
                **options,
            },
        )
    )
    manager = QueueManager(MANAGERS[qmgr].connect(os.environ.get("MQAPPLNAME", "python")))  # as MQ 9.1.2+ does
    manager.disconnect_on_exit = bool(options.get("disconnect_on_exit", True))
    return manager
