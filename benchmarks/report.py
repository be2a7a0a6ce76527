"""Render a benchmark JSON (``python -m benchmarks --json F``) as the Markdown tables in the README.

python -m benchmarks.report F
python -m benchmarks.report --compare BEFORE AFTER   # the small- and large-message targets, before and after
python -m benchmarks.report --plot DIR F [F ...]     # PNG charts (needs matplotlib: the `bench` extra)
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
    for op in ("protect", "unprotect", "unprotect_into"):
        if not any(r["op"] == op for r in records):
            continue  # runs before unprotect_into existed
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
    lines.append(
        "| peak memory of one operation | "
        + " | ".join(sorted({_size(m["size"]) for m in report["memory"]}, key=lambda s: s))
        + " |"
    )
    memory_sizes = sorted({m["size"] for m in report["memory"]})
    lines.append("| --- |" + " ---: |" * len(memory_sizes))
    for key in dict.fromkeys((m["case"], m["op"]) for m in report["memory"]):
        cells = [
            next(
                (
                    f"{m['peak_ratio']:.2f} x payload"
                    for m in report["memory"]
                    if (m["case"], m["op"]) == key and m["size"] == size
                ),
                "",
            )
            for size in memory_sizes
        ]
        lines.append(f"| {key[0]} {key[1]} | " + " | ".join(cells) + " |")
    lines.append("")
    scaling = ", ".join(f"{s['workers']} worker(s): {s['rate']:,.0f}/s" for s in report["scaling"])
    lines.append(f"Throughput, privacy-1 protect 2 KiB: {scaling}.")
    return "\n".join(lines)


# The targets the receive and send paths are held to: (label, case, op, size, least bound_ratio).
KIB, MIB = 1024, 1024 * 1024
TARGETS: list[tuple[str, str, str, int, float]] = [
    ("integrity unprotect, 2 KiB", "integrity", "unprotect", 2 * KIB, 0.5),
    ("confidentiality reuse 32, unprotect, 2 KiB", "confidentiality-reuse-32", "unprotect", 2 * KIB, 0.5),
    ("confidentiality reuse unlimited, unprotect, 2 KiB", "confidentiality-reuse-unlimited", "unprotect", 2 * KIB, 0.5),
    ("confidentiality reuse 32, protect, 2 KiB", "confidentiality-reuse-32", "protect", 2 * KIB, 0.5),
    ("confidentiality reuse unlimited, protect, 2 KiB", "confidentiality-reuse-unlimited", "protect", 2 * KIB, 0.5),
    ("privacy-1 unprotect, 2 KiB", "privacy-1", "unprotect", 2 * KIB, 0.9),
    ("privacy-3 unprotect, 2 KiB", "privacy-3", "unprotect", 2 * KIB, 0.9),
    ("privacy-10 unprotect, 2 KiB", "privacy-10", "unprotect", 2 * KIB, 0.9),
    ("integrity protect, 2 KiB", "integrity", "protect", 2 * KIB, 0.9),
    ("privacy-1 protect, 2 KiB", "privacy-1", "protect", 2 * KIB, 0.9),
]
LARGE = (MIB, 16 * MIB)
LARGE_TARGET = 0.9
REUSE_OVER_PRIVACY = 30  # confidentiality with key reuse unprotects at least this many times privacy's rate


def _find(records: list[dict[str, Any]], case: str, op: str, size: int) -> dict[str, Any] | None:
    return next((r for r in records if (r["case"], r["op"], r["size"]) == (case, op, size)), None)


def _cell(found: dict[str, Any] | None) -> str:
    return "" if found is None else f"{found['rate']:,.0f} ({found['bound_ratio']:.2f})"


def _verdict(found: dict[str, Any] | None, least: float) -> str:
    return "" if found is None else ("met" if found["bound_ratio"] >= least else "missed")


def compare(before: dict[str, Any], after: dict[str, Any]) -> str:
    """The targets' rows: messages/s and bound_ratio before and after, and whether each is met."""
    old, new = before["records"], after["records"]
    lines = [
        "| case | before: msg/s (bound_ratio) | after | target | after meets it |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for label, case, op, size, least in TARGETS:
        theirs, ours = _find(old, case, op, size), _find(new, case, op, size)
        lines.append(f"| {label} | {_cell(theirs)} | {_cell(ours)} | {least} | {_verdict(ours, least)} |")
    for reuse in ("confidentiality-reuse-32", "confidentiality-reuse-unlimited"):
        cells = []
        for records in (old, new):
            fast, slow = _find(records, reuse, "unprotect", 2 * KIB), _find(records, "privacy-1", "unprotect", 2 * KIB)
            cells.append(f"{fast['rate'] / slow['rate']:.1f} x" if fast and slow else "")
        met = cells[1] and float(cells[1].split()[0]) >= REUSE_OVER_PRIVACY
        verdict = "met" if met else "missed"
        label = f"{reuse.removeprefix('confidentiality-')} unprotect over privacy-1, 2 KiB"
        lines.append(f"| {label} | {cells[0]} | {cells[1]} | {REUSE_OVER_PRIVACY} x | {verdict} |")
    cases = list(dict.fromkeys(r["case"] for r in new))
    for size in LARGE:
        for op in ("protect", "unprotect", "unprotect_into"):
            for case in cases:
                theirs, ours = _find(old, case, op, size), _find(new, case, op, size)
                if ours is None:
                    continue
                label = f"{case} {op}, {_size(size)}"
                lines.append(
                    f"| {label} | {_cell(theirs)} | {_cell(ours)} | {LARGE_TARGET} | {_verdict(ours, LARGE_TARGET)} |"
                )
    return "\n".join(lines)


def _load(path: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return loaded


def main(argv: list[str]) -> int:
    """The command line: a table, a comparison, or charts."""
    if len(argv) >= 3 and argv[0] == "--plot":
        from benchmarks.plot import PlotUnavailable, plot

        try:
            written = plot([Path(a) for a in argv[2:]], Path(argv[1]))
        except PlotUnavailable as exc:
            print(f"benchmarks.report: {exc}", file=sys.stderr)
            return 2
        print("\n".join(str(p) for p in written))
    elif len(argv) == 3 and argv[0] == "--compare":
        print(compare(_load(argv[1]), _load(argv[2])))
    elif len(argv) == 1 and not argv[0].startswith("-"):
        print(render(_load(argv[0])))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
