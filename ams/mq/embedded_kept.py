"""A unit of work's rows written as MQCMIT will leave them while its transaction is held: messages
got under syncpoint deleted at the get (kept in memory), messages put under syncpoint inserted
visible; both marked as uncommitted work (taken, put pending) only if the transaction is written
before MQCMIT.

While a connection holds the writer (ams/mq/embedded_writer.py) nobody else reads the file, so
a get under syncpoint may delete its message's row at once instead of marking it taken and deleting
it at MQCMIT (one statement per message instead of two, the freed pages reused by the next put,
where a delete at MQCMIT came after the batch's puts had taken new pages), and a put may insert its
row committed-looking instead of updating it at MQCMIT; the connection's own gets and browses pass
over the rows it put (their ids are the highest: :class:`ams.mq.embedded_connection.EmbeddedConnection`
asks for ids below the first). Before anything else writes the transaction (a write while the unit
of work goes on, MQBACK), :func:`restore_taken` and :func:`mark_put` leave each row exactly as a
call that marked it would have; a transaction that is lost (rolled back, the process killed)
takes the deletes and inserts with it, and the messages got are back on their queues as with a
mark, their backout counted from the get journal (ams/mq/embedded_journal.py).

Only messages up to a bound are kept (:data:`KEPT_BYTES` and :data:`KEPT_ROWS` per transaction,
the bodies being the ones the application was handed): beyond it, a get marks the row as before.
"""

from __future__ import annotations

import sqlite3

from ams.mq.embedded_md import stored_ids
from ams.mq.embedded_schema import GOT_PENDING, PUT_PENDING, body_in_row

# kept per held transaction, at most: bodies' bytes, and rows. A transaction held past HOLD_SECONDS is
# written, restoring every row kept (a batch of 64 KiB messages, 1 MiB kept, cost a fifth more per message);
# the bounds keep that within about one put's work, beyond them a get marks its row
KEPT_BYTES = 64 * 1024
KEPT_ROWS = 256

_RESTORE = (
    "INSERT INTO messages (id, queue, md, body, state, owner, backouts, priority, persistent, expires, msg_id, "
    f"correl_id) VALUES (?, ?, ?, ?, {GOT_PENDING}, ?, ?, ?, ?, ?, ?, ?)"
)
_RESTORE_BODY = "INSERT INTO bodies (id, body) VALUES (?, ?)"
_MARK_PUT = f"UPDATE messages SET state = {PUT_PENDING}, owner = ? WHERE id = ?"


# what a get selects after the columns of ams/mq/embedded_schema.py's _MESSAGE (id, MQMD as stored, body,
# backout count, expiry time): with those, the rest of a row, for :func:`restore_taken` to insert it again. Its
# MsgId and CorrelId columns are not selected: they are the ones in the stored MQMD (embedded_md.stored_ids);
# two columns more cost 2 % of a get+put, for a restore that most units of work never need
KEPT_COLUMNS = ", m.priority, m.persistent"

# a message row a get under syncpoint deleted: its queue, and the row as the get selected it (its MQMD as
# stored, verbatim, bytes of format 7: a row whose MQMD is the text an earlier release put during a
# migration is marked taken, never kept)
KeptGet = tuple[str, tuple[object, ...]]


def restore_taken(db: sqlite3.Connection, owner: str, kept: list[KeptGet]) -> list[tuple[int, str, int]]:
    """The rows of ``kept`` inserted again, taken by ``owner`` (state GOT_PENDING, not counted in
    CURDEPTH: the depth stays as the delete left it); returns them as MQCMIT's list of taken rows
    names them. Ids are never reused (AUTOINCREMENT), so each is still free. A body goes back where
    a put writes it (ams/mq/embedded_schema.py's INLINE_BODY_BYTES)."""
    rows = [row for _, row in kept]
    db.executemany(
        _RESTORE,
        [
            (
                row_id,
                queue,
                md,
                body if body_in_row(body) else b"",  # type: ignore[arg-type]
                owner,
                backouts,
                priority,
                persistent,
                expires,
                *stored_ids(md),  # type: ignore[arg-type]
            )
            for queue, (row_id, md, body, backouts, expires, priority, persistent) in kept
        ],
    )
    db.executemany(_RESTORE_BODY, [(row[0], row[2]) for row in rows if not body_in_row(row[2])])  # type: ignore[arg-type]
    return [(row[0], owner, GOT_PENDING) for row in rows]  # type: ignore[misc]


def mark_put(db: sqlite3.Connection, owner: str, puts: list[int]) -> list[tuple[int, str, int]]:
    """The rows of ``puts`` (inserted visible in the transaction held) marked put by ``owner`` and not
    committed (CURDEPTH counts both states alike); returns them as MQCMIT's list names them."""
    db.executemany(_MARK_PUT, [(owner, put) for put in puts])
    return [(put, owner, PUT_PENDING) for put in puts]
