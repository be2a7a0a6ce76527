"""The get journal of an embedded queue manager's connection: which messages it got under
syncpoint in its unit of work, kept outside SQLite so that a process killed holding them still
raises their BackoutCount.

A get under syncpoint stays in the unit of work's SQLite transaction (ams/mq/embedded_writer.py),
so a process killed before that transaction was written loses the get with it: the message is
back on the queue as if never got. The queue manager lives in the application's process, so the
application's crash is the queue manager's too; IBM MQ, in a process of its own, would still know
the message was got, and count the backout (a message that kills its reader reaches BOTHRESH
instead of being read for ever). Each get therefore records its row id in a small private file
before it returns (a pwrite at the unit of work's next place; no fsync: a killed process's writes
are in the page cache, which survives it). The recovery of a dead owner (ams/mq/embedded.py) raises
BackoutCount by one for every listed row that still exists and the dead owner no longer holds (the
rows it holds are backed out, and counted, with the rest of its work). MQCMIT and MQBACK settle the
journal's records after their commit: the next unit of work writes its records over them from the
file's start (GetJournal.clear), so the file is as long as the largest unit of work's records. A get
whose take fails after its record was written (a full disk) withdraws it, its row id zeroed: settled
by a later MQCMIT in the same generation, it would otherwise be counted at the connection's death.

A write, not a shared memory map, though the map would spare the system call (3 to 4 % of a 1 KiB
get+put): a store into a map that the file system cannot back kills the process with SIGBUS, where a
write fails with an error the get reports (MQRC 2195). That happens on a full copy-on-write file
system (btrfs, ZFS: rewriting an allocated block needs a new one) and when anyone with the owner's
rights truncates the file (a `truncate -s0`, a log rotation's copytruncate); an application killed
by its queue manager's bookkeeping is worse than a slower get.

Each record carries the connection's *generation*, a count kept in its ``connections`` row and
raised in the same SQLite transaction as every backout of its work (MQBACK, a broken connection,
a restart): records of an earlier generation were backed out, and counted, already, so a process
killed after MQBACK's commit and before the journal was overwritten counts nothing twice. MQCMIT needs
no generation: the rows it committed are deleted, and row ids are never reused (AUTOINCREMENT). The
records past the current unit of work's are settled ones, harmless for the same reasons, and a
withdrawn record's row id is 0, never a message's.

After a power loss the journal may have lost its last records (it is not synced), and so the count
may be lower than the number of failed attempts, as with MQ's HARDENBO(NO) across a queue
manager restart. A queue manager in memory has no journal (a crash loses the queue manager).

Whose journals to apply, at every transaction that reads a message: a connection holds an
exclusive POSIX lock (fcntl, byte 0) on its own journal for as long as it lives, which the kernel
drops when its process dies, so that a journal another process still holds locked is of a live
connection (one F_GETLK, where a directory listing and ``/proc`` cost about 20 µs). A journal found
unlocked is not taken for dead on that alone: its owner's process is asked, as before (by pid and
start time, ams/mq/embedded_owners.py), since a lock can be missing while its owner lives (an
earlier version of ams, a system without ``struct flock``'s layout, or the owner's process having
closed another descriptor of its journal: POSIX locks are the process's, and any close drops them).
The lock only spares the question. The journals are listed again only when the file's shape moved
(ams/mq/embedded_shape.py): a connection's row, which raises it, is inserted after its journal is
made, and a journal without a row has nothing to count (:class:`JournalWatch`).

Separate because it is about a file beside the queue manager's, not SQLite or MQ semantics.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
import struct
import threading
from pathlib import Path

from ams._files import (
    PRIVATE_FILE_MODE,
    check_private_file,
    make_private_directory,
    queue_manager_companions,
    read_bounded,
    write_new_file,
)
from ams.errors import ConfigurationError
from ams.mq.embedded_wanted import locked_elsewhere

_RECORD = struct.Struct("<qq")  # generation, row id
_ROW = struct.Struct("<q")  # a record's row id, zeroed when the record is withdrawn
# owners are "pid.start:hex" (ams/mq/embedded_owners.py); any other name in the directory is not a journal
_OWNER = re.compile(r"[0-9A-Za-z.]{1,64}:[0-9a-f]{1,64}")
_LIMIT = 64 << 20  # a journal holds at most MAXUMSGS records per generation; far below this
_JOURNAL_FLAGS = os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
# another's journal, opened only to ask about its lock (O_NONBLOCK: a FIFO planted there must not block the open)
_WATCH_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def journal_directory(database: Path) -> Path:
    """The directory of the get journals of the queue manager file ``database``."""
    return queue_manager_companions(database)[0]


def _check_directory(directory: Path) -> None:
    """Refuse a journal directory someone else made or may write to: whoever can plant a journal
    there raises the BackoutCount of any message, or has a live connection's journal ignored."""
    found = os.lstat(directory)
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.geteuid() or stat.S_IMODE(found.st_mode) & 0o077:
        raise ConfigurationError(
            f"refusing to use the queue manager's get journal directory {directory}: expected a directory this user "
            f"owns and only it may use (mode 0700, uid {os.geteuid()}), found mode {stat.S_IMODE(found.st_mode):04o}, "
            f"uid {found.st_uid}{'' if stat.S_ISDIR(found.st_mode) else ', not a directory'}; remove it (it is made "
            "again, private, at the next connection)"
        )


def private_directory(database: Path) -> Path:
    """The directory beside ``database`` of its get journals and writer lock file: made private
    (0700) if missing, refused if someone else could write to it."""
    directory = journal_directory(database)
    make_private_directory(directory)
    _check_directory(directory)
    return directory


class GetJournal:
    """One connection's journal: ``<qm file>-gets/<owner>``, created private (0600) and never
    through a symbolic link; written by each get under syncpoint, overwritten from its start by each
    unit of work after MQCMIT or MQBACK, removed when the connection ends."""

    def __init__(self, database: Path | None, owner: str) -> None:
        self.records: list[tuple[int, int]] = []  # the records of the unit of work under way
        self._descriptor: int | None = None
        self.path: Path | None = None
        if database is None:
            return  # in memory: a crash of the process is the queue manager's end
        self.path = private_directory(database) / owner
        write_new_file(self.path, b"", mode=PRIVATE_FILE_MODE)
        self._descriptor = os.open(self.path, _JOURNAL_FLAGS)
        # held while this process lives (the kernel drops it with the process): others then know the
        # journal is a live connection's without asking /proc. Not having it costs them that question only
        with contextlib.suppress(OSError):
            fcntl.lockf(self._descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0, os.SEEK_SET)

    def record(self, generation: int, row: int) -> None:
        """A get under syncpoint of message ``row``, in the unit of work of ``generation``: written at
        the unit of work's next place, not synced (see the module). OSError when it cannot be written
        (a full disk): the get fails before it takes anything."""
        if self._descriptor is not None:
            os.pwrite(self._descriptor, _RECORD.pack(generation, row), len(self.records) * _RECORD.size)
        self.records.append((generation, row))

    def withdraw(self) -> None:
        """The last record's get took nothing (its statement failed: a full disk): its row id zeroed in
        the file, a record :func:`read_journal` skips. Left there, settled by the next MQCMIT in the
        generation it names, it would be counted at the connection's death (the message got by no one,
        or by another connection) until a unit of work as large wrote over it."""
        self.records.pop()
        if self._descriptor is not None:
            with contextlib.suppress(OSError):  # the get's own failure is the one to report
                os.pwrite(self._descriptor, _ROW.pack(0), len(self.records) * _RECORD.size + _ROW.size)

    def clear(self) -> None:
        """MQCMIT or MQBACK was committed: the unit of work's records are settled, and the next unit
        of work's are written over them from the file's start (the ones left past them are harmless:
        a commit's name rows it deleted, ids never reused; a backout's are of an earlier generation)."""
        self.records = []

    def remove(self) -> None:
        """The connection ended (its work committed or backed out): the journal goes."""
        self.records = []
        if self.path is not None:  # before the close drops the lock: never seen unlocked under its name
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None


def journaled_owners(database: Path) -> list[str]:
    """The owners that have a journal beside ``database`` (ended connections of dead processes may
    have left one, with no row in the file any more)."""
    directory = journal_directory(database)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    _check_directory(directory)
    return [name for name in names if _OWNER.fullmatch(name)]


def read_journal(database: Path, owner: str) -> list[tuple[int, int]]:
    """(generation, row id) of each get ``owner``'s journal lists; none when it has no journal. A
    journal that is a symbolic link, someone else's or readable by others is refused, as the queue
    manager's own file is (ConfigurationError); a record cut short (by a power loss) is ignored."""
    path = journal_directory(database) / owner
    check_private_file(path, "queue manager get journal", "the messages a connection got")
    try:
        data = read_bounded(path, "queue manager get journal", limit=_LIMIT, follow_symlinks=False)
    except ConfigurationError:
        if not os.path.lexists(path):
            return []  # removed meanwhile, by the recovery of another process
        raise
    whole = len(data) - len(data) % _RECORD.size
    records = (_RECORD.unpack_from(data, offset) for offset in range(0, whole, _RECORD.size))
    return [record for record in records if record[1] > 0]  # row id 0: a withdrawn record


def remove_journal(database: Path, owner: str) -> None:
    """``owner``'s journal gone, once its records were applied in a committed transaction."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(journal_directory(database) / owner)


# other processes' journals open in this process, shared by its connections' watches: path -> [descriptor,
# watches using it]. One per connection and journal was N x M descriptors: two processes of 40 connections
# each held 1,600, past the usual soft limit of 1,024 (the next connection's SQLite open then failed)
_WATCHED: dict[str, list[int]] = {}
# reentrant: the garbage collector may run a connection's finalizer at any allocation inside a holder of
# it, and the finalizer's close gives its watches up (_watch_close); a plain lock waited there for ever
_WATCHED_LOCK = threading.RLock()


def _reset_after_fork() -> None:
    """A child forked while another thread held the lock would wait for it for ever: a new one (the
    descriptors are the child's too, and ask the same question about the same files)."""
    global _WATCHED_LOCK
    _WATCHED_LOCK = threading.RLock()


os.register_at_fork(after_in_child=_reset_after_fork)


def _watch_open(path: Path) -> int:
    """A descriptor of another process's journal ``path``, shared (OSError: it could not be opened)."""
    key = str(path)  # made before the lock: an allocation inside it may run a finalizer (see _WATCHED_LOCK)
    with _WATCHED_LOCK:
        entry = _WATCHED.get(key)
        if entry is None:
            entry = [os.open(key, _WATCH_FLAGS), 0]
            _WATCHED[key] = entry
        entry[1] += 1
        return entry[0]


def _watch_close(path: Path) -> None:
    """One watch stopped using ``path``'s shared descriptor: closed with the last (by the one call
    that took it out of the table, should a finalizer's call run inside this one)."""
    key = str(path)
    with _WATCHED_LOCK:
        entry = _WATCHED.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _WATCHED[key]
    # drops this process's locks on the file: none, on another process's journal (a test playing
    # another process with its own connections loses a lock, and /proc is asked instead)
    os.close(entry[0])


class JournalWatch:
    """The get journals of other processes' connections beside one queue manager file, for one
    connection: which of them no live connection holds locked (see the module), the ones whose
    owner's process must be asked whether it died. Listed again when the file's shape moved; each
    kept open, so that asking is one F_GETLK per journal (one descriptor per journal in the
    process, shared by its connections' watches)."""

    def __init__(self, database: Path | None) -> None:
        self._database = database
        self._shape: int | None = None
        self._listed = False
        self._descriptors: dict[str, int] = {}  # owner -> its journal, open (-1: could not be: always asked)

    def unlocked(self, shape: int | None, process: str) -> list[str]:
        """The owners, not of this ``process`` ("pid.start"), whose journal nobody holds locked now,
        as the file's shape counter reads ``shape`` (None: unknown, listed again)."""
        if self._database is None:
            return []
        if shape is None or not self._listed or shape != self._shape:
            self._list(process)
            self._shape, self._listed = shape, True
        found = []
        for owner, descriptor in list(self._descriptors.items()):
            if descriptor >= 0 and locked_elsewhere(descriptor):
                continue
            if descriptor >= 0 and os.fstat(descriptor).st_nlink == 0:
                self._drop(owner)  # removed: its connection ended, or was recovered, with its row
                continue
            found.append(owner)
        return found

    def _list(self, process: str) -> None:
        assert self._database is not None
        names = {owner for owner in journaled_owners(self._database) if owner.split(":", 1)[0] != process}
        for owner in self._descriptors.keys() - names:
            self._drop(owner)
        directory = journal_directory(self._database)
        for owner in names - self._descriptors.keys():
            try:
                self._descriptors[owner] = _watch_open(directory / owner)
            except FileNotFoundError:
                continue  # removed meanwhile
            except OSError:
                self._descriptors[owner] = -1  # a link, say: read_journal refuses it, as before

    def _drop(self, owner: str) -> None:
        descriptor = self._descriptors.pop(owner, -1)
        if descriptor >= 0 and self._database is not None:
            _watch_close(journal_directory(self._database) / owner)

    def close(self) -> None:
        """The connection ended: its descriptors closed."""
        for owner in list(self._descriptors):
            self._drop(owner)
        self._listed = False
