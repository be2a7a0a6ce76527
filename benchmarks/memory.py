"""Peak memory of one operation, measured in a child process (``python -m benchmarks.memory``).

The child loads the keys, reads its input from a file (so building it does not count), then
traces allocations (tracemalloc) while it runs the operation once, and reports the peak of
what the operation allocated beyond its input (its output included).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path


def measure(root: Path, queue: str, op: str, data_file: Path) -> int:
    """Extra peak bytes of one ``op`` on ``queue`` with the input in ``data_file``."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", str(root), queue, op, str(data_file)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[1],
    )
    return int(json.loads(result.stdout)["extra_peak_bytes"])


def _child(root: Path, queue: str, op: str, data_file: Path) -> None:
    from benchmarks.setup import load_handle

    sending = op.startswith("protect")
    handle = load_handle(root, "sender" if sending else "reader0")
    data = data_file.read_bytes()
    # one operation first, so that certificate caches are warm and only per-message memory is measured
    if sending:
        handle.protect(queue, os.urandom(64))
    else:
        handle.unprotect(queue, data)
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    if op == "protect":
        out: object = handle.protect(queue, data).body
    elif op == "protect_into":
        out = handle.protect_into(queue, data).body  # no buffer given: it allocates the one it writes into
    elif op == "unprotect_into":
        out = handle.unprotect_into(queue, data).body  # no buffer given: it allocates the one it decrypts into
    else:
        out = handle.unprotect(queue, data).body
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del out
    print(json.dumps({"extra_peak_bytes": max(0, peak - before)}))


if __name__ == "__main__":
    _child(Path(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4]))
