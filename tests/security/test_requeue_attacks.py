"""``ams errors explain N --requeue`` as a confused deputy, tried with forged error-queue entries.

Any application that may put to SYSTEM.PROTECTION.ERROR.QUEUE writes every byte of an entry:
the MQDLH's destination, queue manager and put details, the MQMD's CorrelId and ReplyToQ, and
the message. The operator's requeue must not write where the entry says without showing it
and asking: never into a SYSTEM.PROTECTION queue (a forged policy record there changes what
every reader enforces), into other SYSTEM.* queues or queues no policy protects only when the
operator names them, and no string of the entry reaches the terminal unescaped.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import attrs
import pytest

import ams
import ams.errors
from ams.cli.main import main
from ams.mq import MQMD, EmbeddedQueueManager
from ams.mq.dlh import MQDLH
from ams.mq.errors_queue import plan_requeue, read_error_queue, take
from ams.mq.protected import ERROR_QUEUE, POLICY_QUEUE, policies_from_queue_manager, write_policies_to_queue_manager
from ams.policy.pcf import correl_id_for, encode_policy
from tests.conftest import Pki
from tests.mq_transports import Factory

ESCAPE = "\x1b]0;owned\x07\x1b[2J"


@pytest.fixture
def world(tmp_path: Path, pki: Pki) -> Path:
    from ams.pki import write_user_keystore

    write_user_keystore(tmp_path / "bob", "bob", pki.users["bob"], [pki.ca.certificate])
    qm = EmbeddedQueueManager(tmp_path / "qm.sqlite", name="QM", create=True)
    qm.define_queue("PAY.Q")
    qm.define_queue("PLAIN.Q")
    connection = qm.connect("admin")
    policy = ams.Policy.from_setmqspl(f'setmqspl -m QM -p PAY.Q -s SHA256 -a "{pki.dn("bob")}"')
    write_policies_to_queue_manager(connection, {"PAY.Q": policy})
    connection.close()
    return tmp_path


def _forge(world: Path, destination: str, body: bytes, *, appl: str = "payroll", correl_id: bytes = bytes(24)) -> None:
    """What an attacker with +put on the error queue writes."""
    qm = EmbeddedQueueManager(world / "qm.sqlite").connect("attacker")
    md = MQMD(format="MQADMIN ")
    dlh = MQDLH.for_message(2063, destination, "QM", attrs_md(md, appl))
    qm.put1(ERROR_QUEUE, MQMD(format="MQDEAD  ", correl_id=correl_id), dlh.pack(546) + body)
    qm.close()


def attrs_md(md: MQMD, appl: str) -> MQMD:
    return attrs.evolve(md, put_appl_name=appl, put_date="20260101", put_time="12000000")


def _forged_policy() -> bytes:
    """A policy record the attacker wants readers to enforce: PAY.Q with no protection at all."""
    return encode_policy(ams.Policy("PAY.Q"))


def _args(world: Path, *more: str) -> list[str]:
    return ["--qm", str(world / "qm.sqlite"), "--keystore-conf", str(world / "bob" / "keystore.conf"), *more]


def _policy_queue(world: Path) -> tuple[int, dict[str, ams.Policy]]:
    qm = EmbeddedQueueManager(world / "qm.sqlite").connect("check")
    try:
        return qm.depth(POLICY_QUEUE), policies_from_queue_manager(qm)
    finally:
        qm.close()


def _tty(monkeypatch: pytest.MonkeyPatch, answer: str) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal(answer))


def test_a_forged_entry_cannot_be_requeued_into_the_policy_queue_through_the_api(world: Path) -> None:
    _forge(world, POLICY_QUEUE, _forged_policy(), correl_id=correl_id_for("PAY.Q"))
    before = _policy_queue(world)
    qm = EmbeddedQueueManager(world / "qm.sqlite").connect("operator")
    (entry,) = read_error_queue(qm)
    policies = policies_from_queue_manager(qm)
    for to in (None, POLICY_QUEUE, ERROR_QUEUE):  # not even when the operator names it
        with pytest.raises(ams.errors.UsageError, match=r"SYSTEM\.PROTECTION"):
            plan_requeue(entry, policies, to=to)
    _forge(world, "PAY.Q", b"a payment")
    genuine = plan_requeue(read_error_queue(qm)[1], policies)  # the twin: a protected queue is planned
    assert genuine.destination == "PAY.Q"
    with pytest.raises(ams.errors.UsageError, match=r"SYSTEM\.PROTECTION"):  # take checks again
        take(qm, entry, requeue=attrs.evolve(genuine, destination=POLICY_QUEUE))
    qm.close()
    assert _policy_queue(world) == before


def test_a_forged_entry_cannot_be_requeued_into_the_policy_queue_through_the_command(
    world: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _forge(world, POLICY_QUEUE, _forged_policy(), correl_id=correl_id_for("PAY.Q"))
    before = _policy_queue(world)
    _tty(monkeypatch, "y\n")
    for extra in ([], ["--yes"], ["--yes", "--to", POLICY_QUEUE]):
        assert main(["errors", "explain", "1", "--requeue", *extra, *_args(world)]) == 2
        assert "SYSTEM.PROTECTION" in capsys.readouterr().err
    assert _policy_queue(world) == before
    assert _policy_queue(world)[1]["PAY.Q"].signature_algorithm is not ams.SignatureAlgorithm.NONE


def test_other_system_and_unprotected_queues_need_the_operator_to_name_them(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _forge(world, "SYSTEM.ADMIN.COMMAND.QUEUE", b"DISPLAY QMGR")
    _forge(world, "PLAIN.Q", b"hello")
    qm = EmbeddedQueueManager(world / "qm.sqlite").connect("operator")
    first, second = read_error_queue(qm)
    policies = policies_from_queue_manager(qm)
    with pytest.raises(ams.errors.UsageError, match="--to"):
        plan_requeue(first, policies)
    with pytest.raises(ams.errors.UsageError, match="no policy"):
        plan_requeue(second, policies)
    qm.close()
    assert main(["errors", "show", "2", "--requeue", "--yes", *_args(world)]) == 2
    assert "no policy" in capsys.readouterr().err
    assert main(["errors", "show", "2", "--requeue", "--yes", "--to", "PLAIN.Q", *_args(world)]) == 0  # the twin
    assert "PLAIN.Q" in capsys.readouterr().err
    qm = EmbeddedQueueManager(world / "qm.sqlite").connect("check")
    assert qm.depth("PLAIN.Q") == 1 and qm.depth(ERROR_QUEUE) == 1 and qm.depth("SYSTEM.ADMIN.COMMAND.QUEUE") == 0
    qm.close()


def test_requeue_asks_first_and_refuses_without_a_terminal(
    world: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _forge(world, "PAY.Q", b"a payment", correl_id=b"C" * 24)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal
    assert main(["errors", "show", "1", "--requeue", *_args(world)]) == 2
    assert "--yes" in capsys.readouterr().err
    _tty(monkeypatch, "n\n")
    assert main(["errors", "show", "1", "--requeue", *_args(world)]) == 2
    shown = capsys.readouterr()
    assert "PAY.Q" in shown.out + shown.err and ("43" * 24) in shown.out + shown.err  # destination and CorrelId shown
    qm = EmbeddedQueueManager(world / "qm.sqlite").connect("check")
    assert qm.depth("PAY.Q") == 0 and qm.depth(ERROR_QUEUE) == 1
    qm.close()
    _tty(monkeypatch, "y\n")
    assert main(["errors", "show", "1", "--requeue", *_args(world)]) == 0  # the confirmed twin
    capsys.readouterr()
    qm = EmbeddedQueueManager(world / "qm.sqlite").connect("check")
    (handle := qm.open("PAY.Q", input=True))
    message = handle.get()
    assert message.body == b"a payment" and message.md.correl_id == b"C" * 24
    assert qm.depth(ERROR_QUEUE) == 0
    qm.close()


def test_the_original_put_application_and_time_are_kept_or_reported(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """issue 21 item 9: set-all-context where the authority allows it, else the loss is said."""
    _forge(world, "PAY.Q", b"first")
    _forge(world, "PAY.Q", b"second")
    assert main(["errors", "show", "1", "--requeue", "--yes", *_args(world)]) == 0
    capsys.readouterr()
    qm = EmbeddedQueueManager(world / "qm.sqlite")
    connection = qm.connect("check")
    got = connection.open("PAY.Q", input=True).get()
    assert (got.body, got.md.put_appl_name, got.md.put_date, got.md.put_time) == (
        b"first",
        "payroll",
        "20260101",
        "12000000",
    )
    qm.deny("PAY.Q", "setall")
    connection.close()
    assert main(["errors", "show", "1", "--requeue", "--yes", *_args(world)]) == 0
    said = capsys.readouterr().err
    assert "payroll" in said and "20260101" in said and "not kept" in said
    connection = qm.connect("check")
    got = connection.open("PAY.Q", input=True).get()
    assert got.body == b"second" and got.md.put_appl_name == "ams"


def test_strings_from_the_entry_reach_the_terminal_escaped(
    world: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _forge(world, "PAY.Q", b"x", appl=ESCAPE[:28])
    _forge(world, "PAY" + ESCAPE[:20], b"y")
    for command in (["errors", "list"], ["errors", "show", "1"], ["errors", "explain", "1"], ["errors", "show", "2"]):
        assert main([*command, *_args(world)]) == 0, command
        out = capsys.readouterr()
        assert "\x1b" not in out.out + out.err and "\x07" not in out.out + out.err, command
        assert "\\x1b" in out.out, command
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["errors", "show", "2", "--requeue", "--yes", *_args(world)]) == 2  # not a queue name: refused
    out = capsys.readouterr()
    assert "\x1b" not in out.out + out.err and "\\x1b" in out.err
    assert main(["errors", "list", "--json", *_args(world)]) == 0
    assert json.loads(capsys.readouterr().out)[1]["queue"].startswith("PAY\x1b")  # JSON keeps it, escaped by JSON


def test_requeue_keeps_the_put_context_over_every_transport(connections: Factory, pki: Pki) -> None:
    attacker, operator = connections("attacker"), connections("operator")
    dlh = MQDLH.for_message(2063, "PAY.Q", "TESTQM", attrs_md(MQMD(format=" " * 8), "payroll"))
    attacker.put1(ERROR_QUEUE, MQMD(format="MQDEAD  ", correl_id=b"K" * 24), dlh.pack(546) + b"a payment")
    (entry,) = [e for e in read_error_queue(operator) if e.md.correl_id == b"K" * 24]
    policies = {"PAY.Q": ams.Policy.from_setmqspl(f'setmqspl -m QM -p PAY.Q -s SHA256 -a "{pki.dn("bob")}"')}
    with pytest.raises(ams.errors.UsageError):
        plan_requeue(entry, policies, to=POLICY_QUEUE)
    assert take(operator, entry, requeue=plan_requeue(entry, policies)) == []
    got = operator.open("PAY.Q", input=True).get()
    assert (got.body, got.md.correl_id, got.md.put_appl_name) == (b"a payment", b"K" * 24, "payroll")
    assert (got.md.put_date, got.md.put_time) == ("20260101", "12000000")
