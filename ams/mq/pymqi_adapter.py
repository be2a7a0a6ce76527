"""IBM MQ through pymqi (or IBM's ``ibmmq`` package, which keeps pymqi's API): the optional extra.

Imported lazily, only by ``ams.mq.connect`` for ``mq://`` targets and by the tests that run when
``AMS_TEST_MQ`` names a real queue manager. Nothing else in the library imports pymqi.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

from ams.errors import UsageError
from ams.mq.mqmd import MQMD
from ams.mq.transport import BackoutSettings, Message, MQError, NoMessageAvailable


def _client() -> ModuleType:
    for name in ("ibmmq", "pymqi"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise UsageError(
        "connecting to IBM MQ needs the MQ client library: pip install 'ams[mq]' (pymqi, with the IBM MQ "
        "client installed), or use an embedded queue manager file instead of mq://..."
    )


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace").rstrip(" \x00") if isinstance(value, bytes) else str(value)


def _to_md(mq: ModuleType, md: MQMD) -> Any:
    out = mq.MD()
    out.Format = md.format.ljust(8).encode()
    out.Encoding = md.encoding
    out.CodedCharSetId = md.ccsid
    out.Persistence = md.persistence
    out.MsgType = md.msg_type
    out.Priority = md.priority
    out.Expiry = md.expiry
    out.MsgId = md.msg_id
    out.CorrelId = md.correl_id
    out.ReplyToQ = md.reply_to_q.encode()
    out.ReplyToQMgr = md.reply_to_qmgr.encode()
    return out


def _from_md(raw: Any) -> MQMD:
    return MQMD(
        format=_text(raw.Format).ljust(8),
        encoding=raw.Encoding,
        ccsid=raw.CodedCharSetId,
        persistence=raw.Persistence,
        msg_type=raw.MsgType,
        priority=raw.Priority,
        expiry=raw.Expiry,
        msg_id=bytes(raw.MsgId),
        correl_id=bytes(raw.CorrelId),
        backout_count=raw.BackoutCount,
        reply_to_q=_text(raw.ReplyToQ),
        reply_to_qmgr=_text(raw.ReplyToQMgr),
        user_identifier=_text(raw.UserIdentifier),
        put_appl_type=raw.PutApplType,
        put_appl_name=_text(raw.PutApplName),
        put_date=_text(raw.PutDate),
        put_time=_text(raw.PutTime),
    )


def _reason(error: Any) -> int:
    return int(getattr(error, "reason", 0) or 0)


class PymqiQueue:
    """An open IBM MQ queue with the narrow interface of ``ams.mq.transport.QueueHandle``."""

    def __init__(self, connection: PymqiConnection, name: str, queue: Any) -> None:
        self.connection = connection
        self.name = name
        self._queue = queue
        self._browse_started = False

    def put(self, md: MQMD, body: bytes, *, syncpoint: bool = False) -> MQMD:
        """MQPUT; returns the descriptor as the queue manager completed it. MQError with MQ's reason on failure."""
        mq = self.connection.mq
        pmo = mq.PMO(Options=(mq.CMQC.MQPMO_SYNCPOINT if syncpoint else mq.CMQC.MQPMO_NO_SYNCPOINT))
        raw = _to_md(mq, md)
        try:
            self._queue.put(body, raw, pmo)
        except mq.MQMIError as error:
            raise MQError(f"MQPUT to {self.name} failed: {error}", _reason(error)) from None
        return _from_md(raw)

    def _get(self, options: int, wait: float, msg_id: bytes | None = None) -> Message:
        mq = self.connection.mq
        gmo = mq.GMO(Options=options | mq.CMQC.MQGMO_FAIL_IF_QUIESCING)
        gmo.MatchOptions = mq.CMQC.MQMO_MATCH_MSG_ID if msg_id is not None else mq.CMQC.MQMO_NONE
        if wait > 0:
            gmo.Options |= mq.CMQC.MQGMO_WAIT
            gmo.WaitInterval = int(wait * 1000)
        raw = mq.MD()
        if msg_id is not None:
            raw.MsgId = msg_id
        try:
            body = self._queue.get(None, raw, gmo)
        except mq.MQMIError as error:
            if _reason(error) == mq.CMQC.MQRC_NO_MSG_AVAILABLE:
                raise NoMessageAvailable(self.name, wait) from None
            raise MQError(f"MQGET from {self.name} failed: {error}", _reason(error)) from None
        return Message(_from_md(raw), bytes(body))

    def get(self, *, wait: float = 0.0, syncpoint: bool = False, msg_id: bytes | None = None) -> Message:
        """MQGET (the message with ``msg_id``, if given); NoMessageAvailable (2033) after ``wait`` s."""
        cmqc = self.connection.mq.CMQC
        return self._get(cmqc.MQGMO_SYNCPOINT if syncpoint else cmqc.MQGMO_NO_SYNCPOINT, wait, msg_id)

    def browse_first(self) -> Message:
        """MQGET with MQGMO_BROWSE_FIRST, no wait; NoMessageAvailable when the queue is empty."""
        return self._get(self.connection.mq.CMQC.MQGMO_BROWSE_FIRST, 0)

    def browse_next(self) -> Message:
        """MQGET with MQGMO_BROWSE_NEXT, no wait; NoMessageAvailable at the end."""
        return self._get(self.connection.mq.CMQC.MQGMO_BROWSE_NEXT, 0)

    def close(self) -> None:
        """MQCLOSE."""
        self._queue.close()


class PymqiConnection:
    """A client connection to IBM MQ with the narrow interface of ``ams.mq.transport``."""

    def __init__(self, mq: ModuleType, qmgr: Any, name: str) -> None:
        self.mq = mq
        self._qmgr = qmgr
        self.name = name

    def open(self, queue: str, *, output: bool = False, input: bool = False, browse: bool = False) -> PymqiQueue:
        """MQOPEN for put (``output``), get as the queue defines (``input``) and/or ``browse``; MQError on failure."""
        cmqc = self.mq.CMQC
        options = cmqc.MQOO_FAIL_IF_QUIESCING
        options |= cmqc.MQOO_OUTPUT if output else 0
        options |= cmqc.MQOO_INPUT_AS_Q_DEF if input else 0
        options |= cmqc.MQOO_BROWSE if browse else 0
        try:
            return PymqiQueue(self, queue, self.mq.Queue(self._qmgr, queue, options))
        except self.mq.MQMIError as error:
            raise MQError(f"MQOPEN {queue} failed: {error}", _reason(error)) from None

    def put1(self, queue: str, md: MQMD, body: bytes, *, syncpoint: bool = False) -> MQMD:
        """MQPUT1; returns the descriptor as completed. MQError with MQ's reason on failure."""
        cmqc = self.mq.CMQC
        raw = _to_md(self.mq, md)
        pmo = self.mq.PMO(Options=cmqc.MQPMO_SYNCPOINT if syncpoint else cmqc.MQPMO_NO_SYNCPOINT)
        try:
            self._qmgr.put1(queue, body, raw, pmo)
        except self.mq.MQMIError as error:
            raise MQError(f"MQPUT1 to {queue} failed: {error}", _reason(error)) from None
        return _from_md(raw)

    def commit(self) -> None:
        """MQCMIT."""
        self._qmgr.commit()

    def backout(self) -> None:
        """MQBACK."""
        self._qmgr.backout()

    def depth(self, queue: str) -> int:
        """MQINQ CURDEPTH of ``queue``."""
        handle = self.mq.Queue(self._qmgr, queue, self.mq.CMQC.MQOO_INQUIRE)
        try:
            return int(handle.inquire(self.mq.CMQC.MQIA_CURRENT_Q_DEPTH))
        finally:
            handle.close()

    def backout_settings(self, queue: str) -> BackoutSettings:
        """MQINQ BOTHRESH and BOQNAME of ``queue``; MQError on failure."""
        cmqc = self.mq.CMQC
        try:
            handle = self.mq.Queue(self._qmgr, queue, cmqc.MQOO_INQUIRE | cmqc.MQOO_FAIL_IF_QUIESCING)
            try:
                threshold = int(handle.inquire(cmqc.MQIA_BACKOUT_THRESHOLD))
                backout_queue = _text(handle.inquire(cmqc.MQCA_BACKOUT_REQ_Q_NAME))
            finally:
                handle.close()
        except self.mq.MQMIError as error:
            raise MQError(f"MQINQ BOTHRESH/BOQNAME of {queue} failed: {error}", _reason(error)) from None
        return BackoutSettings(threshold, backout_queue)

    def resolve(self, queue: str) -> str:
        """``queue`` itself: over a client connection the queue manager resolves aliases when a queue is opened."""
        return queue

    def close(self) -> None:
        """MQDISC."""
        self._qmgr.disconnect()


def connect_client(
    qmgr: str,
    *,
    host: str,
    port: int,
    channel: str,
    appl_name: str = "ams",
    user: str | None = None,
    password: str | None = None,
) -> PymqiConnection:
    """A client connection to queue manager ``qmgr`` at ``host(port)`` on ``channel`` (MQCONNX).

    ``appl_name`` becomes the connection's application name (MQAPPLNAME). UsageError when no MQ
    client library is installed, MQError with MQ's reason when the connection fails.
    """
    mq = _client()
    # MQ 9.1.2 and later take the application name (PutApplName, DISPLAY CONN) from MQAPPLNAME at connect
    previous = os.environ.get("MQAPPLNAME")
    os.environ["MQAPPLNAME"] = appl_name[:28]
    try:
        manager = mq.connect(qmgr, channel, f"{host}({port})", user, password)
    except mq.MQMIError as error:
        raise MQError(f"cannot connect to {qmgr} at {host}({port}) on {channel}: {error}", _reason(error)) from None
    finally:
        if previous is None:
            os.environ.pop("MQAPPLNAME", None)
        else:
            os.environ["MQAPPLNAME"] = previous
    return PymqiConnection(mq, manager, qmgr)
