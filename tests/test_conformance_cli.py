"""ams conformance against this project's own command line: the acceptance run CI makes, the
documented example adapter, and the command's options."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from ams.cli.main import main
from ams.testing.conformance.peers import SELF_CLI_PROTECT, SELF_CLI_UNPROTECT
from ams.testing.conformance.properties import PROPERTIES

ROOT = Path(__file__).resolve().parents[1]
ADAPTER = ROOT / "docs" / "examples" / "peer_adapter.sh"
ADAPTER_ARGS = "{digest} {cipher} {keystore_conf} {queue} {format} {in} {out} {recipient_dn}"


def conformance(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "ams", "conformance", "--key-bits", "1024", "--no-progress", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, env=env, timeout=300)


def test_self_conformance_through_the_command_line(tmp_path: Path) -> None:
    """The acceptance run: every property against `ams protect` / `ams unprotect`, in about a minute (the
    must-check changes are sent to this project in process: test_conformance_faults.py)."""
    result = conformance(
        "--peer-protect", SELF_CLI_PROTECT, "--peer-unprotect", SELF_CLI_UNPROTECT, "--peer-policies",
        "--peer-name", "self-cli", "--max-examples", "3", "--seed", "7", "--no-must-check",
        "--output", str(tmp_path / "out"), "--junit", str(tmp_path / "junit.xml"),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"0 failed, {len(PROPERTIES)} passed, 0 skipped" in result.stdout
    assert result.stderr.startswith(f"ams conformance: seed 7, files in {tmp_path / 'out'}\n")
    assert "roundtrip-to-peer" not in result.stderr  # --no-progress: no line per property
    suite = ElementTree.parse(tmp_path / "junit.xml").getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == (str(len(PROPERTIES)), "0", "0")
    assert [case.get("name") for case in suite][:2] == ["roundtrip-to-peer", "roundtrip-from-peer"]


def test_the_documented_example_adapter_passes(tmp_path: Path) -> None:
    env = {**os.environ, "AMS": f"{sys.executable} -m ams"}
    result = conformance(
        "--peer-protect", f"sh {ADAPTER} protect {ADAPTER_ARGS}",
        "--peer-unprotect", f"sh {ADAPTER} unprotect {ADAPTER_ARGS}",
        "--peer-policies", "--max-examples", "3", "--seed", "11", "--output", str(tmp_path),
        "--only", "roundtrip-to-peer", "--only", "roundtrip-from-peer", "--only", "peer-refuses-weaker-algorithm",
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failed, 3 passed, 0 skipped" in result.stdout


def test_list_shows_the_properties_and_placeholders(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conformance", "--list"]) == 0
    out = capsys.readouterr().out
    assert "peer-refuses-tampered" in out and "{recipient_cert}" in out and "ours -> peer" in out
    for line in out.splitlines():  # every name stands apart from its description, however long
        if line.startswith("  "):
            assert "  " in line.strip(), line


def test_progress_shows_the_seed_and_a_line_per_property(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "ams", "conformance", "--peer", "self", "--only", "peer-refuses-non-recipient"]
    args = ["--key-bits", "1024", "--max-examples", "2", "--output", str(tmp_path)]
    result = subprocess.run([*command, *args], capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    first, second = result.stderr.splitlines()[:2]
    seed = int(first.split("seed ")[1].split(",")[0])  # a seed of its own, printed before anything runs
    assert first == f"ams conformance: seed {seed}, files in {tmp_path}"
    assert second.startswith("  passed   peer-refuses-non-recipient") and f"seed {seed}," in result.stdout


@pytest.mark.parametrize(
    "args,match",
    [
        ([], "no peer: name one with --peer"),
        (["--peer-protect", "tool {bogus}"], "unknown placeholder {bogus}"),
        (["--peer", "self", "--peer-digest", "SHA3"], "--peer-digest: 'SHA3' is not one AMS defines"),
        (["--peer", "self", "--peer-qop", "none"], "NONE is not an algorithm or quality of protection"),
        (["--replay", "/nonexistent/failure"], "is not a saved conformance failure"),
    ],
)
def test_usage_errors_say_what_to_do(
    tmp_path: Path, args: list[str], match: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["conformance", "--output", str(tmp_path), *args]) == 2
    assert match in capsys.readouterr().err


def _documented_command(path: Path) -> str:
    """The `ams conformance --peer-policies ...` command of ``path``'s example, its lines joined."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("ams conformance --peer-policies \\"))
    end = next(i for i in range(start, len(lines)) if not lines[i].endswith("\\"))
    return " ".join(line.rstrip("\\").strip() for line in lines[start : end + 1])


def test_the_documented_adapter_command_runs_as_pasted_from_the_repository_root(tmp_path: Path) -> None:
    command = _documented_command(ROOT / "docs" / "conformance.md")
    readme = _documented_command(ROOT / "README.md")
    assert readme.startswith(command)  # the README shows the same command (and then the options)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # this `ams`
    options = "--only roundtrip-to-peer --max-examples 1 --key-bits 1024 --no-progress --output"
    pasted = f"{command} {options} {shlex.quote(str(tmp_path))}"
    result = subprocess.run(["sh", "-c", pasted], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failed, 1 passed, 0 skipped" in result.stdout


def test_protect_and_unprotect_load_only_their_own_command_group() -> None:
    """A peer adapter starts `ams protect` / `ams unprotect` once per message: neither loads the kit, the
    queue manager's modules or the other commands (which once cost every call a third of its start-up)."""
    probe = (
        "import sys; from ams.cli.main import build_parser; build_parser(sys.argv[1]).parse_args(sys.argv[1:]); "
        "print(sorted(m for m in sys.modules if m.startswith(('ams.testing', 'ams.mq.', 'ams.cli.', 'hypothesis'))))"
    )
    for command in ("protect", "unprotect"):
        args = [sys.executable, "-c", probe, command, "-p", "Q", "--policies", "."]
        result = subprocess.run(args, capture_output=True, text=True, check=True, timeout=60)
        assert result.stdout.strip() == "['ams.cli.common', 'ams.cli.main', 'ams.cli.protect']", result.stdout
    everything = subprocess.run([sys.executable, "-m", "ams", "--help"], capture_output=True, text=True, timeout=60)
    assert "conformance" in everything.stdout and "unprotect" in everything.stdout  # `ams --help` lists them all
