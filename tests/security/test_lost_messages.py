"""Lost and stuck messages, tried as an attacker who puts one poison message on a queue.

A get that fails for any reason, a bug included, must leave the message on its queue (backed
out) or move it to the error queue with an MQDLH, in the same unit of work; past the queue's
backout threshold it is moved aside, so one poison message never blocks those behind it. The
same holds for `ams get`, `ams proxy`, and the error-queue commands.
"""

from __future__ import annotations

import io
import json
import logging
import struct
from pathlib import Path

import pytest

import ams
import ams.errors
from ams.cli.main import main
from ams.mq import MQMD, EmbeddedQueueManager, MQError, ProtectedQueueManager
from ams.mq.protected import ERROR_QUEUE, PoisonMessageError
from ams.mq.proxy import ReprotectionProxy
from ams.protector import Protector
from tests.conftest import Pki, store
from tests.mq_transports import Factory

POLICIES = Path(__file__).parents[2] / "policies"


@pytest.fixture
def policies(pki: Pki) -> ams.PolicyStore:
    return store(
        "setmqspl -m QM -p P.INT -s SHA256",
        f'setmqspl -m QM -p P.PRIV -s SHA256 -e AES256 -r "{pki.dn("bob")}"',
        f'setmqspl -m QM -p P.OUT -s SHA256 -e AES256 -r "{pki.dn("carol")}"',
    )


def _poison_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in the library that only one message sets off (its payload is in the clear)."""
    genuine = Protector.unprotect

    def buggy(self: Protector, queue: str, data: bytes, *args: object, **kwargs: object) -> ams.Unprotected:
        if b"poison" in data:
            raise ZeroDivisionError("a bug")
        return genuine(self, queue, data, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Protector, "unprotect", buggy)


def test_one_poison_message_does_not_block_those_behind_it(
    connections: Factory, pki: Pki, policies: ams.PolicyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = ProtectedQueueManager(connections("alice"), pki.keystore("alice"), policies)
    out = alice.open("P.INT", output=True)
    for body in (b"first", b"poison", b"second"):
        out.put(MQMD(), body)
    _poison_bug(monkeypatch)
    bob = ProtectedQueueManager(connections("bob"), pki.keystore("bob"), policies)
    queue = bob.open("P.INT", input=True)
    delivered, failures = [], []
    for _ in range(12):
        try:
            delivered.append(queue.get().body)
        except ams.mq.NoMessageAvailable:
            break
        except ams.AmsError as error:
            failures.append(type(error).__name__)
    assert delivered == [b"first", b"second"]
    # five attempts backed out (BOTHRESH 5 by default), then moved aside
    assert failures == ["InternalError"] * 5 + ["PoisonMessageError"]
    spy = connections("spy")
    assert spy.depth("P.INT") == 0 and spy.depth(ERROR_QUEUE) == 1
    moved = spy.open(ERROR_QUEUE, input=True).get()
    order = "<i" if moved.md.encoding == 546 else ">i"
    assert moved.body[:4] == b"DLH " and struct.unpack(order, moved.body[8:12]) == (2362,)
    assert b"poison" in moved.body  # the message itself, unchanged behind the MQDLH


def test_a_bug_backs_out_and_says_so(
    connections: Factory, pki: Pki, policies: ams.PolicyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ProtectedQueueManager(connections("alice"), pki.keystore("alice"), policies).open("P.INT", output=True).put(
        MQMD(), b"poison"
    )
    _poison_bug(monkeypatch)
    bob = ProtectedQueueManager(connections("bob"), pki.keystore("bob"), policies)
    with pytest.raises(ams.errors.InternalError) as caught:
        bob.open("P.INT", input=True).get(syncpoint=True)
    assert "a bug in ams" in caught.value.message and "backed out" in caught.value.__notes__[0]
    assert "ZeroDivisionError" in caught.value.message and "a bug\n" not in str(caught.value)
    assert connections("spy").depth("P.INT") == 1  # back on its queue, even under the caller's syncpoint


def test_a_refused_error_queue_put_leaves_the_message_on_its_queue(
    connections: Factory,
    pki: Pki,
    policies: ams.PolicyStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Real MQ needs +put on SYSTEM.PROTECTION.ERROR.QUEUE: when it is refused (2035), the
    refused message must not vanish."""
    alice = ProtectedQueueManager(connections("alice"), pki.keystore("alice"), policies).open("P.PRIV", output=True)
    done = alice.put(MQMD(), b"not for carol")
    carol = ProtectedQueueManager(connections("carol"), pki.keystore("carol"), policies)

    def refused(*args: object, **kwargs: object) -> MQMD:
        raise MQError("MQPUT1 to SYSTEM.PROTECTION.ERROR.QUEUE failed: not authorised", 2035)

    monkeypatch.setattr(carol, "move_to_error_queue", refused)
    for syncpoint in (False, True):
        with pytest.raises(MQError) as caught, caplog.at_level("INFO", logger="ams"):
            carol.open("P.PRIV", input=True).get(syncpoint=syncpoint)
        assert caught.value.reason == 2035 and "backed out" in caught.value.__notes__[-1]
        assert connections("spy").depth("P.PRIV") == 1
        # the operator's log line names the message that was backed out, at ERROR
        (line,) = [r for r in caplog.records if "was backed out" in r.getMessage()]
        assert line.levelno == logging.ERROR and done.msg_id.hex() in line.getMessage()
        caplog.clear()


def test_a_get_without_syncpoint_refuses_to_commit_other_work(
    connections: Factory, pki: Pki, policies: ams.PolicyStore
) -> None:
    bob = ProtectedQueueManager(connections("bob"), pki.keystore("bob"), policies)
    bob.open("P.INT", output=True).put(MQMD(), b"pending", syncpoint=True)
    with pytest.raises(ams.UsageError, match="uncommitted work"):
        bob.open("P.INT", input=True).get()
    bob.backout()
    assert connections("spy").depth("P.INT") == 0  # the pending put was never committed by a get


def test_a_backout_queue_takes_the_poison_as_it_is(
    tmp_path: Path, pki: Pki, policies: ams.PolicyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = EmbeddedQueueManager(tmp_path / "qm.sqlite", name="QM", create=True)
    manager.define_queue("P.INT", backout_threshold=2, backout_queue="P.INT.BACKOUT")
    manager.define_queue("P.INT.BACKOUT")
    ProtectedQueueManager(manager.connect("alice"), pki.keystore("alice"), policies).open("P.INT", output=True).put(
        MQMD(correl_id=b"K" * 24), b"poison"
    )
    raw = manager.connect("spy").open("P.INT", browse=True).browse_first()
    _poison_bug(monkeypatch)
    queue = ProtectedQueueManager(manager.connect("bob"), pki.keystore("bob"), policies).open("P.INT", input=True)
    for _ in range(2):
        with pytest.raises(ams.errors.InternalError):
            queue.get()
    with pytest.raises(PoisonMessageError, match=r"P\.INT\.BACKOUT"):
        queue.get()
    spy = manager.connect("spy2")
    moved = spy.open("P.INT.BACKOUT", input=True).get()
    assert (moved.body, moved.md.correl_id, moved.md.format) == (raw.body, b"K" * 24, raw.md.format)
    assert spy.depth("P.INT") == 0 and spy.depth(ERROR_QUEUE) == 0


def test_the_proxy_carries_on_past_a_poison_message(
    connections: Factory, pki: Pki, policies: ams.PolicyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = ProtectedQueueManager(connections("alice"), pki.keystore("alice"), policies).open("P.PRIV", output=True)
    for body in (b"order 1", b"order 2 (poison on the way out)", b"order 3"):
        out.put(MQMD(), body)
    gateway = ProtectedQueueManager(connections("bob"), pki.keystore("bob"), policies)
    proxy = ReprotectionProxy(gateway, "P.PRIV", gateway, "P.OUT")
    genuine = Protector.protect

    def buggy(self: Protector, queue: str, body: bytes, *args: object, **kwargs: object) -> ams.Protected:
        if b"poison" in bytes(body):
            raise KeyError("a bug on the way out")
        return genuine(self, queue, body, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Protector, "protect", buggy)
    stats = proxy.run(limit=20)
    assert (stats.moved, stats.failed, stats.poison, stats.refused) == (2, 5, 1, 0)
    spy = connections("spy")
    assert spy.depth("P.PRIV") == 0 and spy.depth("P.OUT") == 2 and spy.depth(ERROR_QUEUE) == 1


@pytest.fixture
def world(tmp_path: Path) -> Path:
    assert main(["pki", "init", str(tmp_path / "pki"), "--users", "alice,bob,carol"]) == 0
    assert main(["qm", "create", str(tmp_path / "qm.sqlite")]) == 0
    assert main(["qm", "define", "DEMO.INTEGRITY", "DEMO.PRIVACY", "--qm", str(tmp_path / "qm.sqlite")]) == 0
    return tmp_path


def _as(world: Path, user: str, *args: str, policies: bool = True) -> list[str]:
    options = ["--qm", str(world / "qm.sqlite"), "--keystore-conf", str(world / "pki" / user / "keystore.conf")]
    return [*args, *options, *(["--policies", str(POLICIES)] if policies else [])]


def test_ams_get_reads_past_a_poison_message(
    world: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"first\npoison\nsecond\n")))
    assert main(_as(world, "alice", "put", "DEMO.INTEGRITY")) == 0
    _poison_bug(monkeypatch)
    assert main(_as(world, "bob", "get", "DEMO.INTEGRITY")) == 3
    captured = capsysbinary.readouterr()
    assert captured.out == b"first\nsecond\n"
    assert captured.err.count(b"InternalError") + captured.err.count(b"[internal]") >= 5
    assert b"backout threshold" in captured.err and b"Traceback" not in captured.err
    spy = EmbeddedQueueManager(world / "qm.sqlite", name="QM", create=True).connect("spy")
    assert spy.depth("DEMO.INTEGRITY") == 0 and spy.depth(ERROR_QUEUE) == 1


def test_error_queue_commands_show_a_malformed_entry_and_carry_on(
    world: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spy = EmbeddedQueueManager(world / "qm.sqlite", name="QM", create=True).connect("attacker")
    spy.put1(ERROR_QUEUE, MQMD(format="MQDEAD  "), b"not a dead-letter header at all")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"for bob only\n")))
    assert main(_as(world, "alice", "put", "DEMO.PRIVACY")) == 0
    assert main(_as(world, "carol", "get", "DEMO.PRIVACY")) == 3  # carol is not a recipient: moved
    capsys.readouterr()
    assert main(_as(world, "carol", "errors", "list", "--json")) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["index"], r["qop"]) for r in rows] == [(1, "malformed"), (2, "PRIVACY")]
    assert main(_as(world, "carol", "errors", "show", "1", "--json")) == 0
    assert "MQDLH" in json.loads(capsys.readouterr().out)["dlh"]["malformed"]
    assert main(_as(world, "carol", "errors", "explain", "1", "--json")) == 0
    assert "malformed" in json.loads(capsys.readouterr().out)
    # without --policies (the queue manager's policy queue is empty): judged by its PDMQ header
    assert main(_as(world, "carol", "errors", "explain", "2", "--json", policies=False)) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"].startswith("NotARecipientError") and "PRIVACY" in report["policy"]
    assert main(_as(world, "bob", "errors", "explain", "2", "--json", policies=False)) == 0
    assert json.loads(capsys.readouterr().out)["verdict"].startswith("this identity can read it now (PRIVACY")
