"""The embedded queue manager: a small stand-in for IBM MQ, in memory or in an SQLite file.

It is for tests, demos and single-machine pipelines, not a queue manager product. What it does:
local and alias queues (local queues are defined on first use), FIFO delivery, syncpoint per
connection (uncommitted puts are invisible, uncommitted gets are hidden, backout restores them
and counts), each queue's backout threshold and backout queue (BOTHRESH, default 5, and
BOQNAME), browse cursors, get-wait, MQPUT1, and a file mode that several processes share and
that keeps every message across a crash (work a dead process left uncommitted is backed out
when the next connection opens). The file is created private (0600) and never through a
symbolic link. Priority, expiry and message groups are not implemented.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import attrs

from ams._files import PRIVATE_FILE_MODE, write_new_file
from ams.errors import UsageError
from ams.mq.mqmd import MQMD
from ams.mq.transport import BackoutSettings, Message, MQError, NoMessageAvailable

DEFAULT_BACKOUT_THRESHOLD = 5
_SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    target TEXT,
    backout_threshold INTEGER NOT NULL DEFAULT 5,
    backout_queue TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    md TEXT NOT NULL,
    body BLOB NOT NULL,
    state INTEGER NOT NULL,
    owner TEXT,
    backouts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_by_queue ON messages (queue, state, id);
"""
VISIBLE, PUT_PENDING, GOT_PENDING = 0, 1, 2
_BACK_OUT_GETS = "UPDATE messages SET state = ?, owner = NULL, backouts = backouts + 1 WHERE owner = ? AND state = ?"
SYSTEM_QUEUES = ("SYSTEM.PROTECTION.ERROR.QUEUE", "SYSTEM.PROTECTION.POLICY.QUEUE", "SYSTEM.DEAD.LETTER.QUEUE")
_POLL_SECONDS = 0.02
_counter = itertools.count(1)


def _md_to_json(md: MQMD) -> str:
    return json.dumps({k: v.hex() if isinstance(v, bytes) else v for k, v in attrs.asdict(md).items()})


def _md_from_json(text: str, backouts: int) -> MQMD:
    raw = json.loads(text)
    for key in ("msg_id", "correl_id"):
        raw[key] = bytes.fromhex(raw[key])
    raw["backout_count"] = backouts
    return MQMD(**raw)


class EmbeddedQueueManager:
    """A queue manager in memory (``path`` None) or in an SQLite file shared by processes."""

    def __init__(self, path: str | Path | None = None, *, name: str = "AMSQM") -> None:
        self.name = name
        if path is None:
            self._uri = f"file:ams-embedded-{uuid.uuid4().hex}?mode=memory&cache=shared"
            self.path: Path | None = None
        else:
            self.path = Path(path)
            _create_private(self.path)
            # percent-encoded, so that '?' or '#' in a path is part of the name, not URI syntax
            self._uri = "file:" + urllib.parse.quote(str(self.path.absolute()))
        self._keeper = self._open_db()  # keeps an in-memory database alive
        with self._keeper:
            self._keeper.executescript(_SCHEMA)
            _add_backout_columns(self._keeper)
            for queue in SYSTEM_QUEUES:
                self._keeper.execute("INSERT OR IGNORE INTO queues (name, target) VALUES (?, NULL)", (queue,))
        self._recover_dead_owners()

    def _open_db(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._uri, uri=True, timeout=30, isolation_level=None, check_same_thread=False)
        if self.path is not None:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
        return db

    def _recover_dead_owners(self) -> None:
        """Back out what processes that died left uncommitted (as MQ does at restart)."""
        rows = self._keeper.execute("SELECT DISTINCT owner FROM messages WHERE owner IS NOT NULL").fetchall()
        for (owner,) in rows:
            pid = int(owner.split(":", 1)[0])
            if pid == os.getpid() or _alive(pid):
                continue
            with _transaction(self._keeper):
                self._keeper.execute("DELETE FROM messages WHERE owner = ? AND state = ?", (owner, PUT_PENDING))
                self._keeper.execute(_BACK_OUT_GETS, (VISIBLE, owner, GOT_PENDING))

    def connect(self, appl_name: str = "ams") -> EmbeddedConnection:
        """A new connection with its own unit of work; its puts carry ``appl_name`` unless the MQMD names one."""
        return EmbeddedConnection(self, self._open_db(), appl_name)

    def define_alias(self, alias: str, target: str) -> None:
        """Define (or redefine) ``alias`` as an alias queue for ``target`` (DEFINE QALIAS TARGET)."""
        with _transaction(self._keeper):
            self._keeper.execute("INSERT OR REPLACE INTO queues (name, target) VALUES (?, ?)", (alias, target))

    def define_queue(
        self, name: str, *, backout_threshold: int = DEFAULT_BACKOUT_THRESHOLD, backout_queue: str = ""
    ) -> None:
        """Define (or alter) a local queue: BOTHRESH (0: none) and BOQNAME, as DEFINE QLOCAL sets them."""
        if backout_threshold < 0 or len(backout_queue) > 48 or not 1 <= len(name) <= 48:
            raise UsageError(
                f"queue {name!r}: expected a name of 1 to 48 characters, BOTHRESH >= 0 and a BOQNAME of at most "
                f"48 characters, found BOTHRESH {backout_threshold} and BOQNAME {backout_queue!r}"
            )
        with _transaction(self._keeper):
            self._keeper.execute(
                "INSERT INTO queues (name, target, backout_threshold, backout_queue) VALUES (?, NULL, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET target = NULL, backout_threshold = excluded.backout_threshold, "
                "backout_queue = excluded.backout_queue",
                (name, backout_threshold, backout_queue),
            )

    def close(self) -> None:
        """Close the queue manager's own database connection; an in-memory one ends with its last connection."""
        self._keeper.close()

    def __repr__(self) -> str:
        return f"EmbeddedQueueManager({self.name}, {self.path or 'in memory'})"


def _create_private(path: Path) -> None:
    """The database file, created 0600 (SQLite gives its -wal and -shm files the same mode)."""
    if path.is_symlink():
        raise UsageError(
            f"refusing to open queue manager file {path}: it is a symbolic link; give the real path of the file"
        )
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_new_file(path, b"", mode=PRIVATE_FILE_MODE)


def _add_backout_columns(db: sqlite3.Connection) -> None:
    """Files made before queues had BOTHRESH and BOQNAME get the columns, with the defaults."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(queues)")}
    if "backout_threshold" not in columns:
        db.execute(
            f"ALTER TABLE queues ADD COLUMN backout_threshold INTEGER NOT NULL DEFAULT {DEFAULT_BACKOUT_THRESHOLD}"
        )
    if "backout_queue" not in columns:
        db.execute("ALTER TABLE queues ADD COLUMN backout_queue TEXT NOT NULL DEFAULT ''")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, so concurrent processes serialise their changes."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")


class EmbeddedConnection:
    """One connection: its own unit of work, like an MQ connection handle."""

    def __init__(self, manager: EmbeddedQueueManager, db: sqlite3.Connection, appl_name: str) -> None:
        self.manager = manager
        self.name = manager.name
        self.appl_name = appl_name
        self._db = db
        self._owner = f"{os.getpid()}:{uuid.uuid4().hex}"
        self._lock = threading.Lock()

    # -- queues -------------------------------------------------------------------------------

    def resolve(self, queue: str) -> str:
        """The local queue ``queue`` names, aliases followed (an unknown name is defined as a local queue).

        MQError 2085 for a name outside 1 to 48 characters or an alias loop.
        """
        if not queue or len(queue) > 48:
            raise MQError(f"queue name {queue!r} must be 1 to 48 characters", 2085)
        seen = set()
        name = queue
        while True:
            row = self._db.execute("SELECT target FROM queues WHERE name = ?", (name,)).fetchone()
            if row is None:
                with _transaction(self._db):
                    self._db.execute("INSERT OR IGNORE INTO queues (name, target) VALUES (?, NULL)", (name,))
                return name
            if row[0] is None:
                return name
            if name in seen:
                raise MQError(f"alias queue {queue} resolves in a loop", 2085)
            seen.add(name)
            name = row[0]

    def open(self, queue: str, *, output: bool = False, input: bool = False, browse: bool = False) -> EmbeddedQueue:
        """Open ``queue`` for put (``output``), get (``input``) and/or ``browse``; MQError 2045 if none is asked."""
        if not (output or input or browse):
            raise MQError(f"open {queue}: ask for output, input or browse", 2045)
        return EmbeddedQueue(self, queue, self.resolve(queue), output=output, input=input, browse=browse)

    def put1(self, queue: str, md: MQMD, body: bytes, *, syncpoint: bool = False) -> MQMD:
        """Put one message without opening the queue (MQPUT1); returns the descriptor as completed."""
        return self._put(self.resolve(queue), md, body, syncpoint=syncpoint)

    def backout_settings(self, queue: str) -> BackoutSettings:
        """The local queue's BOTHRESH and BOQNAME, aliases followed."""
        row = self._db.execute(
            "SELECT backout_threshold, backout_queue FROM queues WHERE name = ?", (self.resolve(queue),)
        ).fetchone()
        return BackoutSettings(int(row[0]), str(row[1])) if row else BackoutSettings(DEFAULT_BACKOUT_THRESHOLD, "")

    def depth(self, queue: str) -> int:
        """Committed messages on the queue (CURDEPTH), aliases followed."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM messages WHERE queue = ? AND state = ?", (self.resolve(queue), VISIBLE)
        ).fetchone()
        return int(row[0])

    # -- messages -----------------------------------------------------------------------------

    def _put(self, queue: str, md: MQMD, body: bytes, *, syncpoint: bool) -> MQMD:
        msg_id = b"AMQ " + self.name.encode()[:12].ljust(12) + next(_counter).to_bytes(8, "big")
        stamped = md.stamped(self.appl_name, msg_id)
        with self._lock, _transaction(self._db):
            self._db.execute(
                "INSERT INTO messages (queue, md, body, state, owner, backouts) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    queue,
                    _md_to_json(stamped),
                    bytes(body),
                    PUT_PENDING if syncpoint else VISIBLE,
                    self._owner if syncpoint else None,
                    md.backout_count,
                ),
            )
        return stamped

    def _get(self, queue: str, *, wait: float, syncpoint: bool, msg_id: bytes | None = None) -> Message:
        deadline = time.monotonic() + wait
        match = "" if msg_id is None else " AND json_extract(md, '$.msg_id') = ?"
        arguments: tuple[object, ...] = (queue, VISIBLE) if msg_id is None else (queue, VISIBLE, msg_id.hex())
        while True:
            with self._lock, _transaction(self._db):
                row = self._db.execute(
                    "SELECT id, md, body, backouts FROM messages WHERE queue = ? AND state = ?"
                    + match
                    + " ORDER BY id LIMIT 1",
                    arguments,
                ).fetchone()
                if row is not None:
                    if syncpoint:
                        self._db.execute(
                            "UPDATE messages SET state = ?, owner = ? WHERE id = ?", (GOT_PENDING, self._owner, row[0])
                        )
                    else:
                        self._db.execute("DELETE FROM messages WHERE id = ?", (row[0],))
            if row is not None:
                return Message(_md_from_json(row[1], row[3]), bytes(row[2]))
            if time.monotonic() >= deadline:
                raise NoMessageAvailable(queue, wait)
            time.sleep(min(_POLL_SECONDS, max(0.0, deadline - time.monotonic())))

    def _browse(self, queue: str, after: int) -> tuple[int, Message]:
        row = self._db.execute(
            "SELECT id, md, body, backouts FROM messages WHERE queue = ? AND state = ? AND id > ? ORDER BY id LIMIT 1",
            (queue, VISIBLE, after),
        ).fetchone()
        if row is None:
            raise NoMessageAvailable(queue, 0)
        return int(row[0]), Message(_md_from_json(row[1], row[3]), bytes(row[2]))

    def commit(self) -> None:
        """Commit this connection's unit of work: its puts become visible, its gets final."""
        with self._lock, _transaction(self._db):
            self._db.execute("DELETE FROM messages WHERE owner = ? AND state = ?", (self._owner, GOT_PENDING))
            self._db.execute(
                "UPDATE messages SET state = ?, owner = NULL WHERE owner = ? AND state = ?",
                (VISIBLE, self._owner, PUT_PENDING),
            )

    def backout(self) -> None:
        """Back out this connection's unit of work: its puts vanish, its gets return with BackoutCount raised."""
        with self._lock, _transaction(self._db):
            self._db.execute("DELETE FROM messages WHERE owner = ? AND state = ?", (self._owner, PUT_PENDING))
            self._db.execute(_BACK_OUT_GETS, (VISIBLE, self._owner, GOT_PENDING))

    def close(self) -> None:
        """Disconnect; like MQDISC, uncommitted work is backed out."""
        self.backout()
        self._db.close()

    def __enter__(self) -> EmbeddedConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EmbeddedQueue:
    """An open queue of the embedded queue manager."""

    def __init__(
        self, connection: EmbeddedConnection, name: str, local: str, *, output: bool, input: bool, browse: bool
    ) -> None:
        self.connection = connection
        self.name = name
        self.local = local
        self._modes = {"output": output, "input": input, "browse": browse}
        self._cursor = 0

    def _need(self, mode: str) -> None:
        if not self._modes[mode]:
            raise MQError(f"{self.name} was not opened for {mode}", 2039 if mode == "output" else 2036)

    def put(self, md: MQMD, body: bytes, *, syncpoint: bool = False) -> MQMD:
        """Put a message; returns the descriptor as completed. MQError unless opened for output."""
        self._need("output")
        return self.connection._put(self.local, md, body, syncpoint=syncpoint)

    def get(self, *, wait: float = 0.0, syncpoint: bool = False, msg_id: bytes | None = None) -> Message:
        """Destructive get, oldest first (or the one with ``msg_id``); NoMessageAvailable after ``wait`` s."""
        self._need("input")
        return self.connection._get(self.local, wait=wait, syncpoint=syncpoint, msg_id=msg_id)

    def browse_first(self) -> Message:
        """Browse the oldest committed message, leaving it on the queue; NoMessageAvailable when there is none."""
        self._need("browse")
        self._cursor, message = self.connection._browse(self.local, 0)
        return message

    def browse_next(self) -> Message:
        """Browse the next committed message after the last one browsed; NoMessageAvailable at the end."""
        self._need("browse")
        self._cursor, message = self.connection._browse(self.local, self._cursor)
        return message

    def close(self) -> None:
        """Close the queue: the browse cursor starts again at the first message."""
        self._cursor = 0
