"""``python -m benchmarks.qm``: the embedded queue manager alone, against raw SQLite.

For each payload size (1 KiB, 64 KiB) and batch (1, 50 messages per unit of work), two loops run
in turn in the same process and seconds (``benchmarks.timing.rates``):

* **ours**: ``get`` then ``put`` of each message under syncpoint on an embedded queue-manager file,
  MQCMIT after each batch: what a proxy worker asks of the queue manager per message;
* **raw**: SQLite alone on a file of its own with the same settings (WAL; synchronous FULL: the
  commit waits for the disk, as MQCMIT's does),
  doing the same row work in one transaction per batch: per message, delete the oldest row (with
  its body) and insert one of the same sizes (the MQMD as the queue manager stores it, the body),
  the body where the queue manager keeps it: in the row up to ``INLINE_BODY_BYTES``, else in a
  table of bodies (ams/mq/embedded_schema.py).

``ratio`` = ours' time per message / raw's: the queue manager's own cost over SQLite's floor.

python -m benchmarks.qm --quick
python -m benchmarks.qm --json out.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ams.mq import MQMD, EmbeddedQueueManager
from ams.mq.embedded_schema import INLINE_BODY_BYTES
from ams.mq.transport import Message
from benchmarks.timing import rates

KIB = 1024
SIZES = (KIB, 64 * KIB)
BATCHES = (1, 50)
DEPTH = 200  # messages on the queue while it is measured (each loop gets one and puts one)
# bytes of the MQMD as the queue manager stores it: its binary layout since format 7 (420 as format 6's JSON)
MD_BYTES = 169


def ours(path: Path, size: int, batch: int) -> Callable[[], object]:
    """One batch of get+put under syncpoint on an embedded queue manager file, then MQCMIT."""
    manager = EmbeddedQueueManager(path, name="BENCHQM", create=True)
    manager.define_queue("Q", max_depth=999_999_999)
    connection = manager.connect("bench")
    queue = connection.open("Q", input=True, output=True)
    for _ in range(DEPTH):
        queue.put(MQMD(), bytes(size))

    def one_batch() -> None:
        for _ in range(batch):
            message: Message = queue.get(syncpoint=True)
            queue.put(message.md, message.body, syncpoint=True)
        connection.commit()

    return one_batch


def raw(path: Path, size: int, batch: int) -> Callable[[], object]:
    """The same rows' inserts and deletes, by SQLite alone, one transaction per batch."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")  # the commit waits for the disk, as MQCMIT's does
    db.execute("PRAGMA wal_autocheckpoint=10000")  # as the queue manager's
    db.executescript(
        "CREATE TABLE messages (id INTEGER PRIMARY KEY, queue TEXT NOT NULL, md BLOB NOT NULL, body BLOB);"
        "CREATE TABLE bodies (id INTEGER PRIMARY KEY, body BLOB NOT NULL);"
        "CREATE INDEX messages_in_order ON messages (queue, id);"
    )
    md, body = bytes(MD_BYTES), bytes(size)
    in_row = size <= INLINE_BODY_BYTES  # where the queue manager keeps it

    def put() -> None:
        if in_row:
            db.execute("INSERT INTO messages (queue, md, body) VALUES (?, ?, ?)", ("Q", md, body))
            return
        cursor = db.execute("INSERT INTO messages (queue, md) VALUES (?, ?)", ("Q", md))
        db.execute("INSERT INTO bodies (id, body) VALUES (?, ?)", (cursor.lastrowid, body))

    def take(first: int) -> None:
        if in_row:
            db.execute("SELECT md, body FROM messages WHERE id = ?", (first,)).fetchone()
            db.execute("DELETE FROM messages WHERE id = ?", (first,))
            return
        db.execute("SELECT md FROM messages WHERE id = ?", (first,)).fetchone()
        db.execute("SELECT body FROM bodies WHERE id = ?", (first,)).fetchone()
        db.execute("DELETE FROM messages WHERE id = ?", (first,))
        db.execute("DELETE FROM bodies WHERE id = ?", (first,))

    db.execute("BEGIN")
    for _ in range(DEPTH):
        put()
    db.execute("COMMIT")

    def one_batch() -> None:
        db.execute("BEGIN IMMEDIATE")
        for _ in range(batch):
            (first,) = db.execute("SELECT id FROM messages WHERE queue = ? ORDER BY id LIMIT 1", ("Q",)).fetchone()
            take(first)
            put()
        db.execute("COMMIT")

    return one_batch


def run(
    *, quick: bool, sizes: tuple[int, ...] = SIZES, batches: tuple[int, ...] = BATCHES, seconds: float | None = None
) -> list[dict[str, Any]]:
    """One record per size and batch: microseconds per message for ours and raw, and their ratio."""
    seconds = seconds if seconds is not None else 0.3 if quick else 1.0
    records = []
    with tempfile.TemporaryDirectory(prefix="ams-qm-bench-") as scratch:
        for size in sizes:
            for batch in batches:
                folder = Path(scratch) / f"{size}-{batch}"
                folder.mkdir()
                loops = [ours(folder / "qm.sqlite", size, batch), raw(folder / "raw.sqlite", size, batch)]
                ours_rate, raw_rate = rates(loops, seconds=seconds, repeats=3)
                ours_us, raw_us = 1e6 / (ours_rate * batch), 1e6 / (raw_rate * batch)
                records.append(
                    {"size": size, "batch": batch, "ours_us": ours_us, "raw_us": raw_us, "ratio": ours_us / raw_us}
                )
                print(
                    f"{size // KIB:>3} KiB batch {batch:>2}: ours {ours_us:7.1f} us, raw {raw_us:6.1f} us per get+put "
                    f"(ratio {ours_us / raw_us:.2f})",
                    file=sys.stderr,
                )
    return records


def markdown(records: list[dict[str, Any]]) -> str:
    """The table for benchmarks/README.md."""
    lines = [
        "| size | batch | ours (µs per get+put) | raw SQLite (µs) | ratio |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in records:
        lines.append(
            f"| {r['size'] // KIB} KiB | {r['batch']} | {r['ours_us']:,.1f} | {r['raw_us']:,.1f} | {r['ratio']:.2f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.qm", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    records = run(quick=args.quick)
    header = (
        f"Run on {time.strftime('%Y-%m-%d')}: {platform.machine()}, {multiprocessing.cpu_count()} cores, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version} ({time.perf_counter() - started:.1f} s)."
    )
    print(header + "\n\n" + markdown(records))
    if args.json:
        args.json.write_text(json.dumps({"header": header, "records": records}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
