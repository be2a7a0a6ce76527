"""The worker for the multi-process throughput run (a module of its own so that spawn can import it)."""

from __future__ import annotations

import os
import time
from pathlib import Path

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
