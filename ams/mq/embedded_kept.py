"""Messages got under syncpoint whose rows are deleted at the get, kept in memory until the unit of
work's transaction is written.

While a connection holds the writer (ams/mq/embedded_writer.py) nobody else reads the file's
uncommitted state, so a get under syncpoint may delete its message's row at once instead of marking
it taken and deleting it at MQCMIT: one statement per message instead of two, and the freed pages
are reused by the next put (where a delete at MQCMIT came after the batch's puts had taken new
pages). What MQCMIT finds then is already right. Before anything else writes the transaction (a
write while the unit of work goes on, MQBACK), :func:`restore_taken` puts each row back as taken by
its owner, exactly as a get that marked it would have left it; a transaction that is lost (rolled
back, the process killed) takes the deletes with it, and the messages are back on their queues as
with a mark, their backout counted from the get journal (ams/mq/embedded_journal.py).

Only messages up to a bound are kept (:data:`KEPT_BYTES` per transaction, the bodies being the
ones the application was handed): beyond it, a get marks the row as before.
"""

from __future__ import annotations

import sqlite3
from typing import NamedTuple

from ams.mq.embedded_schema import GOT_PENDING

# bodies kept per held transaction, at most: a unit of work of large messages marks them instead
KEPT_BYTES = 1 << 20

_RESTORE = (
    "INSERT INTO messages (id, queue, md, body, state, owner, backouts, priority, persistent, expires, msg_id, "
    f"correl_id) VALUES (?, ?, ?, X'', {GOT_PENDING}, ?, ?, ?, ?, ?, ?, ?)"
)
_RESTORE_BODY = "INSERT INTO bodies (id, body) VALUES (?, ?)"


class KeptGet(NamedTuple):
    """A message row deleted by a get under syncpoint, as it was (its MQMD as stored, verbatim)."""

    id: int
    queue: str
    md: object  # bytes of format 7; text of a row an earlier release put during a migration
    body: bytes
    backouts: int
    priority: int
    persistent: int
    expires: float | None
    msg_id: bytes | None
    correl_id: bytes | None


def restore_taken(db: sqlite3.Connection, owner: str, kept: list[KeptGet]) -> list[tuple[int, str, int]]:
    """The rows of ``kept`` inserted again, taken by ``owner`` (state GOT_PENDING: the depth
    triggers leave CURDEPTH as the delete left it); returns them as MQCMIT's list of taken rows
    names them. Ids are never reused (AUTOINCREMENT), so each is still free."""
    db.executemany(
        _RESTORE,
        [
            (k.id, k.queue, k.md, owner, k.backouts, k.priority, k.persistent, k.expires, k.msg_id, k.correl_id)
            for k in kept
        ],
    )
    db.executemany(_RESTORE_BODY, [(k.id, k.body) for k in kept])
    return [(k.id, owner, GOT_PENDING) for k in kept]
