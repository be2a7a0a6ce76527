"""The narrow queue-manager interface the rest of the library uses.

Two implementations: the embedded queue manager (``ams.mq.embedded``) and the pymqi/ibmmq
adapter (``ams.mq.pymqi_adapter``). Protected queues, the error queue, the proxy and the CLI
use only what is here.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Protocol

import attrs

from ams._frozen_build import builder
from ams.errors import AmsError, UsageError
from ams.mq.mqmd import MQMD
from ams.mqconstants import DEFAULT_MAX_DEPTH, DEFAULT_MAX_MESSAGE_LENGTH, MQRC_NO_MSG_AVAILABLE, reason_name

# What to do next, for the reasons an AMS set-up meets first
REASON_ADVICE: dict[int, str] = {
    2010: "the message is longer than the client channel's MaxMsgLength, the lower of the client's (ams asks for "
    "100 MiB; pymqi and ibmmq default to 4 MiB) and the SVRCONN channel's MAXMSGL (4 MiB by default): ALTER "
    "CHANNEL(...) CHLTYPE(SVRCONN) MAXMSGL(...), and the queue manager's MAXMSGL",
    2018: "the connection was closed: open a new one",
    2030: "the message is longer than the queue's MAXMSGL: ALTER QLOCAL(...) MAXMSGL(...), remembering that "
    "protection adds the signer's certificate, a signature and a key block per recipient",
    2035: "the connecting user lacks an authority on this object: grant it with setmqaut (the README's "
    "'Authorities' lists what ams needs, including +put on SYSTEM.PROTECTION.ERROR.QUEUE)",
    2042: "another reader holds the queue exclusively (NOSHARE, or DEFSOPT(EXCL) opened as queue default): "
    "close it, or ALTER QLOCAL(...) SHARE",
    2053: "the queue is full (MAXDEPTH): drain it or raise MAXDEPTH",
    2058: "no queue manager by that name: check it (mq://host(port)/QMGR, or an embedded queue manager's file, "
    "which `ams qm create FILE` makes)",
    2059: "the queue manager is not reachable: check the host, port and channel, and that it is running",
    2085: "the queue is not defined: DEFINE QLOCAL on IBM MQ, `ams qm define` on the embedded queue manager",
}


class MQError(AmsError):
    """A queue-manager call failed; ``reason`` is the MQ reason code (its name is in the text, and
    what to do next where the reason says it)."""

    code = "mq"

    def __init__(self, message: str, reason: int) -> None:
        advice = REASON_ADVICE.get(reason)
        super().__init__(f"{message} [reason {reason_name(reason)}]" + (f": {advice}" if advice else ""))
        self.reason = reason


class NoMessageAvailable(MQError):
    """MQRC 2033: the queue is empty (or nothing arrived within the wait)."""

    code = "no_message"

    def __init__(self, queue: str, waited: float, selecting: str = "") -> None:
        wanted = f" with {selecting}" if selecting else ""
        super().__init__(f"no message{wanted} on {queue} (waited {waited:g} s)", MQRC_NO_MSG_AVAILABLE)


@attrs.frozen
class QueueAttributes:
    """The attributes of a local queue that this library relies on, as DEFINE QLOCAL names them.

    ``backout_threshold`` is BOTHRESH (0: none), ``backout_queue`` BOQNAME, ``propctl`` PROPCTL
    (how properties reach a get that does not ask for them in an MQRFH2), ``default_persistent``
    DEFPSIST, ``default_priority`` DEFPRTY, ``max_message_length`` MAXMSGL, ``shared_by_default``
    DEFSOPT(SHARED) (EXCL otherwise), ``shareable`` SHARE (NOSHARE otherwise), ``max_depth``
    MAXDEPTH (5,000 by default, as in MQ), and ``put_inhibited`` / ``get_inhibited`` PUT(DISABLED)
    and GET(DISABLED).
    """

    backout_threshold: int = 0
    backout_queue: str = ""
    propctl: str = "COMPAT"
    default_persistent: bool = False
    default_priority: int = 0
    max_message_length: int = DEFAULT_MAX_MESSAGE_LENGTH
    shared_by_default: bool = True
    shareable: bool = True
    max_depth: int = DEFAULT_MAX_DEPTH
    put_inhibited: bool = False
    get_inhibited: bool = False


@attrs.frozen
class BackoutSettings:
    """A queue's poison-message settings: BOTHRESH (0: no threshold) and BOQNAME (blank: none)."""

    threshold: int
    queue: str


MQ_ID_LENGTH = 24  # MQBYTE24: MsgId, CorrelId
WAIT_UNLIMITED = math.inf  # ``wait=WAIT_UNLIMITED``: MQWI_UNLIMITED, wait until a message comes


def padded_id(value: bytes, what: str) -> bytes:
    """A MsgId or CorrelId as MQ holds it: padded with nulls to 24 bytes (MQBYTE24); longer is refused."""
    if len(value) > MQ_ID_LENGTH:
        raise UsageError(f"a {what} is at most {MQ_ID_LENGTH} bytes (found {len(value)}: {value.hex()})")
    return bytes(value).ljust(MQ_ID_LENGTH, b"\0")


def _selector(value: bytes | None, what: str) -> bytes | None:
    """A MsgId or CorrelId to match, padded; None for all nulls (MQMI_NONE / MQCI_NONE match any
    message, as on MQGET)."""
    if value is None:
        return None
    padded = padded_id(value, what)
    return padded if any(padded) else None


@attrs.frozen
class Match:
    """Which message a get or browse selects (MQGMO MatchOptions): by MsgId and/or CorrelId; None
    for either matches any (as MQMI_NONE and MQCI_NONE do)."""

    msg_id: bytes | None = None
    correl_id: bytes | None = None

    @classmethod
    def of(cls, msg_id: bytes | None = None, correl_id: bytes | None = None) -> Match:
        """The match for these identifiers, padded to 24 bytes; all nulls is None (any)."""
        return cls(_selector(msg_id, "MsgId"), _selector(correl_id, "CorrelId"))

    def __str__(self) -> str:
        parts = [
            f"MsgId {self.msg_id.hex()}" if self.msg_id else "",
            f"CorrelId {self.correl_id.hex()}" if self.correl_id else "",
        ]
        return " and ".join(part for part in parts if part) or "any message"


ANY = Match()


@attrs.frozen(weakref_slot=False)  # no __weakref__ slot: new_message (ams/_frozen_build.py) needs that layout
class Message:
    """A message as got from a queue: its descriptor and its body."""

    md: MQMD
    body: bytes


new_message = builder(Message, (MQMD(), b""))  # Message(md, body) at less cost: the queue manager's get


class QueueHandle(Protocol):
    """An open queue. Opened for output (put), input (get) and/or browse."""

    name: str

    def put(self, md: MQMD, body: bytes, *, syncpoint: bool = False) -> MQMD:
        """Put a message; returns the descriptor as the queue manager completed it."""
        ...

    def get(
        self,
        *,
        wait: float = 0.0,
        syncpoint: bool = False,
        msg_id: bytes | None = None,
        correl_id: bytes | None = None,
    ) -> Message:
        """Destructive get (the first message with ``msg_id`` and ``correl_id``, each if given and not
        all nulls); NoMessageAvailable after ``wait`` s (``WAIT_UNLIMITED``: for ever)."""
        ...

    def browse_first(self, *, msg_id: bytes | None = None, correl_id: bytes | None = None) -> Message:
        """Browse the first message (the first with ``msg_id`` and ``correl_id``, if given), leaving it
        on the queue; NoMessageAvailable when there is none."""
        ...

    def browse_next(self, *, msg_id: bytes | None = None, correl_id: bytes | None = None) -> Message:
        """Browse the message after the last one browsed (the next with ``msg_id`` and ``correl_id``,
        if given); NoMessageAvailable at the end."""
        ...

    def close(self) -> None:
        """Close the queue (MQCLOSE)."""
        ...


class QueueManager(Protocol):
    """A connection to a queue manager; units of work are per connection."""

    name: str

    def open(self, queue: str, *, output: bool = False, input: bool = False, browse: bool = False) -> QueueHandle:
        """Open ``queue`` for put (``output``), get (``input``) and/or ``browse`` (MQOPEN)."""
        ...

    def put1(
        self, queue: str, md: MQMD, body: bytes, *, syncpoint: bool = False, set_all_context: bool = False
    ) -> MQMD:
        """Open, put one message and close (MQPUT1). With ``set_all_context`` (MQPMO_SET_ALL_CONTEXT)
        the MQMD's put application, date, time and user are kept as given; that needs the
        setall authority, MQRC 2035 without it."""
        ...

    def commit(self) -> None:
        """Commit the connection's unit of work (MQCMIT)."""
        ...

    def backout(self) -> None:
        """Back out the connection's unit of work (MQBACK): got messages return, put ones vanish."""
        ...

    def depth(self, queue: str) -> int:
        """MQINQ CURDEPTH of a local queue: messages on it, counting uncommitted puts and not
        uncommitted gets (MQRC 2068 on an alias, as on MQ: not an existence check)."""
        ...

    def backout_settings(self, queue: str) -> BackoutSettings:
        """The local queue's BOTHRESH and BOQNAME (MQINQ; MQRC 2068 on an alias, 2035 without +inq)."""
        ...

    def max_uncommitted(self) -> int:
        """MQINQ MaxUncommittedMsgs (MAXUMSGS): messages a unit of work may get and put (2024 beyond)."""
        ...

    def resolve(self, queue: str) -> str:
        """The queue an alias names (MQINQ MQCA_BASE_Q_NAME); the name itself for a local queue."""
        ...

    def close(self) -> None:
        """Back out any uncommitted work, then disconnect: MQDISC alone would commit it."""
        ...


@contextlib.contextmanager
def unit_of_work(qm: QueueManager) -> Iterator[QueueManager]:
    """Commit what the block did under syncpoint, or back it all out if it raised."""
    try:
        yield qm
    except BaseException:
        qm.backout()
        raise
    qm.commit()
