"""IBM MQ through pymqi or IBM's ``ibmmq`` 2.x (the same API): the optional extra.

Imported lazily, only by ``ams.mq.connect`` for ``mq://`` targets and by the tests that run when
``AMS_TEST_MQ`` names a real queue manager. Nothing else in the library imports pymqi.

What MQ would do that could lose a message, and what this adapter does instead:

* MQDISC commits uncommitted work: :meth:`PymqiConnection.close` backs out first.
* A queue's PROPCTL can strip the MQRFH2 of an AMS message on a plain get: every get and browse
  asks for MQGMO_PROPERTIES_FORCE_MQRFH2.
* MQOO_INPUT_AS_Q_DEF follows the queue's DEFSOPT: queues are opened MQOO_INPUT_SHARED, so
  several readers (proxy workers) can share a queue.
* pymqi re-gets a message longer than its first buffer with the MQMD it was given, so another
  reader can slip in between: this adapter gives a buffer, and after MQRC 2080 gets the same
  message again by its MsgId (GMO version 2: below it MatchOptions is not read, and MQ matches
  whatever MsgId and CorrelId the MQMD holds).
* An IBM MQ client from 7.5 on protects messages itself when the queue manager has AMS
  policies: connections made here set MQS_DISABLE_ALL_INTERCEPT, so a message is not
  protected twice.
* pymqi connects with MQCNO_NONE: a second connect on a thread is 2002 with the same handle, and
  the orphaned object disconnects it (committing) when collected. Connections here share their
  handle (MQCNO_HANDLE_SHARE_BLOCK), never reconnect behind the application
  (MQCNO_RECONNECT_DISABLED), and are never disconnected by the library (``disconnect_on_exit``
  False): a dropped one is backed out, then disconnected, here.
* Every failure, commit, backout, close and inquire included, is an ``MQError`` with the reason
  code and its name; the library's own (a ``TypeError`` or ``PYIFError`` once pymqi's handle is
  None) is 2018. A put that completes with MQCC_WARNING (2049) was put: it is not an error.
* BOTHRESH on an alias is 2068: :meth:`PymqiConnection.resolve` finds the base queue
  (MQCA_BASE_Q_NAME); MaxUncommittedMsgs is inquired, for the proxy's batches.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
import os
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, TypeVar

import attrs

from ams.errors import UsageError
from ams.mq.mqmd import MQMD
from ams.mq.transport import ANY, BackoutSettings, Match, Message, MQError, NoMessageAvailable
from ams.mqconstants import (
    DEFAULT_MAX_UNCOMMITTED,
    MQ_MAX_PRIORITY,
    MQRC_HCONN_ERROR,
    MQRC_NO_MSG_AVAILABLE,
    MQRC_NOT_AUTHORIZED,
    MQRC_SELECTOR_NOT_FOR_TYPE,
    MQRC_TRUNCATED_MSG_FAILED,
    reason_name,
)

_T = TypeVar("_T")
log = logging.getLogger(__name__)
CLIENT_MAX_MESSAGE_LENGTH = 100 * 1024 * 1024  # MQ's largest; the SVRCONN's MAXMSGL then decides
FIRST_BUFFER = 64 * 1024  # most messages fit; a longer one costs one more MQGET, by MsgId
_MAX_TRUNCATION_RETRIES = 8
# MQBACK failing with these means the connection is gone, and with it the unit of work
_CONNECTION_GONE = frozenset({2009, 2018, 2059, 2161, 2162, 2202})


def _client() -> ModuleType:
    for name in ("ibmmq", "pymqi"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise UsageError(
        "connecting to IBM MQ needs the MQ client library: pip install 'ams[mq]' (pymqi or ibmmq, with the IBM MQ "
        "client installed), or use an embedded queue manager file instead of mq://..."
    )


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace").rstrip(" \x00") if isinstance(value, bytes) else str(value).rstrip()


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


def _gone(what: str, error: Exception) -> MQError:
    """A failure of the client library itself, not an MQI reason: pymqi's handle is None after a
    disconnect, so MQCMIT, MQBACK and MQPUT1 raise TypeError and queue calls PYIFError("not
    connected"). For this connection all of them mean one thing: it is gone (MQRC 2018)."""
    return MQError(f"{what} failed: {type(error).__name__}: {error}", MQRC_HCONN_ERROR)


# what the client library raises besides MQMIError (its own Error, and TypeError from a None handle)
_LIBRARY_FAILURES = (TypeError, ValueError, AttributeError)


class _Calls:
    """Runs client calls, turning every failure of the client into MQError: an MQI failure with its
    reason code, the library's own (PYIFError, a TypeError from a disconnected handle) as 2018."""

    def __init__(self, mq: ModuleType) -> None:
        self.mq = mq

    def __call__(self, what: str, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except self.mq.MQMIError as error:
            raise MQError(f"{what} failed: {error}", _reason(error)) from None
        except (self.mq.Error, *_LIBRARY_FAILURES) as error:
            raise _gone(what, error) from None

    def put(self, what: str, md: MQMD, call: Callable[[Any], object]) -> MQMD:
        """MQPUT or MQPUT1 of ``md``; the MQMD as completed. MQCC_WARNING (2049: a Priority above 9,
        queued at 9) means the message *was* put: both libraries raise MQMIError for it, before
        reading the MQMD back, and a caller's retry would put it twice. So it is a success here,
        logged, and a MsgId the queue manager would make is made here first, so that it is known."""
        if md.priority > MQ_MAX_PRIORITY and not any(md.msg_id):
            md = attrs.evolve(md, msg_id=b"AMS " + os.urandom(20))  # as unique as the queue manager's
        raw = _to_md(self.mq, md)
        try:
            call(raw)
        except self.mq.MQMIError as error:
            if int(getattr(error, "comp", 0) or 0) != self.mq.CMQC.MQCC_WARNING:
                raise MQError(f"{what} failed: {error}", _reason(error)) from None
            log.warning("%s completed with a warning, the message put: %s", what, reason_name(_reason(error)))
            return md
        except (self.mq.Error, *_LIBRARY_FAILURES) as error:
            raise _gone(what, error) from None
        return _from_md(raw)


class PymqiQueue:
    """An open queue of a client connection."""

    def __init__(self, connection: PymqiConnection, name: str, queue: Any) -> None:
        self.connection = connection
        self.name = name
        self._queue = queue

    def put(self, md: MQMD, body: bytes, *, syncpoint: bool = False) -> MQMD:
        """MQPUT; the MQMD comes back as the queue manager completed it."""
        cmqc = self.connection.mq.CMQC
        options = (cmqc.MQPMO_SYNCPOINT if syncpoint else cmqc.MQPMO_NO_SYNCPOINT) | cmqc.MQPMO_FAIL_IF_QUIESCING
        pmo = self.connection.mq.PMO(Options=options)
        return self.connection.calls.put(f"MQPUT to {self.name}", md, lambda raw: self._queue.put(body, raw, pmo))

    def get(
        self,
        *,
        wait: float = 0.0,
        syncpoint: bool = False,
        msg_id: bytes | None = None,
        correl_id: bytes | None = None,
    ) -> Message:
        """MQGET (matching ``msg_id`` and ``correl_id``, if given); NoMessageAvailable (2033) when
        nothing arrived within ``wait`` seconds (``WAIT_UNLIMITED``: MQWI_UNLIMITED)."""
        cmqc = self.connection.mq.CMQC
        options = cmqc.MQGMO_SYNCPOINT if syncpoint else cmqc.MQGMO_NO_SYNCPOINT
        return self._get(options, wait, Match.of(msg_id, correl_id))

    def browse_first(self, *, msg_id: bytes | None = None, correl_id: bytes | None = None) -> Message:
        """MQGET with MQGMO_BROWSE_FIRST (matching ``msg_id`` and ``correl_id``, if given)."""
        return self._get(self.connection.mq.CMQC.MQGMO_BROWSE_FIRST, 0, Match.of(msg_id, correl_id))

    def browse_next(self, *, msg_id: bytes | None = None, correl_id: bytes | None = None) -> Message:
        """MQGET with MQGMO_BROWSE_NEXT (the next matching ``msg_id`` and ``correl_id``, if given)."""
        return self._get(self.connection.mq.CMQC.MQGMO_BROWSE_NEXT, 0, Match.of(msg_id, correl_id))

    def _get(self, options: int, wait: float, match: Match) -> Message:
        length, wanted = FIRST_BUFFER, match
        for _ in range(_MAX_TRUNCATION_RETRIES):
            try:
                return self._get_once(options, wait, wanted, length)
            except _Truncated as truncated:
                # the message is still there, and longer: get that one again, by its MsgId
                length, wanted = truncated.length, attrs.evolve(match, msg_id=truncated.msg_id)
            except NoMessageAvailable:
                if wanted == match:
                    raise
                length, wanted = FIRST_BUFFER, match  # another reader took it: the next one, then
        raise MQError(f"MQGET from {self.name}: messages kept changing under the retries", MQRC_TRUNCATED_MSG_FAILED)

    def _gmo(self, options: int, wait: float, match: Match) -> Any:
        mq = self.connection.mq
        cmqc = mq.CMQC
        gmo = mq.GMO(Options=options | cmqc.MQGMO_FAIL_IF_QUIESCING | cmqc.MQGMO_PROPERTIES_FORCE_MQRFH2)
        gmo.Version = cmqc.MQGMO_VERSION_2  # MatchOptions are ignored below version 2
        gmo.MatchOptions = (cmqc.MQMO_MATCH_MSG_ID if match.msg_id is not None else cmqc.MQMO_NONE) | (
            cmqc.MQMO_MATCH_CORREL_ID if match.correl_id is not None else cmqc.MQMO_NONE
        )
        if wait > 0:
            gmo.Options |= cmqc.MQGMO_WAIT
            gmo.WaitInterval = cmqc.MQWI_UNLIMITED if math.isinf(wait) else int(wait * 1000)
        return gmo

    def _get_once(self, options: int, wait: float, match: Match, length: int) -> Message:
        mq = self.connection.mq
        gmo = self._gmo(options, wait, match)
        raw = mq.MD()
        if match.msg_id is not None:
            raw.MsgId = match.msg_id
        if match.correl_id is not None:
            raw.CorrelId = match.correl_id
        try:
            body = self._queue.get(length, raw, gmo)
        except mq.MQMIError as error:
            reason = _reason(error)
            if reason == MQRC_NO_MSG_AVAILABLE:
                raise NoMessageAvailable(self.name, wait, "" if match == ANY else str(match)) from None
            original = int(getattr(error, "original_length", 0) or 0)
            if reason == MQRC_TRUNCATED_MSG_FAILED and original > length:
                raise _Truncated(original, bytes(raw.MsgId)) from None
            raise MQError(f"MQGET from {self.name} failed: {error}", reason) from None
        except (mq.Error, *_LIBRARY_FAILURES) as error:
            raise _gone(f"MQGET from {self.name}", error) from None
        return Message(_from_md(raw), bytes(body))

    def close(self) -> None:
        """MQCLOSE."""
        self.connection.calls(f"MQCLOSE {self.name}", self._queue.close)


class _Truncated(Exception):
    """MQRC 2080: the message is longer than the buffer; it stays on the queue."""

    def __init__(self, length: int, msg_id: bytes) -> None:
        super().__init__(length)
        self.length = length
        self.msg_id = msg_id


class PymqiConnection:
    """A client connection to IBM MQ with the narrow interface of ``ams.mq.transport``."""

    def __init__(self, mq: ModuleType, qmgr: Any, name: str) -> None:
        self.mq = mq
        self._qmgr = qmgr
        self.name = name
        self.calls = _Calls(mq)
        self._closed = False

    def open(self, queue: str, *, output: bool = False, input: bool = False, browse: bool = False) -> PymqiQueue:
        """MQOPEN; input is always shared (MQOO_INPUT_SHARED), so several readers can share a queue."""
        cmqc = self.mq.CMQC
        options = cmqc.MQOO_FAIL_IF_QUIESCING
        options |= cmqc.MQOO_OUTPUT if output else 0
        options |= cmqc.MQOO_INPUT_SHARED if input else 0
        options |= cmqc.MQOO_BROWSE if browse else 0
        handle = self.calls(f"MQOPEN {queue}", lambda: self.mq.Queue(self._qmgr, queue, options))
        return PymqiQueue(self, queue, handle)

    def put1(
        self, queue: str, md: MQMD, body: bytes, *, syncpoint: bool = False, set_all_context: bool = False
    ) -> MQMD:
        """MQPUT1 (with MQPMO_SET_ALL_CONTEXT when ``set_all_context``: the MQMD's context is kept)."""
        cmqc = self.mq.CMQC
        options = (cmqc.MQPMO_SYNCPOINT if syncpoint else cmqc.MQPMO_NO_SYNCPOINT) | cmqc.MQPMO_FAIL_IF_QUIESCING
        if set_all_context:  # the context fields are read from the MQMD only with this option
            options |= cmqc.MQPMO_SET_ALL_CONTEXT
        pmo = self.mq.PMO(Options=options)

        def put1(raw: Any) -> None:
            if set_all_context:
                raw.PutApplType, raw.PutApplName = md.put_appl_type, md.put_appl_name.encode()
                raw.PutDate, raw.PutTime = md.put_date.encode(), md.put_time.encode()
                raw.UserIdentifier = md.user_identifier.encode()
            self._qmgr.put1(queue, body, raw, pmo)

        return self.calls.put(f"MQPUT1 to {queue}", md, put1)

    def commit(self) -> None:
        """MQCMIT."""
        self.calls("MQCMIT", self._qmgr.commit)

    def backout(self) -> None:
        """MQBACK."""
        self.calls("MQBACK", self._qmgr.backout)

    def _inquire(self, queue: str, *selectors: int) -> list[Any]:
        cmqc = self.mq.CMQC
        handle = self.calls(f"MQOPEN {queue} to inquire", lambda: self.mq.Queue(self._qmgr, queue, cmqc.MQOO_INQUIRE))
        try:
            return [self.calls(f"MQINQ {queue}", _inquiry(handle, selector)) for selector in selectors]
        finally:
            with contextlib.suppress(MQError):
                self.calls(f"MQCLOSE {queue}", handle.close)

    def depth(self, queue: str) -> int:
        """MQINQ CURDEPTH."""
        (depth,) = self._inquire(queue, self.mq.CMQC.MQIA_CURRENT_Q_DEPTH)
        return int(depth)

    def backout_settings(self, queue: str) -> BackoutSettings:
        """MQINQ BOTHRESH and BOQNAME."""
        cmqc = self.mq.CMQC
        threshold, backout_queue = self._inquire(queue, cmqc.MQIA_BACKOUT_THRESHOLD, cmqc.MQCA_BACKOUT_REQ_Q_NAME)
        return BackoutSettings(int(threshold), _text(backout_queue))

    def max_uncommitted(self) -> int:
        """MQINQ MaxUncommittedMsgs of the queue manager (MQ's default, 10,000, when it cannot be
        inquired: no +inq on the queue manager), so that batches never reach 2024."""
        selector = self.mq.CMQC.MQIA_MAX_UNCOMMITTED_MSGS
        try:
            return int(self.calls("MQINQ MaxUncommittedMsgs", lambda: self._qmgr.inquire(selector)))
        except MQError as error:
            if error.reason != MQRC_NOT_AUTHORIZED:
                raise
            log.warning("cannot inquire %s's MaxUncommittedMsgs (%s): assuming 10,000", self.name, error.message)
            return DEFAULT_MAX_UNCOMMITTED

    def resolve(self, queue: str) -> str:
        """MQINQ MQCA_BASE_Q_NAME: the queue an alias names; the name itself for any other queue
        (MQ answers 2068, MQRC_SELECTOR_NOT_FOR_TYPE, there)."""
        try:
            (base,) = self._inquire(queue, self.mq.CMQC.MQCA_BASE_Q_NAME)
        except MQError as error:
            if error.reason == MQRC_SELECTOR_NOT_FOR_TYPE:
                return queue
            raise
        return _text(base) or queue

    def close(self) -> None:
        """Back out, then disconnect: MQDISC on its own would commit uncommitted work. Closing a
        closed connection does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            self.backout()
        except MQError as error:
            if error.reason not in _CONNECTION_GONE:
                # alive, but MQBACK failed: MQDISC now would commit. Leave the connection to end with
                # the process (the queue manager then backs the work out) and say so.
                self._abandon()
                error.add_note("the connection was left open, not disconnected: MQDISC would have committed")
                raise
        with contextlib.suppress(MQError):
            self.calls("MQDISC", self._qmgr.disconnect)

    def _abandon(self) -> None:
        """Keep the client library from disconnecting (and so committing) when it is collected."""
        for name in ("_QueueManager__handle",):  # pymqi's QueueManager.__del__ disconnects while this is set
            if hasattr(self._qmgr, name):
                setattr(self._qmgr, name, None)

    def __del__(self) -> None:
        # dropped without close: back out, then disconnect (the library's own __del__ no longer does,
        # with disconnect_on_exit=False; MQDISC without the backout would commit). If the backout
        # fails the connection is left to end with the process, which backs the work out.
        if not getattr(self, "_closed", True):
            self._closed = True
            with contextlib.suppress(Exception):
                self._qmgr.backout()
                self._qmgr.disconnect()


def _inquiry(handle: Any, selector: int) -> Callable[[], Any]:
    return lambda: handle.inquire(selector)


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Environment variables the MQ client reads at MQCONN, set for the connect and then restored."""
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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
    """A client connection to ``qmgr`` at ``host(port)`` over ``channel``, with IBM's client-side AMS off."""
    if (user is None) != (password is None):
        raise UsageError("IBM MQ credentials need both a user and a password (AMS_MQ_USER and AMS_MQ_PASSWORD)")
    mq = _client()
    # MQ 9.1.2 and later take the application name (PutApplName, DISPLAY CONN) from MQAPPLNAME at connect;
    # MQS_DISABLE_ALL_INTERCEPT keeps the C client's own AMS from protecting messages a second time
    with _environment(MQAPPLNAME=appl_name[:28], MQS_DISABLE_ALL_INTERCEPT="TRUE"):
        manager = _connect(mq, qmgr, host, port, channel, user, password)
    return PymqiConnection(mq, manager, qmgr)


def _connect(
    mq: ModuleType, qmgr: str, host: str, port: int, channel: str, user: str | None, password: str | None
) -> Any:
    """MQCONNX with the options pymqi.connect leaves out (it passes MQCNO_NONE):

    * MQCNO_HANDLE_SHARE_BLOCK: a handle of its own, usable from any thread. Without it a second
      connect on a thread (a route between two queue managers, the CLI) is MQCC_WARNING 2002 with
      the thread's existing Hconn, which pymqi keeps in an orphan object whose ``__del__`` MQDISCs
      it, committing the first connection's unit of work (a message got under syncpoint is gone);
    * MQCNO_RECONNECT_DISABLED: a broken connection is 2009 at once, never silently reconnected
      under a DefRecon setting (work in flight would surface later as 2003 or 2549 on commit);
    * ``disconnect_on_exit=False``: the library's ``__del__`` never MQDISCs (which commits); this
      adapter backs out and disconnects itself;
    * MaxMsgLength 100 MiB on the client side, so that the SVRCONN channel's MAXMSGL decides (the
      lower of the two applies; both default to 4 MiB).
    """
    cmqc, cmqxc = mq.CMQC, getattr(mq, "CMQXC", mq.CMQC)
    cd = mq.CD()
    cd.ChannelName, cd.ConnectionName = channel.encode(), f"{host}({port})".encode()
    cd.ChannelType, cd.TransportType = cmqxc.MQCHT_CLNTCONN, cmqxc.MQXPT_TCP
    cd.MaxMsgLength = CLIENT_MAX_MESSAGE_LENGTH
    options = cmqc.MQCNO_CLIENT_BINDING | cmqc.MQCNO_HANDLE_SHARE_BLOCK | cmqc.MQCNO_RECONNECT_DISABLED
    where = f"{qmgr} at {host}({port}) on {channel}"
    manager = _Calls(mq)(f"connecting to {where}", lambda: mq.QueueManager(None, False))
    credentials = {"user": user, "password": password} if user is not None else {}
    _Calls(mq)(f"connecting to {where}", lambda: manager.connect_with_options(qmgr, cd=cd, opts=options, **credentials))
    return manager
