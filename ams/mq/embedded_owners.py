"""Who owns work in the embedded queue manager's file, and whether they still live.

An owner ("pid.start:connection") is the connection that holds messages under syncpoint, an open
queue or a connection row; a process that died holding them has its work backed out by the next
one to open the file. Separate so that process liveness (/proc, signals) is kept out of the
queue manager's MQ semantics.
"""

from __future__ import annotations

import os
import sqlite3

from ams.mq.embedded_schema import GOT_PENDING, PUT_PENDING, VISIBLE, add_depths

_OWNERS = (  # every owner of work, an open queue or a connection in the file
    "SELECT DISTINCT owner FROM messages WHERE owner IS NOT NULL UNION SELECT DISTINCT owner FROM opens "
    "UNION SELECT owner FROM connections"
)
_BACK_OUT_GETS = (
    "UPDATE messages SET state = ?, owner = NULL, backouts = backouts + 1 WHERE owner = ? AND state = ? RETURNING queue"
)
_BACK_OUT_PUTS = "DELETE FROM messages WHERE owner = ? AND state = ? RETURNING queue"


SETTLED = "UPDATE connections SET settled = settled + 1 WHERE owner = ?"  # the next generation of its journal


def _back_out(db: sqlite3.Connection, owner: str, *, settle: bool = False) -> None:
    """Undo ``owner``'s uncommitted work: its puts deleted, its gets returned, their backout count
    raised; the depths of their queues moved to match (put ones counted, got ones not); ``settle``
    (MQBACK): and the owner's get journal settled (SETTLED: the records just counted are not
    counted again if the process dies). All or none: an MQBACK failing part way (a full disk)
    keeps its transaction, which a later write commits; rows changed there without their depths
    (counted only here) would stay miscounted, and without the journal settled a later death would
    raise their backout counts a second time."""
    changes: dict[str, int] = {}
    db.execute("SAVEPOINT back_out")
    try:
        for (queue,) in db.execute(_BACK_OUT_PUTS, (owner, PUT_PENDING)).fetchall():
            changes[queue] = changes.get(queue, 0) - 1
        for (queue,) in db.execute(_BACK_OUT_GETS, (VISIBLE, owner, GOT_PENDING)).fetchall():
            changes[queue] = changes.get(queue, 0) + 1
        add_depths(db, changes)
        if settle:
            db.execute(SETTLED, (owner,))
    except sqlite3.Error:
        if db.in_transaction:  # else SQLite rolled the whole transaction back, the savepoint with it
            db.execute("ROLLBACK TO back_out")
            db.execute("RELEASE back_out")
        raise
    db.execute("RELEASE back_out")


def _count_journaled(db: sqlite3.Connection, owner: str, records: list[tuple[int, int]]) -> None:
    """Raise the backout count of the messages dead ``owner``'s get journal lists (generation, row
    id) in its current generation, that still exist and it no longer holds: got in a transaction
    its death lost (ams/mq/embedded_journal.py). Done before :func:`_back_out`, which counts the
    ones it still holds; records of an owner with no connection row (ended) are settled."""
    row = db.execute("SELECT settled FROM connections WHERE owner = ?", (owner,)).fetchone()
    if row is None:
        return
    rows = sorted({message for generation, message in records if generation == row[0]})
    db.executemany(
        "UPDATE messages SET backouts = backouts + 1 WHERE id = ? AND owner IS NOT ?", [(r, owner) for r in rows]
    )


def _started(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, from /proc), "" where that is unknown;
    a zombie is "dead"."""
    try:  # os.open and read, not Path.read_text: a get looks at every other process's journal owner
        descriptor = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
        try:
            record = os.read(descriptor, 4096).decode("ascii", "replace")
        finally:
            os.close(descriptor)
    except OSError:
        return ""  # no /proc (macOS, BSD), or hidden from us (hidepid): os.kill decides
    fields = record.rpartition(")")[2].split()  # after "pid (comm)": state, ppid, ...; starttime is field 22
    # PF_EXITING (0x4) in flags (field 9): exiting, it does no more work, though not a zombie yet; it
    # may have released its file locks already, so another process may hold the writer it held
    if not fields or fields[0] in ("Z", "X") or (len(fields) > 6 and int(fields[6]) & 0x4):
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
    if not (pid_text.isascii() and pid_text.isdigit()) or int(pid_text) == 0:
        # no process of any ams release wrote it: no process to wait for, and backing out its work
        # (if any) puts messages back on their queues, which loses none
        return False
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
