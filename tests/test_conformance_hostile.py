"""The kit survives a hostile or broken peer (issue 20, items 7 and 9-12): small peers written here
hang on to its pipes, flood them, hand back a 2 GiB sparse file, a FIFO or a link, plant links and
directories for the next case, crash, and write escape sequences. None hangs the kit, grows it
without bound, makes it read or write outside its folder, or corrupts a report."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path

import pytest

from ams.algorithms import EncryptionAlgorithm, QoP, SignatureAlgorithm
from ams.cli.conformance import TerminalProgress
from ams.testing.conformance.checks import evaluate
from ams.testing.conformance.properties import BY_NAME, Case, build_step
from ams.testing.conformance.protocol import Outcome, PeerSpec, run_command
from ams.testing.conformance.runner import Options, run_conformance
from ams.testing.conformance.sandbox import (
    DRAIN_SECONDS,
    STREAM_CAP,
    CaseDirectory,
    Limits,
    UnsafeDirectoryError,
    copy_tree,
    printable,
    remove_tree,
    run_bounded,
)
from ams.testing.conformance.world import World
from ams.testing.headers import ClearChain
from ams.testing.payloads import PayloadSpec

PYTHON = sys.executable
HANG = 90  # seconds: a test still running then has hung on its peer


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    """Fail, rather than hang, a test whose kit waits on its peer for ever."""

    def hung(signum: int, frame: object) -> None:
        raise TimeoutError(f"the kit was still waiting on its peer after {HANG} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(HANG)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World.create(tmp_path_factory.mktemp("world"), key_bits=1024)


@pytest.fixture
def orphans(tmp_path: Path) -> Iterator[Path]:
    """A file where a peer's escaped (``setsid``) children write their pids: killed after the test."""
    pids = tmp_path / "orphans.txt"
    yield pids
    for line in pids.read_text().split() if pids.exists() else []:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(line), signal.SIGKILL)


def python_peer(code: str) -> list[str]:
    return [PYTHON, "-c", code]


ESCAPE_TO_NEW_SESSION = """
import os, sys, time
if os.fork() == 0:
    os.setsid()  # out of the kit's reach by process group, still holding stdout and stderr
    open({pids!r}, "a").write(f"{{os.getpid()}}\\n")
    time.sleep(30)
    os._exit(0)
{then}
"""


# -- 9: after the timeout, and after the peer exits, the pipes are read with a deadline --------------------------------


@pytest.mark.parametrize("then,status", [("time.sleep(60)", None), ("sys.exit(0)", 0), ("sys.exit(1)", 1)])
def test_a_child_that_escapes_the_process_group_holding_the_pipes_does_not_hang_the_kit(
    tmp_path: Path, orphans: Path, then: str, status: int | None
) -> None:
    code = ESCAPE_TO_NEW_SESSION.format(pids=str(orphans), then=then)
    started = time.monotonic()
    outcome = run_command(python_peer(code), tmp_path, timeout=1.0)
    assert time.monotonic() - started < 1.0 + 2 * DRAIN_SECONDS + 2
    assert outcome.status == status
    assert orphans.read_text().strip()  # the escaped child was really there, holding the pipes


def test_the_peers_process_group_is_killed_when_it_exits(tmp_path: Path) -> None:
    marker = tmp_path / "still-running"
    code = f"import os, time, sys\nif os.fork() == 0:\n    time.sleep(0.5); open({str(marker)!r}, 'w')\nsys.exit(1)"
    finished = run_bounded(python_peer(code), tmp_path, timeout=10)
    assert finished.status == 1
    time.sleep(1)
    assert not marker.exists()  # the background child in its group was stopped with it


# -- 10: standard output, standard error and {out} are read with a size cap -------------------------------------------


def test_endless_output_on_both_streams_is_kept_to_its_end_within_the_cap(tmp_path: Path) -> None:
    code = "import sys\nwhile True:\n    sys.stdout.write('o' * 65536); sys.stderr.write('\\x1b[31me' * 16384)"
    finished = run_bounded(python_peer(code), tmp_path, timeout=1.5)
    assert finished.status is None and finished.truncated
    assert len(finished.stdout) <= STREAM_CAP and len(finished.stderr) <= STREAM_CAP
    outcome = run_command(python_peer(code), tmp_path, timeout=1.0)
    assert len(outcome.stderr) <= 4 * 4000 and "\x1b" not in outcome.stderr


@pytest.mark.parametrize(
    "make,found",
    [
        ("os.truncate(os.open('out.bin', os.O_CREAT | os.O_WRONLY), 100 << 20)", "104,857,600 bytes, over the kit"),
        ("os.mkfifo('out.bin')", "not a regular file"),
        ("os.mkdir('out.bin')", "not a regular file"),
        ("os.symlink({secret!r}, 'out.bin')", "symbolic link"),
    ],
)
def test_out_is_read_only_if_it_is_a_regular_file_within_the_cap(tmp_path: Path, make: str, found: str) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the kit must not read this")
    workdir = tmp_path / "case"
    workdir.mkdir()
    outcome = run_command(python_peer("import os; " + make.format(secret=str(secret))), workdir, timeout=30)
    assert outcome.status == 0 and outcome.output is None and not outcome.accepted
    assert found in outcome.describe() and "exit 0, but the kit did not take its output" in outcome.describe()


def test_a_2_gib_sparse_output_is_not_even_written(tmp_path: Path) -> None:
    code = "import os; os.truncate(os.open('out.bin', os.O_CREAT | os.O_WRONLY), 2 << 30)"
    outcome = run_command(python_peer(code), tmp_path, timeout=30)
    assert not outcome.accepted and "File too large" in outcome.describe()  # RLIMIT_FSIZE: 256 MiB
    assert (tmp_path / "out.bin").stat().st_size == 0


# -- 11: a fresh working directory per case, and no link followed ------------------------------------------------------


def test_a_case_directory_that_exists_already_is_refused(tmp_path: Path) -> None:
    (tmp_path / "planted").mkdir()
    with pytest.raises(UnsafeDirectoryError, match="already exists and the kit did not create it"):
        CaseDirectory.create(tmp_path / "planted")
    (tmp_path / "real" / "inside").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(UnsafeDirectoryError):
        CaseDirectory.open(tmp_path / "link")
    with pytest.raises(UnsafeDirectoryError, match="through a symbolic link"):
        CaseDirectory.open(tmp_path / "link" / "inside")
    with CaseDirectory.create(tmp_path / "new") as case:
        case.write("in.bin", b"x")
        (tmp_path / "new" / "out.bin").symlink_to(tmp_path / "victim")
        with pytest.raises(FileExistsError):
            case.write("out.bin", b"through the link")  # never through a link, never over a file
    assert not (tmp_path / "victim").exists()


def test_a_failures_copy_leaves_the_peers_links_out(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    with CaseDirectory.create(tmp_path / "case") as case:
        case.write("in.bin", b"in")
        (tmp_path / "case" / "leak").symlink_to(secret)
        (tmp_path / "case" / "dir-leak").symlink_to(tmp_path)
        os.mkfifo(tmp_path / "case" / "fifo")
        with case.subdirectory("policies") as policies:
            policies.write("policy.spl", b"setmqspl")
        skipped = copy_tree(case, tmp_path / "copy")
    assert sorted(os.listdir(tmp_path / "copy")) == ["in.bin", "policies"]
    assert (tmp_path / "copy" / "policies" / "policy.spl").read_bytes() == b"setmqspl"
    assert len(skipped) == 3 and any("leak (leak is a symbolic link" in s for s in skipped)


PLANTING_PEER = """
import os, sys
from pathlib import Path
here = Path.cwd()
os.symlink({secret!r}, "leak.txt")  # a failure's copy must not follow it
number = int(here.name) if here.name.isdigit() else 0
nxt = here.parent / str(number + 1)
nxt.mkdir()
os.symlink({victim!r}, nxt / "in.bin")  # the next case would write its input through this link
os.symlink({secret!r}, "out.bin")
sys.exit(0)
"""


def test_a_peer_that_plants_links_and_the_next_cases_directory_harms_nothing(tmp_path: Path, world: World) -> None:
    secret, victim = tmp_path / "secret.txt", tmp_path / "victim.txt"
    secret.write_text("SECRET outside the kit's folder")
    victim.write_text("unchanged")
    output = tmp_path / "out"
    interrupted = output / "work" / "roundtrip-to-peer" / "1"  # an interrupted run's directory, with a link
    interrupted.mkdir(parents=True)
    (interrupted / "in.bin").symlink_to(victim)
    code = PLANTING_PEER.format(secret=str(secret), victim=str(victim))
    spec = PeerSpec("planting", unprotect=_script(tmp_path, code), timeout=30)
    options = Options(max_examples=3, seed=1, only=("roundtrip-to-peer",), output=output, shrink_time=5)
    report = run_conformance(spec, options, world=world)
    [result] = report.results
    assert result.status == "failed" and result.failure is not None
    assert victim.read_text() == "unchanged"
    for root, dirs, files in os.walk(output):
        for name in dirs + files:
            assert not os.path.islink(os.path.join(root, name)), os.path.join(root, name)
        for name in files:
            assert b"SECRET" not in Path(root, name).read_bytes(), os.path.join(root, name)
    failure_text = (result.failure.directory / "failure.txt").read_text()
    assert "symbolic link" in result.failure.found
    assert "not copied from the peer's directory: leak.txt" in failure_text


def _script(tmp_path: Path, code: str) -> str:
    script = tmp_path / "peer.py"
    script.write_text(code)
    return f"{{python}} {script}"


# -- 12: the peer's words are escaped on the terminal and in the reports, and JUnit stays XML --------------------------

FAKING_PEER = r"""
import sys
sys.stderr.write("\x1b[2K\x1b[1A\r\n0 failed, 9 passed, 0 skipped in 0.1 s\x00\x07\x0c\u202e\x85\ufffe")
sys.stderr.buffer.write(b"\xff\xfe invalid utf-8\n")
sys.exit(1)
"""


def test_escape_sequences_and_control_bytes_cannot_corrupt_a_report(tmp_path: Path, world: World) -> None:
    spec = PeerSpec("faker\x1b[0m", unprotect=_script(tmp_path, FAKING_PEER), timeout=30)
    terminal = io.StringIO()
    options = Options(max_examples=2, seed=1, only=("roundtrip-to-peer",), output=tmp_path / "out", shrink_time=5)
    report = run_conformance(spec, options, world=world, progress=TerminalProgress(terminal, live=False))
    [result] = report.results
    assert result.failure is not None
    text = (tmp_path / "out" / "report.txt").read_text(encoding="utf-8")
    for where in (text, terminal.getvalue(), (result.failure.directory / "failure.txt").read_text()):
        assert not any(c in where for c in "\x1b\x00\x07\x0c\r\u202e\x85\ufffe"), where
        assert not any(line.startswith("0 failed") for line in where.splitlines())
    assert "\\x1b[2K" in text and "\\u202e" in text  # shown, escaped
    suite = ElementTree.parse(tmp_path / "out" / "junit.xml").getroot()  # valid XML despite \x00 and \ufffe
    [failure] = suite.iter("failure")
    assert "\\x00" in (failure.get("message") or "") and "refused (exit 1)" in (failure.text or "")


def test_printable_escapes_what_xml_and_terminals_cannot_take_and_keeps_the_rest() -> None:
    assert printable("CN=Dave Ørsted, O=R&D \\ ok") == "CN=Dave Ørsted, O=R&D \\ ok"
    assert printable("a\x1b[31mb\nc\x00\ud800\u202e\ufffe") == "a\\x1b[31mb\\x0ac\\x00\\ud800\\u202e\\ufffe"
    assert printable(printable("\x1b\x9b")) == printable("\x1b\x9b") == "\\x1b\\x9b"


# -- 7: a crash is no refusal ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command,refused,words",
    [
        (["sh", "-c", "kill -SEGV $$"], False, "killed by SIGSEGV"),
        (["sh", "-c", "exit 139"], False, "exit 139, as a shell reports a command killed by SIGSEGV"),
        (["sh", "-c", "exit 127"], False, "could not be run"),
        (["/nonexistent/peer"], False, "could not be run"),
        (["sh", "-c", "exit 1"], True, "refused (exit 1)"),
        (["sh", "-c", "exit 3"], True, "refused (exit 3)"),
        (["sh", "-c", "exit 125"], True, "refused (exit 125)"),
    ],
)
def test_a_crash_or_a_signal_is_no_refusal(
    tmp_path: Path, world: World, command: list[str], refused: bool, words: str
) -> None:
    outcome = run_command(command, tmp_path, timeout=30)
    assert outcome.refused is refused and words in outcome.describe()
    case = Case(
        QoP.INTEGRITY, SignatureAlgorithm.SHA256, EncryptionAlgorithm.NONE, 0, 0, PayloadSpec("text", 5),
        ClearChain(), "Q", signer="trudy",
    )  # fmt: skip
    step = build_step(BY_NAME["peer-refuses-untrusted-signer"], case, world)
    assert evaluate(step, outcome, world).passed is refused


def test_a_timeout_is_no_refusal(world: World) -> None:
    outcome = Outcome(None, seconds=1.0)
    assert not outcome.refused and not outcome.accepted


# -- 8: every kind of failure keeps its own counterexample, and the right side is blamed -------------------------------

TWO_FAULTS_PEER = """
import os, signal, sys
if os.path.getsize("in.bin") > 3000:
    os.kill(os.getpid(), signal.SIGSEGV)  # a crash on big messages...
open("out.bin", "wb").write(b"wrong")  # ...and a wrong body on all the others
"""


def test_each_kind_of_failure_is_reported_with_its_own_minimal_counterexample(tmp_path: Path, world: World) -> None:
    spec = PeerSpec("two-faults", unprotect=_script(tmp_path, TWO_FAULTS_PEER), timeout=30)
    options = Options(max_examples=20, seed=5, only=("roundtrip-to-peer",), output=tmp_path / "out", shrink_time=10)
    [result] = run_conformance(spec, options, world=world).results
    assert [f.kind for f in result.failures] == ["done", "crashed"], [f.found for f in result.failures]
    done, crashed = result.failures
    assert done.case.startswith("integrity SHA256; payload empty") and "the peer wrote 5 bytes" in done.found
    assert "killed by SIGSEGV" in crashed.found and crashed.directory.name == "roundtrip-to-peer--crashed"
    assert (crashed.directory / "in.bin").stat().st_size > 3000
    text = (tmp_path / "out" / "report.txt").read_text()
    assert "FAILED roundtrip-to-peer (2 kinds of failure; this one: crashed)" in text


def test_we_refuse_tampered_blames_the_peer_for_a_message_that_is_not_ams(tmp_path: Path, world: World) -> None:
    peer = _script(tmp_path, "open('out.bin', 'wb').write(b'PDMQ' + bytes(200))")
    spec = PeerSpec("not-ams", protect=peer, timeout=30)
    options = Options(max_examples=2, seed=1, only=("we-refuse-tampered",), output=tmp_path / "out", shrink_time=5)
    [result] = run_conformance(spec, options, world=world).results
    assert result.failure is not None
    assert "the peer's message is not AMS's format" in result.failure.found
    assert "refuses it even unchanged" in result.failure.found and "bug of the kit" not in result.failure.found


# -- an interrupted run ------------------------------------------------------------------------------------------------


class _StopAtSecond:
    """Progress that presses Ctrl-C as the second property starts."""

    def __init__(self) -> None:
        self.seen = 0

    def started(self, prop: object) -> None:
        self.seen += 1
        if self.seen == 2:
            raise KeyboardInterrupt

    def example(self, prop: object, number: int, shrinking: bool) -> None:
        pass

    def finished(self, result: object) -> None:
        pass


def test_an_interrupted_run_writes_a_partial_report_with_its_seed(tmp_path: Path, world: World) -> None:
    spec = PeerSpec("self", kind="self")
    only = ("roundtrip-to-peer", "roundtrip-from-peer", "peer-writes-strict")
    options = Options(max_examples=2, seed=77, only=only, output=tmp_path / "out")
    with pytest.raises(KeyboardInterrupt):
        run_conformance(spec, options, world=world, progress=_StopAtSecond())
    text = (tmp_path / "out" / "report.txt").read_text()
    assert "INTERRUPTED: a partial report, 1 of 3 properties checked (the same --seed 77 runs them again" in text
    assert "PASSED   roundtrip-to-peer" in text
    assert "SKIPPED  roundtrip-from-peer" in text and "not run: the run was interrupted" in text
    assert not (tmp_path / "out" / "work").exists()
    ElementTree.parse(tmp_path / "out" / "junit.xml")


SWAPPING_PEER = """
import os, sys
from pathlib import Path
here = Path.cwd()
property_dir = here.parent
os.rename(property_dir, str(property_dir) + ".moved")  # the kit's directory, moved away...
os.symlink({outside!r}, property_dir)  # ...and a link in its place: the next case would be made outside
sys.exit(1)
"""


def test_a_peer_that_swaps_the_kits_directory_for_a_link_makes_nothing_outside(tmp_path: Path, world: World) -> None:
    outside = tmp_path / "outside"
    (outside / "2").mkdir(parents=True)  # what the kit would remove as case 2's directory, through the link
    (outside / "2" / "keep.txt").write_text("not the kit's")
    spec = PeerSpec("swapping", unprotect=_script(tmp_path, SWAPPING_PEER.format(outside=str(outside))), timeout=30)
    options = Options(max_examples=3, seed=1, only=("roundtrip-to-peer",), output=tmp_path / "out", shrink_time=5)
    [result] = run_conformance(spec, options, world=world).results
    assert result.status == "failed"
    assert [p.name for p in outside.iterdir()] == ["2"]  # no case directory, no file, created through the link
    assert (outside / "2" / "keep.txt").read_text() == "not the kit's"  # nor removed through it
    assert any("symbolic link" in f.found or "refused" in f.found for f in result.failures), result.failures


def test_removing_a_case_directory_never_reaches_through_a_link(tmp_path: Path) -> None:
    (tmp_path / "outside" / "3").mkdir(parents=True)
    (tmp_path / "kit").mkdir()
    (tmp_path / "kit" / "property").symlink_to(tmp_path / "outside")
    remove_tree(tmp_path / "kit" / "property" / "3")  # case 3's directory, as the kit names it
    assert (tmp_path / "outside" / "3").is_dir()
    remove_tree(tmp_path / "kit" / "property")  # the link goes, not what it points to
    assert not (tmp_path / "kit" / "property").exists() and (tmp_path / "outside" / "3").is_dir()


# -- resource limits (--peer-memory, --peer-cpu; every peer: a file size) ----------------------------------------------


@pytest.mark.parametrize(
    "command,limits,words",
    [
        (python_peer("while True: pass"), Limits(cpu_seconds=1), "killed by SIGXCPU"),
        (["sh", "-c", "head -c 2097152 /dev/zero >big"], Limits(file_size=1 << 20), "killed by SIGXFSZ"),
        (python_peer("x = bytearray(2 << 30)"), Limits(memory_mib=400), "MemoryError"),
    ],
)
def test_resource_limits_stop_a_greedy_peer_long_before_its_timeout(
    tmp_path: Path, command: list[str], limits: Limits, words: str
) -> None:
    started = time.monotonic()
    outcome = run_command(command, tmp_path, timeout=60, limits=limits)
    assert time.monotonic() - started < 20
    assert not outcome.accepted and words in outcome.describe(), outcome.describe()
    assert not (tmp_path / "big").exists() or (tmp_path / "big").stat().st_size <= 1 << 20


def test_a_peers_limits_are_saved_with_it() -> None:
    spec = PeerSpec("greedy", unprotect="tool {in}", limits=Limits(memory_mib=512, cpu_seconds=30))
    assert PeerSpec.from_json(spec.to_json()) == spec
    old = {k: v for k, v in spec.to_json().items() if k not in ("memory_mib", "cpu_seconds")}
    assert PeerSpec.from_json(old).limits == Limits()  # a failure saved before limits existed still replays
