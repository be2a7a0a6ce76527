"""``python -m benchmarks.handover``: how well two processes share the embedded queue manager's writer.

What a proxy worker does, with its cryptography replaced by a sleep (no CPU: two processes would
overlap it perfectly, so what is left between them is the writer's hand-over; ``--spin``: a busy
loop instead, which two processes share two cores for as the cryptography does): ``get`` from IN
under syncpoint, ``time.sleep(--work-us)``, ``put`` to OUT under syncpoint, MQCMIT every
``--batch`` messages, until IN is empty; ``--messages`` of ``--size`` bytes, moved by one process
and then by two (competing consumers, a connection each) on a fresh queue-manager file each run.
Rate = messages / wall time from the start barrier to the last worker's end; ``ratio`` = two
processes' rate / one's, best of ``--runs`` each (runs alternate one and two, so that the
machine's load moves both alike). 2.0 would be a writer that costs the other process nothing.

python -m benchmarks.handover                  # 1,500 messages of 1 KiB, 700 µs, batches of 50
python -m benchmarks.handover --runs 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ams.mq import MQMD, EmbeddedQueueManager, NoMessageAvailable
from benchmarks.workers import timed_workers

KIB = 1024


def _fill(path: Path, size: int, count: int) -> None:
    manager = EmbeddedQueueManager(path, name="BENCHQM", create=True)
    for name in ("IN", "OUT"):
        manager.define_queue(name, max_depth=999_999_999)
    connection = manager.connect("filler")
    queue = connection.open("IN", output=True)
    body = bytes(size)
    for index in range(count):
        queue.put(MQMD(), body, syncpoint=True)
        if index % 100 == 99:
            connection.commit()
    connection.commit()
    connection.close()
    manager.close()


def _spin(seconds: float) -> None:
    """Work that keeps a core busy for ``seconds`` (as the cryptography does), not a sleep."""
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


def _work(path: str, work: float, batch: int, spin: bool, start: Any, done: Any) -> None:
    """A worker process: get, work, put under syncpoint, MQCMIT every ``batch``, until IN is empty."""
    wait = _spin if spin else time.sleep
    manager = EmbeddedQueueManager(path, name="BENCHQM")
    connection = manager.connect("handover")
    source, target = connection.open("IN", input=True), connection.open("OUT", output=True)
    moved = 0
    start.wait()
    while True:
        try:
            message = source.get(syncpoint=True)
        except NoMessageAvailable:
            break
        wait(work)
        target.put(message.md, message.body, syncpoint=True)
        moved += 1
        if moved % batch == 0:
            connection.commit()
    connection.commit()
    connection.close()
    manager.close()
    done.put(moved)


def handover_rate(processes: int, *, size: int, count: int, work: float, batch: int, spin: bool = False) -> float:
    """Messages per second moved by ``processes`` workers."""
    with tempfile.TemporaryDirectory(prefix="ams-handover-bench-") as scratch:
        path = Path(scratch) / "qm.sqlite"
        _fill(path, size, count)
        return timed_workers(processes, count, _work, str(path), work, batch, spin)


def run(*, size: int, count: int, work: float, batch: int, runs: int, spin: bool = False) -> dict[str, Any]:
    """One and two processes, ``runs`` times each in turn; the best rate of each and their ratio."""
    rates: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(runs):
        for processes in (1, 2):
            rate = handover_rate(processes, size=size, count=count, work=work, batch=batch, spin=spin)
            rates[processes].append(rate)
            print(f"{processes} process(es): {rates[processes][-1]:7.0f} msg/s", file=sys.stderr)
    one, two = max(rates[1]), max(rates[2])
    return {
        "size": size,
        "messages": count,
        "work_us": work * 1e6,
        "batch": batch,
        "spin": spin,
        "one": rates[1],
        "two": rates[2],
        "ratio": two / one,
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.handover", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=KIB, help="bytes per message (1024)")
    parser.add_argument("--messages", type=int, default=1500)
    parser.add_argument("--work-us", type=float, default=700.0, help="the sleep standing for the cryptography")
    parser.add_argument("--batch", type=int, default=50, help="messages per MQCMIT")
    parser.add_argument("--runs", type=int, default=2, help="runs of one and two processes, in turn")
    parser.add_argument("--spin", action="store_true", help="keep a core busy for the work instead of sleeping")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    work = args.work_us / 1e6
    record = run(size=args.size, count=args.messages, work=work, batch=args.batch, runs=args.runs, spin=args.spin)
    header = (
        f"Run on {time.strftime('%Y-%m-%d %H:%M')}: {platform.machine()}, {multiprocessing.cpu_count()} cores, "
        f"Python {platform.python_version()} ({time.perf_counter() - started:.1f} s)."
    )
    print(
        f"{header}\n{args.messages:,} messages of {args.size:,} bytes, {args.work_us:.0f} µs of "
        f"{'busy ' if args.spin else 'sleeping '}work each, batches of "
        f"{args.batch}: one process {max(record['one']):,.0f} msg/s, two {max(record['two']):,.0f} msg/s, "
        f"two over one {record['ratio']:.2f}"
    )
    if args.json:
        args.json.write_text(json.dumps({"header": header, "record": record}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
