"""The embedded queue manager: syncpoint, backout counts, browse cursors, get-wait, aliases, files."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

import pytest

from ams.mq import MQMD, EmbeddedQueueManager, MQError, NoMessageAvailable
from tests.mq_transports import Factory, define_test_queues

MD = MQMD()


def drain(factory: Factory, queue: str) -> list[bytes]:
    handle = factory("drain").open(queue, input=True)
    out = []
    while True:
        try:
            out.append(handle.get().body)
        except NoMessageAvailable:
            return out


def test_fifo_and_empty(connections: Factory) -> None:
    qm = connections("app")
    out = qm.open("T.FIFO", output=True)
    for i in range(5):
        stamped = out.put(MD, b"m%d" % i)
        assert stamped.put_date and stamped.put_appl_name == "app" and any(stamped.msg_id)
    assert qm.depth("T.FIFO") == 5
    assert drain(connections, "T.FIFO") == [b"m%d" % i for i in range(5)]
    with pytest.raises(NoMessageAvailable) as caught:
        qm.open("T.FIFO", input=True).get()
    assert caught.value.reason == 2033


def test_uncommitted_puts_are_invisible_until_commit(connections: Factory) -> None:
    writer, reader = connections("writer"), connections("reader")
    writer.open("T.UOW", output=True).put(MD, b"pending", syncpoint=True)
    with pytest.raises(NoMessageAvailable):
        reader.open("T.UOW", input=True).get()
    writer.commit()
    assert reader.open("T.UOW", input=True).get().body == b"pending"


def test_backout_restores_gets_and_counts(connections: Factory) -> None:
    qm = connections("app")
    qm.put1("T.BACKOUT", MD, b"retry me")
    handle = qm.open("T.BACKOUT", input=True)
    first = handle.get(syncpoint=True)
    assert first.md.backout_count == 0
    with pytest.raises(NoMessageAvailable):
        connections("other").open("T.BACKOUT", input=True).get()
    qm.backout()
    again = handle.get(syncpoint=True)
    assert again.body == b"retry me" and again.md.backout_count == 1
    qm.commit()
    assert qm.depth("T.BACKOUT") == 0


def test_backout_discards_uncommitted_puts(connections: Factory) -> None:
    qm = connections("app")
    qm.open("T.DISCARD", output=True).put(MD, b"never", syncpoint=True)
    qm.backout()
    assert drain(connections, "T.DISCARD") == []


def test_browse_cursors_do_not_remove(connections: Factory) -> None:
    qm = connections("app")
    for body in (b"a", b"b"):
        qm.put1("T.BROWSE", MD, body)
    browser = qm.open("T.BROWSE", browse=True)
    assert [browser.browse_first().body, browser.browse_next().body] == [b"a", b"b"]
    with pytest.raises(NoMessageAvailable):
        browser.browse_next()
    assert browser.browse_first().body == b"a"
    assert qm.depth("T.BROWSE") == 2


def test_get_by_message_id(connections: Factory) -> None:
    qm = connections("app")
    first = qm.put1("T.MSGID", MD, b"first")
    second = qm.put1("T.MSGID", MD, b"second")
    handle = qm.open("T.MSGID", input=True)
    assert handle.get(msg_id=second.msg_id).body == b"second"
    assert handle.get(msg_id=first.msg_id).body == b"first"


def test_get_wait_returns_when_a_message_arrives(connections: Factory) -> None:
    qm = connections("app")
    handle = qm.open("T.WAIT", input=True)
    start = time.monotonic()
    with pytest.raises(NoMessageAvailable):
        handle.get(wait=0.2)
    assert time.monotonic() - start >= 0.19
    later = connections("later")
    timer = threading.Timer(0.2, lambda: later.put1("T.WAIT", MD, b"late"))
    timer.start()
    assert handle.get(wait=5).body == b"late"
    timer.join()


def test_open_modes_are_enforced(connections: Factory) -> None:
    qm = connections("app")
    with pytest.raises(MQError):
        qm.open("T.MODES", output=True).get()
    with pytest.raises(MQError):
        qm.open("T.MODES", input=True).put(MD, b"x")


def test_alias_queues_resolve(tmp_path: Path) -> None:
    manager = EmbeddedQueueManager(tmp_path / "qm.sqlite", create=True)
    manager.define_alias("MY.ERRORS", "SYSTEM.PROTECTION.ERROR.QUEUE")
    qm = manager.connect()
    qm.put1("MY.ERRORS", MD, b"via alias")
    assert qm.depth("SYSTEM.PROTECTION.ERROR.QUEUE") == 1 and qm.resolve("MY.ERRORS") == "SYSTEM.PROTECTION.ERROR.QUEUE"


def _producer(path: str, start: int, count: int) -> None:
    qm = EmbeddedQueueManager(path, create=True).connect(f"producer{start}")
    out = qm.open("T.SHARED", output=True)
    for i in range(start, start + count):
        out.put(MD, b"%06d" % i, syncpoint=i % 3 == 0)
        if i % 3 == 0:
            qm.commit()


def _consumer(path: str, results: multiprocessing.Queue[list[bytes]]) -> None:
    qm = EmbeddedQueueManager(path, create=True).connect("consumer")
    handle = qm.open("T.SHARED", input=True)
    got = []
    while True:
        try:
            message = handle.get(wait=2.0, syncpoint=True)
        except NoMessageAvailable:
            break
        got.append(message.body)
        qm.commit()
    results.put(got)


def test_two_processes_share_a_file_without_loss_or_duplicates(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite")
    define_test_queues(EmbeddedQueueManager(path, create=True)).close()
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[list[bytes]] = context.Queue()
    processes = [
        context.Process(target=_producer, args=(path, 0, 150)),
        context.Process(target=_producer, args=(path, 1000, 150)),
        context.Process(target=_consumer, args=(path, results)),
        context.Process(target=_consumer, args=(path, results)),
    ]
    for process in processes:
        process.start()
    got = results.get(timeout=60) + results.get(timeout=60)
    for process in processes:
        process.join(timeout=60)
    expected = sorted([b"%06d" % i for i in range(150)] + [b"%06d" % i for i in range(1000, 1150)])
    assert sorted(got) == expected  # nothing lost, nothing twice


def _die_holding_work(path: str) -> None:
    import os

    qm = EmbeddedQueueManager(path, create=True).connect("doomed")
    qm.open("T.CRASH", input=True).get(syncpoint=True)
    qm.open("T.CRASH", output=True).put(MD, b"uncommitted", syncpoint=True)
    os._exit(1)  # no disconnect: as if the process crashed


def test_work_of_a_crashed_process_is_backed_out(tmp_path: Path) -> None:
    path = str(tmp_path / "crash.sqlite")
    define_test_queues(EmbeddedQueueManager(path, create=True)).connect().put1("T.CRASH", MD, b"survivor")
    process = multiprocessing.get_context("spawn").Process(target=_die_holding_work, args=(path,))
    process.start()
    process.join(timeout=60)
    assert process.exitcode == 1
    qm = EmbeddedQueueManager(path, create=True).connect("after")
    message = qm.open("T.CRASH", input=True).get()
    assert message.body == b"survivor" and message.md.backout_count == 1
    assert qm.depth("T.CRASH") == 0


def test_work_another_process_backed_out_breaks_the_connection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If another process takes this one for dead and backs its work out, this connection's next
    call (its MQCMIT too) fails with 2009: a commit must never report work that is gone."""
    from ams.mq import embedded

    manager = define_test_queues(EmbeddedQueueManager(tmp_path / "qm.sqlite", create=True))
    victim = manager.connect("victim")
    victim.put1("T.UOW", MD, b"pending", syncpoint=True)
    monkeypatch.setattr(embedded, "_alive", lambda owner: False)
    monkeypatch.setattr(embedded, "_process_tag", lambda: "another")
    EmbeddedQueueManager(tmp_path / "qm.sqlite", create=True)  # opening the file recovers "dead" owners
    with pytest.raises(MQError) as caught:
        victim.commit()
    assert caught.value.reason == 2009 and manager.connect("spy").depth("T.UOW") == 0


def _counted(path: Path, queue: str) -> int:
    """CURDEPTH counted from the rows themselves, as the kept depth must always say."""
    import sqlite3

    with sqlite3.connect(path) as db:
        (count,) = db.execute("SELECT COUNT(*) FROM messages WHERE queue = ? AND state IN (0, 1)", (queue,)).fetchone()
    return int(count)


def test_the_kept_depth_follows_every_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Puts in and out of syncpoint, gets, commits, backouts, expiry, restart and a dead owner's
    recovery: after each, the depth a put checks MAXDEPTH against is the rows' own count."""
    from ams.mq import embedded

    path = tmp_path / "qm.sqlite"
    manager = define_test_queues(EmbeddedQueueManager(path, create=True))
    writer, reader = manager.connect("writer"), manager.connect("reader")
    out, into = writer.open("T.UOW", output=True), reader.open("T.UOW", input=True)

    def same() -> None:
        assert writer.depth("T.UOW") == _counted(path, "T.UOW")

    for index in range(6):
        out.put(MQMD(persistence=index % 2), b"m%d" % index, syncpoint=index % 3 == 0)
        same()
    writer.commit()
    same()
    into.get(syncpoint=True)
    into.get()
    same()
    reader.backout()
    same()
    out.put(MQMD(expiry=1), b"short-lived")
    time.sleep(0.25)
    out.put(MD, b"after")  # the expired message still counts (as on MQ)...
    same()
    with pytest.raises(NoMessageAvailable):
        into.get(msg_id=b"no such message")  # ...until a get that would have returned it passes over it
    same()
    out.put(MD, b"pending", syncpoint=True)
    into.get(syncpoint=True)
    same()
    monkeypatch.setattr(embedded, "_alive", lambda owner: False)
    monkeypatch.setattr(embedded, "_process_tag", lambda: "another")
    survivor = EmbeddedQueueManager(path, create=True)  # recovers the "dead" writer and reader
    assert survivor.connect("spy").depth("T.UOW") == _counted(path, "T.UOW")
    survivor.restart()  # non-persistent messages go
    assert survivor.connect("spy").depth("T.UOW") == _counted(path, "T.UOW") > 0


def test_a_file_from_before_the_kept_depths_is_counted_once(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite"
    manager = define_test_queues(EmbeddedQueueManager(path, create=True))
    connection = manager.connect("app")
    for index in range(3):
        connection.put1("T.FIFO", MD, b"m%d" % index)
    connection.close()
    with sqlite3.connect(path) as db:  # as a file written before schema version 3 looks
        db.execute("DROP TABLE curdepths")
        db.execute("PRAGMA user_version = 2")
    reopened = EmbeddedQueueManager(path, create=True).connect("app")
    assert reopened.depth("T.FIFO") == 3
    reopened.open("T.FIFO", input=True).get()
    assert reopened.depth("T.FIFO") == 2 == _counted(path, "T.FIFO")


def test_bodies_go_with_their_messages_and_old_rows_keep_theirs(tmp_path: Path) -> None:
    """Bodies live in a table of their own (a get that marks a message taken rewrites a small row,
    not the body); every way a message goes takes its body; a file written before, with bodies in
    the rows, still delivers them."""
    import sqlite3

    path = tmp_path / "qm.sqlite"
    manager = define_test_queues(EmbeddedQueueManager(path, create=True))
    app = manager.connect("app")
    out, into = app.open("T.UOW", output=True), app.open("T.UOW", input=True)
    big = bytes(range(256)) * 256
    out.put(MD, big, syncpoint=True)
    app.backout()  # an uncommitted put goes
    out.put(MD, big)
    assert into.get(syncpoint=True).body == big
    app.commit()  # a committed get goes
    out.put(MQMD(persistence=0), b"volatile")
    manager.restart()  # non-persistent messages go
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM bodies").fetchone() == (0,)
        # a message as a file of schema version 3 held it: the body in its row
        db.execute("DROP TABLE bodies")
        db.execute("PRAGMA user_version = 3")
    writer = EmbeddedQueueManager(path, create=True).connect("writer")  # opening it makes the bodies table again
    writer.put1("T.UOW", MD, b"to be moved into its row")
    writer.put1("T.UOW", MD, b"new style")
    with sqlite3.connect(path) as db:  # the first as an old file holds it
        db.execute("UPDATE messages SET body = ? WHERE id = (SELECT MIN(id) FROM messages)", (b"in the row",))
        db.execute("DELETE FROM bodies WHERE id = (SELECT MIN(id) FROM messages)")
    reader = EmbeddedQueueManager(path, create=True).connect("reader").open("T.UOW", input=True, browse=True)
    assert reader.browse_first().body == b"in the row"
    assert [reader.get().body, reader.get().body] == [b"in the row", b"new style"]


def test_a_get_by_msg_id_uses_its_index() -> None:
    """A delivery ledger is looked up by MsgId in a deep queue: never by walking the queue."""
    from ams.mq import embedded

    manager = EmbeddedQueueManager()
    plan = manager._keeper.execute(  # the query a connection runs, explained
        "EXPLAIN QUERY PLAN "
        + embedded._MESSAGE.format("", embedded._BY_MSG_ID)
        + " WHERE m.queue = ? AND m.state = ? AND m.msg_id = ?"
        + embedded._ORDER,
        ("Q", 0, "00"),
    ).fetchall()
    assert any("messages_by_msg_id" in str(step) for step in plan)
