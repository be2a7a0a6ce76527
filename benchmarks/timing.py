"""Rates measured the same way for ours, the bound and the peer."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable


def rate(operation: Callable[[], object], *, seconds: float, repeats: int) -> float:
    """Operations per second: the best of ``repeats`` runs of at least ``seconds`` each."""
    operation()  # warm caches (parsed certificates, validated chains, reused keys)
    best = 0.0
    for _ in range(repeats):
        gc.collect()
        count = 0
        start = time.perf_counter()
        elapsed = 0.0
        while elapsed < seconds or count < 3:
            operation()
            count += 1
            elapsed = time.perf_counter() - start
        best = max(best, count / elapsed)
    return best
