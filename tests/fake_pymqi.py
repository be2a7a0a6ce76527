"""A stand-in for the pymqi module, over the embedded queue manager.

IBM MQ cannot run here, so this fake is the one place the tests pretend: it speaks pymqi's API
(connect, Queue, MD/GMO/PMO, CMQC constants, MQMIError with .reason) so that the adapter in
ams.mq.pymqi_adapter - its MQMD translation, options and reason codes - runs in every MQ test.
"""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

from ams.mq.embedded import EmbeddedConnection, EmbeddedQueueManager
from ams.mq.mqmd import MQMD
from ams.mq.transport import MQError, NoMessageAvailable

MANAGERS: dict[str, EmbeddedQueueManager] = {}

CMQC = SimpleNamespace(
    MQGMO_WAIT=0x1,
    MQGMO_SYNCPOINT=0x2,
    MQGMO_NO_SYNCPOINT=0x4,
    MQGMO_BROWSE_FIRST=0x10,
    MQGMO_BROWSE_NEXT=0x20,
    MQGMO_FAIL_IF_QUIESCING=0x2000,
    MQMO_NONE=0,
    MQMO_MATCH_MSG_ID=1,
    MQPMO_SYNCPOINT=0x2,
    MQPMO_NO_SYNCPOINT=0x4,
    MQOO_INPUT_AS_Q_DEF=0x1,
    MQOO_BROWSE=0x8,
    MQOO_OUTPUT=0x10,
    MQOO_INQUIRE=0x20,
    MQOO_FAIL_IF_QUIESCING=0x2000,
    MQRC_NO_MSG_AVAILABLE=2033,
    MQIA_CURRENT_Q_DEPTH=3,
    MQIA_BACKOUT_THRESHOLD=22,
    MQCA_BACKOUT_REQ_Q_NAME=2019,
)


class MQMIError(Exception):
    def __init__(self, comp: int, reason: int) -> None:
        super().__init__(f"MQI Error. Comp: {comp}, Reason {reason}")
        self.comp, self.reason = comp, reason


class MD:
    """pymqi's MQMD: text fields are bytes, blank padded."""

    def __init__(self) -> None:
        self.Format, self.Encoding, self.CodedCharSetId = b" " * 8, 546, 1208
        self.Persistence, self.MsgType, self.Priority, self.Expiry = 0, 8, 0, -1
        self.MsgId, self.CorrelId, self.BackoutCount = bytes(24), bytes(24), 0
        self.ReplyToQ, self.ReplyToQMgr, self.UserIdentifier = b" " * 48, b" " * 48, b" " * 12
        self.PutApplType, self.PutApplName, self.PutDate, self.PutTime = 0, b" " * 28, b" " * 8, b" " * 8


class GMO:
    def __init__(self, Options: int = 0) -> None:
        self.Options, self.WaitInterval, self.MatchOptions = Options, 0, 3


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

    def put1(self, queue: str, message: bytes, md: MD, pmo: PMO) -> None:
        _fill(
            md, self.connection.put1(queue, _to_mqmd(md), message, syncpoint=bool(pmo.Options & CMQC.MQPMO_SYNCPOINT))
        )

    def commit(self) -> None:
        self.connection.commit()

    def backout(self) -> None:
        self.connection.backout()

    def disconnect(self) -> None:
        self.connection.close()


class Queue:
    def __init__(self, qmgr: QueueManager, name: str, options: int) -> None:
        self.qmgr, self.name = qmgr, name
        self.handle = qmgr.connection.open(
            name,
            output=bool(options & CMQC.MQOO_OUTPUT),
            input=bool(options & CMQC.MQOO_INPUT_AS_Q_DEF),
            browse=bool(options & CMQC.MQOO_BROWSE) or bool(options & CMQC.MQOO_INQUIRE),
        )

    def put(self, message: bytes, md: MD, pmo: PMO) -> None:
        try:
            done = self.handle.put(_to_mqmd(md), message, syncpoint=bool(pmo.Options & CMQC.MQPMO_SYNCPOINT))
        except MQError as error:
            raise MQMIError(2, error.reason) from None
        _fill(md, done)

    def get(self, max_length: int | None, md: MD, gmo: GMO) -> bytes:
        try:
            if gmo.Options & CMQC.MQGMO_BROWSE_FIRST:
                message = self.handle.browse_first()
            elif gmo.Options & CMQC.MQGMO_BROWSE_NEXT:
                message = self.handle.browse_next()
            else:
                wait = gmo.WaitInterval / 1000 if gmo.Options & CMQC.MQGMO_WAIT else 0.0
                msg_id = md.MsgId if gmo.MatchOptions & CMQC.MQMO_MATCH_MSG_ID and any(md.MsgId) else None
                message = self.handle.get(wait=wait, syncpoint=bool(gmo.Options & CMQC.MQGMO_SYNCPOINT), msg_id=msg_id)
        except NoMessageAvailable:
            raise MQMIError(2, CMQC.MQRC_NO_MSG_AVAILABLE) from None
        except MQError as error:
            raise MQMIError(2, error.reason) from None
        _fill(md, message.md)
        return message.body

    def inquire(self, attribute: int) -> int | bytes:
        connection = self.qmgr.connection
        if attribute == CMQC.MQIA_BACKOUT_THRESHOLD:
            return connection.backout_settings(self.name).threshold
        if attribute == CMQC.MQCA_BACKOUT_REQ_Q_NAME:
            return connection.backout_settings(self.name).queue.encode().ljust(48)  # MQCA values are blank padded
        assert attribute == CMQC.MQIA_CURRENT_Q_DEPTH
        return connection.depth(self.name)

    def close(self) -> None:
        self.handle.close()


def connect(qmgr: str, channel: str, conn_info: str, user: Any = None, password: Any = None) -> QueueManager:
    if qmgr not in MANAGERS:
        raise MQMIError(2, 2059)  # MQRC_Q_MGR_NOT_AVAILABLE
    return QueueManager(MANAGERS[qmgr].connect(os.environ.get("MQAPPLNAME", "python")))  # as MQ 9.1.2+ does
