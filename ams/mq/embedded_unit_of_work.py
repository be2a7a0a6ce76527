"""The unit of work of an embedded queue manager's connection: its SQLite transaction, held across
the calls of the unit of work (ams/mq/embedded_writer.py), MQCMIT, MQBACK, MQDISC and close, the
MAXUMSGS count, and the connection broken when its work is lost.

Separate from ams/mq/embedded_connection.py, which adds the queues and messages: what a call does
is kept apart from how its work is kept, written and undone.
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
import threading
import time
from threading import get_ident
from types import FrameType
from typing import TYPE_CHECKING

from ams.mq.embedded_journal import JournalWatch
from ams.mq.embedded_kept import KeptGet, mark_put, restore_taken
from ams.mq.embedded_owners import SETTLED, _back_out, _count_journaled
from ams.mq.embedded_schema import GOT_PENDING, PUT_PENDING, VISIBLE, add_depths
from ams.mq.embedded_shape import versions
from ams.mq.embedded_sqlite import _mq_errors, _transaction
from ams.mq.embedded_wanted import begin_immediate
from ams.mq.embedded_writer import (
    CONTENDED_SECONDS,
    CONTENDED_WAIT,
    HOLD_SECONDS,
    WANTED_ASK_SECONDS,
    HeldInThisThread,
    dropped,
    held,
    release_others,
    released,
)
from ams.mq.transport import MQError
from ams.mqconstants import (
    MQRC_CONNECTION_BROKEN,
    MQRC_HCONN_ERROR,
    MQRC_SYNCPOINT_LIMIT_REACHED,
    MQRC_UNEXPECTED_ERROR,
)

if TYPE_CHECKING:
    from ams.mq.embedded import EmbeddedQueueManager


_ALL_ROWS = (1 << 63) - 1  # no row id is above it (SQLite's are 64-bit signed)


class _Call:
    """What :meth:`UnitOfWork._work` returns for the calls that are not a get or put: their
    ``with`` around :meth:`UnitOfWork._call_begins` and :meth:`UnitOfWork._call_ends` or
    :meth:`UnitOfWork._call_failed`, which a get and a put call themselves (a context manager
    object and its two methods called from C cost 5 % of a get+put)."""

    __slots__ = ("consumed", "db", "durable", "end", "fresh", "keep", "unit")

    def __init__(self, unit: UnitOfWork, durable: bool, keep: bool, end: bool, consumed: str | None) -> None:
        self.unit, self.durable, self.keep, self.end, self.consumed = unit, durable, keep, end, consumed

    def __enter__(self) -> sqlite3.Connection:
        self.db, self.fresh = self.unit._call_begins()
        return self.db

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if kind is not None:
            self.unit._call_failed(self.db, self.fresh, value)
        else:
            self.unit._call_ends(self.db, self.fresh, self.durable, self.keep, self.end, self.consumed)


@_mq_errors
class UnitOfWork:
    """A connection's unit of work, like an MQ connection handle's; :class:`EmbeddedConnection`
    (ams/mq/embedded_connection.py) is one, with its queues and messages."""

    def __init__(self, manager: EmbeddedQueueManager, db: sqlite3.Connection, appl_name: str) -> None:
        self.manager = manager
        self.name = manager.name
        self.appl_name = appl_name
        self._connection: sqlite3.Connection | None = db
        # the cursor of a get's and a put's statements, made once: Connection.execute makes and registers one per call
        self._rows = db.cursor()
        self._owner = manager._new_owner()
        self._lock = threading.Lock()
        # held by close() and disconnect(): a connection dropped unclosed may be closed by the next transaction
        # of any thread (embedded_writer.dropped) while another, holding it through a weak reference, closes it
        self._closing = threading.Lock()
        self._call_thread: int | None = None  # the thread whose call (_work) holds _lock now, while it does
        self._held: float | None = None  # when this connection took the writer it still holds
        self._version: int | None = None  # the file's data_version when this connection last took the writer
        # its shape counter then (ams/mq/embedded_shape.py), read when data_version moved; while it stays,
        # so do the connection's broken flag, the queues open for input and the get journals' list
        self._shape: int | None = None
        self._watch = JournalWatch(manager.path)  # other processes' get journals (ams/mq/embedded_journal.py)
        self._expiring: int | None = None  # the file's count of messages put with an expiry, as the writer was taken
        self._uncommitted = 0  # messages got or put under syncpoint since the last commit or backout
        self._taken: dict[int, list[tuple[int, str, int]]] = {GOT_PENDING: [], PUT_PENDING: []}  # their rows
        # the rows its gets deleted in the transaction held, restored as taken before any write but
        # MQCMIT's (ams/mq/embedded_kept.py), and their bodies' bytes
        self._kept: list[KeptGet] = []
        self._kept_bytes = 0
        self._visible: list[int] = []  # the rows its puts inserted visible in the transaction held, in order
        # by queue, how far its calls moved the depth in the transaction held: written with it (_write), gone with it
        self._depth_changes: dict[str, int] = {}
        # whether its transaction was written since its last MQCMIT or MQBACK; and whether the calls of the
        # transaction held leave their rows as MQCMIT will (ams/mq/embedded_kept.py), decided as it began
        self._written_before_end = False
        self._keeping = False
        # the gets under syncpoint of this unit of work, kept outside SQLite (ams/mq/embedded_journal.py), and
        # the generation of its records (its connection row's "settled", raised with each backout of its work)
        self._journal = manager._journal(self._owner)
        self._contended = 0.0  # until when another process competes for the writer (time.monotonic)
        self._next_ask = 0.0  # from when a call's end asks again whether another process waits (_hold_over)
        self._checked = False  # whether the transaction held looked for dead processes' get journals
        self._generation = 0
        self._recovered: list[str] = []  # dead owners recovered in the transaction held (their journals go after it)
        self._competitors: dict[str, bool] = {}  # by queue: whether another process has it open for input ...
        self._competitors_at: int | None = None  # ... while the file's shape counter is this
        try:
            with _transaction(db, manager._uri):
                db.execute("INSERT INTO connections (owner) VALUES (?)", (self._owner,))
        except BaseException:
            self._journal.remove()
            raise

    @property
    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise MQError(f"the connection to {self.name} was closed", MQRC_HCONN_ERROR)
        return self._connection

    def _work(
        self, *, durable: bool = False, keep: bool = False, end: bool = False, consumed: str | None = None
    ) -> _Call:
        """A call's work in this connection's transaction (begun if none is held); MQRC 2009 when
        the connection was broken since (a queue manager restart, or another process taking it for
        dead and backing its work out).

        The transaction outlives the call (ams/mq/embedded_writer.py) when the call is work of
        the unit of work (``keep``: a put or get under syncpoint) or found it held, unless it is
        older than HOLD_SECONDS. A ``durable`` call (a commit, a put or get outside syncpoint: what
        MQ has promised once the call returns) writes it and waits for the disk; ``end`` (MQBACK)
        writes it; so does any call while another process waits for the writer (asked at most every
        WANTED_ASK_SECONDS by calls back to back), and a get from queue
        ``consumed`` (the application works on its message next) while another process competes for
        the writer or has that queue open for input (:meth:`_hold_over`). A failing call's statement
        is undone by SQLite; a call that writes more than one row undoes its own earlier ones (a put:
        ams/mq/embedded_connection.py), not the unit of work's."""
        return _Call(self, durable, keep, end, consumed)

    def _call_begins(self) -> tuple[sqlite3.Connection, bool]:
        """A call's start, its ``_lock`` held: the connection's SQLite connection, and whether the
        call began the transaction (none was held). Only when this returns does a call end with
        :meth:`_call_ends` or :meth:`_call_failed`."""
        # the connection itself, not the _db property (MQRC 2018 when closed): a call's per-call cost
        db = self._connection or self._db
        self._call_thread = get_ident()  # its lock is held (the caller's with): release_writer asks
        if self._held is not None:
            return db, False
        try:
            self._begin(db)
        except BaseException:
            self._call_thread = None  # no end follows a failed start
            if db.in_transaction and self._held is None:  # begun, not held: no later call could begin again
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                self._depth_changes.clear()
            raise
        return db, True

    def _call_ends(
        self, db: sqlite3.Connection, fresh: bool, durable: bool, keep: bool, end: bool, consumed: str | None
    ) -> None:
        """A call's work done (:meth:`_work` says when it writes the transaction)."""
        try:
            if durable or end or (fresh and not keep):
                write = True
            else:
                now = time.monotonic()
                if now - (self._held or 0.0) < HOLD_SECONDS and now < self._next_ask:
                    # what _hold_over answers when it is not the time to ask another process's wish, asked here:
                    # most calls' ends (a call of it cost 2 % of a get+put)
                    write = consumed is not None and (now < self._contended or self._competing(consumed))
                else:
                    write = self._hold_over(consumed, consumed is not None, True)
            if write:
                self._write(db, durable=durable)
        finally:
            self._call_thread = None

    def _call_failed(self, db: sqlite3.Connection, fresh: bool, value: object) -> None:
        """A call failed with ``value``: its own changes undone (:meth:`_undo`)."""
        try:
            # a statement the failure left unfinished on the shared cursor (a signal between the get's SELECT and
            # its fetch) kept its read snapshot past the ROLLBACK: once another connection wrote, each later BEGIN
            # IMMEDIATE failed (SQLITE_BUSY_SNAPSHOT). Closed, it is reset (as a dropped cursor of its own was)
            self._rows.close()
            self._rows = db.cursor()
            if not isinstance(value, Exception) and db.in_transaction:
                # interrupted (KeyboardInterrupt, a signal handler's exception) anywhere, perhaps between a
                # row's delete or insert and its record in the lists restore_taken and mark_put read: the
                # transaction goes, and the unit of work with it (its gets counted as backed out)
                db.execute("ROLLBACK")
                self._depth_changes.clear()
            self._undo(db, fresh)
        finally:
            self._call_thread = None

    def _begin(self, db: sqlite3.Connection) -> None:
        release_others(self.manager._uri, self)
        asked = time.monotonic()
        # waiting, a holder in another process hears of it (embedded_wanted.py) at its next call's end
        # or its flusher's round
        begin_immediate(db, self.manager._uri)
        if time.monotonic() - asked >= CONTENDED_WAIT:  # we waited: another process held it
            self._contended = time.monotonic() + CONTENDED_SECONDS
        version, shape, self._expiring = versions(db)
        if version != self._version:  # another connection wrote since we last held the writer
            if shape is None or shape != self._shape:  # a connection changed: broken?
                row = db.execute("SELECT broken FROM connections WHERE owner = ?", (self._owner,)).fetchone()
                if row is None or row[0]:
                    db.execute("ROLLBACK")
                    raise MQError(
                        f"the connection to {self.name} was broken (the queue manager restarted, or its work was "
                        "backed out): its uncommitted work is gone; connect again",
                        MQRC_CONNECTION_BROKEN,
                    )
                self._shape = shape
            self._version = version
        self._checked = False  # for journals of dead processes, before this transaction reads a message
        self._held = time.monotonic()
        # not once the unit of work was written before its end, or another process competed for the writer
        # lately: either makes another write before MQCMIT likely, which would have to mark each row anyway
        # (within the transaction, _contended is raised only by a wish that writes it)
        self._keeping = not self._written_before_end and self._held >= self._contended
        held(self.manager._uri, self)

    def _hold_over(self, consumed: str | None = None, yields: bool = True, ending: bool = False) -> bool:
        """Whether the transaction held is to be written now, at the end of a call (``ending``;
        ``yields``: a get from queue ``consumed``, after which the application works on its message)
        or on the flusher's round (the application is working): held HOLD_SECONDS, or another process
        waits for the writer now (embedded_wanted.py: asked on each flusher's round, and by a call's
        end when none asked within WANTED_ASK_SECONDS); or, the application about to work, another
        process waited for it within the last CONTENDED_SECONDS, or has ``consumed`` open for input
        (its next get would wait for that work: :meth:`_competing`). A put then stays held until the
        next call (a proxy's next get, at once), as the get's write carries it; a single reader keeps it."""
        now = time.monotonic()
        if now - (self._held or 0.0) >= HOLD_SECONDS:
            return True
        # calls back to back ask once per WANTED_ASK_SECONDS (embedded_writer.py): a waiter is heard by the
        # first call to end that long after the last ask, or by the flusher once the calls stop
        asks = not ending or now >= self._next_ask
        if ending and asks:
            self._next_ask = now + WANTED_ASK_SECONDS
        if asks and self._wanted_elsewhere():  # asked even while contended: each wait prolongs it
            self._contended = now + CONTENDED_SECONDS
            return True
        if not yields:
            return False
        return now < self._contended or (consumed is not None and self._competing(consumed))

    def _wanted_elsewhere(self) -> bool:
        """Whether another process waits for the writer this connection holds (embedded_wanted.py)."""
        wanted = self.manager._wanted
        return wanted is not None and wanted.by_others()

    def _competing(self, queue: str) -> bool:
        """Whether another process has ``queue`` open for input, read again only when a queue was
        opened or closed since (the file's shape counter, as _lookup does)."""
        if self._competitors_at != self._shape or self._shape is None:
            self._competitors.clear()
            self._competitors_at = self._shape
        found = self._competitors.get(queue)
        if found is None:
            if self.manager.path is None:
                return False  # in memory: no other process
            process = self._owner.split(":", 1)[0] + ":"
            row = self._db.execute(
                "SELECT 1 FROM opens WHERE queue = ? AND substr(owner, 1, ?) != ? LIMIT 1",
                (queue, len(process), process),
            ).fetchone()
            found = self._competitors[queue] = row is not None
        return found

    def _recover_dead_journals(self) -> None:
        """Before the transaction held first reads a message (a get, a browse): recover the owners
        whose process died with a get journal left. A get their death lost is back on its queue, and
        must count its backout before this connection can get it (embedded_journal.py); a process
        that held the writer died before this transaction took it, so once per transaction is enough.
        Their journals go once this transaction is written."""
        if self._checked:
            return
        for owner in self.manager._dead_journals(self._watch, self._shape):
            self.manager._recover(self._db, owner)
            self._recovered.append(owner)
        self._checked = True

    def _undo(self, db: sqlite3.Connection, fresh: bool) -> None:
        """A call failed: its own changes undone; the unit of work's earlier ones kept, unless SQLite
        rolled the whole transaction back (a full disk, an I/O error): then the unit of work is lost
        and the connection broken, as MQ breaks a connection whose unit of work it cannot keep."""
        if fresh or not db.in_transaction:
            self._recovered = []
            self._drop_kept()
            self._depth_changes.clear()
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._held = None
            released(self)
            if not fresh:
                self._break()

    def _break(self) -> None:
        """The unit of work was lost with its transaction: what is left of it backed out, the gets the
        transaction lost counted as backed out too (as the recovery of a dead owner counts them), and
        the connection broken."""
        # our own writes leave data_version as it was: the flag must be read again
        self._version = self._shape = None
        with contextlib.suppress(sqlite3.Error):
            with _transaction(self._db, self.manager._uri, self) as db:
                _count_journaled(db, self._owner, self._journal.records)
                _back_out(db, self._owner)
                db.execute(SETTLED.replace("SET", "SET broken = 1,"), (self._owner,))
            self._settle_journal(backed_out=True)

    def _settle_journal(self, *, backed_out: bool) -> None:
        """The unit of work's commit or backout was committed: its journal records are settled
        (a backout raised the generation in the same transaction)."""
        self._generation += backed_out
        self._journal.clear()

    def _write(self, db: sqlite3.Connection, *, durable: bool = False) -> None:
        """Commit the transaction held; ``durable``: and wait for the disk."""
        self._held = None
        released(self)
        try:
            if self._kept or self._visible or self._uncommitted:
                self._written_before_end = True
            if self._kept or self._visible:  # the unit of work goes on (or is backed out): its rows marked
                self._restore_kept(db)
            if self._depth_changes:
                add_depths(db, self._depth_changes)
                self._depth_changes.clear()
            db.execute("COMMIT")
        # the unit of work's work since its last write is gone with the transaction; interrupted
        # (KeyboardInterrupt) too: left open, no call of this connection could begin another, and other
        # processes would wait for its writer for ever
        except BaseException:
            self._recovered = []
            self._drop_kept()
            self._depth_changes.clear()
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._break()
            raise
        for owner in self._recovered:
            self.manager._forget(owner)
        self._recovered = []
        if durable:
            self.manager._sync_log()

    def _restore_kept(self, db: sqlite3.Connection) -> None:
        """The rows this unit of work's gets deleted in the transaction held, inserted again as
        taken by it, and those its puts inserted visible, marked put (what MQCMIT deletes or makes
        visible, and MQBACK returns or deletes; ams/mq/embedded_kept.py). All or none: a restore
        that fails part way (a full disk) leaves the rows and lists as they were, for MQCMIT to
        drop or MQBACK to restore again (a half-restored row, committed, was a got message back)."""
        if not (self._kept or self._visible):
            return
        db.execute("SAVEPOINT kept")
        try:
            taken = restore_taken(db, self._owner, self._kept)
            put = mark_put(db, self._owner, self._visible)
        except sqlite3.Error:
            if db.in_transaction:
                db.execute("ROLLBACK TO kept")
                db.execute("RELEASE kept")
            raise
        db.execute("RELEASE kept")
        self._taken[GOT_PENDING] += taken
        self._taken[PUT_PENDING] += put
        self._drop_kept()

    def _drop_kept(self) -> None:
        """The transaction held is written or gone: its deletes and inserts with it."""
        self._kept = []
        self._kept_bytes = 0
        self._visible = []

    def _below_own_puts(self) -> int:
        """The row ids a get or browse of this connection may return are below this: its puts under
        syncpoint inserted visible in the transaction held (the highest ids: nobody else inserts
        meanwhile) are not committed."""
        return self._visible[0] if self._visible else _ALL_ROWS

    def release_writer(self, *, wait: bool) -> None:
        """Write the transaction held (``wait`` False: unless a call is under way, or it is younger
        than HOLD_SECONDS): for another connection of this process, or the flusher thread."""
        if not self._lock.acquire(blocking=False):
            if not wait:
                return
            if self._call_thread == get_ident():  # a finalizer run inside this connection's call wants the writer
                raise HeldInThisThread(
                    f"the queue manager {self.name}'s file is held by another connection of this thread, inside a "
                    "call this one was made within (a finalizer the garbage collector ran in it): this call cannot "
                    "wait for it; close connections instead of dropping them, or retry after that call",
                    MQRC_UNEXPECTED_ERROR,
                )
            # bounded: a lock held in another thread is waited for; past it, SQLite's busy timeout decides
            if not self._lock.acquire(timeout=30):
                return
        try:
            stale = self._held is not None and (wait or self._hold_over())
            if stale and self._connection is not None:
                self._write(self._connection)
        finally:
            self._lock.release()

    @property
    def closed(self) -> bool:
        """Whether the connection was closed or disconnected."""
        return self._connection is None

    def _count_uncommitted(self, local: str) -> None:
        """MQRC 2024 when this connection already holds MAXUMSGS messages under syncpoint."""
        limit = self.manager.max_uncommitted
        if self._uncommitted >= limit:
            raise MQError(
                f"MQPUT or MQGET on {local} under syncpoint: the unit of work already holds {self._uncommitted:,} "
                f"messages, the queue manager's MAXUMSGS ({limit:,}): commit more often (smaller batches), or "
                "ALTER QMGR MAXUMSGS",
                MQRC_SYNCPOINT_LIMIT_REACHED,
            )

    def max_uncommitted(self) -> int:
        """MQINQ MaxUncommittedMsgs (MAXUMSGS) of the queue manager."""
        return self.manager.max_uncommitted

    def commit(self) -> None:
        """MQCMIT: gets become final, puts become visible."""
        with self._lock, self._work(durable=True):
            # the rows this unit of work changed, by id (there is no index on the owner to find them by)
            self._db.executemany(
                "DELETE FROM messages WHERE id = ? AND owner = ? AND state = ?", self._taken[GOT_PENDING]
            )
            self._db.executemany(
                f"UPDATE messages SET state = {VISIBLE}, owner = NULL WHERE id = ? AND owner = ? AND state = ?",
                self._taken[PUT_PENDING],
            )
            self._drop_kept()  # the rows its gets deleted in the transaction held: gone for good now
        self._settle_journal(backed_out=False)  # the rows it lists are deleted: nothing left to count
        self._settled()

    def _settled(self) -> None:
        self._uncommitted = 0
        self._written_before_end = False
        self._taken = {GOT_PENDING: [], PUT_PENDING: []}

    def backout(self) -> None:
        """MQBACK: got messages return (their backout count raised), put ones vanish."""
        with self._lock, self._work(end=True):
            self._restore_kept(self._db)  # then returned as every taken row is
            _back_out(self._db, self._owner, settle=True)  # the journal's records are counted now
        self._settle_journal(backed_out=True)
        self._settled()

    def disconnect(self) -> None:
        """MQDISC, as IBM MQ does it: uncommitted work is committed."""
        with self._closing:
            self.commit()
            self._end()

    def close(self) -> None:
        """This library's way to disconnect: uncommitted work is backed out first, never committed.
        Closing a closed connection does nothing; closing a broken one (MQRC 2009) ends it."""
        with self._closing:
            self._close()

    def _close(self) -> None:
        if self._connection is None:
            return
        try:
            self.backout()
        except MQError as error:
            # broken (a restart, a recovery): its work was backed out then, and MQBACK says 2009 at every try;
            # it still ends, not left open with its journal and connection row for as long as the process lives
            if error.reason != MQRC_CONNECTION_BROKEN:
                raise
        self._end()

    def close_if_idle(self) -> bool:
        """:meth:`close`, unless a call of this connection is under way (False then): for a
        connection dropped unclosed and reached again through a weak reference, whose close would
        otherwise wait for its own call, in the same thread, for ever (embedded_writer.dropped).
        Being closed by another thread counts as closed (waiting for it could wait for this one)."""
        if not self._lock.acquire(blocking=False):
            return False
        self._lock.release()
        if not self._closing.acquire(blocking=False):
            return True
        try:
            self._close()
        finally:
            self._closing.release()
        return True

    def _end(self) -> None:
        self.release_writer(wait=True)
        with self._lock, _transaction(self._db, self.manager._uri, self):
            self._db.execute("DELETE FROM opens WHERE owner = ?", (self._owner,))
            self._db.execute("DELETE FROM connections WHERE owner = ?", (self._owner,))
        self._journal.remove()
        self._watch.close()
        self._db.close()
        self._connection = None

    def __del__(self) -> None:
        # a connection dropped without close: its work is backed out, as close() would (collected inside
        # another connection's call, by this process's next transaction on the file: embedded_writer.dropped).
        # Not at the interpreter's exit: the flusher (a daemon thread) may have been stopped holding this
        # connection's lock; the process ends as a killed one does, and the next to open the file backs its
        # work out, counting its gets (ams/mq/embedded_journal.py)
        if getattr(self, "_connection", None) is not None and not sys.is_finalizing():
            if _inside_a_call(self):
                dropped(self.manager._uri, self)
            else:
                with contextlib.suppress(Exception):
                    self.close()


def _inside_a_call(dropped: UnitOfWork) -> bool:
    """Whether the garbage collector runs ``dropped``'s finalizer inside a call of another
    connection to the same file: a method of one on this thread's stack, its lock taken, or its
    initialiser (which writes its row in a transaction of its own). Asked only there (a walk of the
    stack), where a close would wait for that call's lock and the writer it holds, in the call's own
    thread (60 s), and then fail. A call on another file keeps nothing from this one's close (and
    this one, maybe holding its own file's writer, closes at once); nor does a connection whose
    initialiser has not reached the file yet (no ``manager``: asking it raised AttributeError, and
    the dropped connection was left unclosed)."""
    frame: FrameType | None = sys._getframe(1).f_back  # above __del__
    while frame is not None:
        caller = frame.f_locals.get("self")
        if isinstance(caller, UnitOfWork) and caller is not dropped:
            manager = getattr(caller, "manager", None)
            if manager is not None and manager._uri == dropped.manager._uri:
                lock = getattr(caller, "_lock", None)
                if frame.f_code.co_name == "__init__" or lock is None or lock.locked():
                    return True
        frame = frame.f_back
    return False
