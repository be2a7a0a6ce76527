"""Rates measured the same way for ours, the bound and the peer."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence


def rate(operation: Callable[[], object], *, seconds: float, repeats: int) -> float:
    """Operations per second: the best of ``repeats`` runs of at least ``seconds`` each."""
    return rates([operation], seconds=seconds, repeats=repeats)[0]


def rates(operations: Sequence[Callable[[], object]], *, seconds: float, repeats: int) -> list[float]:
    """Each operation's rate, the best of ``repeats`` runs of at least ``seconds`` each, the runs of
    the operations taken in turn: on a shared machine, a ratio of two rates is then measured over
    the same stretch of time, so that another process's burst slows both sides alike."""
    for operation in operations:
        operation()  # warm caches (parsed certificates, validated chains, reused keys)
    best = [0.0] * len(operations)
    for _ in range(repeats):
        for index, operation in enumerate(operations):
            best[index] = max(best[index], _one_run(operation, seconds))
    return best


def _one_run(operation: Callable[[], object], seconds: float) -> float:
    gc.collect()
    count = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds or count < 3:
        operation()
        count += 1
        elapsed = time.perf_counter() - start
    return count / elapsed
