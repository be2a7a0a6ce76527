"""A stand-in for IBM's ``ibmmq`` package (2.x), over the same embedded queue manager as
tests/fake_pymqi.py, whose state (MANAGERS, CALLS, the threads' connections) it shares.

``ibmmq`` began as a fork of pymqi and keeps its API; it differs where this matters:

* ``QueueManager.connect_with_options`` adds MQCNO_HANDLE_SHARE_BLOCK itself unless the options
  already name a handle-sharing option, so a plain connect never meets pymqi's 2002 (the same
  Hconn on a second connect on a thread) nor 2018 from another thread;
* ``connect_tcp_client`` passes MQCNO_CLIENT_BINDING (pymqi: MQCNO_NONE);
* ``MD`` is a version-2 MQMD: GroupId, MsgSeqNumber, Offset, MsgFlags and OriginalLength are there.
  (Issue 18 said ibmmq drops them: in the source read, only the MQMD inside an MQXQH does, which
  ``mqxqh.py`` shortens to version 1 on purpose);
* ``GMO`` is version 4 by default, with MatchOptions MsgId + CorrelId;
* ``QueueManager.__del__`` disconnects (MQDISC, which commits) only while it holds a handle and
  ``disconnect_on_exit`` is set, as pymqi's; with it unset a dropped connection stays connected,
  its unit of work open, until the process ends;
* every non-zero reason from MQPUT, MQGET or MQINQ raises MQMIError, warnings included, and MQCA
  values come back as blank-padded bytes (``mqinq.common_inq``).

Source: ibm-messaging/mq-mqi-python, commit e35541a: code/ibmmq/mqqmgr.py (QueueManager.__init__,
__del__, connect_with_options, connect_tcp_client, disconnect, commit, backout; connect),
mqmd.py, mqgmo.py, mqqueue.py (Queue.put, Queue.get), mqinq.py, mqxqh.py.
"""

from __future__ import annotations

from typing import Any

from tests import fake_pymqi as _pymqi
from tests.fake_pymqi import (
    CALLS,
    CD,
    CMQC,
    CMQXC,
    MANAGERS,
    PMO,
    Error,
    MQMIError,
    PYIFError,
    Queue,
    forget_connections,
)

__all__ = [
    "CALLS", "CD", "CMQC", "CMQXC", "GMO", "MANAGERS", "MD", "PMO", "Error", "MQMIError", "PYIFError", "Queue",
    "QueueManager", "connect", "forget_connections",
]  # fmt: skip

_SHARING = CMQC.MQCNO_HANDLE_SHARE_BLOCK | CMQC.MQCNO_HANDLE_SHARE_NO_BLOCK


class MD(_pymqi.MD):
    """ibmmq's MQMD: version 2, with the message-group fields (mqmd.py)."""

    def __init__(self) -> None:
        super().__init__()
        self.Version = 2
        self.GroupId, self.MsgSeqNumber, self.Offset, self.MsgFlags, self.OriginalLength = bytes(24), 1, 0, 0, -1


class GMO(_pymqi.GMO):
    """ibmmq's MQGMO: version 4 by default (mqgmo.py)."""

    def __init__(self, Options: int = 0) -> None:
        super().__init__(Options)
        self.Version = 4


class QueueManager(_pymqi.QueueManager):
    """ibmmq.QueueManager: pymqi's, except the handle sharing it adds, the client binding, and
    ``QueueManager(name)``: MQCONN without options (a handle of the thread's own), which raises on
    2002 before it stores the handle, so no orphan holds it (mqqmgr.py ``connect``)."""

    def __init__(self, name: str | None = "", disconnect_on_exit: bool = True, **_: Any) -> None:
        super().__init__(None, disconnect_on_exit)
        if name is not None:
            self.connect(name)

    def connect(self, name: str) -> None:
        hconn, comp, reason = _pymqi._mqconnx(name, CMQC.MQCNO_NONE, CD())
        if comp:
            raise MQMIError(comp, reason)
        self.__handle = hconn

    def connect_with_options(self, name: str, *args: Any, **kwargs: Any) -> None:
        options = int(kwargs.get("opts", CMQC.MQCNO_NONE))
        if not options & _SHARING:  # mqqmgr.py: "Set the most useful handle sharing option automatically"
            options |= CMQC.MQCNO_HANDLE_SHARE_BLOCK
        super().connect_with_options(name, *args, **{**kwargs, "opts": options})

    def connect_tcp_client(
        self, name: str, cd: CD, channel: str, conn_name: str, user: Any = None, password: Any = None, **_: Any
    ) -> None:
        cd.ChannelName, cd.ConnectionName = channel.encode(), conn_name.encode()
        cd.ChannelType, cd.TransportType = CMQXC.MQCHT_CLNTCONN, CMQXC.MQXPT_TCP
        self.connect_with_options(name, user=user, password=password, cd=cd, opts=CMQC.MQCNO_CLIENT_BINDING)


def connect(
    queue_manager: str,
    channel: str | None = None,
    conn_info: str | None = None,
    user: Any = None,
    password: Any = None,
    disconnect_on_exit: bool = True,
    **_: Any,
) -> QueueManager:
    """ibmmq.connect: a QueueManager connected as a client, its handle shared (MQCNO_HANDLE_SHARE_BLOCK)."""
    qmgr = QueueManager(None, disconnect_on_exit)
    qmgr.connect_tcp_client(queue_manager, CD(), channel or "", conn_info or "", user, password)
    return qmgr
