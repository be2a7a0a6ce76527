"""``python -m benchmarks``: every case, as ratios against the raw primitives and the peer.

python -m benchmarks --quick            # about a minute
python -m benchmarks --json out.json    # the full run, under fifteen minutes
python -m benchmarks --case privacy-1 --op unprotect --size 2048   # narrowed, while iterating
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cryptography

from benchmarks.cases import CASES, Case, Peer, Primitives
from benchmarks.memory import measure
from benchmarks.setup import World, load_handle
from benchmarks.timing import rates
from benchmarks.workers import protect_for

KIB, MIB = 1024, 1024 * 1024
FULL_SIZES = [256, 2 * KIB, 64 * KIB, MIB, 16 * MIB]
QUICK_SIZES = [2 * KIB, MIB, 16 * MIB]
# unprotect_into and protect_into: the large-message calls, from INTO_FROM up
OPS = ["protect", "unprotect", "unprotect_into", "protect_into"]
INTO_FROM = MIB


def _label(size: int) -> str:
    return f"{size // MIB} MiB" if size >= MIB else f"{size // KIB} KiB" if size >= KIB else f"{size} B"


def run_cases(
    world: World,
    sizes: list[int],
    seconds: float,
    repeats: int,
    cases: list[Case] = CASES,
    only: tuple[str, ...] = tuple(OPS),
) -> list[dict[str, Any]]:
    """Every case at every size: protect and unprotect first, then unprotect_into in a pass of its
    own, so that the first two see the same sequence of allocations as before it existed (at 16 MiB,
    whether glibc hands out fresh pages or reuses freed ones moves a ratio by up to 0.4).
    ``cases`` and ``only`` (operations) narrow the run, while iterating."""
    sender, receiver = world.sender(), world.receiver()
    records = []
    for ops in (OPS[:2], OPS[2:]):
        for size in sizes:
            primitives = Primitives(world, size)
            peer = Peer(world, size, primitives.payload)
            for case in cases:
                measured = [op for op in ops if op in _ops(sender, size) and op in only]
                protected = len(sender.protect(case.queue, primitives.payload).body) if measured else 0
                for op in measured:
                    record = _measure(world, sender, receiver, case, op, primitives, peer, seconds, repeats)
                    records.append({**record, "protected_size": protected})
                    _print_row(records[-1])
    return records


def _measure(
    world: World,
    sender: Any,
    receiver: Any,
    case: Case,
    op: str,
    primitives: Primitives,
    peer: Peer,
    seconds: float,
    repeats: int,
) -> dict[str, Any]:
    """One record: ours, the bound and the peer, measured in turn."""
    direction = "protect" if op.startswith("protect") else "unprotect"
    peer_op = peer.operation(case, direction)
    ours_op = _ours(world, sender, receiver, case, op, primitives.payload)
    operations = [ours_op, primitives.bound(case, direction), *([peer_op] if peer_op else [])]
    measured = rates(operations, seconds=seconds, repeats=repeats)
    ours, bound, peer_rate = measured[0], measured[1], measured[2] if peer_op else None
    return {
        "case": case.name,
        "op": op,
        "qop": case.qop,
        "size": primitives.size,
        "recipients": case.recipients,
        "key_reuse": case.key_reuse,
        "rate": round(ours, 1),
        "mb_per_s": round(ours * primitives.size / 1e6, 2),
        "bound_rate": round(bound, 1),
        "bound_ratio": round(ours / bound, 3),
        "peer_rate": round(peer_rate, 1) if peer_rate else None,
        "peer_ratio": round(ours / peer_rate, 3) if peer_rate else None,
    }


def _ops(handle: Any, size: int) -> list[str]:
    """The operations measured at ``size`` (a tree measured for a baseline may lack the _into calls)."""
    return OPS[:2] + [op for op in OPS[2:] if size >= INTO_FROM and hasattr(handle, op)]


def _ours(world: World, sender: Any, receiver: Any, case: Case, op: str, payload: bytes) -> Callable[[], object]:
    if op == "protect":
        return lambda: sender.protect(case.queue, payload).body
    if op == "protect_into":
        out = bytearray(len(sender.protect(case.queue, payload).body))  # the caller's, reused
        return lambda: sender.protect_into(case.queue, payload, out).body
    # a fresh handle per case keeps key-reuse caches to what this case's sender made
    handle = world.receiver() if case.qop == "confidentiality" else receiver
    # and a fresh sender: a pool of 4 large messages from a KEYREUSE 32 handle that already used its
    # key 30 times would hold two keys, and cycling it would make the receiver unwrap every other one
    pool = _pool(world.sender() if case.qop == "confidentiality" else sender, case, payload)
    stream = _cycle(pool)
    if op == "unprotect_into":
        buffer = bytearray(max(len(message) for message in pool))  # the caller's, reused as the bound reuses its own
        return lambda: handle.unprotect_into(case.queue, next(stream), buffer)
    return lambda: handle.unprotect(case.queue, next(stream))


def _pool(sender: Any, case: Case, payload: bytes) -> list[bytes]:
    """Messages as one sender handle makes them, so key reuse behaves as on a real queue."""
    return [sender.protect(case.queue, payload).body for _ in range(64 if len(payload) <= 64 * KIB else 4)]


def _cycle(pool: list[bytes]) -> Iterator[bytes]:
    while True:
        yield from pool


def _print_row(record: dict[str, Any]) -> None:
    peer = f"{record['peer_ratio']:>6.2f}" if record["peer_ratio"] is not None else "     -"
    print(
        f"{record['case']:<32} {record['op']:<9} {_label(record['size']):>7} {record['rate']:>10.1f}/s "
        f"{record['mb_per_s']:>9.2f} MB/s  bound {record['bound_ratio']:>5.2f}  peer {peer}",
        flush=True,
    )


def run_memory(world: World, sizes: list[int]) -> list[dict[str, Any]]:
    root = world.save()
    sender = load_handle(root, "sender")
    out = []
    for size in sizes:
        payload = os.urandom(size)
        for case in [c for c in CASES if c.name in ("integrity", "privacy-1", "confidentiality-reuse-disabled")]:
            with tempfile.TemporaryDirectory() as scratch:
                plain, protected = Path(scratch) / "plain", Path(scratch) / "protected"
                plain.write_bytes(payload)
                protected.write_bytes(sender.protect(case.queue, payload).body)
                for op in _ops(sender, size):
                    path = plain if op.startswith("protect") else protected
                    extra = measure(root, case.queue, op, path)
                    record = {
                        "case": case.name,
                        "op": op,
                        "size": size,
                        "extra_peak_bytes": extra,
                        "peak_ratio": round(extra / size, 2),
                    }
                    out.append(record)
                    print(
                        f"memory {case.name:<32} {op:<9} {_label(size):>7} extra peak "
                        f"{extra / MIB:8.1f} MiB = {record['peak_ratio']:.2f} x payload",
                        flush=True,
                    )
    return out


def run_scaling(world: World, seconds: float) -> list[dict[str, Any]]:
    """Throughput with one and two worker processes (each with its own handle, as MQ applications have)."""
    root = world.save()
    out = []
    for workers in (1, 2):
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            rates = pool.map(protect_for, [(str(root), "PRIVACY.1", 2 * KIB, seconds)] * workers)
        total = sum(rates)
        out.append({"case": "privacy-1 protect 2 KiB", "workers": workers, "rate": round(total, 1)})
        print(f"scaling privacy-1 protect 2 KiB with {workers} worker(s): {total:10.1f}/s", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="2 KiB, 1 MiB and 16 MiB only, short runs (about a minute)"
    )
    parser.add_argument("--big", action="store_true", help="add 100 MiB payloads")
    parser.add_argument("--json", type=Path, default=None, help="write the records as JSON here")
    names = [c.name for c in CASES]
    parser.add_argument("--case", action="append", choices=names, help="only this case (repeatable)")
    parser.add_argument("--op", action="append", choices=OPS, help="only this operation (repeatable)")
    parser.add_argument("--size", action="append", type=int, help="only this payload size in bytes (repeatable)")
    args = parser.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES + ([100 * MIB] if args.big else [])
    sizes = args.size or sizes
    seconds, repeats = (0.06, 3) if args.quick else (0.4, 3)
    narrowed = bool(args.case or args.op or args.size)
    started = time.time()
    world = World()
    print(
        f"ams benchmarks on {platform.machine()} ({os.cpu_count()} cores), Python {platform.python_version()}, "
        f"cryptography {cryptography.__version__}"
    )
    cases = [c for c in CASES if c.name in args.case] if args.case else CASES
    records = run_cases(world, sizes, seconds, repeats, cases, tuple(args.op or OPS))
    # a narrowed run measures its cases only: no memory or scaling pass
    memory_sizes = [MIB] if args.quick else [MIB, 16 * MIB] + ([100 * MIB] if args.big else [])
    memory = [] if narrowed else run_memory(world, memory_sizes)
    scaling = [] if narrowed else run_scaling(world, 1.0 if args.quick else 3.0)
    report = {
        "machine": {
            "arch": platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "cryptography": cryptography.__version__,
            "date": time.strftime("%Y-%m-%d"),
        },
        "records": records,
        "memory": memory,
        "scaling": scaling,
        "seconds": round(time.time() - started, 1),
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"finished in {report['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
