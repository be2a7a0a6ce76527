"""Ctrl-C and a closed pipe end `ams` quietly with the shell's exit codes (130, 141), and lose nothing:
a message is committed only once it was written out."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ams.mq import MQMD, EmbeddedQueueManager

ROOT = Path(__file__).resolve().parents[1]
AMS = [sys.executable, "-m", "ams"]


def _as_in_a_terminal() -> None:
    # Ctrl-C reaches a command a person runs in a terminal; a shell's background job (as a CI runner
    # may start the tests) ignores SIGINT, and its children inherit that: give them the terminal's
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(args: list[str], **options: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [*AMS, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        preexec_fn=_as_in_a_terminal,
        **options,
    )


def queue_with(tmp_path: Path, *bodies: bytes) -> Path:
    path = tmp_path / "qm.sqlite"
    manager = EmbeddedQueueManager(path, create=True)
    manager.define_queue("APP.Q")
    connection = manager.connect("producer")
    for body in bodies:
        connection.put1("APP.Q", MQMD(format="MQSTR"), body)
    return path


def depth(path: Path) -> int:
    return EmbeddedQueueManager(path).connect("check").depth("APP.Q")


def test_ctrl_c_in_get_wait_ends_with_130_and_keeps_what_was_not_written(tmp_path: Path) -> None:
    qm = queue_with(tmp_path, b"first")
    process = start(["get", "APP.Q", "--wait", "60", "--qm", str(qm), "--policies", str(tmp_path)])
    assert process.stdout is not None and process.stdout.readline() == b"first\n"
    time.sleep(0.5)  # waiting for the next message now
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err
    assert depth(qm) == 0  # the message written out was committed
    # twin: one put while it waits is delivered, not lost, when Ctrl-C comes after it was written
    process = start(["get", "APP.Q", "--wait", "60", "--qm", str(qm), "--policies", str(tmp_path)])
    time.sleep(1.0)
    EmbeddedQueueManager(qm).connect("late").put1("APP.Q", MQMD(format="MQSTR"), b"late")
    assert process.stdout is not None and process.stdout.readline() == b"late\n"
    time.sleep(0.5)  # committed just after it was written (Ctrl-C in between backs it out: at least once)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=30)
    assert process.returncode == 130 and depth(qm) == 0


def test_a_reader_that_goes_away_ends_get_with_141_and_loses_nothing(tmp_path: Path) -> None:
    """`ams get | head -1`: bodies larger than a pipe's buffer, so the second blocks until the reader leaves."""
    big = [bytes([ord("a") + n]) * 300_000 for n in range(3)]
    qm = queue_with(tmp_path, *big)
    process = start(["get", "APP.Q", "--qm", str(qm), "--policies", str(tmp_path)])
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline() == big[0] + b"\n"
    process.stdout.close()  # as head does after its line
    err = process.stderr.read()
    process.wait(timeout=30)
    assert process.returncode == 141
    assert b"Broken pipe" not in err and b"Traceback" not in err and b"Errno" not in err
    assert depth(qm) == 2  # the message being written is back on the queue, the third untouched
    remaining = EmbeddedQueueManager(qm).connect("after").open("APP.Q", input=True)
    assert [remaining.get().body for _ in range(2)] == big[1:]


def test_head_in_a_shell_pipeline(tmp_path: Path) -> None:
    qm = queue_with(tmp_path, *(b"%d" % n * 100_000 for n in range(1, 4)))
    get = f"{' '.join(AMS)} get APP.Q --qm {qm} --policies {tmp_path}"
    command = f"{get} | head -c 5; status=${{PIPESTATUS[0]}}; echo; echo $status"
    result = subprocess.run(["bash", "-c", command], capture_output=True, timeout=60, check=False)
    assert result.stdout.splitlines() == [b"11111", b"141"]
    assert b"Traceback" not in result.stderr and b"Broken pipe" not in result.stderr
    assert depth(qm) == 2


def test_ctrl_c_in_conformance_prints_the_seed_and_writes_a_partial_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    process = start(
        ["conformance", "--peer", "self-cli", "--key-bits", "1024", "--no-progress", "--max-examples", "50",
         "--output", str(out)],
    )  # fmt: skip
    assert process.stderr is not None
    first = process.stderr.readline().decode()
    seed = re.fullmatch(r"ams conformance: seed (\d+), files in \S+\n", first)
    assert seed, first
    deadline = time.monotonic() + 120
    while not list(out.glob("work/*")) and time.monotonic() < deadline:  # the peer is being called
        time.sleep(0.2)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr.decode()
    assert b"Traceback" not in stderr
    text = stdout.decode()
    assert f"seed {seed.group(1)}" in text and "INTERRUPTED: a partial report" in text
    report = json.loads((out / "report.json").read_text())
    assert report["interrupted"] is True and report["seed"] == int(seed.group(1))
    assert any(p["reason"] == "not run: the run was interrupted" for p in report["properties"])
    assert (out / "junit.xml").is_file()


def _readme_conformance_command() -> list[str]:
    """The README's `ams conformance --peer-policies --peer-protect ... --peer-unprotect ...`, as pasted."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start_at = readme.index("ams conformance --peer-policies \\\n")
    lines = []
    for line in readme[start_at:].splitlines():
        lines.append(line.rstrip("\\").strip())
        if not line.endswith("\\"):
            break
    import shlex

    return shlex.split(" ".join(lines))


@pytest.mark.parametrize("where", ["repository root", "elsewhere"])
def test_the_readmes_peer_adapter_command_works_from_the_repository_root(tmp_path: Path, where: str) -> None:
    command = _readme_conformance_command()
    assert command[:2] == ["ams", "conformance"] and "sh docs/examples/peer_adapter.sh" in " ".join(command)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("AMS", None)  # the adapter runs `ams`, as a user's installation has it
    options = ["--key-bits", "1024", "--no-progress", "--max-examples", "2", "--seed", "3", "--output",
               str(tmp_path / "out"), "--only", "roundtrip-to-peer", "--only", "roundtrip-from-peer"]  # fmt: skip
    result = subprocess.run(
        [*AMS, *command[1:], *options],
        cwd=ROOT if where == "repository root" else tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if where == "repository root":
        assert result.returncode == 0, result.stdout + result.stderr
        assert "0 failed, 2 passed, 0 skipped" in result.stdout
    else:  # rejected twin: the relative path names the caller's file, and there is none here
        assert result.returncode == 1
        assert "docs/examples/peer_adapter.sh" in result.stdout
