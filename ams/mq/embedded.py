"""The embedded queue manager: a stand-in for IBM MQ, in memory or in an SQLite file.

It is for tests, demos and single-machine pipelines, not a queue manager product; where MQ is
strict, it is as strict, so that code which would lose a message on MQ fails a test here:

* queues are defined explicitly (``define_queue``, ``define_alias``, ``ams qm define``); opening
  an undefined one is MQRC 2085; the SYSTEM.* queues AMS uses exist from the start;
* syncpoint per connection: uncommitted puts are invisible, uncommitted gets hidden, backout
  restores them and counts; closing (or dropping the connection object) backs out, but
  ``disconnect`` (MQDISC) commits, as MQ does; a closed connection's calls are MQRC 2018;
* CURDEPTH counts uncommitted puts and not uncommitted gets; delivery is by priority, then
  first in, first out; expired messages are never delivered, and count towards CURDEPTH and
  MAXDEPTH until a get or browse passes over them, as on MQ;
* the queue attributes of :class:`~ams.mq.transport.QueueAttributes`: BOTHRESH and BOQNAME,
  PROPCTL (applied to gets that do not force MQRFH2), DEFPSIST and DEFPRTY for messages put "as
  queue default", MAXMSGL (MQRC 2030), DEFSOPT and SHARE (MQRC 2042 for a second exclusive
  reader);
* authority failures a test can switch on (``deny(queue, "put")``: MQRC 2035);
* a file mode that several processes share: a dead process's uncommitted work is backed out
  when the next connection opens (and, for its gets journaled beside the file, when the next
  connection takes the writer: ``embedded_journal``), and ``restart()`` (``ams qm restart``) is a queue manager
  restart: non-persistent messages are gone. The file is created private (0600), never through
  a symbolic link.

Message groups, segmentation and triggers are not implemented.

This module holds the queue manager (its file, definitions, restart, recovery of dead owners); the
rest is beside it: the connection (``embedded_connection``, over ``embedded_unit_of_work`` and
``embedded_writer``), the open queue (``embedded_queue``), the file's format
(``embedded_schema``; the MQMD's bytes: ``embedded_md``), the file on disk (``embedded_files``), the owners of work
(``embedded_owners``), the gets a connection holds (``embedded_journal``), what connections cache
about the file (``embedded_shape``), and transactions and SQLite errors (``embedded_sqlite``).
"""

from __future__ import annotations

import sqlite3
import urllib.parse
import uuid
from pathlib import Path

import attrs

from ams.errors import UsageError
from ams.mq.embedded_connection import EmbeddedConnection as EmbeddedConnection
from ams.mq.embedded_files import _create_private
from ams.mq.embedded_journal import GetJournal, JournalWatch, journaled_owners, read_journal, remove_journal
from ams.mq.embedded_owners import _OWNERS, _back_out, _count_journaled
from ams.mq.embedded_owners import _alive as _alive
from ams.mq.embedded_owners import _process_tag as _process_tag
from ams.mq.embedded_owners import _started as _started
from ams.mq.embedded_queue import EmbeddedQueue as EmbeddedQueue
from ams.mq.embedded_schema import _BY_MSG_ID as _BY_MSG_ID
from ams.mq.embedded_schema import _MESSAGE as _MESSAGE
from ams.mq.embedded_schema import _ORDER as _ORDER
from ams.mq.embedded_schema import (
    _SCHEMA,
    _SCHEMA_VERSION,
    _add_columns,
    _attributes_from_json,
    _attributes_to_json,
    _create_indexes,
    _migrate_rows,
    count_depths,
)
from ams.mq.embedded_schema import GOT_PENDING as GOT_PENDING
from ams.mq.embedded_schema import PUT_PENDING as PUT_PENDING
from ams.mq.embedded_schema import VISIBLE as VISIBLE
from ams.mq.embedded_shape import SHAPE_ROW, SHAPE_SCHEMA
from ams.mq.embedded_sqlite import _mq_errors, _transaction
from ams.mq.embedded_wanted import WriterWanted, writer_wanted
from ams.mq.embedded_writer import release_others, sync_log
from ams.mq.transport import MQError, QueueAttributes
from ams.mqconstants import DEFAULT_MAX_UNCOMMITTED, MQRC_UNEXPECTED_ERROR, MQRC_UNKNOWN_OBJECT_NAME, PROPCTL_VALUES

# Importable from here as before the module was split into ams/mq/embedded_*.py (the "X as X"
# imports above): EmbeddedConnection, EmbeddedQueue and the message states; _alive, _process_tag
# and sync_log are looked up in this module, where tests replace them (to play another process, or
# to die inside MQCMIT); tests read _started, _MESSAGE, _BY_MSG_ID and _ORDER.

SYSTEM_QUEUES = (
    "SYSTEM.PROTECTION.ERROR.QUEUE",
    "SYSTEM.PROTECTION.POLICY.QUEUE",
    "SYSTEM.DEAD.LETTER.QUEUE",
    "SYSTEM.ADMIN.COMMAND.QUEUE",
)
OPERATIONS = ("put", "get", "browse", "inq", "setall")


@_mq_errors
class EmbeddedQueueManager:
    """A queue manager in memory (``path`` None) or in an SQLite file shared by processes.

    A file must exist (MQRC 2058, MQRC_Q_MGR_NAME_ERROR, otherwise: a mistyped name must not make a
    new, empty queue manager), unless ``create`` is true: then a missing one is made, as crtmqm
    would (``ams qm create FILE``).
    """

    def __init__(self, path: str | Path | None = None, *, name: str = "AMSQM", create: bool = False) -> None:
        self.name = name
        # MAXUMSGS (ALTER QMGR MAXUMSGS): messages one connection may hold got or put under syncpoint
        # (MQRC 2024 beyond); set on this object, it holds for the connections it makes
        self.max_uncommitted = DEFAULT_MAX_UNCOMMITTED
        if path is None:
            # memdb, not a shared cache: a shared cache's table locks fail at once (SQLITE_LOCKED, which the busy
            # timeout does not wait out), so connections in two threads failed each other's calls with 2195
            self._uri = f"file:/ams-embedded-{uuid.uuid4().hex}?vfs=memdb"
            self.path: Path | None = None
        else:
            _create_private(Path(path), create=create)  # its messages name the path as given
            # absolute: the files beside it (the log synced after a commit, the get journals) are opened by
            # name, and a relative one meant another file once the process changed its directory
            self.path = Path(path).absolute()
            # percent-encoded, so that '?' or '#' in a path is part of the name, not URI syntax
            self._uri = "file:" + urllib.parse.quote(str(self.path))
        # who waits for the writer, in other processes (ams/mq/embedded_wanted.py; none in memory)
        self._wanted: WriterWanted | None = None if self.path is None else writer_wanted(self._uri, self.path)
        self._keeper = self._open_db()  # keeps an in-memory database alive
        found = self._keeper.execute("PRAGMA user_version").fetchone()[0]
        if found > _SCHEMA_VERSION:
            # a later format (schema 4 moved the bodies out of the rows, where a reader of schema 3
            # finds empty ones): refused, never misread
            self._keeper.close()
            raise MQError(
                f"the embedded queue manager's file {self.path} has format {found}, later than this version of "
                f"ams reads ({_SCHEMA_VERSION}): open it with the version that wrote it, or a later one",
                MQRC_UNEXPECTED_ERROR,
            )
        release_others(self._uri)  # a connection of ours holding the writer would keep it from us
        with self._keeper:
            self._keeper.executescript(_SCHEMA)
            _add_columns(self._keeper)
            if self._keeper.execute("PRAGMA user_version").fetchone()[0] < _SCHEMA_VERSION:
                self._migrate()
            _create_indexes(self._keeper)
            self._keeper.executescript(SHAPE_SCHEMA)  # ams/mq/embedded_shape.py
            # a write: waited for as every other is (ams/mq/embedded_wanted.py), not in SQLite's busy
            # handler, where a holder of the writer in another process would not hear of us
            with _transaction(self._keeper, self._uri):
                self._keeper.execute(SHAPE_ROW)
                for queue in SYSTEM_QUEUES:
                    self._keeper.execute(
                        "INSERT OR IGNORE INTO queues (name, target, attributes) VALUES (?, NULL, ?)",
                        (queue, _attributes_to_json(QueueAttributes(default_persistent=True))),
                    )
        self._recover_dead_owners()

    def _open_db(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._uri, uri=True, timeout=30, isolation_level=None, check_same_thread=False)
        if self.path is not None:
            db.execute("PRAGMA journal_mode=WAL")
            # committed work survives the process at NORMAL; what MQ promises on return (MQCMIT, calls
            # outside syncpoint) also waits for the disk, as FULL would (embedded_writer.sync_log)
            db.execute("PRAGMA synchronous=NORMAL")
            # a checkpoint (every 1,000 pages by default) syncs the log and the database: one per about
            # 100 get+put pairs cost a third of a commit; the log grows to about 40 MiB instead of 4
            db.execute("PRAGMA wal_autocheckpoint=10000")
            # a got message's pages are zeroed when freed, whatever this SQLite was built with (Debian's
            # default, not python.org's): its bytes do not stay on the file's free pages until reused
            db.execute("PRAGMA secure_delete=ON")
        return db

    def _migrate(self) -> None:
        """An earlier format brought to this one, in one transaction (a process opening the file
        meanwhile sees before or after): gets and browses by MsgId (a proxy's delivery ledger) look
        it up, not scan for it; the depths are counted once, and every writer keeps them from then on.

        Refused while another live process is connected: it may run an earlier version of ams,
        which would read the empty body left in the row of every message put from now on, or (format
        7) change messages with no depth kept."""
        with _transaction(self._keeper, self._uri) as db:
            found = db.execute("PRAGMA user_version").fetchone()[0]
            if found >= _SCHEMA_VERSION:
                return  # another process opening the file at the same time did it
            others = sorted({owner.split(":", 1)[0] for (owner,) in db.execute(_OWNERS).fetchall()} - {_process_tag()})
            alive = [process for process in others if _alive(process)]
            if alive:
                raise MQError(
                    f"the embedded queue manager's file {self.path} is of an earlier format, and processes "
                    f"{', '.join(process.split('.')[0] for process in alive)} (perhaps an earlier version of ams) "
                    "are connected to it: stop them, so that it can be brought to this version's format",
                    MQRC_UNEXPECTED_ERROR,
                )
            _migrate_rows(db, found)

    def _recover_dead_owners(self) -> None:
        """Back out what processes that died left uncommitted (as MQ does when a connection breaks),
        the messages their get journals list counted (ams/mq/embedded_journal.py)."""
        owners = {owner for (owner,) in self._keeper.execute(_OWNERS).fetchall()}
        if self.path is not None:
            owners.update(journaled_owners(self.path))  # an ended connection's, left by a crash
        for owner in sorted(owners):
            if owner.split(":", 1)[0] == _process_tag() or _alive(owner):
                continue
            with _transaction(self._keeper, self._uri):
                self._recover(self._keeper, owner)
            self._forget(owner)

    def _dead_journals(self, watch: JournalWatch, shape: int | None) -> list[str]:
        """The owners of other processes whose get journal is left and whose process died: what each
        connection recovers as it takes the writer (ams/mq/embedded_unit_of_work.py), so that a message
        got in a transaction the death lost is counted before anyone can get it again. Only the journals
        no live connection holds locked are asked about (``watch``, listed again when the file's
        ``shape`` moved: ams/mq/embedded_journal.py)."""
        if self.path is None:
            return []
        alive: dict[str, bool] = {}
        dead = []
        for owner in watch.unlocked(shape, _process_tag()):
            process = owner.split(":", 1)[0]
            if process != _process_tag() and not alive.setdefault(process, _alive(owner)):
                dead.append(owner)
        return dead

    def _recover(self, db: sqlite3.Connection, owner: str) -> None:
        """Dead ``owner``'s work backed out, in the caller's transaction (then :meth:`_forget` it)."""
        records = [] if self.path is None else read_journal(self.path, owner)
        _count_journaled(db, owner, records)  # first: _back_out releases the rows it holds
        _back_out(db, owner)
        db.execute("DELETE FROM opens WHERE owner = ?", (owner,))
        # with the row, the journal's generation goes: a second recovery of this owner counts nothing
        db.execute("DELETE FROM connections WHERE owner = ?", (owner,))

    def _forget(self, owner: str) -> None:
        """Dead ``owner``'s journal removed, once its recovery was committed."""
        if self.path is not None:
            remove_journal(self.path, owner)

    def _journal(self, owner: str) -> GetJournal:
        """A new connection's get journal (ams/mq/embedded_journal.py; held in memory only for a
        queue manager in memory)."""
        return GetJournal(self.path, owner)

    def _new_owner(self) -> str:
        """The owner of a new connection's work: this process's tag, and the connection's own part.
        Looked up here, where tests replace ``_process_tag`` to play another process."""
        return f"{_process_tag()}:{uuid.uuid4().hex}"

    def _sync_log(self) -> None:
        """Wait for the disk to hold what a connection wrote (embedded_writer.sync_log). Looked up
        here, where a test replaces ``sync_log`` to die after a commit, before the disk confirms it."""
        sync_log(self.path)

    def connect(self, appl_name: str = "ams") -> EmbeddedConnection:
        """A new connection (its own unit of work); ``appl_name`` becomes PutApplName."""
        return EmbeddedConnection(self, self._open_db(), appl_name)

    def define_queue(self, name: str, attributes: QueueAttributes | None = None, **changes: object) -> None:
        """DEFINE QLOCAL ... REPLACE: the queue with ``attributes`` (default MQ's), changed by ``changes``."""
        chosen = attrs.evolve(attributes or QueueAttributes(), **changes)  # type: ignore[arg-type]
        _check_attributes(name, chosen)
        with _transaction(self._keeper, self._uri):
            self._keeper.execute(
                "INSERT INTO queues (name, target, attributes) VALUES (?, NULL, ?) ON CONFLICT (name) DO UPDATE "
                "SET target = NULL, attributes = excluded.attributes",
                (name, _attributes_to_json(chosen)),
            )

    def define_alias(
        self, alias: str, target: str, *, default_persistent: bool = False, default_priority: int = 0
    ) -> None:
        """DEFINE QALIAS(alias) TARGET(target) DEFPSIST DEFPRTY REPLACE (MQ's defaults: NO and 0). A
        message put through the alias "as queue default" takes them, not the target's: MQ reads
        DEFPSIST and DEFPRTY from the first definition on the resolution path."""
        chosen = QueueAttributes(default_persistent=default_persistent, default_priority=default_priority)
        _check_attributes(alias, chosen)
        with _transaction(self._keeper, self._uri):
            self._keeper.execute(
                "INSERT OR REPLACE INTO queues (name, target, attributes) VALUES (?, ?, ?)",
                (alias, target, _attributes_to_json(chosen)),
            )

    def queues(self) -> dict[str, QueueAttributes | str]:
        """Every queue: a local queue's attributes, or an alias's target."""
        rows = self._keeper.execute("SELECT name, target, attributes FROM queues ORDER BY name").fetchall()
        return {name: target if target else _attributes_from_json(text) for name, target, text in rows}

    def deny(self, queue: str, *operations: str, allowed: bool = False) -> None:
        """Refuse (or, with ``allowed``, allow again) ``operations`` on ``queue`` with MQRC 2035, as a
        missing setmqaut authority would: "put", "get", "browse" or "inq" (MQINQ: BOTHRESH, BOQNAME,
        CURDEPTH, BASE_Q_NAME)."""
        unknown = set(operations) - set(OPERATIONS)
        if unknown:
            raise UsageError(f"unknown operations {sorted(unknown)}: expected some of {', '.join(OPERATIONS)}")
        with _transaction(self._keeper, self._uri):
            row = self._keeper.execute("SELECT denied FROM queues WHERE name = ?", (queue,)).fetchone()
            if row is None:
                raise MQError(f"no queue {queue} to change the authorities of", MQRC_UNKNOWN_OBJECT_NAME)
            denied = set(filter(None, (row[0] or "").split(",")))
            denied = denied - set(operations) if allowed else denied | set(operations)
            self._keeper.execute("UPDATE queues SET denied = ? WHERE name = ?", (",".join(sorted(denied)), queue))

    def restart(self) -> int:
        """A queue manager restart: uncommitted work backed out, non-persistent messages discarded.

        Returns how many messages were discarded.
        """
        self._recover_dead_owners()  # their journals counted first: the generations below settle every journal
        with _transaction(self._keeper, self._uri):
            rows = self._keeper.execute("SELECT DISTINCT owner FROM messages WHERE owner IS NOT NULL")
            owners = [row[0] for row in rows]
            for owner in owners:
                _back_out(self._keeper, owner)
            self._keeper.execute("DELETE FROM opens")
            # every connection is broken by a restart: its next call, MQCMIT included, is MQRC 2009
            # (and the records of their get journals are settled: what they got is backed out and counted here)
            self._keeper.execute("UPDATE connections SET broken = 1, settled = settled + 1")
            gone = self._keeper.execute("DELETE FROM messages WHERE persistent = 0").rowcount
            if gone:
                count_depths(self._keeper)
        return int(gone)

    def close(self) -> None:
        """Release this object's hold on the database (connections have their own)."""
        self._keeper.close()

    def __repr__(self) -> str:
        return f"EmbeddedQueueManager({self.name}, {self.path or 'in memory'})"


def _check_attributes(name: str, chosen: QueueAttributes) -> None:
    problems = []
    if not 1 <= len(name) <= 48:
        problems.append(f"a name of 1 to 48 characters (found {len(name)})")
    if chosen.backout_threshold < 0 or len(chosen.backout_queue) > 48:
        problems.append("BOTHRESH >= 0 and a BOQNAME of at most 48 characters")
    if chosen.propctl not in PROPCTL_VALUES:
        problems.append(f"PROPCTL one of {', '.join(PROPCTL_VALUES)}")
    if not 0 <= chosen.default_priority <= 9:
        problems.append("DEFPRTY from 0 to 9")
    if chosen.max_message_length < 1:
        problems.append("MAXMSGL of at least 1")
    if not 0 <= chosen.max_depth <= 999_999_999:
        problems.append("MAXDEPTH from 0 to 999999999")
    if problems:
        raise UsageError(f"queue {name!r}: expected {'; '.join(problems)}")
