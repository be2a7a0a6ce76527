"""The README's Python snippets are complete programs: each runs as pasted, in a fresh directory that
holds a copy of the repository's policies/ (they say to run from the repository root)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def python_blocks() -> list[str]:
    return FENCE.findall((ROOT / "README.md").read_text(encoding="utf-8"))


def run(code: str, where: Path) -> subprocess.CompletedProcess[str]:
    script = where / "snippet.py"
    script.write_text(code, encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script)], cwd=where, capture_output=True, text=True, check=False, timeout=120
    )


def test_the_readme_has_python_snippets() -> None:
    assert len(python_blocks()) >= 2


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_each_python_snippet_runs_as_pasted(tmp_path: Path, index: int) -> None:
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    code = python_blocks()[index]
    first = run(code, tmp_path)
    assert first.returncode == 0, first.stderr
    again = run(code, tmp_path)  # pasted a second time in the same directory: still runs
    assert again.returncode == 0, again.stderr


def test_the_snippets_message_is_protected_not_sent_in_the_clear(tmp_path: Path) -> None:
    """Rejected twin: without the policy for its queue, the first snippet stops (require_policy) instead of
    sending in the clear."""
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    (tmp_path / "policies" / "DEMO.PRIVACY.spl").unlink()
    result = run(python_blocks()[0], tmp_path)
    assert result.returncode != 0
    assert "PolicyRequiredError" in result.stderr and "queue DEMO.PRIVACY has no policy" in result.stderr
