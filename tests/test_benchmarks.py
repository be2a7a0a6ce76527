"""The benchmark harness runs and writes the records the README describes (no timing is asserted)."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.__main__ import run_cases
from benchmarks.setup import World

FIELDS = {"case", "op", "qop", "size", "recipients", "key_reuse", "rate", "mb_per_s", "bound_ratio", "peer_ratio"}


def test_every_case_produces_a_record_with_both_ratios() -> None:
    records = run_cases(World(), [256], seconds=0.001, repeats=1)
    assert len(records) == 14
    for record in records:
        assert set(record) >= FIELDS
        assert record["rate"] > 0 and record["bound_ratio"] > 0
    assert {r["case"] for r in records if r["peer_ratio"] is None} == {
        "integrity",  # cryptography has no pkcs7 verify: only protect has a peer
        "confidentiality-reuse-32",
        "confidentiality-reuse-unlimited",
    }


def test_a_run_narrows_to_the_cases_operations_and_sizes_asked() -> None:
    from benchmarks.cases import CASES

    chosen = [c for c in CASES if c.name in ("privacy-1", "confidentiality-reuse-unlimited")]
    records = run_cases(World(), [256], seconds=0.001, repeats=1, cases=chosen, only=("unprotect",))
    assert [(r["case"], r["op"], r["size"]) for r in records] == [
        ("privacy-1", "unprotect", 256),
        ("confidentiality-reuse-unlimited", "unprotect", 256),
    ]


def test_memory_is_measured_in_a_child_process(tmp_path: Path) -> None:
    from benchmarks.memory import measure

    world = World()
    root = world.save()
    data = tmp_path / "payload"
    data.write_bytes(b"x" * 300_000)
    extra = measure(root, "PRIVACY.1", "protect", data)
    assert 300_000 <= extra < 3 * 300_000


def test_help_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--help"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
        check=False,
    )
    assert result.returncode == 0 and "--quick" in result.stdout and "--json" in result.stdout
    assert all(flag in result.stdout for flag in ("--case", "--op", "--size"))


RESULTS = Path(__file__).parents[1] / "benchmarks" / "results"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_plot_draws_every_operation_and_the_proxy(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from benchmarks.report import main

    files = [RESULTS / "2026-11-27.json", RESULTS / "2026-11-27-proxy.json"]
    assert main(["--plot", str(tmp_path), *map(str, files)]) == 0
    drawn = sorted(p.name for p in tmp_path.iterdir())
    operations = ("protect", "unprotect", "unprotect_into")
    expected = [f"2026-11-27-{kind}-{op}.png" for kind in ("bound", "rate") for op in operations]
    assert drawn == sorted([*expected, "2026-11-27-proxy-proxy.png"])
    pictures = [(tmp_path / name).read_bytes() for name in drawn]
    assert all(p.startswith(PNG_SIGNATURE) and len(p) > 10_000 for p in pictures)
    assert len(set(pictures)) == len(pictures)  # each chart draws its own data


def test_plot_refuses_a_file_without_records(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from benchmarks.plot import plot

    empty = tmp_path / "empty.json"
    empty.write_text('{"records": []}', encoding="utf-8")
    with pytest.raises(ValueError, match="no records to draw"):
        plot([empty], tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_queue_manager_is_measured_against_raw_sqlite_in_the_same_run() -> None:
    from benchmarks.qm import markdown, run

    records = run(quick=True, sizes=(1024,), batches=(1, 3), seconds=0.001)
    assert [(r["size"], r["batch"]) for r in records] == [(1024, 1), (1024, 3)]
    for record in records:
        assert record["ours_us"] > 0 and record["raw_us"] > 0
        assert record["ratio"] == record["ours_us"] / record["raw_us"]
    assert markdown(records).count("\n| 1 KiB |") == 2


@pytest.mark.parametrize("size", [1024, 4096])
def test_raw_sqlite_keeps_each_body_where_the_queue_manager_does(tmp_path: Path, size: int) -> None:
    """The bound does the queue manager's row work: a body in its message's row up to
    INLINE_BODY_BYTES, else in the bodies table, in both files after a batch."""
    from benchmarks.qm import DEPTH, ours, raw

    for make in (ours, raw):
        path = tmp_path / f"{make.__name__}.sqlite"
        make(path, size, 3)()
        with contextlib.closing(sqlite3.connect(path)) as db:
            (apart,) = db.execute("SELECT COUNT(*) FROM bodies").fetchone()
            (in_rows,) = db.execute("SELECT COUNT(*) FROM messages WHERE length(body) = ?", (size,)).fetchone()
        assert (in_rows, apart) == ((DEPTH, 0) if size <= 2048 else (0, DEPTH)), make.__name__


def test_the_proxy_in_memory_moves_every_message_and_its_table_leaves_the_other_cells_empty() -> None:
    from benchmarks.proxy import CASES, ProxyWorld, markdown, memory_rate

    world = ProxyWorld()
    assert memory_rate(world, CASES["integrity->privacy"], 64, 6, 50) > 0  # raises unless all 5 moved
    memory = {"case": "integrity->privacy", "size": 1024, "workers": 1, "rate": 900.0, "bound": 1000.0}
    table = markdown([{**memory, "batch": 1, "per_worker": 0.9}, {**memory, "batch": 50, "per_worker": 0.9}])
    assert "| integrity->privacy | 1 KiB | 1,000 | 900 (0.90) | 900 (0.90) | - | - |" in table
    on_file = [{**memory, "workers": w, "batch": b, "per_worker": 0.9 / w} for w in (1, 2) for b in (1, 50)]
    assert "| 900 (0.45) | 900 (0.45) |" in markdown(on_file) and " - |" not in markdown(on_file)


def test_the_proxy_profile_splits_a_messages_time_into_three_parts() -> None:
    from benchmarks.proxy import profile

    rows = [line.split("|")[1:-1] for line in profile(count=10).splitlines()[2:]]
    assert [row[0].strip() for row in rows] == ["privacy->privacy", "integrity->privacy"]
    for row in rows:
        shares = [int(cell.split("(")[1].rstrip("%) ")) for cell in row[2:]]
        assert 98 <= sum(shares) <= 102 and min(shares) >= 0  # crypto, queue manager and the rest: the whole loop
