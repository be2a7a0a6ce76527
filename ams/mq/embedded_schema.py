"""The embedded queue manager's file format: tables, triggers, format version, the columns added
since the first format, the SQL statements that read and change messages, the migration of files
of earlier formats, and how a queue's attributes are written into a row (JSON; the MQMD's bytes
are ams/mq/embedded_md.py's).

Separate from ams/mq/embedded.py so that what the file holds is read in one place, apart from
the MQ semantics that use it.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import struct
from collections.abc import Iterator

import attrs

from ams.mq.embedded_md import md_from_row, md_row_bytes
from ams.mq.embedded_shape import drop_earlier_shape
from ams.mq.transport import Match, MQError, QueueAttributes
from ams.mqconstants import MQRC_UNEXPECTED_ERROR

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (name TEXT PRIMARY KEY, target TEXT, attributes TEXT, denied TEXT DEFAULT '');
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    md BLOB NOT NULL,
    body BLOB NOT NULL,
    state INTEGER NOT NULL,
    owner TEXT,
    backouts INTEGER NOT NULL DEFAULT 0,
    priority INTEGER NOT NULL DEFAULT 0,
    persistent INTEGER NOT NULL DEFAULT 1,
    expires REAL,
    msg_id BLOB,
    correl_id BLOB
);
CREATE TABLE IF NOT EXISTS opens (handle TEXT PRIMARY KEY, queue TEXT NOT NULL, owner TEXT NOT NULL, exclusive INTEGER);
CREATE TABLE IF NOT EXISTS connections (
    owner TEXT PRIMARY KEY, broken INTEGER NOT NULL DEFAULT 0, settled INTEGER NOT NULL DEFAULT 0
);
"""
# CURDEPTH per queue (rows whose state is VISIBLE or PUT_PENDING), kept by whoever changes a message: a put
# then checks MAXDEPTH in constant time, where counting the rows cost time in proportion to the depth. Since
# format 8 the calls of a connection count their changes in memory and write them once, as their transaction
# is written (ams/mq/embedded_unit_of_work.py); the rarer paths (backout, recovery, restart) write theirs at
# once (add_depths). Formats 3-7 kept them by triggers on every row changed: a fifth of SQLite's work per
# get and put of a batch.
_DEPTHS = """
CREATE TABLE IF NOT EXISTS curdepths (queue TEXT PRIMARY KEY, depth INTEGER NOT NULL);
"""
_DEPTH_TRIGGERS = ("depth_on_insert", "depth_on_delete", "depth_on_update")  # formats 3-7's
_ADD_DEPTH = (
    "INSERT INTO curdepths (queue, depth) VALUES (?, ?) "
    "ON CONFLICT (queue) DO UPDATE SET depth = depth + excluded.depth"
)
_COUNT_DEPTHS = (
    "INSERT INTO curdepths (queue, depth) SELECT queue, COUNT(*) FROM messages WHERE state IN (0, 1) GROUP BY queue"
)
# A large message's body lives in a table of its own: a get under syncpoint marks the message taken, and
# SQLite rewrites a whole row to change one column (a 64 KiB body cost 2 ms per get and put). A body of
# at most INLINE_BODY_BYTES stays in its row (so did every body before format 4), where the reads find it.
_BODIES = """
CREATE TABLE IF NOT EXISTS bodies (id INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE TRIGGER IF NOT EXISTS body_on_delete AFTER DELETE ON messages BEGIN
    DELETE FROM bodies WHERE id = OLD.id;
END;
"""
# PRAGMA user_version: 2 added the msg_id column and its index, 3 the depths, 4 the bodies, 5 the correl_id
# column (a reader of 4 would put messages without it, which a get by CorrelId would never find), 6 the
# MQMD as a JSON array (a reader of 5 expects an object), 7 the MQMD in a binary layout (embedded_md.py), MsgId
# and CorrelId as 24-byte BLOBs (an all-zero CorrelId NULL), the order and CorrelId indexes partial (a reader of 6
# would look for hex text and find nothing), 8 the depths kept by the writers, not by triggers (a writer of 7
# would leave them as they were: the tables it reads first, depths and shape, renamed curdepths and file_shape)
_SCHEMA_VERSION = 8
# the largest body kept in its message's row: the row (about 2.3 KB with its MQMD) stays on its page, a
# rewrite that marks it taken or put copies no more, and the put writes one row, not two (a tenth of
# the SQL of a 1 KiB get+put). Every reader of format 8 reads coalesce(bodies.body, messages.body); an
# empty body goes to the bodies table, so that an empty one in the row always means "there".
INLINE_BODY_BYTES = 2048


def body_in_row(body: bytes | bytearray | memoryview) -> bool:
    """Whether a message's body is kept in its row (else in the bodies table)."""
    return 0 < len(body) <= INLINE_BODY_BYTES


_COLUMNS = {  # columns added since the first file format, and their definitions
    "messages": {
        "priority": "INTEGER NOT NULL DEFAULT 0",
        "persistent": "INTEGER NOT NULL DEFAULT 1",
        "expires": "REAL",
        "msg_id": "BLOB",
        "correl_id": "BLOB",
    },
    "queues": {"attributes": "TEXT", "denied": "TEXT DEFAULT ''"},
    # the generation of a connection's get journal (ams/mq/embedded_journal.py), raised with each backout of its work
    "connections": {"settled": "INTEGER NOT NULL DEFAULT 0"},
}
# messages.state: committed; put under syncpoint, not yet committed; got under syncpoint, not yet committed
VISIBLE, PUT_PENDING, GOT_PENDING = 0, 1, 2
_ORDER = " ORDER BY m.priority DESC, m.id ASC"
_COMMITTED = f"WHERE state = {VISIBLE}"  # the order index's rows: a query names the state literally to use it
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
        where, arguments = " AND m.msg_id = ?", (match.msg_id,)
    if match.correl_id is not None:  # never all zeros (Match.of: MQCI_NONE matches any), so never a NULL row
        where, arguments = where + " AND m.correl_id = ?", (*arguments, match.correl_id)
    index = _BY_MSG_ID if match.msg_id is not None else _BY_CORREL_ID if match.correl_id is not None else ""
    return index, where, arguments


_DEPTH = "SELECT depth FROM curdepths WHERE queue = ?"
_SOONEST_EXPIRY = (  # None: no message of the queue expires
    "SELECT min(expires) FROM messages INDEXED BY messages_by_expiry WHERE queue = ? AND expires IS NOT NULL"
)
_DISCARD_EXPIRED = (
    "DELETE FROM messages WHERE id IN (SELECT m.id FROM messages m WHERE m.queue = ? AND m.expires IS NOT NULL "
    "AND m.expires < ? AND m.state = ? AND m.id < ?{})"
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


def _create_indexes(db: sqlite3.Connection) -> None:
    """The indexes a get, browse or expiry scan looks messages up by (their columns may have just
    been added by :func:`_add_columns`). Since format 7 the order index holds only committed
    messages (a get under syncpoint takes its entry out, MQCMIT of a put adds it: each message's
    entry is written twice, where moving it between states wrote it four times), and the CorrelId
    index only messages that have one (a get by CorrelId never asks for all zeros: MQCI_NONE
    matches any message); a query reaches them by saying ``m.state = 0`` and ``m.correl_id = ?``."""
    db.execute(f"CREATE INDEX IF NOT EXISTS messages_in_order ON messages (queue, priority DESC, id) {_COMMITTED}")
    db.execute("CREATE INDEX IF NOT EXISTS messages_by_msg_id ON messages (queue, msg_id)")
    db.execute(
        "CREATE INDEX IF NOT EXISTS messages_by_correl_id ON messages (queue, correl_id) WHERE correl_id IS NOT NULL"
    )
    db.execute("CREATE INDEX IF NOT EXISTS messages_by_expiry ON messages (queue, expires) WHERE expires IS NOT NULL")


def _convert_rows(db: sqlite3.Connection) -> None:
    """Each message's MQMD re-encoded in the layout of format 7 (from JSON, an array or an object),
    its MsgId and CorrelId columns set from it as BLOBs (an all-zero CorrelId NULL); the indexes
    whose definition changed in format 7 dropped, for :func:`_create_indexes` to make again."""
    rows = db.execute("SELECT id, md, backouts FROM messages").fetchall()
    for row_id, stored, backouts in rows:
        try:
            md = md_from_row(stored, int(backouts))
            data = md_row_bytes(md)  # an integer beyond 64 bits (MQError) stops it too, naming this row
        except (ValueError, TypeError, KeyError, struct.error, MQError) as error:  # a damaged row: the migration stops
            raise MQError(
                f"the embedded queue manager's file cannot be brought to format {_SCHEMA_VERSION}: message "
                f"row {row_id} holds no MQMD this version can read (expected JSON of format 6 or earlier, "
                f"or format 7's layout; {type(error).__name__}); the file is left as it was: restore it "
                "from a backup, or open it with the version that wrote it and move its messages",
                MQRC_UNEXPECTED_ERROR,
            ) from None
        # as the layout holds them (24 bytes): releases before format 5 kept a short MsgId or CorrelId as given,
        # which a get by it (padded to 24, as MQ's MQBYTE24) would never find
        msg_id, correl_id = (bytes(value[:24]).ljust(24, b"\0") for value in (md.msg_id, md.correl_id))
        db.execute(
            "UPDATE messages SET md = ?, msg_id = ?, correl_id = ? WHERE id = ?",
            (data, msg_id, correl_id if any(correl_id) else None, row_id),
        )
    db.execute("DROP INDEX IF EXISTS messages_in_order")
    db.execute("DROP INDEX IF EXISTS messages_by_correl_id")


def _migrate_rows(db: sqlite3.Connection, found: int) -> None:
    """The rows of a file of format ``found`` brought to this one, in the caller's transaction: the
    MQMD, MsgId and CorrelId as format 7 stores them (:func:`_convert_rows`, from format 6 or
    earlier), the depth triggers of formats 3-7 dropped, the depths counted once (every writer
    keeps them from then on), the bodies' table made; then the format version set."""
    if found < 7:
        _convert_rows(db)
    for trigger in _DEPTH_TRIGGERS:
        db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    # gone by their names, so that a process of an earlier format that had the file open fails at its next
    # put (formats 3-7 read the depth at their first put of a transaction) or call (format 7: the shape
    # counter), MQRC 2195, where it would change messages leaving their queue's depth as it was
    db.execute("DROP TABLE IF EXISTS depths")
    drop_earlier_shape(db)
    count_depths(db)
    for statement in _statements(_BODIES):
        db.execute(statement)
    db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")


def count_depths(db: sqlite3.Connection) -> None:
    """Every queue's depth counted from its rows, in the caller's transaction (a migration, a
    restart that discarded the non-persistent messages): time in proportion to the messages."""
    for statement in _statements(_DEPTHS):
        db.execute(statement)
    db.execute("DELETE FROM curdepths")  # rows, not the table: no schema change for every connection to prepare again
    db.execute(_COUNT_DEPTHS)


def add_depths(db: sqlite3.Connection, changes: dict[str, int]) -> None:
    """The depths of the queues in ``changes`` moved by as many messages, in the caller's transaction."""
    db.executemany(_ADD_DEPTH, [(queue, change) for queue, change in changes.items() if change])


def _attributes_to_json(attributes: QueueAttributes) -> str:
    return json.dumps(attrs.asdict(attributes))


@functools.lru_cache(maxsize=256)
def _attributes_from_json(text: str | None) -> QueueAttributes:
    """A queue's attributes as stored (read at every call, decoded once per text: the value is frozen)."""
    return QueueAttributes(**json.loads(text)) if text else QueueAttributes()
