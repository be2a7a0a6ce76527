"""Waiting for the writer of an embedded queue manager's file, and telling its holder that another
process waits.

SQLite's busy handler (the connection's 30 s timeout) sleeps 1, 2, 5, 10 ms and more between its
tries at the write lock, long after a holder that keeps it for a fraction of a millisecond freed
it: two proxy workers sharing one file then took turns at a few milliseconds each, no faster than
one. :func:`begin_immediate` instead tries BEGIN IMMEDIATE with no busy timeout, and again after
50 µs, doubling to 1 ms, for the same 30 s in all; past them it raises SQLite's own "database is
locked" (MQRC 2195 to the caller), as the busy handler did. Other statements keep the busy timeout.

A unit of work keeps the writer between its calls (ams/mq/embedded_writer.py), so a waiter could
wait for the holder's application work as well, up to HOLD_SECONDS. So a process that waits holds a
shared lock (fcntl F_SETLK, F_RDLCK) on byte 0 of a small file beside the queue manager's file,
``<file>-writer``, while it retries; a holder asks (F_GETLK, which reports other processes' locks
only) at the end of a call (of calls back to back, one per embedded_writer.WANTED_ASK_SECONDS), and
its flusher thread between calls, and writes what it holds when someone waits. The lock is
advisory and nobody ever waits for it: SQLite's lock still decides who writes, a question missed
costs at most HOLD_SECONDS, and the kernel drops the lock of a process that dies. Connections of
one process are served by embedded_writer.release_others instead.

POSIX locks belong to a process, not a descriptor: one thread's unlock, or the close of any
descriptor of the file, drops them all. So each process opens the file once per queue manager
file and counts its waiting threads, locking on the first and unlocking after the last. F_GETLK
needs ``struct flock`` packed by hand: done for 64-bit Linux and macOS; elsewhere a holder never
hears of a waiter, and the time bound alone applies. A queue manager in memory has no file: only
one process uses it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import struct
import sys
import threading
import time
import weakref
from pathlib import Path

from ams._files import PRIVATE_FILE_MODE, check_private_file, queue_manager_companions, write_new_file
from ams.errors import UsageError

BUSY_TIMEOUT_SECONDS = 30  # the connections' own (sqlite3.connect timeout): how long a BEGIN waits in all
_FIRST_PAUSE = 50e-6  # between tries at the writer: from 50 µs ...
_LONGEST_PAUSE = 0.001  # ... doubling to 1 ms
_SET_BUSY = f"PRAGMA busy_timeout = {BUSY_TIMEOUT_SECONDS * 1000}"


def _flock_layout() -> tuple[struct.Struct, tuple[str, ...]] | None:
    """``struct flock`` and the order of its fields, on the systems whose layout is known."""
    if sys.platform.startswith("linux") and struct.calcsize("P") == 8:
        # short l_type, l_whence; off_t l_start, l_len; pid_t l_pid (and padding to 32 bytes)
        return struct.Struct("@hhqqi4x"), ("type", "whence", "start", "len", "pid")
    if sys.platform == "darwin":
        # off_t l_start, l_len; pid_t l_pid; short l_type, l_whence
        return struct.Struct("@qqihh"), ("start", "len", "pid", "type", "whence")
    return None


_LAYOUT = _flock_layout()
# F_GETLK's question: could this process write-lock byte 0? (any other process's lock conflicts)
_QUERY = (
    None
    if _LAYOUT is None
    else _LAYOUT[0].pack(
        *({"type": fcntl.F_WRLCK, "whence": os.SEEK_SET, "start": 0, "len": 1, "pid": 0}[f] for f in _LAYOUT[1])
    )
)
_TYPE_AT = 0 if _LAYOUT is None else _LAYOUT[1].index("type")


def locked_elsewhere(descriptor: int) -> bool | None:
    """Whether another process holds a lock (of either kind) on byte 0 of the file open at
    ``descriptor`` (F_GETLK: this process's own locks are not reported); None where that cannot be
    asked (no known ``struct flock`` layout, or the call failed)."""
    if _QUERY is None or _LAYOUT is None:
        return None
    try:
        answer = fcntl.fcntl(descriptor, fcntl.F_GETLK, _QUERY)
    except OSError:
        return None
    return bool(_LAYOUT[0].unpack(answer)[_TYPE_AT] != fcntl.F_UNLCK)


def wanted_path(database: Path) -> Path:
    """The file on which processes waiting for the writer of ``database`` hold their lock."""
    return queue_manager_companions(database)[1]


class WriterWanted:
    """Whether another process waits for the writer of one queue manager file (see the module)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._descriptor = _open_private(path)
        # reentrant: a finalizer the collector runs inside waits() (an allocation there) may close a
        # connection of the same file, whose transaction may wait for the writer too
        self._lock = threading.RLock()
        self._waiting = 0  # threads of this process waiting for the writer

    def waits(self) -> None:
        """A thread of this process starts waiting for the writer (:meth:`waited` when it stops)."""
        with self._lock:
            self._waiting += 1
            if self._waiting == 1:
                # fails only if another process write-locked it, which no ams process does: then the
                # holder does not hear of us, and the time bound alone applies
                with contextlib.suppress(OSError):
                    fcntl.lockf(self._descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, 0, os.SEEK_SET)

    def waited(self) -> None:
        """The thread has the writer, or gave up."""
        with self._lock:
            self._waiting -= 1
            if self._waiting == 0:
                with contextlib.suppress(OSError):
                    fcntl.lockf(self._descriptor, fcntl.LOCK_UN, 1, 0, os.SEEK_SET)

    def by_others(self) -> bool:
        """Whether another process waits for the writer now (this process's own waiters not counted)."""
        return bool(locked_elsewhere(self._descriptor))

    def _after_fork(self) -> None:
        # a child inherits the descriptor, not the parent's locks, nor its waiting threads
        self._lock = threading.RLock()
        self._waiting = 0

    def __del__(self) -> None:
        # the last user is gone, so no thread of ours waits: closing drops no lock anyone relies on
        with contextlib.suppress(Exception):
            os.close(self._descriptor)


def _open_private(path: Path) -> int:
    """``path`` opened (read and write: a lock of either kind may be asked about), created private
    (0600) when missing, never through a symbolic link, refused when someone else owns it or may use
    it (ConfigurationError): whoever could lock it would have every holder write at each call."""
    with contextlib.suppress(UsageError):  # there already: made by another process, checked below
        write_new_file(path, b"", mode=PRIVATE_FILE_MODE)
    check_private_file(path, "queue manager writer lock file", "the locks of processes waiting for the writer")
    flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    return os.open(path, flags)


_wanted: weakref.WeakValueDictionary[str, WriterWanted] = weakref.WeakValueDictionary()
_wanted_lock = threading.Lock()


def writer_wanted(database: str, path: Path) -> WriterWanted:
    """This process's :class:`WriterWanted` for the queue manager file ``path`` (SQLite URI
    ``database``), opened at its first use; kept while a queue manager object refers to it."""
    with _wanted_lock:
        found = _wanted.get(database)
        if found is None:
            found = _wanted[database] = WriterWanted(wanted_path(path))
        return found


def _reset_after_fork() -> None:
    global _wanted_lock
    _wanted_lock = threading.Lock()
    for found in list(_wanted.values()):
        found._after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)


def watched(database: str) -> bool:
    """Whether holders of ``database`` can hear that another process waits (a file, not memory)."""
    return _LAYOUT is not None and database in _wanted


def _busy(error: sqlite3.OperationalError) -> bool:
    return getattr(error, "sqlite_errorcode", sqlite3.SQLITE_BUSY) & 0xFF == sqlite3.SQLITE_BUSY


def begin_immediate(db: sqlite3.Connection, database: str) -> None:
    """BEGIN IMMEDIATE on ``db`` (of SQLite URI ``database``), waiting for the writer by polling,
    not in SQLite's busy handler, for BUSY_TIMEOUT_SECONDS at most (then SQLite's "database is
    locked"); while it waits, other processes' holders of the writer hear of it."""
    db.execute("PRAGMA busy_timeout = 0")
    try:
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if not _busy(error):
                raise
            _retry(db, database, error)
    finally:
        db.execute(_SET_BUSY)


def _retry(db: sqlite3.Connection, database: str, error: sqlite3.OperationalError) -> None:
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    pause = _FIRST_PAUSE
    wanted = _wanted.get(database)
    if wanted is not None:
        wanted.waits()
    try:
        while time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(pause * 2, _LONGEST_PAUSE)
            try:
                db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as again:
                if not _busy(again):
                    raise
                error = again
        raise error
    finally:
        if wanted is not None:
            wanted.waited()
