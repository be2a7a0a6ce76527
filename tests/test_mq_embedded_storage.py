"""The embedded queue manager's storage: the depths kept by every writer, the bodies in their own table,
reads by MsgId on their index, the attributes decoded once, and files of earlier or later formats.

After every change, whatever made it (calls, crashes, races, migrations), a file must hold: the kept
depth of each queue equal to its rows' own count (state 0 or 1), no body without its message, and
no message without its body."""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import multiprocessing.synchronize
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from ams.mq import MQMD, EmbeddedQueueManager, MQError, NoMessageAvailable
from ams.mq.embedded_schema import INLINE_BODY_BYTES, _statements
from ams.mq.embedded_shape import _EARLIER_TRIGGERS
from ams.mq.transport import QueueAttributes
from tests.mq_transports import define_test_queues
from tests.test_mq_embedded_format import FORMAT_7_DEPTH_TRIGGERS

MD = MQMD()
PERSISTENT = MQMD(persistence=1)
SPAWN = multiprocessing.get_context("spawn")


def _sound(path: Path | str) -> None:
    """The file's invariants: kept depths are counts, bodies and messages pair up."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        counted = dict(db.execute("SELECT queue, COUNT(*) FROM messages WHERE state IN (0, 1) GROUP BY queue"))
        kept = {queue: depth for queue, depth in db.execute("SELECT queue, depth FROM curdepths") if depth}
        (orphans,) = db.execute("SELECT COUNT(*) FROM bodies WHERE id NOT IN (SELECT id FROM messages)").fetchone()
        (bodiless,) = db.execute(
            "SELECT COUNT(*) FROM messages m LEFT JOIN bodies b ON b.id = m.id "
            "WHERE b.id IS NULL AND length(m.body) = 0"
        ).fetchone()
    assert kept == counted
    assert (orphans, bodiless) == (0, 0)


def _as_format(path: Path | str, version: int) -> None:
    """The file as a release of schema ``version`` (2 or 3) left it: bodies in the rows; before 3,
    no depths, from 3 the depths kept by triggers."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "UPDATE messages SET body = (SELECT body FROM bodies WHERE bodies.id = messages.id) "
            "WHERE id IN (SELECT id FROM bodies)"
        )
        db.execute("DROP TRIGGER body_on_delete")
        db.execute("DROP TABLE bodies")
        for trigger in _EARLIER_TRIGGERS:  # the shape counter came later
            db.execute(f"DROP TRIGGER {trigger}")
        db.execute("DROP TABLE file_shape")
        if version < 3:
            db.execute("DROP TABLE curdepths")
        else:  # named so, and kept by triggers, until format 8
            db.execute("ALTER TABLE curdepths RENAME TO depths")
            for statement in _statements(FORMAT_7_DEPTH_TRIGGERS):
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {version}")
        db.execute("COMMIT")


def _drain(manager: EmbeddedQueueManager, queue: str) -> list[bytes]:
    handle = manager.connect("drain").open(queue, input=True)
    out = []
    while True:
        try:
            out.append(handle.get().body)
        except NoMessageAvailable:
            return out


# -- in one process ---------------------------------------------------------------------------


def test_every_change_keeps_the_depth_and_pairs_bodies_with_messages(tmp_path: Path) -> None:
    """Puts through an alias, in and out of syncpoint; gets by MsgId and in order, in and out of
    syncpoint; commit, backout, expiry and restart: after each the invariants hold, each body is
    keyed by its own message (the depth trigger's upsert does not move lastrowid), and restart()
    counts the messages it discarded, not the rows its triggers changed."""
    path = tmp_path / "qm.sqlite"
    manager = define_test_queues(EmbeddedQueueManager(path, create=True))
    manager.define_alias("A.DEPTH", "T.DEPTH")
    app, other = manager.connect("app"), manager.connect("other")
    out, into = app.open("A.DEPTH", output=True), other.open("A.DEPTH", input=True)
    first = out.put(MD, b"first")  # the queue's first put makes its depths row
    _sound(path)
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT msg_id, body FROM messages").fetchall() == [
            (first.msg_id, b"first")  # a 24-byte BLOB since format 7; a body of INLINE_BODY_BYTES or less in its row
        ]
    pending = out.put(MD, b"pending", syncpoint=True)
    _sound(path)
    assert app.depth("T.DEPTH") == 2
    with pytest.raises(MQError) as inquired:  # as MQ answers MQINQ CURDEPTH on an alias
        app.depth("A.DEPTH")
    assert inquired.value.reason == 2068
    assert into.get(msg_id=first.msg_id, syncpoint=True).body == b"first"
    _sound(path)
    other.backout()
    app.commit()
    _sound(path)
    assert into.get(msg_id=pending.msg_id).body == b"pending"
    assert into.get(syncpoint=True).body == b"first"
    other.commit()
    _sound(path)
    out.put(MQMD(expiry=1), b"short-lived")
    time.sleep(0.25)
    out.put(PERSISTENT, b"meets it")  # the expired one still counts, as on MQ...
    _sound(path)
    assert app.depth("T.DEPTH") == 2
    out.put(MQMD(persistence=0), b"volatile 1")
    out.put(MQMD(persistence=0), b"volatile 2")
    out.put(MQMD(persistence=0), b"volatile, uncommitted", syncpoint=True)
    assert into.get(syncpoint=True).body == b"meets it"  # ...until this get passed over it
    _sound(path)
    assert app.depth("T.DEPTH") == 3
    assert into.get(syncpoint=True).body == b"volatile 1"
    assert manager.restart() == 2  # both volatile ones (one got back first); the uncommitted put never counted
    _sound(path)
    assert _drain(manager, "A.DEPTH") == [b"meets it"]
    _sound(path)
    assert manager.connect("spy").depth("T.DEPTH") == 0


def test_a_got_message_does_not_stay_in_the_file(tmp_path: Path) -> None:
    """The queue manager's connections zero freed pages (secure_delete), whatever SQLite was built
    with: once a got message is committed and the log checkpointed, its bytes are not in the file;
    the twin, a message still queued, is found there, so the scan does see bodies."""
    path = tmp_path / "qm.sqlite"
    manager = define_test_queues(EmbeddedQueueManager(path, create=True))
    gone, kept = b"GONE-" + os.urandom(12).hex().encode(), b"KEPT-" + os.urandom(12).hex().encode()
    app = manager.connect("app")
    app.put1("T.DEPTH", PERSISTENT, gone * 40)
    app.put1("T.DEPTH", PERSISTENT, kept * 40)
    assert app.open("T.DEPTH", input=True).get(syncpoint=True).body == gone * 40
    app.commit()
    app.close()
    manager.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    stored = b"".join(file.read_bytes() for file in tmp_path.iterdir() if file.is_file())
    assert (kept in stored, gone in stored) == (True, False)
    with contextlib.closing(EmbeddedQueueManager(path)._open_db()) as db:
        assert db.execute("PRAGMA secure_delete").fetchone() == (1,)  # set by us, not left to the build


def test_a_put_whose_body_cannot_be_stored_leaves_no_message(tmp_path: Path) -> None:
    """The message row and its body (beyond INLINE_BODY_BYTES, in the bodies table) are written in
    one transaction: when the second write fails (a full disk, here a trigger), nothing of the put
    stays, and the failure is MQRC 2195."""
    path = tmp_path / "qm.sqlite"
    manager = define_test_queues(EmbeddedQueueManager(path, create=True))
    app = manager.connect("app")
    app.put1("T.DEPTH", MD, b"before")
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TRIGGER disk_full BEFORE INSERT ON bodies BEGIN SELECT RAISE(ABORT, 'disk is full'); END")
    handle = app.open("T.DEPTH", output=True)  # its put translates SQLite's errors itself, unwrapped
    puts: tuple[Callable[..., MQMD], ...] = (functools.partial(app.put1, "T.DEPTH"), handle.put)
    for syncpoint in (False, True):
        for put in puts:
            with pytest.raises(MQError) as caught:
                put(MD, b"never stored".ljust(INLINE_BODY_BYTES + 1, b"."), syncpoint=syncpoint)
            assert caught.value.reason == 2195 and not isinstance(caught.value, sqlite3.Error)
    app.commit()
    _sound(path)
    app.put1("T.DEPTH", MD, b"x" * INLINE_BODY_BYTES)  # the twin: one write, the row's
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        assert db.execute("SELECT COUNT(*) FROM messages").fetchone() == (2,)
        db.execute("DROP TRIGGER disk_full")
    assert app.depth("T.DEPTH") == 2 and _drain(manager, "T.DEPTH") == [b"before", b"x" * INLINE_BODY_BYTES]


def test_reads_by_msg_id_in_every_form_and_without_their_index(tmp_path: Path) -> None:
    """get, get under syncpoint, browse_first, peek and peek_browse by MsgId all run with INDEXED BY;
    an index gone from an open file is MQRC 2195 (never a raw sqlite3 error), and opening the file
    makes it again; a file from before MsgIds were a column is filled in and found by MsgId."""
    path = tmp_path / "qm.sqlite"
    manager = define_test_queues(EmbeddedQueueManager(path, create=True))
    app = manager.connect("app")
    ids = [app.put1("T.MSGID", MD, b"m%d" % index).msg_id for index in range(5)]
    handle = app.open("T.MSGID", input=True, browse=True)
    assert handle.browse_first(msg_id=ids[2]).body == b"m2"
    assert handle.peek(msg_id=ids[3]).body == b"m3"
    assert handle.peek_browse(True, msg_id=ids[4]).body == b"m4"
    assert handle.peek_browse(None, msg_id=ids[0]).body == b"m0"
    assert handle.get(msg_id=ids[1], syncpoint=True).body == b"m1"
    app.backout()
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("DROP INDEX messages_by_msg_id")
    with pytest.raises(MQError) as caught:
        handle.get(msg_id=ids[1])
    assert caught.value.reason == 2195
    EmbeddedQueueManager(path, create=True)  # makes the index again
    assert handle.get(msg_id=ids[1]).body == b"m1"
    with contextlib.closing(sqlite3.connect(path)) as db, db:  # as before schema version 2
        db.execute("DROP INDEX messages_by_msg_id")
        db.execute("UPDATE messages SET msg_id = NULL")
        db.execute("PRAGMA user_version = 1")
    old = EmbeddedQueueManager(path, create=True).connect("after").open("T.MSGID", input=True)
    assert old.get(msg_id=ids[3]).body == b"m3"
    _sound(path)


def test_attributes_are_decoded_once_per_text_not_per_queue(tmp_path: Path) -> None:
    """The cache is keyed by the stored text: a redefinition reaches a connection already open, and
    what the cache shares cannot be changed by one of its holders."""
    manager = define_test_queues(EmbeddedQueueManager(tmp_path / "qm.sqlite", create=True))
    manager.define_queue("T.DEPTH", max_depth=1)
    app = manager.connect("app")
    app.put1("T.DEPTH", MD, b"one")
    with pytest.raises(MQError) as caught:
        app.put1("T.DEPTH", MD, b"two")
    assert caught.value.reason == 2053
    manager.define_queue("T.DEPTH", max_depth=2)
    app.put1("T.DEPTH", MD, b"two")
    shared = app.attributes("T.DEPTH")
    assert shared is manager.connect("other").attributes("T.DEPTH")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        shared.max_depth = 10  # type: ignore[misc]
    assert app.attributes("T.FULL") == QueueAttributes(max_depth=3)


def test_a_file_of_a_later_format_is_refused_not_misread(tmp_path: Path) -> None:
    """A release meets a file a later one wrote (as one of schema 3 meets bodies moved out of the
    rows, and delivers them empty): it refuses it with MQRC 2195 and changes nothing."""
    path = tmp_path / "qm.sqlite"
    define_test_queues(EmbeddedQueueManager(path, create=True)).connect().put1("T.UOW", MD, b"kept")
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(MQError) as caught:
        EmbeddedQueueManager(path, create=True)
    assert caught.value.reason == 2195 and "format 99" in str(caught.value)
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (99,)


def test_work_in_flight_across_a_migration_from_schema_3(tmp_path: Path) -> None:
    """Uncommitted puts and gets of this process, and a process of an earlier release (bodies in the
    rows, depths kept by triggers) that keeps the file open while it is migrated: the depths count
    this process's work right, commit and backout keep them right, and every body is delivered.
    The earlier release's put after the migration fails at its first statement, the depth read every
    release of formats 3-7 makes before a put (the table is renamed): it never writes a message whose
    depth nobody keeps."""
    path = tmp_path / "qm.sqlite"
    manager = define_test_queues(EmbeddedQueueManager(path, create=True))
    writer, reader = manager.connect("writer"), manager.connect("reader")
    for index in range(3):
        writer.put1("T.UOW", MD, b"committed %d" % index)
    writer.put1("T.UOW", MD, b"pending put", syncpoint=True)
    assert reader.open("T.UOW", input=True).get(syncpoint=True).body == b"committed 0"
    _as_format(path, 3)
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as earlier:
        earlier.execute("BEGIN")  # a reader of the earlier release, mid-transaction while the file migrates
        assert earlier.execute("SELECT COUNT(*) FROM messages").fetchone() == (4,)
        migrated = EmbeddedQueueManager(path, create=True)
        earlier.execute("COMMIT")
        with pytest.raises(sqlite3.OperationalError, match="no such table: depths"):
            earlier.execute("SELECT depth FROM depths WHERE queue = ?", ("T.UOW",))  # its put's first statement
    _sound(path)
    assert migrated.connect("spy").depth("T.UOW") == 3  # committed 1 and 2, the pending put; not the got one
    writer.commit()
    reader.backout()
    _sound(path)
    assert sorted(_drain(migrated, "T.UOW")) == sorted([b"committed 0", b"committed 1", b"committed 2", b"pending put"])
    _sound(path)


# -- across processes -------------------------------------------------------------------------


def _filler(path: str, start: int, results: multiprocessing.Queue[tuple[int, int]]) -> None:
    connection = EmbeddedQueueManager(path, create=True).connect(f"filler{start}")
    out = connection.open("T.RACE", output=True)
    done = refused = 0
    for index in range(50):
        try:
            out.put(MD, b"%d" % (start + index), syncpoint=index % 2 == 0)
            done += 1
        except MQError as error:
            assert error.reason == 2053
            refused += 1
        if index % 5 == 4:
            connection.commit()
    connection.commit()
    results.put((done, refused))


def test_two_processes_filling_a_queue_stop_at_maxdepth_exactly(tmp_path: Path) -> None:
    """The kept depth is read inside the put's transaction: two processes racing to a MAXDEPTH of 60
    (half their puts uncommitted for a while, which count) store 60 messages between them."""
    path = str(tmp_path / "qm.sqlite")
    manager = define_test_queues(EmbeddedQueueManager(path, create=True))
    manager.define_queue("T.RACE", max_depth=60)
    results: multiprocessing.Queue[tuple[int, int]] = SPAWN.Queue()
    processes = [SPAWN.Process(target=_filler, args=(path, start, results)) for start in (0, 1000)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert sum(done for done, _ in outcomes) == 60 and sum(refused for _, refused in outcomes) == 40
    _sound(path)
    assert manager.connect("spy").depth("T.RACE") == 60


def _busy(path: str, ready: multiprocessing.synchronize.Event) -> None:
    connection = EmbeddedQueueManager(path, create=True).connect("busy")
    out, into = connection.open("T.DROP", output=True), connection.open("T.DROP", input=True)
    index = 0
    while True:
        out.put(MD, b"body %d" % index, syncpoint=index % 2 == 0)
        out.put(MD, b"body %d" % (index + 1))
        into.get(syncpoint=index % 3 != 0)
        if index % 4 == 0:
            connection.backout()
        else:
            connection.commit()
        index += 2
        if index == 20:
            ready.set()


def test_a_process_killed_mid_call_leaves_a_sound_file(tmp_path: Path) -> None:
    """SIGKILL at any point of puts, gets, commits and backouts: once the next opener has backed the
    dead process's work out, the depths are counts and every message has its body."""
    path = str(tmp_path / "qm.sqlite")
    define_test_queues(EmbeddedQueueManager(path, create=True)).close()
    for delay in (0.05, 0.13):
        ready = SPAWN.Event()
        process = SPAWN.Process(target=_busy, args=(path, ready))
        process.start()
        assert ready.wait(timeout=120)
        time.sleep(delay)
        assert process.pid is not None
        os.kill(process.pid, signal.SIGKILL)
        process.join(timeout=60)
        assert process.exitcode == -signal.SIGKILL
        survivor = EmbeddedQueueManager(path, create=True)  # backs the dead process's work out
        _sound(path)
        with contextlib.closing(sqlite3.connect(path)) as db:
            assert db.execute("SELECT COUNT(*) FROM messages WHERE state != 0").fetchone() == (0,)
        survivor.close()
    bodies = _drain(EmbeddedQueueManager(path, create=True), "T.DROP")
    assert bodies and all(body.startswith(b"body ") for body in bodies)
    _sound(path)


def _opener(path: str, start: int, barrier: multiprocessing.synchronize.Barrier) -> None:
    barrier.wait(timeout=120)
    connection = EmbeddedQueueManager(path, create=True).connect(f"opener{start}")  # migrates, or finds it migrated
    out, into = connection.open("T.SHARED", output=True), connection.open("T.SHARED", input=True)
    for index in range(10):
        out.put(MD, b"%d" % (start + index), syncpoint=index % 2 == 0)
        connection.commit()
        if index % 2:
            into.get()
    connection.disconnect()


def test_processes_opening_an_old_file_at_once(tmp_path: Path) -> None:
    """Two processes open a file of schema 2 at the same moment and go to work at once: one of them
    migrates it, the other neither refuses it (the first one's connections are not an earlier
    release's) nor migrates it again over the first one's work."""
    path = str(tmp_path / "qm.sqlite")
    manager = define_test_queues(EmbeddedQueueManager(path, create=True))
    manager.connect().put1("T.DROP", MD, b"old")
    manager.close()
    _as_format(path, 2)
    barrier = SPAWN.Barrier(2)
    processes = [SPAWN.Process(target=_opener, args=(path, start, barrier)) for start in (0, 1000)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0, 0]
    _sound(path)
    reopened = EmbeddedQueueManager(path, create=True)
    assert reopened.connect("spy").depth("T.SHARED") == 10
    assert _drain(reopened, "T.DROP") == [b"old"]  # its body still in its row


def test_an_opener_that_read_the_earlier_format_finds_it_migrated(tmp_path: Path) -> None:
    """The race above made certain: an opener read the version before another process migrated the
    file and connected; inside its migration's transaction it finds the file migrated, and neither
    refuses it for the other's connection nor counts the depths again."""
    from ams.mq import embedded

    path = tmp_path / "qm.sqlite"
    manager = define_test_queues(EmbeddedQueueManager(path, create=True))
    manager.connect().put1("T.UOW", MD, b"counted")
    parent = os.getppid()  # a live process other than this one, connected
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("INSERT INTO connections (owner) VALUES (?)", (f"{parent}.{embedded._started(parent)}:live",))
        db.execute("UPDATE curdepths SET depth = 7")  # a recount would show
    manager._migrate()
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT COUNT(*) FROM curdepths WHERE depth = 7").fetchone()[0] > 0


def _earlier_release(
    path: str,
    ready: multiprocessing.synchronize.Event,
    go: multiprocessing.synchronize.Event,
    results: multiprocessing.Queue[list[bytes]],
) -> None:
    """A process of the schema-3 release, in the statements that release runs: it connects, then
    gets with the body read from the row."""
    from ams.mq import embedded

    owner = f"{embedded._process_tag()}:earlier"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("INSERT INTO connections (owner) VALUES (?)", (owner,))
        ready.set()
        go.wait(timeout=120)
        got = []
        while True:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(
                "SELECT id, body FROM messages WHERE queue = ? AND state = 0 ORDER BY priority DESC, id ASC LIMIT 1",
                ("T.UOW",),
            ).fetchone()
            if row is None:
                db.execute("COMMIT")
                break
            db.execute("DELETE FROM messages WHERE id = ?", (row[0],))
            db.execute("COMMIT")
            got.append(bytes(row[1]))
        db.execute("DELETE FROM connections WHERE owner = ?", (owner,))
    results.put(got)


def test_a_file_is_not_migrated_under_a_process_of_an_earlier_release(tmp_path: Path) -> None:
    """Schema 4 moved bodies out of the rows: a process of an earlier release still connected would
    get an empty body for every message put after the migration (and take it off the queue). So
    the migration waits until no other live process is connected: the opener is refused (2195),
    the earlier release goes on as before, and the next opener migrates."""
    path = str(tmp_path / "qm.sqlite")
    define_test_queues(EmbeddedQueueManager(path, create=True)).connect().put1("T.UOW", MD, b"before")
    _as_format(path, 3)
    ready, go = SPAWN.Event(), SPAWN.Event()
    results: multiprocessing.Queue[list[bytes]] = SPAWN.Queue()
    process = SPAWN.Process(target=_earlier_release, args=(path, ready, go, results))
    process.start()
    try:
        assert ready.wait(timeout=120)
        refused = 0
        try:
            EmbeddedQueueManager(path, create=True).connect("new").put1("T.UOW", MD, b"put by this release")
        except MQError as error:
            refused = error.reason
        go.set()
        got = results.get(timeout=120)
    finally:
        go.set()
        process.join(timeout=60)
    assert b"" not in got
    assert refused == 2195 and got == [b"before"]
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (3,)
    after = EmbeddedQueueManager(path, create=True)  # nobody else connected: migrates
    after.connect("new").put1("T.UOW", MD, b"put by this release")
    _sound(path)
    assert _drain(after, "T.UOW") == [b"put by this release"]


def _connect_and_close(path: str) -> None:
    EmbeddedQueueManager(path).connect("passing").close()


def test_a_second_queue_manager_object_keeps_the_first_ones_connections_sound(tmp_path: Path) -> None:
    """Opening the file again in the same process (``ams.mq.connect`` twice, for a proxy's source and
    target) must not drop SQLite's locks of the connections already open: then another process's last
    close took itself for the file's last user and deleted the write-ahead log under them ("database
    disk image is malformed" at their next call)."""
    path = tmp_path / "qm.sqlite"
    first = EmbeddedQueueManager(path, create=True)
    first.define_queue("Q")
    connection = first.connect("first")
    connection.put1("Q", MQMD(), b"before")
    second = EmbeddedQueueManager(path)  # in this process, while the first's connections are open
    process = SPAWN.Process(target=_connect_and_close, args=(str(path),))
    process.start()
    process.join(timeout=120)
    assert process.exitcode == 0
    connection.put1("Q", MQMD(), b"after")
    queue = second.connect("second").open("Q", input=True)
    assert [queue.get().body, queue.get().body] == [b"before", b"after"]
    connection.close()
