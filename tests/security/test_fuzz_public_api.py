"""The Hypothesis twin of ``tests/security/fuzz.py``: the same targets, seeds and mutations, a few
hundred examples each, so that every test run checks the fuzzer's rule and shrinks what breaks it.

The rule: whatever the bytes, every public entry point raises only ``ams.AmsError`` (or returns);
a mutated protected message is refused, or accepted with its ORIGINAL payload (integrity, privacy)
or one of the original length (confidentiality, which has no MAC by AMS's design). The long run is
``.venv/bin/python -m tests.security.fuzz --target all --inputs 1000000`` (see its docstring).
"""

from __future__ import annotations

import contextlib
import math
import random
import struct
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ams
import ams.errors
import ams.policy
from ams.cli.main import main as cli_main
from ams.hazmat.pdmq import V2_SIZE, V3_SIZE
from tests.security import fuzz

# examples per target: the slow ones (files on disk, PKCS#12) get fewer; the file runs in about 15 s
EXAMPLES = {
    "unprotect": 1200,
    "inspect": 600,
    "headers": 600,
    "keystore_conf": 300,
    "policy_files": 300,
    "pcf": 600,
    "crl": 500,
    "ocsp": 500,
}
MUTANT_SIZE = 64 * 1024
EMPTY_FLAG = 40  # offset of PDMQ flag[0], the empty-message flag
# Known properties of the format, pinned by the tests below: a Hypothesis run must not fail on them
# again and again, nor let them hide a new site.
KNOWN_SITES = ("empty-flag",)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> fuzz.World:
    return fuzz.World(tmp_path_factory.mktemp("fuzz-world"))


@pytest.fixture(scope="module")
def targets(world: fuzz.World) -> dict[str, fuzz.Target[Any]]:
    return fuzz.build_targets(world)


@pytest.fixture(autouse=True)
def quiet() -> Iterator[None]:
    """Soft-fail revocation, unprotected key files and deprecated algorithms warn; that is not what is tested."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def run(target: fuzz.Target[Any], seed: fuzz.Seed[Any], data: bytes, variant: int) -> None:
    """The fuzzer's check: an AmsError is an allowed outcome, a known rule site is skipped, anything else fails."""
    try:
        target.run(seed, data, variant)
    except ams.AmsError:
        pass
    except fuzz.RuleViolation as violation:
        if not any(known in violation.site for known in KNOWN_SITES):
            raise


@st.composite
def mutants(draw: st.DrawFn, target: fuzz.Target[Any]) -> tuple[fuzz.Seed[Any], bytes, int]:
    """A seed, a way of calling, and 1-8 of the fuzzer's mutations (Hypothesis shrinks the count and the seed)."""
    seed = draw(st.sampled_from(target.seeds))
    variant = draw(st.integers(0, target.variants - 1))
    count = draw(st.integers(1, 8))
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    return seed, fuzz.make_input(rng, seed, target.splice, count=count, max_size=MUTANT_SIZE), variant


@pytest.mark.parametrize("name", fuzz.TARGET_NAMES)
def test_mutants_raise_only_ams_errors_and_keep_the_body_rule(targets: dict[str, fuzz.Target[Any]], name: str) -> None:
    target = targets[name]

    @settings(max_examples=EXAMPLES[name], deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(mutants(target))
    def check(case: tuple[fuzz.Seed[Any], bytes, int]) -> None:
        run(target, *case)

    check()


@pytest.mark.parametrize("name", fuzz.TARGET_NAMES)
def test_arbitrary_bytes_raise_only_ams_errors(targets: dict[str, fuzz.Target[Any]], name: str) -> None:
    """Bytes that owe nothing to a seed (the seed gives only the queue, format or file kind)."""
    target = targets[name]

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.sampled_from(target.seeds),
        st.integers(0, target.variants - 1),
        st.one_of(
            st.binary(max_size=2048),
            st.text(max_size=512).map(lambda text: text.encode("utf-8", "surrogatepass")),
            st.binary(max_size=512).map(lambda data: b"PDMQ\x02\x00\x01\x00" + data),
        ),
    )
    def check(seed: fuzz.Seed[Any], variant: int, data: bytes) -> None:
        run(target, seed, data, variant)

    check()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_pdmq_header_field_is_checked_or_harmless(
    targets: dict[str, fuzz.Target[Any]], data: st.DataObject
) -> None:
    """A strategy of its own: one 32-bit field or byte of the PDMQ header set to any value."""
    target = targets["unprotect"]
    seed = data.draw(st.sampled_from(target.seeds))
    message = bytearray(seed.data)
    start = seed.context.pdmq_offset
    size = V3_SIZE if seed.context.qop is ams.QoP.CONFIDENTIALITY else V2_SIZE
    offset = start + data.draw(st.integers(0, size - 1))
    if data.draw(st.booleans()) and offset + 4 <= start + size:
        struct.pack_into(
            data.draw(st.sampled_from("<>")) + "i", message, offset, data.draw(st.integers(-(2**31), 2**31 - 1))
        )
    else:
        message[offset] = data.draw(st.integers(0, 255))
    run(target, seed, bytes(message), data.draw(st.integers(0, target.variants - 1)))


def test_every_seed_runs_clean(targets: dict[str, fuzz.Target[Any]]) -> None:
    """The harness itself: seeds meant to be accepted are (so mutants start from deep inside the code)."""
    for target in targets.values():
        for seed in target.seeds:
            outcome = fuzz.execute(target, seed, seed.data, 0)
            assert outcome.finding is None, (target.name, seed.label, outcome.finding)
            if seed.expect_ok:
                assert outcome.key == "ok", (target.name, seed.label, outcome.key)


def test_the_harness_sees_a_body_rule_violation(world: fuzz.World, targets: dict[str, fuzz.Target[Any]]) -> None:
    """check_body catches a payload that differs (the one site known today, made on purpose)."""
    target = targets["unprotect"]
    seed = target.by_label["INT.SHA256/MQSTR/0B/0"]
    flipped = bytearray(seed.data)
    flipped[EMPTY_FLAG] ^= 1
    outcome = fuzz.execute(target, seed, bytes(flipped), 0)
    assert outcome.finding is not None and outcome.finding.site == "rule body-rule/integrity/empty-flag"


def test_cli_unprotect_and_inspect_on_mutants(
    world: fuzz.World,
    targets: dict[str, fuzz.Target[Any]],
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``ams unprotect`` and ``ams inspect`` exit 0, 2 or 3 on mutants, never with a traceback or 70 (a bug)."""
    root = tmp_path_factory.mktemp("cli")
    conf = world.write_keystore_files(root / "bob")
    policies = world.write_policy_directory(root / "policies")
    message, out = root / "message.bin", root / "out.bin"
    target = targets["unprotect"]
    rng = random.Random(20240611)
    codes: set[int] = set()
    for number in range(30):
        seed = target.seeds[number % len(target.seeds)]
        data = seed.data if number < 3 else fuzz.make_input(rng, seed, target.splice)
        message.write_bytes(data)
        fmt = seed.context.format
        keys = ["--keystore-conf", str(conf)]
        for argv in (
            ["unprotect", "-p", seed.context.queue, "--policies", str(policies), *keys, "--format", fmt],
            ["inspect", "--format", fmt, *keys, "--json"],
            ["inspect", "--format", fmt],
        ):
            code = cli_main([*argv, "-i", str(message), *(["-o", str(out)] if argv[0] == "unprotect" else [])])
            err = capsys.readouterr().err
            assert code in (0, 2, 3), (argv, code, err)
            assert "Traceback" not in err and "internal error" not in err, err
            codes.add(code)
    assert {0, 3} <= codes  # genuine messages pass, mutated ones are refused


# -- regression tests for the fuzzer's findings ------------------------------------------------


@pytest.mark.parametrize("queue", ["INT.SHA256", "PRIV.ONE", "CONF.FRESH"])
@pytest.mark.parametrize("payload", [b"", b"\x00"], ids=["empty", "nul"])
def test_the_pdmq_empty_flag_can_only_swap_empty_and_one_nul(world: fuzz.World, queue: str, payload: bytes) -> None:
    """Found by the fuzzer, and a property of AMS's format (SECURITY.md): the empty flag is not
    authenticated and AMS protects b"\x00" in place of an empty payload, so flipping the flag of
    a genuine message is byte for byte what a sender writes for the other payload. It can turn an
    empty body into one NUL byte and back; nothing else."""
    alice = ams.Protector(world.keystore("alice"), world.policies)
    bob = ams.Protector(world.keystore("bob"), world.policies)
    data = bytearray(alice.protect(queue, payload).body)
    assert bob.unprotect(queue, bytes(data)).body == payload
    data[EMPTY_FLAG] ^= 1
    assert bob.unprotect(queue, bytes(data)).body == (b"\x00" if payload == b"" else b"")
    data[EMPTY_FLAG] = 2  # any other value is refused
    with pytest.raises(ams.errors.MalformedMessageError):
        bob.unprotect(queue, bytes(data))


def _best_seconds(call: Callable[[], object], repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        with contextlib.suppress(ams.AmsError):
            call()
        best = min(best, time.perf_counter() - start)
    return best


def test_a_setmqspl_line_with_one_long_word_parses_in_linear_time() -> None:
    """Found by ``--scaling`` on the policy_files target: shlex.split was quadratic in the length of
    one word (a 1 MiB word in a .spl file took 13 s, 4 MiB 190 s)."""

    def line(size: int) -> str:
        return "setmqspl -m QM -p Q -s " + "A" * size

    small = _best_seconds(lambda: ams.policy.parse_setmqspl(line(32 * 1024)), 3)
    large = _best_seconds(lambda: ams.policy.parse_setmqspl(line(256 * 1024)), 2)
    # 8x the bytes: linear work takes ~8x the time; shlex took ~33x (0.02 s, then 0.74 s)
    assert large < max(16 * small, 0.05)
