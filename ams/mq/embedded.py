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
  when the next connection opens, and ``restart()`` (``ams qm restart``) is a queue manager
  restart: non-persistent messages are gone. The file is created private (0600), never through
  a symbolic link.

Message groups, segmentation and triggers are not implemented.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sqlite3
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import attrs

from ams._files import PRIVATE_FILE_MODE, check_private_file, write_new_file
from ams.errors import UsageError
from ams.mq.embedded_writer import HOLD_SECONDS, held, release_others, released, sync_log
from ams.mq.mqmd import MQMD, _now_date_time
from ams.mq.properties import deliver
from ams.mq.rfh2_render import rerender
from ams.mq.transport import (
    ANY,
    BackoutSettings,
    Match,
    Message,
    MQError,
    NoMessageAvailable,
    QueueAttributes,
    padded_id,
)
from ams.mqconstants import (
    DEFAULT_MAX_UNCOMMITTED,
    MQ_MAX_PRIORITY,
    MQEI_UNLIMITED,
    MQPER_PERSISTENCE_AS_Q_DEF,
    MQPER_PERSISTENT,
    MQPRI_PRIORITY_AS_Q_DEF,
    MQRC_CONNECTION_BROKEN,
    MQRC_EXPIRY_ERROR,
    MQRC_GET_INHIBITED,
    MQRC_HCONN_ERROR,
    MQRC_MSG_TOO_BIG_FOR_Q,
    MQRC_NOT_AUTHORIZED,
    MQRC_NOT_OPEN_FOR_BROWSE,
    MQRC_NOT_OPEN_FOR_INPUT,
    MQRC_NOT_OPEN_FOR_OUTPUT,
    MQRC_OBJECT_IN_USE,
    MQRC_OPTIONS_ERROR,
    MQRC_PRIORITY_ERROR,
    MQRC_PUT_INHIBITED,
    MQRC_Q_FULL,
    MQRC_Q_MGR_NAME_ERROR,
    MQRC_SELECTOR_NOT_FOR_TYPE,
    MQRC_SYNCPOINT_LIMIT_REACHED,
    MQRC_UNEXPECTED_ERROR,
    MQRC_UNKNOWN_OBJECT_NAME,
    PROPCTL_VALUES,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (name TEXT PRIMARY KEY, target TEXT, attributes TEXT, denied TEXT DEFAULT '');
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    md TEXT NOT NULL,
    body BLOB NOT NULL,
    state INTEGER NOT NULL,
    owner TEXT,
    backouts INTEGER NOT NULL DEFAULT 0,
    priority INTEGER NOT NULL DEFAULT 0,
    persistent INTEGER NOT NULL DEFAULT 1,
    expires REAL,
    msg_id TEXT,
    correl_id TEXT
);
CREATE INDEX IF NOT EXISTS messages_in_order ON messages (queue, state, priority DESC, id);
CREATE TABLE IF NOT EXISTS opens (handle TEXT PRIMARY KEY, queue TEXT NOT NULL, owner TEXT NOT NULL, exclusive INTEGER);
CREATE TABLE IF NOT EXISTS connections (owner TEXT PRIMARY KEY, broken INTEGER NOT NULL DEFAULT 0);
"""
# CURDEPTH per queue (rows whose state is VISIBLE or PUT_PENDING), kept by triggers on every change
# of a message, whatever made it (put, get, commit, backout, recovery, expiry, restart): a put then
# checks MAXDEPTH in constant time, where counting the rows cost time in proportion to the depth.
_DEPTHS = """
CREATE TABLE IF NOT EXISTS depths (queue TEXT PRIMARY KEY, depth INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS depth_on_insert AFTER INSERT ON messages WHEN NEW.state IN (0, 1) BEGIN
    INSERT INTO depths (queue, depth) VALUES (NEW.queue, 1) ON CONFLICT (queue) DO UPDATE SET depth = depth + 1;
END;
CREATE TRIGGER IF NOT EXISTS depth_on_delete AFTER DELETE ON messages WHEN OLD.state IN (0, 1) BEGIN
    UPDATE depths SET depth = depth - 1 WHERE queue = OLD.queue;
END;
CREATE TRIGGER IF NOT EXISTS depth_on_update AFTER UPDATE OF state, queue ON messages
WHEN (OLD.state IN (0, 1)) != (NEW.state IN (0, 1)) OR OLD.queue != NEW.queue BEGIN
    UPDATE depths SET depth = depth - 1 WHERE queue = OLD.queue AND OLD.state IN (0, 1);
    INSERT INTO depths (queue, depth) SELECT NEW.queue, 1 WHERE NEW.state IN (0, 1)
        ON CONFLICT (queue) DO UPDATE SET depth = depth + 1;
END;
"""
# A message's body lives in a table of its own: a get under syncpoint marks the message taken, and
# SQLite rewrites a whole row to change one column (a 64 KiB body cost 2 ms per get and put).
# Messages written before keep their body in their row, where the reads find it.
_BODIES = """
CREATE TABLE IF NOT EXISTS bodies (id INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE TRIGGER IF NOT EXISTS body_on_delete AFTER DELETE ON messages BEGIN
    DELETE FROM bodies WHERE id = OLD.id;
END;
"""
# PRAGMA user_version: 2 added the msg_id column and its index, 3 the depths, 4 the bodies, 5 the correl_id
# column (a reader of 4 would put messages without it, which a get by CorrelId would never find)
_SCHEMA_VERSION = 5
_COLUMNS = {  # columns added since the first file format, and their definitions
    "messages": {
        "priority": "INTEGER NOT NULL DEFAULT 0",
        "persistent": "INTEGER NOT NULL DEFAULT 1",
        "expires": "REAL",
        "msg_id": "TEXT",
        "correl_id": "TEXT",
    },
    "queues": {"attributes": "TEXT", "denied": "TEXT DEFAULT ''"},
}
VISIBLE, PUT_PENDING, GOT_PENDING = 0, 1, 2
_BACK_OUT_GETS = "UPDATE messages SET state = ?, owner = NULL, backouts = backouts + 1 WHERE owner = ? AND state = ?"
SYSTEM_QUEUES = (
    "SYSTEM.PROTECTION.ERROR.QUEUE",
    "SYSTEM.PROTECTION.POLICY.QUEUE",
    "SYSTEM.DEAD.LETTER.QUEUE",
    "SYSTEM.ADMIN.COMMAND.QUEUE",
)
OPERATIONS = ("put", "get", "browse", "inq", "setall")
_POLL_SECONDS = 0.02
_ORDER = " ORDER BY m.priority DESC, m.id ASC"
# the message and its body, wherever it is kept (its own table; its row, in files written before)
_MESSAGE = (
    "SELECT m.id, m.md, coalesce(b.body, m.body), m.backouts, m.expires{} "
    "FROM messages m{} LEFT JOIN bodies b ON b.id = m.id"
)
_BY_MSG_ID = " INDEXED BY messages_by_msg_id"  # the planner would walk the queue in order to honour ORDER BY
_BY_CORREL_ID = " INDEXED BY messages_by_correl_id"


def _matching(match: Match) -> tuple[str, str, tuple[object, ...]]:
    """The index, the WHERE clause and its arguments that select by MsgId and/or CorrelId."""
    where = ""
    arguments: tuple[object, ...] = ()
    if match.msg_id is not None:
        where, arguments = " AND m.msg_id = ?", (match.msg_id.hex(),)
    if match.correl_id is not None:
        where, arguments = where + " AND m.correl_id = ?", (*arguments, match.correl_id.hex())
    index = _BY_MSG_ID if match.msg_id is not None else _BY_CORREL_ID if match.correl_id is not None else ""
    return index, where, arguments


_DEPTH = "SELECT depth FROM depths WHERE queue = ?"
_OWNERS = (  # every owner of work, an open queue or a connection in the file
    "SELECT DISTINCT owner FROM messages WHERE owner IS NOT NULL UNION SELECT DISTINCT owner FROM opens "
    "UNION SELECT owner FROM connections"
)
_ANY_EXPIRED = (
    "SELECT 1 FROM messages INDEXED BY messages_by_expiry WHERE queue = ? AND expires IS NOT NULL AND expires < ? "
    "LIMIT 1"
)
_DISCARD_EXPIRED = (
    "DELETE FROM messages WHERE id IN (SELECT m.id FROM messages m WHERE m.queue = ? AND m.expires IS NOT NULL "
    "AND m.expires < ? AND m.state = ?{})"
)


_MD_FIELDS = tuple(field.name for field in attrs.fields(MQMD))


def _md_to_json(md: MQMD) -> str:
    fields = {name: getattr(md, name) for name in _MD_FIELDS}  # attrs.asdict, without its generality
    fields["msg_id"], fields["correl_id"] = md.msg_id.hex(), md.correl_id.hex()
    return json.dumps(fields)


def _md_from_json(text: str, backouts: int) -> MQMD:
    raw = json.loads(text)
    for key in ("msg_id", "correl_id"):
        raw[key] = bytes.fromhex(raw[key])
    raw["backout_count"] = backouts
    return MQMD(**raw)


def _attributes_to_json(attributes: QueueAttributes) -> str:
    return json.dumps(attrs.asdict(attributes))


@functools.lru_cache(maxsize=256)
def _attributes_from_json(text: str | None) -> QueueAttributes:
    """A queue's attributes as stored (read at every call, decoded once per text: the value is frozen)."""
    return QueueAttributes(**json.loads(text)) if text else QueueAttributes()


_Class = TypeVar("_Class", bound=type)


def _translated(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except sqlite3.Error as error:  # a locked, full, missing or damaged file: an MQ failure like any other
            raise MQError(
                f"the embedded queue manager's file failed ({type(error).__name__}: {error})", MQRC_UNEXPECTED_ERROR
            ) from None

    return call


def _mq_errors(cls: _Class) -> _Class:
    """SQLite's errors from the public methods of ``cls`` become MQError (MQRC 2195)."""
    for name, member in list(vars(cls).items()):
        if callable(member) and (name == "__init__" or not name.startswith("_")):
            setattr(cls, name, _translated(member))
    return cls


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
            self.path = Path(path)
            _create_private(self.path, create=create)
            # percent-encoded, so that '?' or '#' in a path is part of the name, not URI syntax
            self._uri = "file:" + urllib.parse.quote(str(self.path.absolute()))
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
            self._keeper.execute("CREATE INDEX IF NOT EXISTS messages_by_msg_id ON messages (queue, msg_id)")
            self._keeper.execute("CREATE INDEX IF NOT EXISTS messages_by_correl_id ON messages (queue, correl_id)")
            self._keeper.execute(
                "CREATE INDEX IF NOT EXISTS messages_by_expiry ON messages (queue, expires) WHERE expires IS NOT NULL"
            )
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
        return db

    def _migrate(self) -> None:
        """An earlier format brought to this one, in one transaction (a process opening the file
        meanwhile sees before or after): gets and browses by MsgId (a proxy's delivery ledger) look
        it up, not scan for it; the depths are counted once, and the triggers keep them from then on.

        Refused while another live process is connected: it may run an earlier version of ams,
        which would read the empty body left in the row of every message put from now on."""
        with _transaction(self._keeper, self._uri) as db:
            if db.execute("PRAGMA user_version").fetchone()[0] >= _SCHEMA_VERSION:
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
            db.execute("UPDATE messages SET msg_id = json_extract(md, '$.msg_id') WHERE msg_id IS NULL")
            db.execute("UPDATE messages SET correl_id = json_extract(md, '$.correl_id') WHERE correl_id IS NULL")
            db.execute("DROP TABLE IF EXISTS depths")
            for statement in _statements(_DEPTHS + _BODIES):
                db.execute(statement)
            db.execute(
                "INSERT INTO depths (queue, depth) SELECT queue, COUNT(*) FROM messages WHERE state IN (0, 1) "
                "GROUP BY queue"
            )
            db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    def _recover_dead_owners(self) -> None:
        """Back out what processes that died left uncommitted (as MQ does when a connection breaks)."""
        rows = self._keeper.execute(_OWNERS).fetchall()
        for (owner,) in rows:
            if owner.split(":", 1)[0] == _process_tag() or _alive(owner):
                continue
            with _transaction(self._keeper, self._uri):
                _back_out(self._keeper, owner)
                self._keeper.execute("DELETE FROM opens WHERE owner = ?", (owner,))
                self._keeper.execute("DELETE FROM connections WHERE owner = ?", (owner,))

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
        with _transaction(self._keeper, self._uri):
            rows = self._keeper.execute("SELECT DISTINCT owner FROM messages WHERE owner IS NOT NULL")
            owners = [row[0] for row in rows]
            for owner in owners:
                _back_out(self._keeper, owner)
            self._keeper.execute("DELETE FROM opens")
            # every connection is broken by a restart: its next call, MQCMIT included, is MQRC 2009
            self._keeper.execute("UPDATE connections SET broken = 1")
            gone = self._keeper.execute("DELETE FROM messages WHERE persistent = 0").rowcount
        return int(gone)

    def close(self) -> None:
        """Release this object's hold on the database (connections have their own)."""
        self._keeper.close()

    def __repr__(self) -> str:
        return f"EmbeddedQueueManager({self.name}, {self.path or 'in memory'})"


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


def _back_out(db: sqlite3.Connection, owner: str) -> None:
    db.execute("DELETE FROM messages WHERE owner = ? AND state = ?", (owner, PUT_PENDING))
    db.execute(_BACK_OUT_GETS, (VISIBLE, owner, GOT_PENDING))


def _create_private(path: Path, *, create: bool) -> None:
    """The database file, created 0600 when ``create`` (SQLite gives its -wal and -shm files the same
    mode); MQRC 2058 for a missing one otherwise."""
    if path.is_symlink():
        raise UsageError(
            f"refusing to open queue manager file {path}: it is a symbolic link; give the real path of the file"
        )
    if path.exists():
        _refuse_foreign(path)
    elif not create:
        raise MQError(
            f"no embedded queue manager at {path} (the file does not exist; nothing was created): check the "
            f"name, or create it with `ams qm create {path}`",
            MQRC_Q_MGR_NAME_ERROR,
        )
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_new_file(path, b"", mode=PRIVATE_FILE_MODE)
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        # whoever pre-created the file (or its journal) world-readable, or owns it, reads every queue
        check_private_file(file, "queue manager file", "every queue, the policy queue included")


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _refuse_foreign(path: Path) -> None:
    """MQRC 2058 for a path that is not an embedded queue manager's file: not a regular file (a directory,
    a FIFO), or one that is neither empty (just created) nor SQLite (the README given to --qm by mistake)."""
    what = "a directory" if path.is_dir() else None if path.is_file() else "not a regular file"
    if what is None:
        try:
            with path.open("rb") as file:
                start = file.read(len(_SQLITE_MAGIC))
        except OSError as error:
            raise MQError(
                f"cannot read the embedded queue manager's file {path}: {error.strerror or error}; check its "
                "permissions",
                MQRC_Q_MGR_NAME_ERROR,
            ) from None
        what = "not SQLite" if start and start != _SQLITE_MAGIC else None
    if what is not None:
        raise MQError(
            f"{path} is not an embedded queue manager's file ({what}): check the name given to --qm",
            MQRC_Q_MGR_NAME_ERROR,
        )


def _statements(script: str) -> Iterator[str]:
    """The statements of ``script`` one by one (executescript would commit the transaction)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            yield statement
            statement = ""


def _add_columns(db: sqlite3.Connection) -> None:
    """Files made by earlier versions get the columns added since, with their defaults."""
    for table, columns in _COLUMNS.items():
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for column, definition in columns.items():
            if column not in present:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")


def _started(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, from /proc), "" where that is unknown;
    a zombie is "dead"."""
    try:
        record = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return ""  # no /proc (macOS, BSD), or hidden from us (hidepid): os.kill decides
    fields = record.rpartition(")")[2].split()  # after "pid (comm)": state, ppid, ...; starttime is field 22
    if not fields or fields[0] in ("Z", "X"):
        return "dead"
    return fields[19] if len(fields) > 19 else ""


_TAGS: dict[int, str] = {}


def _process_tag() -> str:
    """ "pid.start" of this process: what owners begin with (a pid alone can be reused)."""
    pid = os.getpid()
    if pid not in _TAGS:
        _TAGS[pid] = f"{pid}.{_started(pid)}"
    return _TAGS[pid]


def _alive(owner: str) -> bool:
    """Whether the process that wrote ``owner`` ("pid.start:..." or "pid:...") still runs: not a
    zombie waiting to be reaped, and not another process that was given its pid since."""
    process = owner.split(":", 1)[0]
    pid_text, _, start = process.partition(".")
    pid = int(pid_text)
    now = _started(pid)
    if now == "dead":
        return False
    if now and start and now != start:
        return False  # the pid was reused
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, so concurrent processes serialise their changes; the connections
    of this process holding the writer of ``database`` write first (they would keep it from us)."""

    def __init__(self, db: sqlite3.Connection, database: str, me: object = None) -> None:
        self.db, self.database, self.me = db, database, me

    def __enter__(self) -> sqlite3.Connection:
        release_others(self.database, self.me)
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")


@attrs.frozen
class _Resolved:
    local: str
    attributes: QueueAttributes
    denied: frozenset[str]
    first: QueueAttributes  # the first definition on the resolution path: DEFPSIST and DEFPRTY come from it


@_mq_errors
class EmbeddedConnection:
    """One connection: its own unit of work, like an MQ connection handle."""

    def __init__(self, manager: EmbeddedQueueManager, db: sqlite3.Connection, appl_name: str) -> None:
        self.manager = manager
        self.name = manager.name
        self.appl_name = appl_name
        self._connection: sqlite3.Connection | None = db
        self._owner = f"{_process_tag()}:{uuid.uuid4().hex}"
        self._lock = threading.Lock()
        self._held: float | None = None  # when this connection took the writer it still holds
        self._resolved: dict[str, _Resolved] = {}  # queues resolved, while the file's data_version is
        self._resolved_at: int | None = None
        self._version: int | None = None  # the file's data_version when this connection last took the writer
        self._uncommitted = 0  # messages got or put under syncpoint since the last commit or backout
        self._taken: dict[int, list[tuple[int, str, int]]] = {GOT_PENDING: [], PUT_PENDING: []}  # their rows
        with _transaction(db, manager._uri):
            db.execute("INSERT INTO connections (owner) VALUES (?)", (self._owner,))

    @property
    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise MQError(f"the connection to {self.name} was closed", MQRC_HCONN_ERROR)
        return self._connection

    @contextlib.contextmanager
    def _work(
        self, *, durable: bool = False, keep: bool = False, end: bool = False, guard: bool = False
    ) -> Iterator[sqlite3.Connection]:
        """A call's work in this connection's transaction (begun if none is held); MQRC 2009 when
        the connection was broken since (a queue manager restart, or another process taking it for
        dead and backing its work out).

        The transaction outlives the call (ams/mq/embedded_writer.py) when the call is work of
        the unit of work (``keep``: a put or get under syncpoint) or found it held, unless it is
        older than HOLD_SECONDS. A ``durable`` call (a commit, a put or get outside syncpoint: what
        MQ has promised once the call returns) writes it and waits for the disk; ``end`` (MQBACK)
        writes it. A call that writes more than one row (``guard``) has its own savepoint in a
        transaction held: failing, it undoes its own work, not the unit of work's (SQLite undoes a
        failed statement itself)."""
        db = self._db
        fresh = self._held is None
        saved = guard and not fresh
        if fresh:
            self._begin(db)
        elif saved:
            db.execute("SAVEPOINT call")
        try:
            yield db
        except BaseException:
            self._undo(db, fresh, saved)
            raise
        if saved:
            db.execute("RELEASE call")
        if durable or end or (fresh and not keep) or time.monotonic() - (self._held or 0.0) >= HOLD_SECONDS:
            self._write(db, durable=durable)

    def _begin(self, db: sqlite3.Connection) -> None:
        release_others(self.manager._uri, self)
        db.execute("BEGIN IMMEDIATE")
        version = int(db.execute("PRAGMA data_version").fetchone()[0])
        if version != self._version:  # another connection wrote since we last held the writer: broken?
            row = db.execute("SELECT broken FROM connections WHERE owner = ?", (self._owner,)).fetchone()
            if row is None or row[0]:
                db.execute("ROLLBACK")
                raise MQError(
                    f"the connection to {self.name} was broken (the queue manager restarted, or its work was "
                    "backed out): its uncommitted work is gone; connect again",
                    MQRC_CONNECTION_BROKEN,
                )
            self._version = version
        self._held = time.monotonic()
        held(self.manager._uri, self)

    def _undo(self, db: sqlite3.Connection, fresh: bool, saved: bool) -> None:
        """A call failed: its own changes undone; the unit of work's earlier ones kept, unless SQLite
        rolled the whole transaction back (a full disk, an I/O error): then the unit of work is lost
        and the connection broken, as MQ breaks a connection whose unit of work it cannot keep."""
        if fresh or not db.in_transaction:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._held = None
            released(self)
            if not fresh:
                self._break()
            return
        if saved:
            db.execute("ROLLBACK TO call")
            db.execute("RELEASE call")

    def _break(self) -> None:
        self._version = None  # our own writes leave data_version as it was: the flag must be read again
        with contextlib.suppress(sqlite3.Error), _transaction(self._db, self.manager._uri, self) as db:
            _back_out(db, self._owner)
            db.execute("UPDATE connections SET broken = 1 WHERE owner = ?", (self._owner,))

    def _write(self, db: sqlite3.Connection, *, durable: bool = False) -> None:
        """Commit the transaction held; ``durable``: and wait for the disk."""
        self._held = None
        released(self)
        try:
            db.execute("COMMIT")
        except sqlite3.Error:  # the unit of work's work since its last write is gone with the transaction
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._break()
            raise
        if durable:
            sync_log(self.manager.path)

    def release_writer(self, *, wait: bool) -> None:
        """Write the transaction held (``wait`` False: unless a call is under way, or it is younger
        than HOLD_SECONDS): for another connection of this process, or the flusher thread."""
        # bounded: a connection dropped (and closed by the collector) inside another's call, in the same
        # thread, must not wait for ever; past it, SQLite's own busy timeout decides (MQRC 2195)
        if not self._lock.acquire(blocking=wait, timeout=30 if wait else -1):
            return
        try:
            stale = self._held is not None and (wait or time.monotonic() - self._held >= HOLD_SECONDS)
            if stale and self._connection is not None:
                self._write(self._connection)
        finally:
            self._lock.release()

    def _discard_expired(
        self, local: str, match: Match, found: tuple[int, int] | None, after: tuple[int, int] | None = None
    ) -> None:
        """Discard the expired messages a get or browse passed over: those matching it ahead of the
        message ``found`` (its priority and row id; None: all it would have returned), after the
        browse cursor ``after``. MQ discards an expired message only "when a browse or non-browse
        MQGET would have returned it" (IBM MQ docs, message expiry): until then it counts towards
        CURDEPTH and MAXDEPTH, and a put meets 2053 earlier than the live messages explain."""
        now = time.time()
        if self._db.execute(_ANY_EXPIRED, (local, now)).fetchone() is None:
            return  # nothing to discard (a read on the expiry index costs less than a DELETE finding nothing)
        _, where, wanted = _matching(match)
        arguments: tuple[object, ...] = (local, now, VISIBLE, *wanted)
        if found is not None:
            where += " AND (m.priority > ? OR (m.priority = ? AND m.id < ?))"
            arguments += (found[0], found[0], found[1])
        if after is not None:
            where += " AND (m.priority < ? OR (m.priority = ? AND m.id > ?))"
            arguments += (after[0], after[0], after[1])
        self._db.execute(_DISCARD_EXPIRED.format(where), arguments)

    @property
    def closed(self) -> bool:
        """Whether the connection was closed or disconnected."""
        return self._connection is None

    # -- queues -------------------------------------------------------------------------------

    def _lookup(self, queue: str) -> _Resolved:
        """The queue's resolution, read again only when another connection wrote to the file since
        (PRAGMA data_version: nothing else changes the definitions; none changes while we hold the writer)."""
        if self._held is not None:
            version = self._version
        else:
            version = int(self._db.execute("PRAGMA data_version").fetchone()[0])
        if version != self._resolved_at:
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

    def _unregister(self, handle: str) -> None:
        with self._lock, self._work():
            self._db.execute("DELETE FROM opens WHERE handle = ?", (handle,))

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
        return 0 if row is None else int(row[0])

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
        _check_md(found.local, md)
        stamped = self._stamped(found, md, set_all_context)
        persistent, priority = stamped.persistence, stamped.priority
        expires = None if md.expiry == MQEI_UNLIMITED else time.time() + md.expiry / 10
        if syncpoint:
            self._count_uncommitted(found.local)
        with self._lock, self._work(durable=not syncpoint, keep=syncpoint, guard=True):
            # expired messages count until a get or browse passes over them (MQ's EXPRYINT scan is off by default)
            row = self._db.execute(_DEPTH, (found.local,)).fetchone()
            depth = 0 if row is None else int(row[0])
            if depth >= found.attributes.max_depth:
                raise MQError(f"MQPUT to {found.local}: the queue holds {depth:,} messages, its MAXDEPTH", MQRC_Q_FULL)
            cursor = self._db.execute(
                "INSERT INTO messages (queue, md, body, state, owner, backouts, priority, persistent, expires, msg_id, "
                "correl_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    found.local,
                    _md_to_json(stamped),
                    b"",
                    PUT_PENDING if syncpoint else VISIBLE,
                    self._owner if syncpoint else None,
                    0,
                    min(priority, MQ_MAX_PRIORITY),  # above MaxPriority: queued at it (MQCC_WARNING 2049 on MQ)
                    int(persistent),
                    expires,
                    stamped.msg_id.hex(),
                    stamped.correl_id.hex(),
                ),
            )
            self._db.execute("INSERT INTO bodies (id, body) VALUES (?, ?)", (cursor.lastrowid, bytes(body)))
        if syncpoint:
            self._uncommitted += 1
            self._taken[PUT_PENDING].append((int(cursor.lastrowid or 0), self._owner, PUT_PENDING))
        # the MQMD as MQPUT leaves it: Persistence and Priority are input fields, left "as queue
        # default" (the message itself carries the values used, which a get returns)
        return attrs.evolve(stamped, persistence=md.persistence, priority=md.priority)

    def _stamped(self, found: _Resolved, md: MQMD, set_all_context: bool) -> MQMD:
        """The MQMD as stored: what MQMD.stamped fills in (the default context) or the context given
        (MQPMO_SET_ALL_CONTEXT), and the persistence and priority used, in one copy."""
        msg_id = b"AMQ " + self.name.encode()[:12].ljust(12) + os.urandom(8)  # unique across processes, as MQ's
        persistent = (
            found.first.default_persistent
            if md.persistence == MQPER_PERSISTENCE_AS_Q_DEF
            else (md.persistence == MQPER_PERSISTENT)
        )
        date, hour = _now_date_time()
        context = (md.put_appl_name, md.put_date, md.put_time) if set_all_context else (self.appl_name[:28], date, hour)
        return attrs.evolve(
            md,
            put_appl_name=context[0],
            put_date=context[1],
            put_time=context[2],
            backout_count=0,
            msg_id=padded_id(md.msg_id if any(md.msg_id) else msg_id, "MsgId"),
            persistence=int(persistent),
            priority=found.first.default_priority if md.priority == MQPRI_PRIORITY_AS_Q_DEF else md.priority,
            correl_id=padded_id(md.correl_id, "CorrelId"),
        )

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

    def _get(self, local: str, *, wait: float, syncpoint: bool, match: Match, force_rfh2: bool) -> Message:
        deadline = time.monotonic() + wait
        index, where, wanted = _matching(match)
        if syncpoint:
            self._count_uncommitted(local)
        while True:
            # written before it returns, even under syncpoint: if this process dies with the message, its
            # BackoutCount must have risen when another gets it (a message that kills its reader is not
            # read for ever); so a unit of work's puts are written with the next get, or its commit
            with self._lock, self._work(durable=not syncpoint, end=True):
                row = self._db.execute(
                    _MESSAGE.format(", m.priority", index)
                    + " WHERE m.queue = ? AND m.state = ?"
                    + where
                    + " AND (m.expires IS NULL OR m.expires >= ?)"
                    + _ORDER
                    + " LIMIT 1",
                    (local, VISIBLE, *wanted, time.time()),
                ).fetchone()
                self._discard_expired(local, match, None if row is None else (int(row[5]), int(row[0])))
                if row is not None:
                    if syncpoint:
                        self._db.execute(
                            "UPDATE messages SET state = ?, owner = ? WHERE id = ?", (GOT_PENDING, self._owner, row[0])
                        )
                    else:
                        self._db.execute("DELETE FROM messages WHERE id = ?", (row[0],))
            if row is not None:
                if syncpoint:
                    self._uncommitted += 1
                    self._taken[GOT_PENDING].append((int(row[0]), self._owner, GOT_PENDING))
                return self._delivered(local, row[:5], force_rfh2)
            if time.monotonic() >= deadline:
                raise NoMessageAvailable(local, wait, "" if match == ANY else str(match))
            self.release_writer(wait=True)  # another process may be about to put the message
            time.sleep(min(_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
            if self._lookup(local).attributes.get_inhibited:  # a waiting MQGET ends with 2016, not 2033
                raise MQError(
                    f"MQGET from {local}: the queue was made GET(DISABLED) during the wait", MQRC_GET_INHIBITED
                )

    def _delivered(self, local: str, row: tuple[object, ...], force_rfh2: bool) -> Message:
        _, md_text, body, backouts, expires = row
        md = _md_from_json(str(md_text), int(backouts))  # type: ignore[call-overload]
        if isinstance(expires, float):
            md = attrs.evolve(md, expiry=max(1, int((expires - time.time()) * 10)))
        data = bytes(body)  # type: ignore[call-overload]
        if not force_rfh2:
            md, data = deliver(md, data, self._lookup(local).attributes.propctl)
        return Message(md, data)

    def _browse(
        self, local: str, after: tuple[int, int] | None, force_rfh2: bool, match: Match = ANY
    ) -> tuple[tuple[int, int], Message]:
        where = "" if after is None else " AND (m.priority < ? OR (m.priority = ? AND m.id > ?))"
        arguments: tuple[object, ...] = (local, VISIBLE, time.time())
        if after is not None:
            arguments += (after[0], after[0], after[1])
        index, matching, wanted = _matching(match)
        with self._lock, self._work():  # after the writer's holder wrote: what it got is hidden
            row = self._db.execute(
                _MESSAGE.format(", m.priority", index)
                + " WHERE m.queue = ? AND m.state = ? AND (m.expires IS NULL OR m.expires >= ?)"
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
        return (int(row[5]), int(row[0])), self._delivered(local, row[:5], force_rfh2)

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
        self._settled()

    def _settled(self) -> None:
        self._uncommitted = 0
        self._taken = {GOT_PENDING: [], PUT_PENDING: []}

    def backout(self) -> None:
        """MQBACK: got messages return (their backout count raised), put ones vanish."""
        with self._lock, self._work(end=True):
            _back_out(self._db, self._owner)
        self._settled()

    def disconnect(self) -> None:
        """MQDISC, as IBM MQ does it: uncommitted work is committed."""
        self.commit()
        self._end()

    def close(self) -> None:
        """This library's way to disconnect: uncommitted work is backed out first, never committed.
        Closing a closed connection does nothing."""
        if self._connection is None:
            return
        self.backout()
        self._end()

    def _end(self) -> None:
        self.release_writer(wait=True)
        with self._lock, _transaction(self._db, self.manager._uri, self):
            self._db.execute("DELETE FROM opens WHERE owner = ?", (self._owner,))
            self._db.execute("DELETE FROM connections WHERE owner = ?", (self._owner,))
        self._db.close()
        self._connection = None

    def __del__(self) -> None:
        # a connection dropped without close: its work is backed out, as close() would
        if getattr(self, "_connection", None) is not None:
            with contextlib.suppress(Exception):
                self.close()

    def __enter__(self) -> EmbeddedConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@_mq_errors
class EmbeddedQueue:
    """An open queue of the embedded queue manager."""

    def __init__(
        self,
        connection: EmbeddedConnection,
        name: str,
        local: str,
        handle: str,
        *,
        output: bool,
        input: bool,
        browse: bool,
    ) -> None:
        self.connection = connection
        self.name = name
        self.local = local
        self._handle = handle
        self._modes = {"output": output, "input": input, "browse": browse}
        self._cursor: tuple[int, int] | None = None

    def _gets_allowed(self) -> None:
        if self.connection.attributes(self.local).get_inhibited:
            raise MQError(f"MQGET from {self.local}: the queue is GET(DISABLED)", MQRC_GET_INHIBITED)

    def _need(self, mode: str) -> None:
        if not self._modes[mode]:
            reason = {"output": MQRC_NOT_OPEN_FOR_OUTPUT, "input": MQRC_NOT_OPEN_FOR_INPUT}.get(
                mode, MQRC_NOT_OPEN_FOR_BROWSE
            )
            raise MQError(f"{self.name} was not opened for {mode}", reason)

    def put(self, md: MQMD, body: bytes, *, syncpoint: bool = False) -> MQMD:
        """MQPUT; the MQMD comes back as the queue manager completed it."""
        self._need("output")
        return self.connection._put(self.connection._lookup(self.name), md, body, syncpoint=syncpoint)

    def get(
        self,
        *,
        wait: float = 0.0,
        syncpoint: bool = False,
        msg_id: bytes | None = None,
        correl_id: bytes | None = None,
        force_rfh2: bool = True,
    ) -> Message:
        """MQGET (the first message matching ``msg_id`` and ``correl_id``, each if given and not all
        zeros); ``force_rfh2`` False applies the queue's PROPCTL, as MQ does without the GMO option."""
        self._need("input")
        self._gets_allowed()
        match = Match.of(msg_id, correl_id)
        return self.connection._get(self.local, wait=wait, syncpoint=syncpoint, match=match, force_rfh2=force_rfh2)

    def browse_first(
        self, *, msg_id: bytes | None = None, correl_id: bytes | None = None, force_rfh2: bool = True
    ) -> Message:
        """MQGET with MQGMO_BROWSE_FIRST (matching ``msg_id`` and ``correl_id``, if given)."""
        self._need("browse")
        self._gets_allowed()
        self._cursor, message = self.connection._browse(self.local, None, force_rfh2, Match.of(msg_id, correl_id))
        return message

    def browse_next(
        self, *, msg_id: bytes | None = None, correl_id: bytes | None = None, force_rfh2: bool = True
    ) -> Message:
        """MQGET with MQGMO_BROWSE_NEXT (the next message after the cursor with ``msg_id`` and
        ``correl_id``, if given: the pymqi stand-in's version-1 GMO matches on them)."""
        self._need("browse")
        self._gets_allowed()
        match = Match.of(msg_id, correl_id)
        self._cursor, message = self.connection._browse(self.local, self._cursor, force_rfh2, match)
        return message

    def peek(self, *, msg_id: bytes | None = None, correl_id: bytes | None = None, force_rfh2: bool = True) -> Message:
        """The message a get would return now, left on the queue (how the pymqi stand-in models MQRC 2080)."""
        self._need("input")
        self._gets_allowed()
        return self.connection._browse(self.local, None, force_rfh2, Match.of(msg_id, correl_id))[1]

    def peek_browse(
        self,
        after_cursor: bool | None,
        *,
        msg_id: bytes | None = None,
        correl_id: bytes | None = None,
        force_rfh2: bool = True,
    ) -> Message:
        """The message ``browse_first`` (None) or ``browse_next`` (True) would return, the cursor unmoved."""
        self._need("browse")
        self._gets_allowed()
        cursor = self._cursor if after_cursor else None
        return self.connection._browse(self.local, cursor, force_rfh2, Match.of(msg_id, correl_id))[1]

    def close(self) -> None:
        """MQCLOSE."""
        self._cursor = None
        if self._modes["input"]:
            self.connection._unregister(self._handle)
