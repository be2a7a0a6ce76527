"""The benchmark harness runs and writes the records the README describes (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
