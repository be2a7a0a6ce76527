"""Draw benchmark JSON files as PNG charts (``python -m benchmarks.report --plot DIR F [F ...]``).

matplotlib is optional (the ``bench`` extra); it is imported only here, and only when a chart is
drawn, so the harness and the report tables run without it.

Two kinds of file are understood, told apart by their records:

* ``python -m benchmarks --json F``: per QoP case and operation, messages/s and bound_ratio against
  payload size (``<file>-rate-<op>.png`` and
  ``<file>-bound-<op>.png``, log-scale sizes).
* ``python -m benchmarks.proxy --json F``: the proxy's per-worker ratio by batch size, one line per
  route case and worker count (``<file>-proxy.png``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.report import _size

Record = dict[str, Any]


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed: the ``bench`` extra brings it."""


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: never a window, works without a display
        import matplotlib.pyplot as pyplot
    except ImportError as exc:
        raise PlotUnavailable(
            "drawing charts needs matplotlib: pip install 'ams[bench]' (or pip install matplotlib)"
        ) from exc
    return pyplot


def _is_proxy(report: Record) -> bool:
    return any("per_worker" in r for r in report.get("records", []))


def _series(records: Iterable[Record], op: str) -> dict[str, list[tuple[int, float, float]]]:
    """case -> [(size, rate, bound_ratio)] for one operation, sizes ascending."""
    found: dict[str, list[tuple[int, float, float]]] = {}
    for record in records:
        if record["op"] == op:
            found.setdefault(record["case"], []).append((record["size"], record["rate"], record["bound_ratio"]))
    return {case: sorted(points) for case, points in found.items()}


def _size_axis(axes: Any, sizes: Sequence[int]) -> None:
    axes.set_xscale("log", base=2)
    axes.set_xticks(list(sizes))
    axes.set_xticklabels([_size(s) for s in sizes])
    axes.set_xlabel("payload size")
    axes.grid(True, which="major", alpha=0.3)


def _draw_message_charts(pyplot: Any, report: Record, title: str, out: Path) -> list[Path]:
    written: list[Path] = []
    records = report["records"]
    sizes = sorted({r["size"] for r in records})
    for op in dict.fromkeys(r["op"] for r in records):
        series = _series(records, op)
        for column, label, name in ((1, "messages/s", "rate"), (2, "bound_ratio (1.0 = the raw primitives)", "bound")):
            figure, axes = pyplot.subplots(figsize=(8, 5))
            for case, points in series.items():
                axes.plot([p[0] for p in points], [p[column] for p in points], marker="o", label=case)
            _size_axis(axes, sizes)
            if column == 1:
                axes.set_yscale("log")
            else:
                axes.axhline(1.0, color="grey", linewidth=0.8)
                axes.set_ylim(bottom=0)
            axes.set_ylabel(label)
            axes.set_title(f"{op}: {label.split(' (')[0]} by payload size ({title})")
            axes.legend(fontsize="small")
            path = out / f"{title}-{name}-{op}.png"
            figure.tight_layout()
            figure.savefig(path, dpi=100)
            pyplot.close(figure)
            written.append(path)
    return written


def _draw_proxy_chart(pyplot: Any, report: Record, title: str, out: Path) -> list[Path]:
    records = report["records"]
    sizes = sorted({r["size"] for r in records})
    figure, panes = pyplot.subplots(1, len(sizes), figsize=(6 * len(sizes), 5), squeeze=False)
    for axes, size in zip(panes[0], sizes, strict=True):
        lines: dict[tuple[str, int], list[tuple[int, float]]] = {}
        for r in records:
            if r["size"] == size:
                lines.setdefault((r["case"], r["workers"]), []).append((r["batch"], r["per_worker"]))
        for (case, workers), points in lines.items():
            points.sort()
            axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=f"{case}, {workers} worker(s)")
        batches = sorted({r["batch"] for r in records})
        axes.set_xscale("log")
        axes.set_xticks(batches)
        axes.set_xticklabels([str(b) for b in batches])
        axes.set_xlabel("batch (messages per unit of work)")
        axes.set_ylabel("per-worker ratio (rate / (bound x workers))")
        axes.set_ylim(bottom=0)
        axes.axhline(1.0, color="grey", linewidth=0.8)
        axes.set_title(f"proxy, {_size(size)} messages ({title})")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small")
    path = out / f"{title}-proxy.png"
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return [path]


def plot(paths: Sequence[Path], out: Path) -> list[Path]:
    """Draw every chart the given JSON files hold into ``out``; returns the files written."""
    pyplot = _pyplot()
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for path in paths:
        report: Record = json.loads(path.read_text(encoding="utf-8"))
        if not report.get("records"):
            raise ValueError(f"{path}: no records to draw (is it a `python -m benchmarks --json` file?)")
        draw = _draw_proxy_chart if _is_proxy(report) else _draw_message_charts
        written += draw(pyplot, report, path.stem, out)
    return written
