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
  ``__del__`` does;
* connection handles as MQ hands them out: ``pymqi.connect`` passes MQCNO_NONE, so a second
  connect on a thread is MQCC_WARNING 2002 with the *same* Hconn, which pymqi stores in the new
  object before raising, and that orphan's ``__del__`` disconnects (committing the first
  connection's unit of work); a non-shared handle used from another thread is MQRC 2018; after
  ``disconnect`` pymqi's handle is None, so MQCMIT, MQBACK and MQPUT1 raise TypeError and queue
  calls PYIFError("not connected");
* the client channel's MaxMsgLength is the lower of the MQCD's (4 MiB, pymqi's default) and the
  SVRCONN's MAXMSGL (``CHANNEL_MAX_MESSAGE_LENGTH``): MQRC 2010 on a longer put or get.

Sources: dsuch/pymqi 1.12.11 code/pymqi/__init__.py (QueueManager.__init__, __del__,
connect_with_options, disconnect, commit, backout; Queue.get; connect) and the
avoid_mqrc_already_connected examples; IBM MQ docs on MQCONNX handle sharing and reason codes
2002, 2010, 2018.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

from ams.mq.embedded import EmbeddedConnection, EmbeddedQueue, EmbeddedQueueManager
from ams.mq.mqmd import MQMD
from ams.mq.transport import Match, Message, MQError, NoMessageAvailable
from ams.mqconstants import DEFAULT_MAX_MESSAGE_LENGTH, MQRC_DATA_LENGTH_ERROR

MANAGERS: dict[str, EmbeddedQueueManager] = {}
CHANNEL_MAX_MESSAGE_LENGTH = DEFAULT_MAX_MESSAGE_LENGTH  # the SVRCONN channel's MAXMSGL (4 MiB by default)
CALLS: list[tuple[str, dict[str, Any]]] = []  # what the adapter asked for, for the tests to read

CMQXC = SimpleNamespace(MQCHT_CLNTCONN=6, MQXPT_TCP=2)
CMQC = SimpleNamespace(
    MQCNO_NONE=0,
    MQCNO_HANDLE_SHARE_NONE=0x20,
    MQCNO_HANDLE_SHARE_BLOCK=0x40,
    MQCNO_HANDLE_SHARE_NO_BLOCK=0x80,
    MQCNO_CLIENT_BINDING=0x800,
    MQCNO_RECONNECT=0x01000000,
    MQCNO_RECONNECT_DISABLED=0x02000000,
    MQRC_ALREADY_CONNECTED=2002,
    MQRC_HCONN_ERROR=2018,
    MQRC_ANOTHER_Q_MGR_CONNECTED=2103,
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
    MQPMO_SET_ALL_CONTEXT=0x800,
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
    MQIA_MAX_UNCOMMITTED_MSGS=33,
    MQCA_BACKOUT_REQ_Q_NAME=2019,
    MQCA_BASE_Q_NAME=2002,
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


class CD:
    """pymqi's MQCD, the fields a client connection sets; MaxMsgLength 4 MiB as pymqi's default."""

    def __init__(self) -> None:
        self.ChannelName, self.ConnectionName = b"", b""
        self.ChannelType, self.TransportType, self.MaxMsgLength = CMQXC.MQCHT_CLNTCONN, CMQXC.MQXPT_TCP, 4 * 1024 * 1024


class PMO:
    def __init__(self, Options: int = 0) -> None:
        self.Options = Options


def _text(value: bytes) -> str:
    # MQ reads a name field up to its first null character (both libraries pad with nulls: '48s')
    return value.decode().split("\0")[0].rstrip(" ")


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
        # the context fields: read by the queue manager only with MQPMO_SET_ALL_CONTEXT
        put_appl_type=raw.PutApplType,
        put_appl_name=_text(raw.PutApplName),
        put_date=_text(raw.PutDate),
        put_time=_text(raw.PutTime),
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


class _Hconn:
    """A connection handle as the MQI hands it out (IBM MQ docs, MQCONNX "Shared (thread independent)
    connections", reason codes 2002, 2018). Without MQCNO_HANDLE_SHARE_* it belongs to the thread
    that connected: another thread's call is MQRC 2018, and a second MQCONN(X) on that thread is
    MQCC_WARNING 2002 returning this same handle. With MQCNO_HANDLE_SHARE_BLOCK any thread may use
    it, one call at a time. MQDISC (which commits) ends it for every object holding it: 2018 after."""

    def __init__(self, qmgr: str, connection: EmbeddedConnection, shared: bool, max_length: int) -> None:
        self.qmgr, self.connection, self.shared, self.max_length = qmgr, connection, shared, max_length
        self.thread = threading.current_thread()
        self.lock = threading.Lock()
        self.ended = False

    @contextlib.contextmanager
    def use(self) -> Iterator[EmbeddedConnection]:
        """The connection for one MQI call; the stand-in's MQError as the MQMIError MQ would raise."""
        if self.ended or self.connection.closed or (not self.shared and threading.current_thread() is not self.thread):
            raise MQMIError(CMQC.MQCC_FAILED, CMQC.MQRC_HCONN_ERROR)
        with self.lock:
            try:
                yield self.connection
            except MQError as error:
                raise _failed(error) from None

    def disconnect(self) -> None:
        """MQDISC: commits what is uncommitted, and ends the handle."""
        with self.use() as connection:
            connection.disconnect()
        self.ended = True
        with _THREADS_LOCK:
            if _THREAD_CONNECTIONS.get(self.thread) is self:
                del _THREAD_CONNECTIONS[self.thread]


_THREAD_CONNECTIONS: dict[threading.Thread, _Hconn] = {}  # each thread's non-shared connection
_THREADS_LOCK = threading.Lock()


def forget_connections() -> None:
    """Forget every thread's non-shared connection (between tests: each test has its own queue manager)."""
    with _THREADS_LOCK:
        _THREAD_CONNECTIONS.clear()


def _mqconnx(name: str, options: int, cd: CD) -> tuple[_Hconn | None, int, int]:
    """MQCONNX: (Hconn, completion code, reason), as pymqe.MQCONNX returns them."""
    if name not in MANAGERS:
        return None, CMQC.MQCC_FAILED, 2059  # MQRC_Q_MGR_NOT_AVAILABLE
    shared = bool(options & (CMQC.MQCNO_HANDLE_SHARE_BLOCK | CMQC.MQCNO_HANDLE_SHARE_NO_BLOCK))
    me = threading.current_thread()
    with _THREADS_LOCK:
        mine = _THREAD_CONNECTIONS.get(me)
        if not shared and mine is not None and not mine.ended and not mine.connection.closed:
            if mine.qmgr == name:
                return mine, CMQC.MQCC_WARNING, CMQC.MQRC_ALREADY_CONNECTED  # the same Hconn
            return None, CMQC.MQCC_FAILED, CMQC.MQRC_ANOTHER_Q_MGR_CONNECTED
        # the channel's MaxMsgLength is the lower of the client's MQCD and the SVRCONN's MAXMSGL
        length = min(cd.MaxMsgLength, CHANNEL_MAX_MESSAGE_LENGTH)
        hconn = _Hconn(name, MANAGERS[name].connect(os.environ.get("MQAPPLNAME", "python")), shared, length)
        if not shared:
            _THREAD_CONNECTIONS[me] = hconn
    return hconn, CMQC.MQCC_OK, 0


class QueueManager:
    """pymqi.QueueManager (dsuch/pymqi 1.12.11, code/pymqi/__init__.py), call by call where it matters:

    * ``connect_with_options`` stores the Hconn whenever the completion code is at most
      MQCC_WARNING and then raises for any non-zero one: a second MQCNO_NONE connect on a thread
      leaves an object holding the thread's Hconn (2002), which the caller never sees;
    * ``__del__`` disconnects while it holds a handle and ``disconnect_on_exit`` (the default)
      is set: MQDISC of that shared Hconn, which commits the first connection's unit of work;
    * after ``disconnect`` the handle is None: ``commit``, ``backout`` and ``put1`` pass None to
      pymqe and raise TypeError; ``disconnect`` and every Queue call (``getHandle``) raise
      PYIFError("not connected").
    """

    def __init__(self, name: str | None = "", disconnect_on_exit: bool = True, **_: Any) -> None:
        self.__handle: _Hconn | None = None
        self.disconnect_on_exit = disconnect_on_exit
        if name is not None:
            self.connect_with_options(name)  # MQCONN: MQCNO_NONE

    def connect_with_options(self, name: str, *args: Any, **kwargs: Any) -> None:
        user, password = kwargs.get("user"), kwargs.get("password")
        if user and password is None:
            raise ValueError("Password must not be None if user is provided")  # what pymqi and ibmmq do
        options, cd = int(kwargs.get("opts", CMQC.MQCNO_NONE)), kwargs.get("cd") or CD()
        CALLS.append(
            (
                "connect",
                {
                    "intercept": os.environ.get("MQS_DISABLE_ALL_INTERCEPT"),
                    "appl": os.environ.get("MQAPPLNAME"),
                    "channel": cd.ChannelName.decode(),
                    "conn_info": cd.ConnectionName.decode(),
                    "options": options,
                    "max_msg_length": cd.MaxMsgLength,
                    "disconnect_on_exit": self.disconnect_on_exit,
                },
            )
        )
        hconn, comp, reason = _mqconnx(name, options, cd)
        if comp <= CMQC.MQCC_WARNING:
            self.__handle = hconn
        if comp:
            raise MQMIError(comp, reason)

    def connect_tcp_client(
        self, name: str, cd: CD, channel: str, conn_name: str, user: Any = None, password: Any = None
    ) -> None:
        cd.ChannelName, cd.ConnectionName = channel.encode(), conn_name.encode()
        cd.ChannelType, cd.TransportType = CMQXC.MQCHT_CLNTCONN, CMQXC.MQXPT_TCP
        self.connect_with_options(name, user=user, password=password, cd=cd)  # pymqi: MQCNO_NONE

    def get_handle(self) -> _Hconn:
        if not self.__handle:
            raise PYIFError("not connected")
        return self.__handle

    def _pymqe_handle(self) -> _Hconn:
        """What pymqe.MQCMIT(self.__handle) and the like do with a None handle: TypeError."""
        if self.__handle is None:
            raise TypeError("'NoneType' object cannot be interpreted as an integer")
        return self.__handle

    def put1(self, queue: str, message: bytes, md: MD, pmo: PMO) -> None:
        hconn = self._pymqe_handle()
        _check_channel(hconn, message)
        with hconn.use() as connection:
            syncpoint = bool(pmo.Options & CMQC.MQPMO_SYNCPOINT)
            every = bool(pmo.Options & CMQC.MQPMO_SET_ALL_CONTEXT)
            done = connection.put1(queue, _to_mqmd(md), message, syncpoint=syncpoint, set_all_context=every)
        _warn_after_put(md)
        _fill(md, done)

    def inquire(self, attribute: int) -> int:
        """MQINQ on the queue manager object: MaxUncommittedMsgs only."""
        assert attribute == CMQC.MQIA_MAX_UNCOMMITTED_MSGS
        with self._pymqe_handle().use() as connection:
            return connection.max_uncommitted()

    def commit(self) -> None:
        with self._pymqe_handle().use() as connection:
            connection.commit()

    def backout(self) -> None:
        with self._pymqe_handle().use() as connection:
            connection.backout()

    def disconnect(self) -> None:
        if not self.__handle:
            raise PYIFError("not connected")
        self.__handle.disconnect()  # MQDISC: commits what is uncommitted
        self.__handle = None

    def __del__(self) -> None:
        # pymqi's QueueManager.__del__: MQDISC while it holds a handle, which commits
        if self.__handle and self.disconnect_on_exit:
            with contextlib.suppress(Exception):
                self.disconnect()


class Queue:
    def __init__(self, qmgr: QueueManager, name: str, options: int) -> None:
        self.qmgr, self.name = qmgr, name
        exclusive = True if options & CMQC.MQOO_INPUT_EXCLUSIVE else False if options & CMQC.MQOO_INPUT_SHARED else None
        reads = bool(options & (CMQC.MQOO_INPUT_AS_Q_DEF | CMQC.MQOO_INPUT_SHARED | CMQC.MQOO_INPUT_EXCLUSIVE))
        CALLS.append(("open", {"queue": name, "options": options}))
        self.handle: EmbeddedQueue | None = None
        with qmgr.get_handle().use() as connection:
            if options & ~(CMQC.MQOO_INQUIRE | CMQC.MQOO_FAIL_IF_QUIESCING):
                self.handle = connection.open(
                    name,
                    output=bool(options & CMQC.MQOO_OUTPUT),
                    input=reads,
                    browse=bool(options & CMQC.MQOO_BROWSE),
                    exclusive=exclusive,
                )
            else:
                connection.resolve(name)  # MQOPEN for inquire: the queue must exist

    def _open(self) -> EmbeddedQueue:
        assert self.handle is not None
        return self.handle

    def put(self, message: bytes, md: MD, pmo: PMO) -> None:
        hconn = self.qmgr.get_handle()
        _check_channel(hconn, message)
        with hconn.use():
            done = self._open().put(_to_mqmd(md), message, syncpoint=bool(pmo.Options & CMQC.MQPMO_SYNCPOINT))
        _warn_after_put(md)
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
        hconn = self.qmgr.get_handle()
        with hconn.use():
            message = self._next(md, gmo, take=False)
            _check_channel(hconn, message.body)  # longer than the channel allows: 2010, the message stays
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

    def inquire(self, attribute: int) -> int | bytes:
        with self.qmgr.get_handle().use() as connection:
            if attribute == CMQC.MQIA_BACKOUT_THRESHOLD:
                return connection.backout_settings(self.name).threshold
            if attribute == CMQC.MQCA_BACKOUT_REQ_Q_NAME:
                return connection.backout_settings(self.name).queue.encode().ljust(48)  # MQCA values: blank padded
            if attribute == CMQC.MQCA_BASE_Q_NAME:
                return connection.base_queue(self.name).encode().ljust(48)
            assert attribute == CMQC.MQIA_CURRENT_Q_DEPTH
            return connection.depth(self.name)

    def close(self) -> None:
        with self.qmgr.get_handle().use():
            if self.handle is not None:
                self.handle.close()


def _warn_after_put(md: MD) -> None:
    """A Priority above MaxPriority (9): the message is put, MQCC_WARNING 2049, and pymqi raises
    MQMIError for it before unpacking the MQMD (Queue.put, QueueManager.put1: ``if rv[-2]: raise``),
    so the caller never sees the MsgId the queue manager gave it."""
    if md.Priority > 9:
        raise MQMIError(CMQC.MQCC_WARNING, 2049)  # MQRC_PRIORITY_EXCEEDS_MAXIMUM


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


def _check_channel(hconn: _Hconn, message: bytes) -> None:
    """The client channel's MaxMsgLength (the lower of the MQCD's, 4 MiB by default, and the
    SVRCONN's MAXMSGL): MQRC 2010 beyond it, on a put and on the get of a longer message."""
    if len(message) > hconn.max_length:
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
    queue_manager: str,
    channel: str | None = None,
    conn_info: str | None = None,
    user: Any = None,
    password: Any = None,
    disconnect_on_exit: bool = True,
    **_: Any,
) -> QueueManager:
    """pymqi.connect: a QueueManager connected with MQCNO_NONE (pymqi 1.12.11 passes no options)."""
    qmgr = QueueManager(None, disconnect_on_exit)
    qmgr.connect_tcp_client(queue_manager, CD(), channel or "", conn_info or "", user, password)
    return qmgr
