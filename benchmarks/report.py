"""Render a benchmark JSON (``python -m benchmarks --json F``) as the Markdown tables in the README.

    python -m benchmarks.report F
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _size(size: int) -> str:
    return f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB" if size >= 1024 else f"{size} B"


def render(report: dict[str, Any]) -> str:
    machine = report["machine"]
    records = report["records"]
    sizes = sorted({r["size"] for r in records})
    lines = [
        f"Run on {machine['date']}: {machine['arch']}, {machine['cores']} cores, Python {machine['python']}, "
        f"cryptography {machine['cryptography']} ({report['seconds']} s). Each cell: messages/s, then "
        "bound_ratio / peer_ratio (- where cryptography's pkcs7 has no equivalent).",
        "",
    ]
    for op in ("protect", "unprotect"):
        lines.append(f"| {op} | " + " | ".join(_size(s) for s in sizes) + " |")
        lines.append("| --- |" + " ---: |" * len(sizes))
        for case in dict.fromkeys(r["case"] for r in records):
            cells = []
            for size in sizes:
                found = next((r for r in records if r["case"] == case and r["op"] == op and r["size"] == size), None)
                if found is None:
                    cells.append("")
                    continue
                peer = f"{found['peer_ratio']:.2f}" if found["peer_ratio"] is not None else "-"
                cells.append(f"{found['rate']:,.0f} ({found['bound_ratio']:.2f} / {peer})")
            lines.append(f"| {case} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("| peak memory of one operation | " + " | ".join(
        sorted({_size(m["size"]) for m in report["memory"]}, key=lambda s: s)) + " |")
    memory_sizes = sorted({m["size"] for m in report["memory"]})
    lines.append("| --- |" + " ---: |" * len(memory_sizes))
    for key in dict.fromkeys((m["case"], m["op"]) for m in report["memory"]):
        cells = [
            next((f"{m['peak_ratio']:.2f} x payload" for m in report["memory"]
                  if (m["case"], m["op"]) == key and m["size"] == size), "")
            for size in memory_sizes
        ]
        lines.append(f"| {key[0]} {key[1]} | " + " | ".join(cells) + " |")
    lines.append("")
    scaling = ", ".join(f"{s['workers']} worker(s): {s['rate']:,.0f}/s" for s in report["scaling"])
    lines.append(f"Throughput, privacy-1 protect 2 KiB: {scaling}.")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))))
