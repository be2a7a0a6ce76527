"""A fuzz harness over unprotect: whatever the bytes, the result is a typed AmsError or the
original body, never a crash, a hang or a different body. Hypothesis shrinks any failure."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ams
from ams.inspect import inspect_message
from tests.conftest import Pki, store

BODY = b"fuzz me: 0123456789abcdef"
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def setup(pki: Pki) -> tuple[ams.Protector, dict[str, bytes]]:
    policies = store(
        "setmqspl -m QM -p INT.Q -s SHA256",
        f'setmqspl -m QM -p PRIV.Q -s SHA256 -e AES128 -r "{pki.dn("bob")}"',
        f'setmqspl -m QM -p CONF.Q -e AES128 -r "{pki.dn("bob")}" -c 3',
    )
    alice = ams.Protector(pki.keystore("alice"), policies)
    messages = {q: alice.protect(q, BODY).body for q in ("INT.Q", "PRIV.Q", "CONF.Q")}
    return ams.Protector(pki.keystore("bob"), policies), messages


@st.composite
def mutations(draw: st.DrawFn, messages: dict[str, bytes]) -> tuple[str, bytes]:
    queue = draw(st.sampled_from(sorted(messages)))
    data = bytearray(messages[queue])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["replace", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, len(data)))
        if kind == "replace" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            del data[at:]
    return queue, bytes(data)


def test_mutated_messages_fail_typed_or_read_unchanged(setup: tuple[ams.Protector, dict[str, bytes]]) -> None:
    bob, messages = setup

    @FUZZ
    @given(mutations(messages))
    def check(case: tuple[str, bytes]) -> None:
        queue, data = case
        try:
            message = bob.unprotect(queue, data)
        except ams.AmsError:
            return
        if queue == "CONF.Q":
            assert len(message.body) == len(BODY)  # no MAC by AMS's design, but never the wrong length
        else:
            assert message.body == BODY

    check()


@FUZZ
@given(data=st.binary(max_size=600), fmt=st.sampled_from(["        ", "MQHRF2", "MQDEAD", "MQSTR"]))
def test_arbitrary_bytes_never_crash_unprotect_or_inspect(
    setup: tuple[ams.Protector, dict[str, bytes]], data: bytes, fmt: str
) -> None:
    bob, _ = setup
    for candidate in (data, b"PDMQ" + data):
        for queue in ("INT.Q", "PRIV.Q", "CONF.Q", "NO.POLICY"):
            with contextlib.suppress(ams.AmsError):
                bob.unprotect(queue, candidate, fmt)
        with contextlib.suppress(ams.AmsError):
            inspect_message(candidate, fmt)
