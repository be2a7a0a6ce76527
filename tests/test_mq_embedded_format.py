"""The embedded queue manager's file format 7: the MQMD in a binary layout (ams/mq/embedded_md.py),
MsgId and CorrelId as 24-byte BLOBs (an all-zero CorrelId NULL, outside the partial CorrelId
index), the order index holding committed messages only; files of formats 5 and 6 migrated on
open with every message as it was; files of a later format refused; and the expiry scan skipped
only while provably nothing on the queue expires."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from pathlib import Path

import attrs
import pytest

from ams.mq import MQMD, EmbeddedQueueManager, MQError, NoMessageAvailable
from ams.mq.embedded_md import _MD_ORDER, POSITIONAL, md_from_bytes
from ams.mq.embedded_schema import _SCHEMA_VERSION, _statements
from ams.mq.embedded_shape import _EARLIER_TRIGGERS, SHAPE_SCHEMA
from ams.mq.mqmd import MD_FIELDS, md_with
from ams.mq.transport import QueueAttributes
from ams.mqconstants import MQEI_UNLIMITED

RICH = MQMD(
    format="MQSTR",
    persistence=1,
    priority=7,
    correl_id=b"correl".ljust(24, b"\0"),
    reply_to_q="REPLY.Q",
    reply_to_qmgr="QM2",
    user_identifier="alice",
    msg_type=1,
)
DEAD = "99999999.1:dead"  # an owner whose process cannot exist (above any pid_max)


def _manager(path: Path) -> EmbeddedQueueManager:
    manager = EmbeddedQueueManager(path, create=True)
    manager.define_queue("Q")
    return manager


def _stored(path: Path) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT md, msg_id, correl_id FROM messages ORDER BY id").fetchall()


def _received(md: MQMD) -> MQMD:
    """What a get returns of a message put with ``md``: its values used, its BackoutCount."""
    return attrs.evolve(md, persistence=1, priority=7)


def test_the_mqmd_is_stored_in_its_binary_layout_and_read_back_whole(tmp_path: Path) -> None:
    path = tmp_path / "qm.sqlite"
    connection = _manager(path).connect("app")
    put = connection.put1("Q", RICH, b"body")
    unusual = MQMD(reply_to_q="Q\u00e9\U0001f600", user_identifier="a\udc80b", format="")  # any str comes back
    put_unusual = connection.put1("Q", unusual, b"unusual")
    (md, msg_id, correl_id), (_, _, no_correl_id) = _stored(path)
    assert isinstance(md, bytes) and md_from_bytes(md, 0) == attrs.evolve(_received(put), backout_count=0)
    assert (msg_id, correl_id, no_correl_id) == (put.msg_id, RICH.correl_id, None)  # MQCI_NONE: NULL
    queue = connection.open("Q", input=True)
    got = queue.get()
    assert got.md == _received(put) and got.md.put_appl_name == "app" and got.md.correl_id == RICH.correl_id
    assert put.persistence == RICH.persistence and put.priority == RICH.priority  # MQPUT's output MQMD
    assert queue.get().md == attrs.evolve(put_unusual, persistence=0, priority=0)


def test_an_integer_mq_cannot_hold_is_refused_not_stored(tmp_path: Path) -> None:
    """The rejected twin: an MQMD integer beyond 64 bits has no place in the layout: MQRC 2026
    (MQRC_MD_ERROR), and nothing is put."""
    path = tmp_path / "qm.sqlite"
    connection = _manager(path).connect("app")
    with pytest.raises(MQError) as caught:
        connection.put1("Q", MQMD(msg_type=1 << 64), b"body")
    assert caught.value.reason == 2026 and "MQLONG" in str(caught.value)
    assert _stored(path) == [] and connection.depth("Q") == 0


def test_gets_by_correl_id_use_the_partial_index_and_none_matches_any(tmp_path: Path) -> None:
    """A get by CorrelId finds its message among messages without one (NULL, outside the index);
    an all-zero CorrelId (MQCI_NONE) matches any message, in the queue's order."""
    connection = _manager(tmp_path / "qm.sqlite").connect("app")
    queue = connection.open("Q", input=True, output=True)
    queue.put(MQMD(), b"none")
    queue.put(md_with(RICH, priority=0), b"rich")  # behind "none", first in first out
    statements: list[str] = []
    connection._db.set_trace_callback(statements.append)
    assert queue.get(correl_id=RICH.correl_id, syncpoint=True).body == b"rich"
    assert any("INDEXED BY messages_by_correl_id" in sql for sql in statements)
    with pytest.raises(NoMessageAvailable):
        queue.get(correl_id=b"other".ljust(24, b"\0"))
    connection.backout()
    assert queue.get(correl_id=bytes(24)).body == b"none"
    assert queue.get(correl_id=bytes(24)).body == b"rich"


# -- files of earlier formats -------------------------------------------------------------------

# How formats 3 to 7 kept each queue's depth (format 8 keeps it in its writers), kept here as it was
FORMAT_7_DEPTH_TRIGGERS = """
CREATE TRIGGER depth_on_insert AFTER INSERT ON messages WHEN NEW.state IN (0, 1) BEGIN
    INSERT INTO depths (queue, depth) VALUES (NEW.queue, 1) ON CONFLICT (queue) DO UPDATE SET depth = depth + 1;
END;
CREATE TRIGGER depth_on_delete AFTER DELETE ON messages WHEN OLD.state IN (0, 1) BEGIN
    UPDATE depths SET depth = depth - 1 WHERE queue = OLD.queue;
END;
CREATE TRIGGER depth_on_update AFTER UPDATE OF state, queue ON messages
WHEN (OLD.state IN (0, 1)) != (NEW.state IN (0, 1)) OR OLD.queue != NEW.queue BEGIN
    UPDATE depths SET depth = depth - 1 WHERE queue = OLD.queue AND OLD.state IN (0, 1);
    INSERT INTO depths (queue, depth) SELECT NEW.queue, 1 WHERE NEW.state IN (0, 1)
        ON CONFLICT (queue) DO UPDATE SET depth = depth + 1;
END;
"""
# The file as formats 5 and 6 made it (ams/mq/embedded_schema.py before format 7), kept here as it was
_EARLIER_SCHEMA = (
    """
CREATE TABLE queues (name TEXT PRIMARY KEY, target TEXT, attributes TEXT, denied TEXT DEFAULT '');
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, md TEXT NOT NULL, body BLOB NOT NULL,
    state INTEGER NOT NULL, owner TEXT, backouts INTEGER NOT NULL DEFAULT 0, priority INTEGER NOT NULL DEFAULT 0,
    persistent INTEGER NOT NULL DEFAULT 1, expires REAL, msg_id TEXT, correl_id TEXT
);
CREATE INDEX messages_in_order ON messages (queue, state, priority DESC, id);
CREATE TABLE opens (handle TEXT PRIMARY KEY, queue TEXT NOT NULL, owner TEXT NOT NULL, exclusive INTEGER);
CREATE TABLE connections (
    owner TEXT PRIMARY KEY, broken INTEGER NOT NULL DEFAULT 0, settled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE depths (queue TEXT PRIMARY KEY, depth INTEGER NOT NULL);
"""
    + FORMAT_7_DEPTH_TRIGGERS
    + """CREATE TABLE bodies (id INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE TRIGGER body_on_delete AFTER DELETE ON messages BEGIN DELETE FROM bodies WHERE id = OLD.id; END;
CREATE INDEX messages_by_msg_id ON messages (queue, msg_id);
CREATE INDEX messages_by_correl_id ON messages (queue, correl_id);
CREATE INDEX messages_by_expiry ON messages (queue, expires) WHERE expires IS NOT NULL;
"""
)
_STAMPED = MQMD(persistence=1, priority=0, put_appl_name="old app", put_date="20261205", put_time="12000000")
# (MQMD as stored, body, state, owner, backouts, expiry in seconds): what a crashed format-6 process left
_EARLIER_MESSAGES = [
    (
        md_with(RICH, msg_id=b"A".ljust(24, b"\0"), put_appl_name="old app", put_date="20261205", put_time="12000000"),
        b"rich",
        0,
        None,
        2,
        None,
    ),
    (
        md_with(_STAMPED, priority=0, msg_id=b"B".ljust(24, b"\0"), expiry=6000),
        b"expiring",
        0,
        None,
        0,
        600,
    ),
    (md_with(_STAMPED, priority=9, msg_id=b"C".ljust(24, b"\0")), b"urgent", 0, None, 0, None),
    (md_with(_STAMPED, priority=0, msg_id=b"D".ljust(24, b"\0")), b"got, pending", 2, DEAD, 1, None),
    (md_with(_STAMPED, priority=0, msg_id=b"E".ljust(24, b"\0")), b"put, pending", 1, DEAD, 0, None),
]


def _earlier_md(md: MQMD, version: int) -> str:
    """The MQMD as format ``version`` (5: an object; 6: an array) wrote it, MsgId and CorrelId in hex."""
    fields = {name: getattr(md, name) for name in _MD_ORDER}
    fields["msg_id"], fields["correl_id"] = md.msg_id.hex(), md.correl_id.hex()
    return json.dumps(fields if version == 5 else [fields[name] for name in _MD_ORDER])


def _earlier_file(path: Path, version: int) -> None:
    """A file as the release of format ``version`` (5 or 6) left it when its process was killed:
    committed messages (one expiring), one got and one put under syncpoint by the dead process."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(_EARLIER_SCHEMA)
        db.execute("BEGIN")
        db.execute(
            "INSERT INTO queues (name, attributes) VALUES ('Q', ?)", (json.dumps(attrs.asdict(QueueAttributes())),)
        )
        db.execute("INSERT INTO connections (owner) VALUES (?)", (DEAD,))
        for md, body, state, owner, backouts, seconds in _EARLIER_MESSAGES:
            cursor = db.execute(
                "INSERT INTO messages (queue, md, body, state, owner, backouts, priority, persistent, expires, msg_id, "
                "correl_id) VALUES ('Q', ?, X'', ?, ?, ?, ?, 1, ?, ?, ?)",
                (
                    _earlier_md(md, version),
                    state,
                    owner,
                    backouts,
                    md.priority,
                    None if seconds is None else time.time() + seconds,
                    md.msg_id.hex(),
                    md.correl_id.hex(),
                ),
            )
            db.execute("INSERT INTO bodies (id, body) VALUES (?, ?)", (cursor.lastrowid, body))
        db.execute(f"PRAGMA user_version = {version}")
        db.execute("COMMIT")
    os.chmod(path, 0o600)  # as ams creates it


@pytest.mark.parametrize("version", [5, 6])
def test_a_file_of_an_earlier_format_is_migrated_with_every_message_as_it_was(tmp_path: Path, version: int) -> None:
    """Opened by format 7: every committed message comes back with the same MQMD (its BackoutCount,
    its Expiry counting down), the dead process's get backed out and counted, its put gone, the
    depth right, gets by MsgId and CorrelId finding their messages; the rows are format 7's."""
    path = tmp_path / "qm.sqlite"
    _earlier_file(path, version)
    connection = EmbeddedQueueManager(path).connect("new")
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (_SCHEMA_VERSION,) == (8,)
        kinds = db.execute("SELECT DISTINCT typeof(md), typeof(msg_id) FROM messages").fetchall()
        assert kinds == [("blob", "blob")]
        assert db.execute("SELECT COUNT(*) FROM messages WHERE correl_id IS NOT NULL").fetchone() == (1,)
    assert connection.depth("Q") == 4  # A, B, C and D backed out; E never committed
    rich, expiring, urgent, got_back = (entry[0] for entry in _EARLIER_MESSAGES[:4])
    queue = connection.open("Q", input=True, browse=True)
    assert queue.get(correl_id=RICH.correl_id, syncpoint=True).md == attrs.evolve(rich, backout_count=2)
    found = queue.get(msg_id=expiring.msg_id, syncpoint=True).md
    assert 5990 <= found.expiry <= 6000 and found == attrs.evolve(expiring, expiry=found.expiry)
    connection.backout()  # both back, each counted once more
    in_order = [queue.get() for _ in range(4)]
    assert [message.body for message in in_order] == [b"urgent", b"rich", b"expiring", b"got, pending"]
    assert [message.md.backout_count for message in in_order] == [0, 3, 1, 2]
    assert in_order[0].md == urgent and in_order[3].md == attrs.evolve(got_back, backout_count=2)
    assert md_with(in_order[1].md, backout_count=0) == rich
    assert connection.depth("Q") == 0


def test_a_file_of_an_earlier_format_is_not_migrated_under_a_live_process(tmp_path: Path) -> None:
    """The rejected twin: a live process (perhaps of the release of format 6) is connected: the
    opener is refused (MQRC 2195), the file left as it was, every row still format 6's."""
    path = tmp_path / "qm.sqlite"
    _earlier_file(path, 6)
    from ams.mq import embedded

    parent = os.getppid()
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("INSERT INTO connections (owner) VALUES (?)", (f"{parent}.{embedded._started(parent)}:live",))
    with pytest.raises(MQError) as caught:
        EmbeddedQueueManager(path)
    assert caught.value.reason == 2195 and "earlier format" in str(caught.value)
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (6,)
        assert db.execute("SELECT DISTINCT typeof(md), typeof(msg_id) FROM messages").fetchall() == [("text", "text")]


def test_a_damaged_mqmd_stops_the_migration_and_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    """Another rejected twin: a row whose MQMD is no JSON the earlier formats wrote stops the
    migration with MQRC 2195 naming the row; nothing of the file is changed (one transaction)."""
    path = tmp_path / "qm.sqlite"
    _earlier_file(path, 6)
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        (damaged,) = db.execute("SELECT MAX(id) FROM messages").fetchone()
        db.execute("UPDATE messages SET md = '[\"cut short' WHERE id = ?", (damaged,))
    with pytest.raises(MQError) as caught:
        EmbeddedQueueManager(path)
    assert caught.value.reason == 2195 and f"message row {damaged} holds no MQMD" in str(caught.value)
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (6,)
        assert db.execute("SELECT DISTINCT typeof(md), typeof(msg_id) FROM messages").fetchall() == [("text", "text")]


def _as_format_7(path: Path) -> None:
    """The file as the release of format 7 kept it: the depths in ``depths``, kept by triggers; the
    shape counter in ``shape``."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("BEGIN IMMEDIATE")
        for trigger in _EARLIER_TRIGGERS:
            db.execute(f"DROP TRIGGER {trigger}")
        db.execute("ALTER TABLE file_shape RENAME TO shape")
        for statement in _statements(SHAPE_SCHEMA.replace("file_shape", "shape")):
            db.execute(statement)
        db.execute("ALTER TABLE curdepths RENAME TO depths")
        for statement in _statements(FORMAT_7_DEPTH_TRIGGERS):
            db.execute(statement)
        db.execute("PRAGMA user_version = 7")
        db.execute("COMMIT")


def _counted(path: Path) -> tuple[dict[str, int], dict[str, int]]:
    """The depths the file keeps, and its rows' own count (state 0 or 1), by queue."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        kept = {queue: depth for queue, depth in db.execute("SELECT queue, depth FROM curdepths") if depth}
        counted = dict(db.execute("SELECT queue, COUNT(*) FROM messages WHERE state IN (0, 1) GROUP BY queue"))
    return kept, counted


def test_a_file_of_format_7_is_migrated_its_depths_kept_by_the_writers_from_then_on(tmp_path: Path) -> None:
    """Format 8 keeps the depths in its writers: a file of format 7 (triggers) opened with a live
    process connected is refused and left as it was; with none, its triggers go, the depths are
    counted once (a dead process's get back, its put gone), its rows are left as they were, and a
    process of format 7 that had it open fails at its next statement (the depth it reads before a put,
    the shape counter it reads as it begins), never changing a message whose depth nobody keeps."""
    from ams.mq import embedded

    path = tmp_path / "qm.sqlite"
    connection = _manager(path).connect("app")
    for body in (b"a", b"b", b"c", b"got by the dead", b"put by the dead"):
        connection.put1("Q", RICH, body)
    connection.close()
    _as_format_7(path)
    parent = os.getppid()
    live = f"{parent}.{embedded._started(parent)}:live"
    with contextlib.closing(sqlite3.connect(path)) as db, db:  # as format 7 leaves a killed process's work
        db.execute("INSERT INTO connections (owner) VALUES (?), (?)", (DEAD, live))
        db.execute("UPDATE messages SET state = 2, owner = ? WHERE id = (SELECT MAX(id) - 1 FROM messages)", (DEAD,))
        db.execute("UPDATE messages SET state = 1, owner = ? WHERE id = (SELECT MAX(id) FROM messages)", (DEAD,))
        stored = db.execute("SELECT id, md, msg_id FROM messages ORDER BY id").fetchall()
        assert db.execute("SELECT depth FROM depths").fetchall() == [(4,)]  # the triggers kept it
    with pytest.raises(MQError) as caught:
        EmbeddedQueueManager(path)
    assert caught.value.reason == 2195 and "earlier format" in str(caught.value)
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as earlier:
        assert earlier.execute("PRAGMA user_version").fetchone() == (7,)
        earlier.execute("DELETE FROM connections WHERE owner = ?", (live,))  # the live process goes
        migrated = EmbeddedQueueManager(path).connect("new")
        for statement in ("SELECT depth FROM depths WHERE queue = 'Q'", "SELECT version, expiring FROM shape"):
            with pytest.raises(sqlite3.OperationalError, match="no such table"):
                earlier.execute(statement)  # what a process of format 7 reads first
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (8,)
        names = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger')")}
        assert not names & {"depths", "shape", "depth_on_insert", "depth_on_delete", "depth_on_update"}
        assert {"curdepths", "file_shape", "body_on_delete"} <= names
        assert db.execute("SELECT id, md, msg_id FROM messages ORDER BY id").fetchall() == stored[:4]  # as they were
    assert migrated.depth("Q") == 4 and _counted(path) == ({"Q": 4}, {"Q": 4})
    queue = migrated.open("Q", input=True, output=True)
    queue.put(RICH, b"new", syncpoint=True)
    assert queue.get(syncpoint=True).body == b"a"
    assert migrated.depth("Q") == 4
    migrated.backout()
    assert [queue.get().body for _ in range(4)] == [b"a", b"b", b"c", b"got by the dead"]
    assert migrated.depth("Q") == 0 and _counted(path) == ({}, {})


def test_a_release_of_an_earlier_format_refuses_a_later_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Format 7's writer would change messages leaving their depth as it was: it refuses a file of
    format 8, as this release refuses one of a later format, naming both formats and what to do."""
    from ams.mq import embedded

    path = tmp_path / "qm.sqlite"
    _manager(path).connect("app").put1("Q", RICH, b"body")
    monkeypatch.setattr(embedded, "_SCHEMA_VERSION", 7)
    with pytest.raises(MQError) as caught:
        EmbeddedQueueManager(path)
    assert caught.value.reason == 2195 and "format 8" in str(caught.value) and "(7)" in str(caught.value)
    monkeypatch.undo()
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("PRAGMA user_version = 9")  # a file of the next format, met by this release
    with pytest.raises(MQError) as later:
        EmbeddedQueueManager(path)
    assert later.value.reason == 2195 and "format 9" in str(later.value) and "(8)" in str(later.value)
    assert "open it with the version that wrote it" in str(later.value)
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("PRAGMA user_version = 8")  # the accepted twin: its own format opens, the message there
    assert EmbeddedQueueManager(path).connect("app").open("Q", input=True).get().body == b"body"


def test_the_expiry_scan_is_skipped_only_while_nothing_on_the_queue_expires(tmp_path: Path) -> None:
    """A getter that found no expiring message stops looking for them, until another connection
    writes (here: puts one that expires) or it puts one itself; then an expired message it passes
    over is discarded, as MQ does, not left counting towards CURDEPTH."""
    path = tmp_path / "qm.sqlite"
    manager = _manager(path)
    getter, putter = manager.connect("getter"), manager.connect("putter")
    for body in (b"a", b"b", b"c"):
        putter.put1("Q", MQMD(), body)
    statements: list[str] = []
    getter._db.set_trace_callback(statements.append)
    queue = getter.open("Q", input=True, output=True)
    assert queue.get().body == b"a"
    assert queue.get().body == b"b"
    scans = [sql for sql in statements if "min(expires)" in sql]
    assert len(scans) == 1  # looked once: nothing expires, and nobody else wrote since
    putter.put1("Q", MQMD(expiry=1), b"short-lived")
    putter.put1("Q", MQMD(), b"d")
    time.sleep(0.25)
    assert queue.get().body == b"c"
    assert queue.get().body == b"d"  # passed over the expired one...
    assert getter.depth("Q") == 0  # ...and discarded it
    with pytest.raises(NoMessageAvailable):
        queue.get()  # the queue has no message that expires again: not looked at from here
    queue.put(MQMD(expiry=1), b"mine")  # this connection's own: no other writer to tell it
    time.sleep(0.25)
    with pytest.raises(NoMessageAvailable):
        queue.get()
    assert getter.depth("Q") == 0


def test_the_layout_holds_every_field_of_the_mqmd() -> None:
    """The binary layout, and the put and get that build an MQMD field by field in a straight line
    (ams/mq/embedded_connection.py, embedded_md.py), name every field MQMD has: a field added to
    MQMD fails here until they (and a format 8 migration) carry it."""
    from ams.mq.embedded_md import _INTEGERS, _TEXTS
    from ams.mq.mqmd import MD_FIELDS

    assert sorted(MD_FIELDS) == sorted(_MD_ORDER) == sorted((*_INTEGERS, "msg_id", "correl_id", *_TEXTS))


def test_the_mqmds_built_by_position_hold_every_value_in_its_own_field(tmp_path: Path) -> None:
    """MQPUT's output MQMD and a got message's are built with MQMD's fields passed by position
    (embedded_md.POSITIONAL): with every field's value distinct, a value in a neighbour's field
    shows here."""
    assert POSITIONAL == MD_FIELDS
    given = MQMD(
        format="FMT",
        encoding=273,
        ccsid=819,
        persistence=1,
        msg_type=2,
        priority=3,
        expiry=MQEI_UNLIMITED,
        msg_id=b"m".ljust(24, b"\0"),
        correl_id=b"c".ljust(24, b"\0"),
        reply_to_q="RQ",
        reply_to_qmgr="RQM",
        user_identifier="user",
        put_appl_type=11,
        put_appl_name="appl",
        put_date="20200101",
        put_time="12000000",
    )
    connection = _manager(tmp_path / "qm.sqlite").connect("app")
    assert connection.put1("Q", given, b"body", set_all_context=True) == given
    got = connection.open("Q", input=True).get(syncpoint=True)
    assert got.md == given
    connection.backout()
    assert connection.open("Q", input=True).get().md == attrs.evolve(given, backout_count=1)
    connection.close()


def test_identifiers_not_yet_24_bytes_are_padded_and_zeros_of_any_length_generated(tmp_path: Path) -> None:
    """A put takes a 24-byte MsgId or CorrelId as it is and pads a shorter one to
    MQ's 24 bytes; a MsgId of zeros, of any length, is generated (what padding would give)."""
    connection = _manager(tmp_path / "qm.sqlite").connect("app")
    short = connection.put1("Q", MQMD(msg_id=b"m", correl_id=b"c"), b"short")
    assert (short.msg_id, short.correl_id) == (b"m".ljust(24, b"\0"), b"c".ljust(24, b"\0"))
    assert type(short.msg_id) is bytes and type(short.correl_id) is bytes
    for zeros in (b"", b"\0", bytes(24), bytes(30)):
        generated = connection.put1("Q", MQMD(msg_id=zeros), b"zeros")
        assert generated.msg_id.startswith(b"AMQ ") and len(generated.msg_id) == 24
    got = connection.open("Q", input=True).get(msg_id=b"m")
    assert (got.body, got.md.correl_id) == (b"short", b"c".ljust(24, b"\0"))
    connection.close()
