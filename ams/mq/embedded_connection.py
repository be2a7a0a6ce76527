"""A connection to the embedded queue manager: its queues (resolution, MQOPEN, MQINQ) and its
messages (MQPUT, MQPUT1, MQGET, browse, expiry), over the unit of work of
ams/mq/embedded_unit_of_work.py.

Separate from ams/mq/embedded.py, which holds the queue manager (the file, its definitions,
restart and recovery).
"""

from __future__ import annotations

import math
import sqlite3
import time
import uuid
from typing import TYPE_CHECKING

import attrs

from ams.mq.embedded_kept import KEPT_BYTES, KEPT_COLUMNS, KEPT_ROWS
from ams.mq.embedded_md import md_from_bytes, md_from_json, md_to_bytes, random_tail
from ams.mq.embedded_queue import EmbeddedQueue
from ams.mq.embedded_schema import (
    _DEPTH,
    _DISCARD_EXPIRED,
    _MESSAGE,
    _ORDER,
    _SOONEST_EXPIRY,
    GOT_PENDING,
    INLINE_BODY_BYTES,
    PUT_PENDING,
    VISIBLE,
    _attributes_from_json,
    _matching,
)
from ams.mq.embedded_shape import shape_version
from ams.mq.embedded_sqlite import _mq_errors
from ams.mq.embedded_unit_of_work import UnitOfWork
from ams.mq.mqmd import MQMD, md_with, new_md
from ams.mq.properties import deliver
from ams.mq.rfh2_render import rerender
from ams.mq.transport import (
    ANY,
    MQ_ID_LENGTH,
    BackoutSettings,
    Match,
    Message,
    MQError,
    NoMessageAvailable,
    QueueAttributes,
    new_message,
    padded_id,
)
from ams.mqconstants import (
    MQ_MAX_PRIORITY,
    MQEI_UNLIMITED,
    MQPER_PERSISTENCE_AS_Q_DEF,
    MQPER_PERSISTENT,
    MQPRI_PRIORITY_AS_Q_DEF,
    MQRC_EXPIRY_ERROR,
    MQRC_GET_INHIBITED,
    MQRC_MSG_TOO_BIG_FOR_Q,
    MQRC_NOT_AUTHORIZED,
    MQRC_OBJECT_IN_USE,
    MQRC_OPTIONS_ERROR,
    MQRC_PRIORITY_ERROR,
    MQRC_PUT_INHIBITED,
    MQRC_Q_FULL,
    MQRC_SELECTOR_NOT_FOR_TYPE,
    MQRC_UNEXPECTED_ERROR,
    MQRC_UNKNOWN_OBJECT_NAME,
)

if TYPE_CHECKING:
    from ams.mq.embedded import EmbeddedQueueManager

_POLL_SECONDS = 0.02  # how often a get waiting for a message looks again
# the statements of every put and get, as constants (sqlite3 caches a prepared statement by its text)
# the put's row (its MAXDEPTH checked by a SELECT before: an INSERT ... SELECT ... WHERE depth < MAXDEPTH cost
# 17 µs against 9 for both, the trigger that wrote the depths in formats 3-7 making SQLite materialise the SELECT)
_INSERT = (
    "INSERT INTO messages (queue, md, body, state, owner, backouts, priority, persistent, expires, msg_id, "
    "correl_id) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)"
)
# the row of a put kept visible in the transaction held, with no expiry and no CorrelId (a proxy's, a batch's):
# NULLs written in the statement, not bound: sqlite3 sends each None parameter through its adapter protocol
# (half a microsecond each, as a bytes one: the MQMD, a body kept in the row and the MsgId are passed as
# bytearrays, which it binds as they are)
_INSERT_PLAIN = (
    "INSERT INTO messages (queue, md, body, state, owner, backouts, priority, persistent, expires, msg_id, "
    f"correl_id) VALUES (?, ?, ?, {VISIBLE}, NULL, 0, ?, ?, NULL, ?, NULL)"
)
_INSERT_BODY = "INSERT INTO bodies (id, body) VALUES (?, ?)"
_TAKE = f"UPDATE messages SET state = {GOT_PENDING}, owner = ? WHERE id = ?"
_DELETE = "DELETE FROM messages WHERE id = ?"
_NEXT: dict[tuple[str, str], str] = {}
_NO_ID = bytes(MQ_ID_LENGTH)  # MQMI_NONE, MQCI_NONE
_NO_BODY = b""  # the row's body when the bodies table holds it


def _next_message(index: str, where: str) -> str:
    """The statement that finds the message a get returns (one text per way of matching). Taking it
    is a second statement: one UPDATE ... RETURNING that found and took it cost 2 µs more than both."""
    statement = _NEXT.get((index, where))
    if statement is None:
        statement = _NEXT[index, where] = (
            _MESSAGE.format(KEPT_COLUMNS, index)
            + f" WHERE m.queue = ? AND m.state = {VISIBLE} AND m.id < ?"
            + where
            + " AND (m.expires IS NULL OR m.expires >= ?)"
            + _ORDER
            + " LIMIT 1"
        )
    return statement


_CLOCK = (-1, "", "")  # the second last stamped: its PutDate and PutTime's hours, minutes and seconds
_HUNDREDTHS = tuple(f"{hundredth:02d}" for hundredth in range(100))  # PutTime's last two digits


def _put_date_time() -> tuple[str, str]:
    """PutDate and PutTime (UTC, to the hundredth of a second), as MQMD.stamped gives them, the
    calendar work done once a second."""
    global _CLOCK
    hundredths = int(time.time() * 100)
    second = hundredths // 100
    clock = _CLOCK
    if second != clock[0]:
        day = time.gmtime(second)
        clock = _CLOCK = (
            second,
            f"{day.tm_year:04d}{day.tm_mon:02d}{day.tm_mday:02d}",
            f"{day.tm_hour:02d}{day.tm_min:02d}{day.tm_sec:02d}",
        )
    return clock[1], clock[2] + _HUNDREDTHS[hundredths - second * 100]


def _check_md(queue: str, md: MQMD) -> None:
    """What MQPUT refuses in an MQMD: Expiry 0 or below -1 (MQRC 2013: MQEI_UNLIMITED or tenths of a
    second), Priority below -1 (2050). A Priority above 9 is accepted and queued at 9, the MQMD
    keeping the value given (MQ completes that put with MQCC_WARNING 2049)."""
    if md.expiry == 0 or md.expiry < MQEI_UNLIMITED:
        raise MQError(
            f"MQPUT to {queue}: Expiry {md.expiry} is not a time (expected -1, MQEI_UNLIMITED, or tenths of a second "
            "above 0)",
            MQRC_EXPIRY_ERROR,
        )
    if md.priority < MQPRI_PRIORITY_AS_Q_DEF:
        raise MQError(
            f"MQPUT to {queue}: Priority {md.priority} (expected -1, as queue default, or 0-9)", MQRC_PRIORITY_ERROR
        )


def _kind(value: object) -> str:
    """What a damaged row's column holds, named by its type (a number's value too), never its text:
    the file's bytes are not echoed into an error."""
    return repr(value) if isinstance(value, float) else type(value).__name__


def _decoded(row: tuple[object, ...]) -> tuple[MQMD, bytes]:
    """The MQMD and body of a message row (id, stored MQMD, body, backouts, expiry time, and any
    columns after them); a damaged stored MQMD is MQRC 2195 (ams/mq/embedded_md.py)."""
    md_text, body, backouts, expires = row[1], row[2], row[3], row[4]
    if not (
        isinstance(body, bytes)
        and isinstance(backouts, int)
        and (expires is None or (isinstance(expires, float) and math.isfinite(expires)))
    ):  # never stored so by this library: a TypeError, ValueError or OverflowError below (an int body: zero bytes)
        raise MQError(
            f"message row {row[0]} is damaged: its body, backout count or expiry time is not of its type (found "
            f"{type(body).__name__}, {type(backouts).__name__}, {_kind(expires)}); restore the queue manager's file "
            "from a backup, or remove the message's row",
            MQRC_UNEXPECTED_ERROR,
        )
    left = None if expires is None else max(1, int((expires - time.time()) * 10))
    if isinstance(md_text, bytes):
        md = md_from_bytes(md_text, backouts, left)
    else:  # a row of format 6 or earlier, put by an earlier release while this one migrated the file
        md = md_from_json(str(md_text), backouts)
        md = md if left is None else md_with(md, expiry=left)
    return md, body


@attrs.frozen
class _Resolved:
    local: str
    attributes: QueueAttributes
    denied: frozenset[str]
    first: QueueAttributes  # the first definition on the resolution path: DEFPSIST and DEFPRTY come from it


# a put's MQMD as its row holds it, then the values the put used: persistence, priority, MsgId, CorrelId,
# PutApplName, PutDate, PutTime: a plain tuple, unpacked once (a NamedTuple's __new__, a Python call, and its fields
# read through properties cost 3 % of a get+put)
_Stored = tuple[bytearray, int, int, bytes, bytes, str, str, str]


def _put_result(md: MQMD, msg_id: bytes, correl_id: bytes, appl: str, date: str, hour: str) -> MQMD:
    """The MQMD as MQPUT leaves it: ``md`` with the MsgId, CorrelId and context the put stored, a
    BackoutCount of 0; Persistence and Priority are input fields, left "as queue default" (the
    message itself carries the values used, which a get returns). As md_with(md, ...) would, in
    a straight line, MQMD's fields by position (embedded_md.POSITIONAL: a put's per-message cost)."""
    return new_md(
        md.format,
        md.encoding,
        md.ccsid,
        md.persistence,
        md.msg_type,
        md.priority,
        md.expiry,
        msg_id,
        correl_id,
        0,
        md.reply_to_q,
        md.reply_to_qmgr,
        md.user_identifier,
        md.put_appl_type,
        appl,
        date,
        hour,
    )


@_mq_errors
class EmbeddedConnection(UnitOfWork):
    """One connection: its own unit of work, like an MQ connection handle."""

    def __init__(self, manager: EmbeddedQueueManager, db: sqlite3.Connection, appl_name: str) -> None:
        self._resolved: dict[str, _Resolved] = {}  # queues resolved, while the file's shape counter is
        self._resolved_at: int | None = None
        self._no_expiry: set[str] = set()  # queues with no message that expires, while the count of expiring puts is
        self._no_expiry_at: int | None = None
        # by queue, in the transaction held since _depths_in: its depth as last read, and this connection's puts since
        self._depths: dict[str, tuple[int, int]] = {}
        self._depths_in: float | None = None
        super().__init__(manager, db, appl_name)

    def _discard_expired(
        self, local: str, match: Match, found: tuple[int, int] | None, after: tuple[int, int] | None = None
    ) -> None:
        """Discard the expired messages a get or browse passed over: those matching it ahead of the
        message ``found`` (its priority and row id; None: all it would have returned), after the
        browse cursor ``after``. MQ discards an expired message only "when a browse or non-browse
        MQGET would have returned it" (IBM MQ docs, message expiry): until then it counts towards
        CURDEPTH and MAXDEPTH, and a put meets 2053 earlier than the live messages explain.

        A queue found with no message that expires at all is not looked at again while nobody put
        one that expires (the file's count of them, ams/mq/embedded_shape.py, read as this connection
        took the writer, which it holds now: only its own puts move it meanwhile, and they say so)."""
        if self._no_expiry_at != self._expiring or self._expiring is None:
            self._no_expiry.clear()
            self._no_expiry_at = self._expiring
        if local in self._no_expiry:
            return
        now = time.time()
        (soonest,) = self._db.execute(_SOONEST_EXPIRY, (local,)).fetchone()
        if soonest is None:
            self._no_expiry.add(local)
        # nothing to discard (a read on the expiry index costs less than a DELETE finding nothing); an expiry that is
        # not a number (a damaged row: text or bytes sort above every number) is the get's 2195 (_decoded)
        if soonest.__class__ is not float or soonest >= now:
            return
        _, where, wanted = _matching(match)
        arguments: tuple[object, ...] = (local, now, VISIBLE, self._below_own_puts(), *wanted)
        if found is not None:
            where += " AND (m.priority > ? OR (m.priority = ? AND m.id < ?))"
            arguments += (found[0], found[0], found[1])
        if after is not None:
            where += " AND (m.priority < ? OR (m.priority = ? AND m.id > ?))"
            arguments += (after[0], after[0], after[1])
        gone = self._db.execute(_DISCARD_EXPIRED.format(where), arguments).rowcount
        self._depth_changes[local] = self._depth_changes.get(local, 0) - gone

    # -- queues -------------------------------------------------------------------------------

    def _lookup(self, queue: str) -> _Resolved:
        """The queue's resolution, read again only when the definitions changed since (the file's
        shape counter, ams/mq/embedded_shape.py, raised by every change of a queue; none changes while
        we hold the writer)."""
        version = self._shape if self._held is not None else shape_version(self._db)
        if version != self._resolved_at or version is None:
            self._resolved.clear()
            self._resolved_at = version
        found = self._resolved.get(queue)
        if found is None:
            found = self._resolved[queue] = self._resolve(queue)
        return found

    def _resolve(self, queue: str) -> _Resolved:
        seen = set()
        name = queue
        first = QueueAttributes()
        while True:
            row = self._db.execute("SELECT target, attributes, denied FROM queues WHERE name = ?", (name,)).fetchone()
            if row is None or len(queue) > 48 or not queue:
                raise MQError(f"MQOPEN {queue} on {self.name}: no such queue", MQRC_UNKNOWN_OBJECT_NAME)
            target, text, denied = row
            first = first if name != queue else _attributes_from_json(text)
            if target is None:
                allowed = frozenset(filter(None, (denied or "").split(",")))
                return _Resolved(name, _attributes_from_json(text), allowed, first)
            if name in seen:
                raise MQError(f"alias queue {queue} resolves in a loop", MQRC_UNKNOWN_OBJECT_NAME)
            seen.add(name)
            name = target

    def resolve(self, queue: str) -> str:
        """The local queue ``queue`` names (itself, or an alias's target); MQRC 2085 if undefined."""
        return self._lookup(queue).local

    def attributes(self, queue: str) -> QueueAttributes:
        """The attributes of the local queue ``queue`` resolves to."""
        return self._lookup(queue).attributes

    def open(
        self,
        queue: str,
        *,
        output: bool = False,
        input: bool = False,
        browse: bool = False,
        exclusive: bool | None = False,
    ) -> EmbeddedQueue:
        """MQOPEN. Input is shared (MQOO_INPUT_SHARED) unless ``exclusive`` (None: the queue's DEFSOPT,
        as MQOO_INPUT_AS_Q_DEF); a second exclusive reader, or any reader beside an exclusive one, or
        a second reader of a NOSHARE queue, is MQRC 2042."""
        if not (output or input or browse):
            raise MQError(f"MQOPEN {queue}: ask for output, input or browse", MQRC_OPTIONS_ERROR)
        found = self._lookup(queue)
        for wanted, operation in ((output, "put"), (input, "get"), (browse, "browse")):
            if wanted and operation in found.denied:
                raise MQError(f"MQOPEN {queue} for {operation}: not authorised", MQRC_NOT_AUTHORIZED)
        handle = uuid.uuid4().hex
        if input:
            alone = (not found.attributes.shared_by_default) if exclusive is None else exclusive
            self._register_input(handle, found, alone or not found.attributes.shareable)
        return EmbeddedQueue(self, queue, found.local, handle, output=output, input=input, browse=browse)

    def _register_input(self, handle: str, found: _Resolved, exclusive: bool) -> None:
        with self._lock, self._work():
            rows = self._db.execute("SELECT exclusive FROM opens WHERE queue = ?", (found.local,)).fetchall()
            if rows and (exclusive or any(row[0] for row in rows)):
                raise MQError(f"MQOPEN {found.local} for input: it is open exclusively", MQRC_OBJECT_IN_USE)
            self._db.execute(
                "INSERT INTO opens (handle, queue, owner, exclusive) VALUES (?, ?, ?, ?)",
                (handle, found.local, self._owner, int(exclusive)),
            )
            self._shape = shape_version(self._db)  # raised by our own write, which leaves data_version as it was

    def _unregister(self, handle: str) -> None:
        with self._lock, self._work():
            self._db.execute("DELETE FROM opens WHERE handle = ?", (handle,))
            self._shape = shape_version(self._db)

    def put1(
        self, queue: str, md: MQMD, body: bytes, *, syncpoint: bool = False, set_all_context: bool = False
    ) -> MQMD:
        """MQPUT1: open ``queue`` for output, put one message, close; ``set_all_context`` keeps the
        MQMD's put application, date and time (MQPMO_SET_ALL_CONTEXT: needs the setall authority,
        as setmqaut +setall grants it; MQRC 2035 when denied)."""
        found = self._lookup(queue)
        if "put" in found.denied or (set_all_context and "setall" in found.denied):
            what = "set all context on" if "put" not in found.denied else "MQPUT1 to"
            raise MQError(f"{what} {queue}: not authorised", MQRC_NOT_AUTHORIZED)
        return self._put(found, md, body, syncpoint=syncpoint, set_all_context=set_all_context)

    def _inquire(self, queue: str, selector: str) -> _Resolved:
        """The queue for an MQINQ of a local queue's attribute: MQRC 2035 without +inq, and 2068
        (MQRC_SELECTOR_NOT_FOR_TYPE) on an alias, as MQ answers an inquiry of BOTHRESH, BOQNAME or
        CURDEPTH on a QALIAS (pymqi and ibmmq raise it, though MQ calls it a warning)."""
        row = self._db.execute("SELECT target FROM queues WHERE name = ?", (queue,)).fetchone()
        found = self._lookup(queue)
        if "inq" in found.denied:
            raise MQError(f"MQINQ {selector} of {queue}: not authorised (+inq)", MQRC_NOT_AUTHORIZED)
        if row is not None and row[0] is not None:
            raise MQError(
                f"MQINQ {selector} of {queue}: an alias queue has no {selector} (inquire its base queue, "
                f"MQCA_BASE_Q_NAME)",
                MQRC_SELECTOR_NOT_FOR_TYPE,
            )
        return found

    def backout_settings(self, queue: str) -> BackoutSettings:
        """MQINQ BOTHRESH and BOQNAME of a local queue (2068 on an alias, 2035 without +inq)."""
        attributes = self._inquire(queue, "BOTHRESH").attributes
        return BackoutSettings(attributes.backout_threshold, attributes.backout_queue)

    def base_queue(self, queue: str) -> str:
        """MQINQ MQCA_BASE_Q_NAME of an alias: the queue it names (2068 on a local queue)."""
        row = self._db.execute("SELECT target FROM queues WHERE name = ?", (queue,)).fetchone()
        if "inq" in self._lookup(queue).denied:
            raise MQError(f"MQINQ BASE_Q_NAME of {queue}: not authorised (+inq)", MQRC_NOT_AUTHORIZED)
        if row is None or row[0] is None:
            raise MQError(f"MQINQ BASE_Q_NAME of {queue}: not an alias queue", MQRC_SELECTOR_NOT_FOR_TYPE)
        return str(row[0])

    def depth(self, queue: str) -> int:
        """CURDEPTH: committed and uncommitted puts, not messages got under syncpoint (2068 on an alias)."""
        local = self._inquire(queue, "CURDEPTH").local
        # once the writer's holder (another connection, or this one: what the file says) wrote: its
        # uncommitted puts count
        with self._lock, self._work(end=True):
            row = self._db.execute(_DEPTH, (local,)).fetchone()
            moved = self._depth_changes.get(local, 0)  # by this connection's calls, written as this call ends
        return moved if row is None else int(row[0]) + moved

    # -- messages -----------------------------------------------------------------------------

    def _put(self, found: _Resolved, md: MQMD, body: bytes, *, syncpoint: bool, set_all_context: bool = False) -> MQMD:
        if found.attributes.put_inhibited:
            raise MQError(f"MQPUT to {found.local}: the queue is PUT(DISABLED)", MQRC_PUT_INHIBITED)
        limit = found.attributes.max_message_length
        if len(body) > limit:
            raise MQError(
                f"MQPUT to {found.local}: a message of {len(body):,} bytes is longer than its MAXMSGL ({limit:,})",
                MQRC_MSG_TOO_BIG_FOR_Q,
            )
        # MQ keeps properties, not MQRFH2 bytes: what a get receives is rendered again (ams/mq/rfh2_render.py)
        md, body = rerender(md, body)
        expiry = md.expiry
        if (expiry <= 0 and expiry != MQEI_UNLIMITED) or md.priority < MQPRI_PRIORITY_AS_Q_DEF:  # as _check_md asks
            _check_md(found.local, md)
        data, persistent, priority, msg_id, correl_id, appl, date, hour = self._stamped(found, md, set_all_context)
        expires = None if expiry == MQEI_UNLIMITED else time.time() + expiry / 10
        if syncpoint and self._uncommitted >= self.manager.max_uncommitted:
            self._count_uncommitted(found.local)  # MQRC 2024
        # the call's start and end as _work's with would do them, called here: a put's per-message cost
        with self._lock:
            db, fresh = self._call_begins()
            try:
                read = self._depth_read(found)
                pending = syncpoint and not self._keeping  # else visible until a write before MQCMIT marks it
                priority = min(priority, MQ_MAX_PRIORITY)  # above MaxPriority: queued at it (MQCC_WARNING 2049)
                in_row = 0 < len(body) <= INLINE_BODY_BYTES  # body_in_row's test; else in the bodies table
                row_body = bytearray(body) if in_row else _NO_BODY
                if not pending and expires is None and correl_id == _NO_ID:
                    arguments = (found.local, data, row_body, priority, persistent, bytearray(msg_id))
                    cursor = self._rows.execute(_INSERT_PLAIN, arguments)
                else:
                    values = (found.local, data, row_body, pending, priority, persistent, expires, msg_id, correl_id)
                    cursor = self._insert_row(*values)
                row_id = int(cursor.lastrowid or 0)
                if not in_row:
                    self._insert_body(db, row_id, body)
                changes = self._depth_changes
                changes[found.local] = changes.get(found.local, 0) + 1
                self._depths[found.local] = (read[0], read[1] + 1)
                if expires is not None:
                    self._no_expiry.discard(found.local)
                if pending:  # listed before the call's end, which may write the transaction (and mark a visible one)
                    self._taken[PUT_PENDING].append((row_id, self._owner, PUT_PENDING))
                elif syncpoint:
                    self._visible.append(row_id)
            except BaseException as error:
                self._call_failed(db, fresh, error)
                raise
            self._call_ends(db, fresh, not syncpoint, syncpoint, False, None)
        if syncpoint:
            self._uncommitted += 1
        return _put_result(md, msg_id, correl_id, appl, date, hour)

    def _insert_row(
        self,
        local: str,
        data: bytearray,
        row_body: bytes | bytearray,
        pending: bool,
        priority: int,
        persistent: int,
        expires: float | None,
        msg_id: bytes,
        correl_id: bytes,
    ) -> sqlite3.Cursor:
        """A put's row, put pending (under syncpoint, marked as taken rows are), with an expiry or
        with a CorrelId: what _INSERT_PLAIN leaves out."""
        return self._rows.execute(
            _INSERT,
            (
                local,
                data,
                row_body,
                PUT_PENDING if pending else VISIBLE,
                self._owner if pending else None,
                priority,
                persistent,
                expires,
                msg_id,
                correl_id if correl_id != _NO_ID else None,  # MQCI_NONE: outside its index
            ),
        )

    def _depth_read(self, found: _Resolved) -> tuple[int, int]:
        """MQRC 2053 when ``found`` holds MAXDEPTH messages (expired ones count until a get or browse
        passes over them: MQ's EXPRYINT scan is off by default). Returns the depth read, and the puts
        since, for the put to count itself in.

        The depth is read again only when it could be MAXDEPTH: in one transaction held, nobody else
        writes, and only this connection's puts raise the depth (its gets and expiry lower it; a
        backout, the one call that restores messages, writes the transaction), or a recovery of a
        dead process's gets, after which it is read at each put. So the depth last read in this
        transaction, plus this connection's puts since, bounds it from above."""
        if self._depths_in != self._held or self._recovered:
            self._depths.clear()
            self._depths_in = self._held
        known = self._depths.get(found.local)
        if known is not None and known[0] + known[1] < found.attributes.max_depth:
            return known
        row = self._db.execute(_DEPTH, (found.local,)).fetchone()
        # as the file held it when the transaction was written last, and as this transaction's calls moved it
        depth = (0 if row is None else int(row[0])) + self._depth_changes.get(found.local, 0)
        if depth >= found.attributes.max_depth:
            raise MQError(f"MQPUT to {found.local}: the queue holds {depth:,} messages, its MAXDEPTH", MQRC_Q_FULL)
        return depth, 0

    def _insert_body(self, db: sqlite3.Connection, message: int, body: bytes) -> None:
        """The body of the message row just inserted; failing, the row is deleted again, so that the
        call leaves nothing of itself in a unit of work whose transaction is held (no row without
        its body), and keeps the unit of work's earlier work (what a savepoint per put would do, at
        two statements per put)."""
        try:
            db.execute(_INSERT_BODY, (message, bytes(body)))
        except sqlite3.Error:
            if db.in_transaction:
                try:
                    db.execute(_DELETE, (message,))
                except sqlite3.Error:
                    db.execute("ROLLBACK")  # the unit of work is lost then: the connection breaks
            raise

    def _stamped(self, found: _Resolved, md: MQMD, set_all_context: bool) -> _Stored:
        """The MQMD as stored (ams/mq/embedded_md.py): what MQMD.stamped fills in (the default
        context) or the context given (MQPMO_SET_ALL_CONTEXT), and the persistence and priority used."""
        msg_id, correl_id = md.msg_id, md.correl_id
        if len(msg_id) != MQ_ID_LENGTH or msg_id.__class__ is not bytes:  # not as MQ holds it (every got MQMD's is)
            msg_id = padded_id(msg_id, "MsgId") if any(msg_id) else _NO_ID
        if msg_id == _NO_ID:  # unique across processes, as MQ's
            msg_id = b"AMQ " + self.name.encode()[:12].ljust(12) + random_tail()
        if len(correl_id) != MQ_ID_LENGTH or correl_id.__class__ is not bytes:
            correl_id = padded_id(correl_id, "CorrelId")
        persistent = int(
            found.first.default_persistent
            if md.persistence == MQPER_PERSISTENCE_AS_Q_DEF
            else (md.persistence == MQPER_PERSISTENT)
        )
        if set_all_context:
            appl, date, hour = md.put_appl_name, md.put_date, md.put_time
        else:
            appl, (date, hour) = self.appl_name[:28], _put_date_time()
        priority = found.first.default_priority if md.priority == MQPRI_PRIORITY_AS_Q_DEF else md.priority
        data = md_to_bytes(md, persistent, priority, msg_id, correl_id, appl, date, hour)
        return data, persistent, priority, msg_id, correl_id, appl, date, hour

    def _get(self, local: str, *, wait: float, syncpoint: bool, match: Match, force_rfh2: bool) -> Message:
        deadline = time.monotonic() + wait if wait > 0 else 0.0  # no wait: the first look is the last
        index, where, wanted = ("", "", ()) if match is ANY else _matching(match)
        while True:
            # under syncpoint, kept in the unit of work's transaction; its journal (ams/mq/embedded_journal.py)
            # raises the BackoutCount if this process dies with the message before that transaction is written
            # the call's start and end as _work's with would do them, called here: a get's per-message cost
            with self._lock:
                db, fresh = self._call_begins()
                try:
                    # asked with the writer held, when the queue's definition is known without a read of the file (a
                    # read before it, in a transaction of its own, cost 10-30 µs per unit of work)
                    self._gets_allowed(local)
                    if syncpoint and self._uncommitted >= self.manager.max_uncommitted:
                        self._count_uncommitted(local)  # MQRC 2024
                    if not self._checked:
                        self._recover_dead_journals()
                    row = self._rows.execute(
                        _next_message(index, where), (local, self._below_own_puts(), *wanted, time.time())
                    ).fetchone()
                    # _discard_expired's own first test, asked here: a get's per-message cost
                    if local not in self._no_expiry or self._no_expiry_at != self._expiring or self._expiring is None:
                        self._discard_expired(local, match, None if row is None else (int(row[5]), int(row[0])))
                    if row is not None:
                        # read before the row goes: a damaged MQMD (MQRC 2195) leaves the message on its queue
                        md_data, data, backouts = row[1], row[2], row[3]
                        if (
                            row[4] is None
                            and md_data.__class__ is bytes
                            and data.__class__ is bytes
                            and backouts.__class__ is int
                        ):
                            md = md_from_bytes(md_data, backouts)  # _decoded's common case (no expiry), asked here
                        else:
                            md, data = _decoded(row)
                        if syncpoint:
                            self._take(db, local, row, data)
                        else:
                            self._rows.execute(_DELETE, (row[0],))
                            self._depth_changes[local] = self._depth_changes.get(local, 0) - 1
                except BaseException as error:
                    self._call_failed(db, fresh, error)
                    raise
                self._call_ends(db, fresh, not syncpoint, syncpoint, False, local)
            if row is not None:
                if syncpoint:
                    self._uncommitted += 1
                return new_message(md, data) if force_rfh2 else self._delivered(local, md, data, force_rfh2)
            if time.monotonic() >= deadline:
                raise NoMessageAvailable(local, wait, "" if match == ANY else str(match))
            self.release_writer(wait=True)  # another process may be about to put the message
            time.sleep(min(_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
            if self._lookup(local).attributes.get_inhibited:  # a waiting MQGET ends with 2016, not 2033
                raise MQError(
                    f"MQGET from {local}: the queue was made GET(DISABLED) during the wait", MQRC_GET_INHIBITED
                )

    def _gets_allowed(self, local: str) -> None:
        """MQRC 2016 when ``local`` is GET(DISABLED)."""
        if self._lookup(local).attributes.get_inhibited:
            raise MQError(f"MQGET from {local}: the queue is GET(DISABLED)", MQRC_GET_INHIBITED)

    def _take(self, db: sqlite3.Connection, local: str, row: tuple[object, ...], body: bytes) -> None:
        """A get under syncpoint takes message ``row`` (as :func:`_next_message` selects it), in the
        transaction held: deleted and kept in memory (ams/mq/embedded_kept.py) while the transaction
        is likely to stay held past the call (no other process competes for the writer or reads the
        queue) and the bodies kept stay small; marked taken otherwise. The get journal's record
        comes first: if it cannot be written, nothing was taken."""
        message = row[0]
        try:
            self._journal.record(self._generation, message)  # type: ignore[arg-type]
        except OSError as error:  # it could not be written (a full disk): nothing was taken
            raise MQError(
                f"MQGET from {local} under syncpoint: its get journal ({self._journal.path}) could not be written "
                f"({error.strerror}); free space on that file system, or get outside syncpoint",
                MQRC_UNEXPECTED_ERROR,
            ) from None
        kept = self._kept_bytes + len(body)
        changes = self._depth_changes
        try:
            if (
                kept > KEPT_BYTES
                or len(self._kept) >= KEPT_ROWS
                or not self._keeping
                or row[1].__class__ is not bytes  # an MQMD put as text by an earlier release: restore_taken needs bytes
                or self._competing(local)
            ):
                self._rows.execute(_TAKE, (self._owner, message))
                changes[local] = changes.get(local, 0) - 1
                self._taken[GOT_PENDING].append((message, self._owner, GOT_PENDING))  # type: ignore[arg-type]
                return
            self._rows.execute(_DELETE, (message,))
        except BaseException:
            self._journal.withdraw()  # nothing taken (a full disk): no record to count at a later death
            raise
        changes[local] = changes.get(local, 0) - 1
        self._kept.append((local, row))
        self._kept_bytes = kept

    def _delivered(self, local: str, md: MQMD, data: bytes, force_rfh2: bool) -> Message:
        if not force_rfh2:
            md, data = deliver(md, data, self._lookup(local).attributes.propctl)
        return Message(md, data)

    def _browse(
        self, local: str, after: tuple[int, int] | None, force_rfh2: bool, match: Match = ANY
    ) -> tuple[tuple[int, int], Message]:
        where = "" if after is None else " AND (m.priority < ? OR (m.priority = ? AND m.id > ?))"
        arguments: tuple[object, ...] = (time.time(),)
        if after is not None:
            arguments += (after[0], after[0], after[1])
        index, matching, wanted = _matching(match)
        with self._lock, self._work():  # after the writer's holder wrote: what it got is hidden
            self._recover_dead_journals()
            # read under the lock: a write meanwhile (the flusher, another thread's connection) marks the
            # puts it names, and others may then put above them
            arguments = (local, self._below_own_puts(), *arguments)
            row = self._db.execute(
                _MESSAGE.format(", m.priority", index)
                + f" WHERE m.queue = ? AND m.state = {VISIBLE} AND m.id < ? AND (m.expires IS NULL OR m.expires >= ?)"
                + where
                + matching
                + _ORDER
                + " LIMIT 1",
                arguments + wanted,
            ).fetchone()
            position = None if row is None else (int(row[5]), int(row[0]))
            self._discard_expired(local, match, position, after)
        if row is None:
            raise NoMessageAvailable(local, 0, "" if match == ANY else str(match))
        md, data = _decoded(row)
        return (int(row[5]), int(row[0])), self._delivered(local, md, data, force_rfh2)

    def __enter__(self) -> EmbeddedConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
