"""The shape of an embedded queue manager's file: a counter that moves with what connections cache
about the file, and not with its messages (but for one count: the messages put with an expiry).

A connection caches a queue's resolution and attributes (``queues``), whether another process has a
queue open for input (``opens``), whether its own connection row was broken, and the get journals of
other connections (ams/mq/embedded_journal.py: one per ``connections`` row). Until now those caches
followed ``PRAGMA data_version``, which moves at every write of another connection: under two
processes that is every message, so each transaction read them all again. Triggers raise
``file_shape.version`` at every change of those three tables, whoever makes it (this version of ams, an
earlier one sharing the file, a recovery, a restart); a connection reads the counter when
``data_version`` moved, and its caches stay while the counter does not.

Separate from ams/mq/embedded_schema.py (the messages' format) so that the two change apart: a
table and triggers added beside the format's own, created when missing by any opener (an earlier
version of ams ignores them, and its writes still raise the counter). Format 8 renamed the table
``shape`` of formats 6 and 7 (:func:`drop_earlier_shape`): a process of format 7 that had the file
open as it was migrated fails its next call (MQRC 2195) at the counter it reads first, where it would
have changed messages with no depth kept.
"""

from __future__ import annotations

import sqlite3

_TRIGGER = (
    "CREATE TRIGGER IF NOT EXISTS shape_on_{table}_{event} AFTER {what} ON {table} "
    "BEGIN UPDATE file_shape SET version = version + 1; END;"
)
_EVENTS = (
    ("queues", "insert", "INSERT"),
    ("queues", "update", "UPDATE"),
    ("queues", "delete", "DELETE"),
    ("opens", "insert", "INSERT"),
    ("opens", "update", "UPDATE"),
    ("opens", "delete", "DELETE"),
    ("connections", "insert", "INSERT"),
    # not "settled", the journal's generation, which MQBACK raises: no connection caches it
    ("connections", "update", "UPDATE OF owner, broken"),
    ("connections", "delete", "DELETE"),
)
_TABLE = (
    "CREATE TABLE IF NOT EXISTS file_shape (id INTEGER PRIMARY KEY CHECK (id = 0), version INTEGER NOT NULL, "
    "expiring INTEGER NOT NULL DEFAULT 0);"
)
# and a count of the messages ever put with an expiry: a queue found with none that expires stays so
# while it does not move (the expiry look-up of each get skipped)
_EXPIRING = (
    "CREATE TRIGGER IF NOT EXISTS shape_on_expiring_put AFTER INSERT ON messages WHEN NEW.expires IS NOT NULL "
    "BEGIN UPDATE file_shape SET expiring = expiring + 1; END;"
)
SHAPE_SCHEMA = "\n".join([_TABLE, _EXPIRING, *(_TRIGGER.format(table=t, event=e, what=w) for t, e, w in _EVENTS)])
# its one row, inserted in the opener's first transaction (a write: not made at every open), counting from the
# microseconds since 1970: a row deleted (by anyone) and made again never counts through a value a connection
# cached before (from 0 it would, and a queue changed at that value would be taken as unchanged)
SHAPE_ROW = (
    "INSERT OR IGNORE INTO file_shape (id, version) "
    "VALUES (0, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER))"
)
_EARLIER_TRIGGERS = ("shape_on_expiring_put", *(f"shape_on_{table}_{event}" for table, event, _ in _EVENTS))
_VERSION = "SELECT version FROM file_shape"
_COUNTS = "SELECT version, expiring FROM file_shape"


def versions(db: sqlite3.Connection) -> tuple[int, int | None, int | None]:
    """What a connection reads as it takes the writer: the file's data_version (another connection
    wrote?), its shape counter and its count of expiring puts (None before their row exists). Two
    statements: 4 µs, where one joining ``pragma_data_version`` took 5.6."""
    (data_version,) = db.execute("PRAGMA data_version").fetchone()
    row = db.execute(_COUNTS).fetchone()
    return (int(data_version), None, None) if row is None else (int(data_version), int(row[0]), int(row[1]))


def shape_version(db: sqlite3.Connection) -> int | None:
    """The file's shape counter now (None before its row exists)."""
    row = db.execute(_VERSION).fetchone()
    return None if row is None else int(row[0])


def drop_earlier_shape(db: sqlite3.Connection) -> None:
    """The counter of formats 6 and 7 (table ``shape``) and its triggers dropped, in the caller's
    transaction (a migration to format 8): the opener then makes ``file_shape``."""
    for trigger in _EARLIER_TRIGGERS:
        db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    db.execute("DROP TABLE IF EXISTS shape")
