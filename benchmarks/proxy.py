"""``python -m benchmarks.proxy``: the re-protection proxy's throughput against its bound.

For each case (privacy -> privacy and integrity -> privacy, 1 KiB and 64 KiB payloads) the bound
is measured first, in the same run: one ``unprotect`` of a source message plus one ``protect``
for the target, in a loop, in one process (what a worker cannot do faster). Then the proxy moves
a queue of such messages on an embedded queue manager file, with 1 and 2 worker processes
(competing consumers, each with its own connection) and batches of 1 and 50 messages per unit of
work; its rate is messages moved per second of wall time, from the first get to the empty queue.
``per_worker`` = rate / (bound x workers): 1.0 would be the crypto alone, on every core.

``--memory``: one worker in this process on an in-memory queue manager (no file, no second
process can share it), the proxy's own path and the queue manager's Python without the disk; the
bound and the proxy runs are taken in turn, best of three each, so that another process's burst
slows both alike.

python -m benchmarks.proxy --quick             # a few seconds per cell
python -m benchmarks.proxy --json out.json     # more messages per cell
python -m benchmarks.proxy --quick --memory    # in memory, one worker
python -m benchmarks.proxy --profile           # crypto / queue manager / the proxy's own, per message
python -m benchmarks.proxy --quick --sizes 1 --batches 50   # narrowed, while iterating
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import json
import multiprocessing
import platform
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import ams
from ams.mq import MQMD, EmbeddedQueueManager, ProtectedQueueManager
from ams.mq.proxy import ReprotectionProxy
from ams.pki import Issued, issue, make_ca
from benchmarks.timing import rate
from benchmarks.workers import timed_workers

KIB = 1024
CASES = {"privacy->privacy": "IN.PRIV", "integrity->privacy": "IN.INT"}


class ProxyWorld:
    """A partner (alice), the gateway (bob) and an internal reader (carol), and the policies."""

    def __init__(self) -> None:
        self.ca = make_ca("CN=Bench CA,O=AMS,C=GB")
        self.people = {name: issue(self.ca, f"CN={name},O=AMS,C=GB") for name in ("alice", "bob", "carol")}
        self.lines = [
            'setmqspl -m QM -p IN.PRIV -s SHA256 -e AES256 -a "CN=alice,O=AMS,C=GB" -r "CN=bob,O=AMS,C=GB"',
            'setmqspl -m QM -p IN.INT -s SHA256 -a "CN=alice,O=AMS,C=GB"',
            'setmqspl -m QM -p OUT.PRIV -s SHA256 -e AES256 -a "CN=bob,O=AMS,C=GB" -r "CN=carol,O=AMS,C=GB"',
        ]
        self.policies = ams.PolicyStore.of(*(ams.Policy.from_setmqspl(line) for line in self.lines))

    def keystore(self, name: str) -> ams.Keystore:
        me: Issued = self.people[name]
        others = [self.ca.certificate, *(p.certificate for n, p in self.people.items() if n != name)]
        return ams.Keystore(ams.Identity(me.certificate, me.key), others)

    def protector(self, name: str) -> ams.Protector:
        return ams.Protector(self.keystore(name), self.policies)


def bound(world: ProxyWorld, source: str, size: int, seconds: float) -> float:
    """One unprotect (as bob) plus one protect (for carol, signed by bob), in a loop."""
    message = world.protector("alice").protect(source, bytes(size)).body
    gateway = world.protector("bob")

    def one() -> None:
        gateway.protect("OUT.PRIV", gateway.unprotect(source, message).body)

    return rate(one, seconds=seconds, repeats=3)


def _fill(world: ProxyWorld, manager: EmbeddedQueueManager, source: str, size: int, count: int) -> None:
    for queue in ("IN.PRIV", "IN.INT", "OUT.PRIV"):
        manager.define_queue(queue, max_depth=999_999_999)
    alice = ProtectedQueueManager(manager.connect("alice"), world.keystore("alice"), world.policies)
    out = alice.open(source, output=True)
    body = bytes(size)
    for index in range(count):
        out.put(MQMD(), body, syncpoint=True)
        if index % 100 == 99:
            alice.commit()
    alice.commit()
    alice.close()


def _work(world: ProxyWorld, path: str, source: str, batch: int, start: Any, done: Any) -> None:
    """A worker process: wait for the start, move until the source queue is empty."""
    qm = EmbeddedQueueManager(path, name="BENCHQM", create=True).connect("proxy")
    gateway = ProtectedQueueManager(qm, world.keystore("bob"), world.policies)
    proxy = ReprotectionProxy(gateway, source, gateway, "OUT.PRIV", batch_size=batch, batch_seconds=60.0)
    start.wait()
    stats = proxy.run()
    done.put(stats.moved)
    proxy.close()
    qm.close()


def proxy_rate(world: ProxyWorld, source: str, size: int, count: int, workers: int, batch: int) -> float:
    """Messages moved per second by ``workers`` processes with batches of ``batch``."""
    with tempfile.TemporaryDirectory(prefix="ams-proxy-bench-") as scratch:
        path = Path(scratch) / "qm.sqlite"
        _fill(world, EmbeddedQueueManager(path, name="BENCHQM", create=True), source, size, count)
        return timed_workers(workers, count, _work, world, str(path), source, batch)


def memory_rate(
    world: ProxyWorld, source: str, size: int, count: int, batch: int, profiler: cProfile.Profile | None = None
) -> float:
    """Messages moved per second by one proxy in this process, on an in-memory queue manager (its
    loop under ``profiler``, if given)."""
    manager = EmbeddedQueueManager(None, name="BENCHQM")
    _fill(world, manager, source, size, count)
    qm = manager.connect("proxy")
    gateway = ProtectedQueueManager(qm, world.keystore("bob"), world.policies)
    proxy = ReprotectionProxy(gateway, source, gateway, "OUT.PRIV", batch_size=batch, batch_seconds=60.0)
    proxy.move_one()  # warm caches (the signer's chain, the reused keys), as the bound's first call does
    gc.collect()
    began = time.perf_counter()
    with profiler or contextlib.nullcontext():
        moved = proxy.run().moved - 1
    elapsed = time.perf_counter() - began
    proxy.close()
    qm.close()
    if moved != count - 1:
        raise RuntimeError(f"the proxy moved {moved} of {count - 1} messages")
    return moved / elapsed


def _record(case: str, size: int, workers: int, batch: int, count: int, moved: float, limit: float) -> dict[str, Any]:
    print(
        f"{case:<20} {size // KIB:>3} KiB  workers {workers}  batch {batch:>2}: {moved:8.0f} msg/s, "
        f"bound {limit:6.0f}/s per process, per worker {moved / (limit * workers):.2f}",
        file=sys.stderr,
    )
    return {
        "case": case,
        "size": size,
        "workers": workers,
        "batch": batch,
        "messages": count,
        "rate": moved,
        "bound": limit,
        "per_worker": moved / (limit * workers),
    }


def run(
    *, quick: bool, memory: bool = False, sizes: tuple[int, ...] = (KIB, 64 * KIB), batches: tuple[int, ...] = (1, 50)
) -> list[dict[str, Any]]:
    """Every cell: on a queue-manager file (1 and 2 workers), or in memory (1 worker)."""
    world = ProxyWorld()
    seconds = 0.5 if quick else 1.0
    records = []
    for size in sizes:
        for case, source in CASES.items():
            if memory:
                records.extend(_memory_cells(world, case, size, seconds))
                continue
            limit = bound(world, source, size, seconds)
            for workers in (1, 2):
                for batch in batches:
                    # a commit per message waits for the disk each time: fewer messages measure it as well
                    count = max(100, int(limit * (0.2 if batch == 1 else 2 if quick else 6)))
                    moved = proxy_rate(world, source, size, count, workers, batch)
                    records.append(_record(case, size, workers, batch, count, moved, limit))
    return records


def _memory_cells(world: ProxyWorld, case: str, size: int, seconds: float) -> list[dict[str, Any]]:
    """One worker in memory, batches of 1 and 50: the bound and each proxy cell taken in turn, three
    times; the best of each (one bound for the case's cells, the best of its six runs)."""
    source = CASES[case]
    limit, count = 0.0, 0
    best = {1: 0.0, 50: 0.0}
    for _ in range(3):
        for batch in best:
            limit = max(limit, bound(world, source, size, seconds / 3))
            count = max(100, int(limit * seconds))
            best[batch] = max(best[batch], memory_rate(world, source, size, count + 1, batch))
    return [_record(case, size, 1, batch, count, moved, limit) for batch, moved in best.items()]


# what the profile's buckets hold: (file name ending, function names), summed by cumulative time
_CRYPTO = ("ams/protector.py", ("protect", "unprotect"))  # the framing too, as the bound pays it
_QUEUE_MANAGER = (("embedded_queue.py", ("put", "get")), ("embedded_unit_of_work.py", ("commit", "backout")))


def _cumulative(found: dict[Any, Any], ending: str, names: tuple[str, ...]) -> float:
    """Seconds spent in (and under) the functions ``names`` of the file ending with ``ending``."""
    return float(sum(row[3] for (file, _, name), row in found.items() if file.endswith(ending) and name in names))


def profile(count: int = 1000) -> str:
    """Where one in-memory worker's time goes (1 KiB, batches of 50): cProfile of its loop, split
    into the cryptography, the queue manager and the rest (the proxy's own path), per message."""
    world = ProxyWorld()
    lines = [
        "| case | µs per message (profiled) | crypto | queue manager | proxy's own |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for case, source in CASES.items():
        profiler = cProfile.Profile()
        memory_rate(world, source, KIB, count + 1, 50, profiler)
        found = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
        total = _cumulative(found, "ams/mq/proxy/mover.py", ("run",))
        crypto = _cumulative(found, *_CRYPTO)
        queue_manager = sum(_cumulative(found, *bucket) for bucket in _QUEUE_MANAGER)
        own = total - crypto - queue_manager
        cells = [f"{part / count * 1e6:,.0f} ({part / total:.0%})" for part in (crypto, queue_manager, own)]
        lines.append(f"| {case} | {total / count * 1e6:,.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(records: list[dict[str, Any]]) -> str:
    """The table for benchmarks/README.md."""
    lines = [
        "| case | size | bound (msg/s, one process) | 1 worker, batch 1 | 1 worker, batch 50 | "
        "2 workers, batch 1 | 2 workers, batch 50 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    keys = sorted({(r["case"], r["size"]) for r in records}, key=lambda k: (k[1], k[0]))
    for case, size in keys:
        cells = {(r["workers"], r["batch"]): r for r in records if (r["case"], r["size"]) == (case, size)}
        limit = next(iter(cells.values()))["bound"]
        row = [
            f"{cells[w, b]['rate']:,.0f} ({cells[w, b]['per_worker']:.2f})" if (w, b) in cells else "-"
            for w in (1, 2)
            for b in (1, 50)
        ]
        lines.append(f"| {case} | {size // KIB} KiB | {limit:,.0f} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.proxy", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--memory", action="store_true", help="one worker on an in-memory queue manager")
    parser.add_argument("--profile", action="store_true", help="where an in-memory worker's time goes, and stop")
    parser.add_argument("--sizes", default="1,64", help="payload sizes in KiB, comma-separated (1,64)")
    parser.add_argument("--batches", default="1,50", help="messages per unit of work on the file (1,50)")
    args = parser.parse_args()
    if args.profile:
        print(profile())
        return 0
    started = time.perf_counter()
    sizes = tuple(int(size) * KIB for size in args.sizes.split(","))
    batches = tuple(int(batch) for batch in args.batches.split(","))
    records = run(quick=args.quick, memory=args.memory, sizes=sizes, batches=batches)
    header = (
        f"Run on {time.strftime('%Y-%m-%d')}: {platform.machine()}, {multiprocessing.cpu_count()} cores, "
        f"Python {platform.python_version()} ({time.perf_counter() - started:.1f} s), queue manager "
        f"{'in memory' if args.memory else 'on a file'}. Each cell: messages/s (per worker: rate / (bound x workers))."
    )
    print(header + "\n\n" + markdown(records))
    if args.json:
        args.json.write_text(json.dumps({"header": header, "records": records}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
