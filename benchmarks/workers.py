"""The worker for the multi-process throughput run (a module of its own so that spawn can import it),
and the timed run of forked workers that the proxy and handover benchmarks share."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.setup import load_handle


def protect_for(args: tuple[str, str, int, float]) -> float:
    """Protect ``size``-byte messages on ``queue`` for ``seconds``; return the rate (setup excluded)."""
    root, queue, size, seconds = args
    handle = load_handle(Path(root), "sender")
    payload = os.urandom(size)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        handle.protect(queue, payload)
        count += 1
    return count / (time.perf_counter() - start)


def timed_workers(processes: int, count: int, target: Callable[..., None], *arguments: Any) -> float:
    """Messages per second moved by ``processes`` forked ``target(*arguments, start, done)``: each
    waits at the ``start`` barrier, then puts the number it moved on ``done``; the clock runs from
    the barrier to the last count, and anything but ``count`` moved in all is an error."""
    context = multiprocessing.get_context("fork")
    start, done = context.Barrier(processes + 1), context.Queue()
    workers = [context.Process(target=target, args=(*arguments, start, done)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    moved = sum(done.get(timeout=600) for _ in workers)
    elapsed = time.perf_counter() - began
    for worker in workers:
        worker.join(60)
    if moved != count:
        raise RuntimeError(f"the workers moved {moved} of {count} messages")
    return count / elapsed
