"""How the embedded queue manager's connections share SQLite's single writer.

A connection keeps its SQLite transaction open across the calls of its MQ unit of work, so that
its gets and puts are written with its commit (or when the hold below ends), not one by one: what
is written is what the calls would have written one by one (state, owner, backout count), only
less often. Inside the transaction held, a get deletes its row and a put inserts its row visible,
as MQCMIT will leave them, and both are marked as uncommitted work before any other write
(ams/mq/embedded_kept.py). A process killed before its transaction was written loses the gets in it: the
messages are back on their queue as if never got. So that their BackoutCount still rises (a
message that kills its reader reaches the backout threshold instead of being read for ever: with
the queue manager inside the application's process, the application's crash is the queue
manager's too, which IBM MQ's separate process does not share), each get under syncpoint is also
appended to the connection's get journal (ams/mq/embedded_journal.py), which the next connection
to take the writer applies once the process is dead. What others observe is unchanged: another
connection's get, browse, CURDEPTH or MQOPEN first takes the writer (BEGIN IMMEDIATE), so it waits
until the holder has written, and then sees every call made before it.

The writer is held for a bounded time, so that other processes make progress:

* MQCMIT, MQBACK, and every call outside syncpoint write at once (MQCMIT and calls outside
  syncpoint then wait for the disk: :func:`sync_log`);
* a get about to wait for a message writes first (another process may be about to put it);
* a call that finds the transaction older than :data:`HOLD_SECONDS` writes it;
* a connection that holds the writer between calls longer than that (its application busy
  elsewhere) is written by a thread of its process (:func:`held`);
* a call that ends (asking at most every :data:`WANTED_ASK_SECONDS`), or that thread between
  calls, writes at once when another process waits for the writer (ams/mq/embedded_wanted.py),
  and a get under syncpoint does while another process reads the same queue, or competed for the
  writer within :data:`CONTENDED_SECONDS` (ams/mq/embedded_unit_of_work.py);
* another connection of the same process wanting the file (another thread's, or the same
  thread's second connection) has every holder write first (:func:`release_others`), since
  waiting on a holder in one's own thread would never end.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import sys
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ams.mq.embedded_wanted import watched
from ams.mq.transport import MQError
from ams.mqconstants import MQRC_UNEXPECTED_ERROR

# the longest a unit of work keeps the writer between its calls (and, at a call's end, in all)
HOLD_SECONDS = 0.01


# how often the flusher asks, for a writer held between calls, whether another process waits for it
WANTED_POLL_SECONDS = 0.002
# how often, at most, the end of a call asks it (an F_GETLK, about 1 µs, was a few per cent of a get+put):
# a call ending within this of the last call end that asked does not ask. A waiter is heard at the first
# call to end this long after the last ask, or the flusher's next round: at most this much later than
# when every call asked, far below HOLD_SECONDS, and within the waiter's own pauses (50 µs doubling to 1 ms)
WANTED_ASK_SECONDS = 0.0002
# once another process wanted the writer (or made us wait for it: a BEGIN IMMEDIATE that took
# CONTENDED_WAIT), each get writes at its end for this long: a
# unit of work holding the writer through its application's work (a proxy worker's cryptography)
# would have the other process wait for all of it
CONTENDED_SECONDS = 0.5
CONTENDED_WAIT = 0.0005
_LONGEST_SLEEP = 0.05  # the flusher's longest sleep between rounds (HOLD_SECONDS is shorter: only a bound)


class HeldInThisThread(MQError):
    """The writer is held by another connection whose call is under way on this thread's own stack
    (the garbage collector ran a finalizer inside that call): waiting for it would never end."""


class Holder(Protocol):
    """A connection that may hold the writer of a database between its calls."""

    def release_writer(self, *, wait: bool) -> None:
        """Write what is held now (``wait`` False: unless a call of the connection is under way, or
        it is younger than HOLD_SECONDS and nobody else wants the writer)."""


class Closable(Protocol):
    """A connection dropped without close, to be closed (its work backed out) all the same."""

    def close_if_idle(self) -> bool:
        """Back out its work and end it, unless a call of it is under way (False then)."""


class _Registry:
    """The holders of this process, by database, the thread that bounds their hold, and the
    connections dropped unclosed inside another connection's call."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        # holder -> (database, when it took the writer); weakly, so that a connection dropped without
        # close while holding the writer is still collected, and backs its work out (UnitOfWork.__del__)
        self.holders: weakref.WeakKeyDictionary[Holder, tuple[str, float]] = weakref.WeakKeyDictionary()
        self.dropped: list[tuple[str, Closable]] = []  # (database, connection): see dropped()
        self.thread: threading.Thread | None = None
        self.idle = False  # the thread waits for a holder (woken by the next), rather than sleeping


_registry = _Registry()


def _reset_after_fork() -> None:
    global _registry
    _registry = _Registry()  # the parent's thread did not come along; its locks may be held


os.register_at_fork(after_in_child=_reset_after_fork)


def dropped(database: str, connection: Closable) -> None:
    """``connection`` of ``database`` was dropped without close inside another connection's call
    (the garbage collector runs a finalizer inside whatever call allocates): closed by this
    process's next transaction on ``database`` (:func:`release_others`), in the thread that begins
    it, not in the finalizer, whose close waited 30 s for that call's connection's lock and 30 s
    more for the writer it holds, and then failed. It holds no writer meanwhile (the connection in
    its call does: it had this one write first); its unit of work stays uncommitted, invisible to
    others, until then (or, if the process makes no other call on the file, until the next opener
    recovers it after the process ends)."""
    with _registry.lock:  # a Condition's RLock: a finalizer run inside held() or release_others() takes it again
        _registry.dropped.append((database, connection))


def _close(entries: list[tuple[str, Closable]]) -> None:
    """Close the connections dropped unclosed (each as its close() can: one that fails stays as
    a dead process's work does, for recovery); one in a call (reached again through a weak
    reference, in this thread or another) goes back to the list, for the next transaction."""
    busy = []
    while entries:
        entry = entries.pop()
        with contextlib.suppress(Exception):
            if not entry[1].close_if_idle():
                busy.append(entry)
    if busy:
        with _registry.lock:
            _registry.dropped.extend(busy)


def held(database: str, holder: Holder) -> None:
    """``holder`` took the writer of ``database`` and keeps it between calls: written within about
    HOLD_SECONDS by this process's flusher thread if no call of its own writes it first."""
    registry = _registry
    with registry.lock:
        registry.holders[holder] = (database, time.monotonic())
        # a connection dropped unclosed is closed (backed out, written at once) by the collector, at exit
        # too, when a thread started now would never run, and start() would wait for it for ever
        if registry.thread is None and not sys.is_finalizing():
            registry.thread = threading.Thread(target=_flusher, args=(registry,), name="ams-qm-writer", daemon=True)
            registry.thread.start()
        if registry.idle:  # woken only from its wait: a notify per hold would switch threads per call
            registry.lock.notify()


def released(holder: Holder) -> None:
    """``holder`` wrote its transaction: no longer a holder."""
    with _registry.lock:
        _registry.holders.pop(holder, None)


def release_others(database: str, me: object = None) -> None:
    """Every holder of ``database`` in this process but ``me`` writes what it holds (waiting for a
    call under way to end), and the connections of ``database`` dropped unclosed are closed: done
    before taking the writer, which they would keep from us."""
    closing: list[tuple[str, Closable]] = []
    with _registry.lock:
        if _registry.dropped:  # rarely: asked at every transaction's begin
            # swapped first: a finalizer the collector runs meanwhile (in this thread: the lock is an RLock)
            # appends to the new list, never to one being read
            pending, _registry.dropped = _registry.dropped, []
            closing = [entry for entry in pending if entry[0] == database]
            _registry.dropped.extend(entry for entry in pending if entry[0] != database)
        others = [holder for holder, (name, _) in _registry.holders.items() if name == database and holder is not me]
    _close(closing)
    for holder in others:
        # a holder whose commit fails is broken (its next call says so, MQRC 2009): not our call's failure
        # (release_writer, public, raises SQLite's errors as MQError); a holder whose call is this thread's own
        # is our call's failure: we cannot wait for it (HeldInThisThread)
        try:
            holder.release_writer(wait=True)
        except HeldInThisThread:
            raise
        except (sqlite3.Error, MQError):
            pass


def _flusher(registry: _Registry) -> None:
    """Write the transactions held longer than HOLD_SECONDS, or wanted by another process (asked
    every WANTED_POLL_SECONDS), whose connections are between calls."""
    while True:
        with registry.lock:
            while not registry.holders:
                registry.idle = True
                registry.lock.wait()
            registry.idle = False
            now = time.monotonic()
            # one copy: a holder collected meanwhile (weak keys, any allocation, any thread) leaves the table
            # at once, and an empty one made min() raise, which ended this thread for the process's life
            holders = list(registry.holders.items())
            if not holders:
                continue
            oldest = min(since for _, (_, since) in holders)
            stale = any(now - since >= HOLD_SECONDS for _, (_, since) in holders)
            # a holder of a file others may wait for is asked each round (it writes if one does)
            asked = [holder for holder, (name, since) in holders if now - since >= HOLD_SECONDS or watched(name)]
            poll = any(watched(name) for _, (name, _) in holders)
            del holders  # none kept alive while sleeping (a connection dropped unclosed is collected)
        while asked:  # popped: none kept alive while sleeping (a connection dropped unclosed is collected)
            with contextlib.suppress(Exception):  # the holder is broken then (its next call says so)
                asked.pop().release_writer(wait=False)
        pause = HOLD_SECONDS / 2 if stale else max(0.001, HOLD_SECONDS - (time.monotonic() - oldest))
        # never longer than _LONGEST_SLEEP: a holder registered meanwhile does not wake this sleep (only the
        # idle wait above), so a HOLD_SECONDS raised for a while (tests make it an hour) would leave every
        # later holder unwritten for that long
        time.sleep(min(pause, WANTED_POLL_SECONDS if poll else _LONGEST_SLEEP))


# what SQLite's own syncs call where the system has it (its os_unix.c: fdatasync, not fsync, on Linux): the log's
# bytes and the size that reads them, not its times (an fsync cost 10-15 % more per MQCMIT here)
_SYNC_DATA: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


# the logs whose name this process synced into their directory: path -> the log's salts then (its header's
# bytes 16-23: random in each log file SQLite makes, new at each restart of one; a new log may be given the
# deleted one's inode, which ext4 does at once, so that (device, inode) missed the new name)
_NAMED: dict[str, bytes] = {}
_SALTS = slice(16, 24)
# a directory's fsync the file system does not have (EINVAL: vboxsf, for one); SQLite ignores its own
# directory syncs' errors, PostgreSQL these
_NO_DIRECTORY_FSYNC = {errno.EINVAL, errno.EBADF, errno.ENOTSUP, errno.EOPNOTSUPP}


def _sync_name(log: str, descriptor: int) -> None:
    """The log's directory entry synced too, once per log file made (a log is deleted by the last
    connection to close, and made again by the next): SQLite syncs the directory at the first sync
    of a log it made, which at ``synchronous=NORMAL`` is its first checkpoint, thousands of commits
    after the first MQCMIT was promised; a power loss meanwhile could lose the log's name on a file
    system that does not order it before the log's data. Without a descriptor to open (EMFILE), or
    a directory fsync on the file system, the system's sync, which needs neither."""
    made = os.pread(descriptor, 32, 0)[_SALTS]
    if _NAMED.get(log) == made:
        return
    try:
        directory = os.open(os.path.dirname(log) or ".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_CLOEXEC)
    except OSError:
        os.sync()
    else:
        try:
            os.fsync(directory)
        except OSError as error:
            if error.errno not in _NO_DIRECTORY_FSYNC:
                raise
            os.sync()
        finally:
            os.close(directory)
    _NAMED[log] = made


def sync_log(path: Path | None, fsync: Callable[[int], None] = _SYNC_DATA) -> None:
    """Wait for the disk to hold what was just committed to ``path``'s write-ahead log: what
    ``synchronous=FULL`` does at each commit, here only for the commits that need it (MQCMIT, calls
    outside syncpoint). The connection runs ``synchronous=NORMAL``, which a transaction spanning
    several calls cannot change at its commit. A missing log was checkpointed into the database
    (and synced) by the last connection to close."""
    if path is None:
        return
    try:
        descriptor = os.open(f"{path}-wal", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    except OSError:  # no descriptor to be had (EMFILE: the commit is done, a get's message would be lost)
        os.sync()  # the system's, which needs none
        return
    try:
        fsync(descriptor)
        _sync_name(f"{path}-wal", descriptor)
    except OSError as error:  # the disk failed it: the commit may not survive a crash
        raise MQError(
            f"the embedded queue manager's log {path}-wal could not be synced ({error.strerror}): what was just "
            "committed may be lost if the system stops; check the disk",
            MQRC_UNEXPECTED_ERROR,
        ) from None
    finally:
        os.close(descriptor)
