"""`ams put`, `ams get`, `ams browse` and `ams errors` on an embedded queue manager file."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from ams.cli.main import main
from ams.mq import MQMD, EmbeddedQueueManager, MQError
from ams.mq.protected import ERROR_QUEUE


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mqcli")
    assert main(["pki", "init", str(root / "pki"), "--users", "alice,bob,carol"]) == 0
    define(root / "qm.sqlite")
    return root


DEMO_QUEUES = ("DEMO.INTEGRITY", "DEMO.PRIVACY", "DEMO.CONFIDENTIAL")


def define(qm: Path) -> None:
    """The queue manager and the queues the tests use, made as an administrator would with `ams qm create`
    and `ams qm define`."""
    assert main(["qm", "create", str(qm)]) == 0
    assert main(["qm", "define", *DEMO_QUEUES, "--qm", str(qm)]) == 0


def as_user(world: Path, user: str, *args: str) -> list[str]:
    return [
        *args,
        "--qm",
        str(world / "qm.sqlite"),
        "--keystore-conf",
        str(world / "pki" / user / "keystore.conf"),
        "--policies",
        str(Path(__file__).parents[1] / "policies"),
    ]


def feed(monkeypatch: pytest.MonkeyPatch, text: bytes) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(text)))


def test_put_get_browse_and_errors(
    world: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    feed(monkeypatch, b"first line\nsecond line\n\nthird line\n")
    assert main(as_user(world, "alice", "put", "DEMO.PRIVACY")) == 0
    assert b"put 3 message(s)" in capsysbinary.readouterr().err
    assert main(as_user(world, "bob", "browse", "DEMO.PRIVACY")) == 0
    assert capsysbinary.readouterr().out == b"first line\nsecond line\nthird line\n"
    assert main(as_user(world, "bob", "get", "DEMO.PRIVACY")) == 0
    assert capsysbinary.readouterr().out == b"first line\nsecond line\nthird line\n"

    feed(monkeypatch, b"secret for bob\n")
    main(as_user(world, "alice", "put", "DEMO.PRIVACY", "--one-shot"))
    capsysbinary.readouterr()
    assert main(as_user(world, "carol", "get", "DEMO.PRIVACY")) == 3
    err = capsysbinary.readouterr().err.decode()
    assert "MQRC 2063" in err and "not_a_recipient" in err and ERROR_QUEUE in err

    assert main(as_user(world, "carol", "errors", "list", "--json")) == 0
    rows = json.loads(capsysbinary.readouterr().out)
    assert [(r["index"], r["queue"], r["qop"], r["reason"]) for r in rows] == [(1, "DEMO.PRIVACY", "PRIVACY", 2063)]
    assert main(as_user(world, "carol", "errors", "show", "1", "--json")) == 0
    shown = json.loads(capsysbinary.readouterr().out)
    assert shown["dlh"]["dest_q_name"] == "DEMO.PRIVACY" and shown["dlh"]["put_appl_name"] == "ams"
    assert main(as_user(world, "carol", "errors", "explain", "1", "--json")) == 0
    explained = json.loads(capsysbinary.readouterr().out)
    assert explained["identity"] == "CN=carol,O=AMS,C=GB"
    assert "NotARecipientError" in explained["verdict"] and "CN=bob,O=AMS,C=GB" in explained["verdict"]
    assert explained["message"]["recipients"][0]["dn"] == "CN=bob,O=AMS,C=GB"

    assert main(as_user(world, "bob", "errors", "explain", "1", "--requeue", "--yes")) == 0
    assert "can read it now" in capsysbinary.readouterr().out.decode()
    qm = EmbeddedQueueManager(world / "qm.sqlite", create=True).connect()
    assert qm.depth(ERROR_QUEUE) == 0 and qm.depth("DEMO.PRIVACY") == 1
    assert main(as_user(world, "bob", "get", "DEMO.PRIVACY")) == 0
    assert capsysbinary.readouterr().out == b"secret for bob\n"


def test_errors_remove_and_missing_index(world: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    qm = EmbeddedQueueManager(world / "qm.sqlite", create=True).connect()
    qm.put1("DEMO.INTEGRITY", MQMD(), b"not protected")  # a sender without AMS
    assert main(as_user(world, "bob", "get", "DEMO.INTEGRITY")) == 3
    capsysbinary.readouterr()
    assert qm.depth(ERROR_QUEUE) == 1
    assert main(as_user(world, "bob", "errors", "show", "7")) == 2
    assert b"no message 7" in capsysbinary.readouterr().err
    assert main(as_user(world, "bob", "errors", "show", "1", "--remove")) == 0
    assert qm.depth(ERROR_QUEUE) == 0


def test_get_waits_and_put_reads_files(world: Path, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    (tmp_path / "a.bin").write_bytes(b"\x00binary\xff")
    assert main(as_user(world, "alice", "put", "DEMO.CONFIDENTIAL", "--file", str(tmp_path / "a.bin"))) == 0
    assert main(as_user(world, "bob", "get", "DEMO.CONFIDENTIAL", "--wait", "0.1")) == 0
    assert capsysbinary.readouterr().out == b"\x00binary\xff\n"


def test_policies_applied_to_the_queue_manager_serve_put_and_get(
    tmp_path: Path, world: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    qm = str(tmp_path / "own.sqlite")
    define(Path(qm))
    policies = str(Path(__file__).parents[1] / "policies")
    assert main(["policy", "apply", "--policies", policies, "--qm", qm]) == 0
    assert b"wrote 6 policies" in capsysbinary.readouterr().out
    keystores = {user: str(world / "pki" / user / "keystore.conf") for user in ("alice", "bob")}
    feed(monkeypatch, b"policy from the queue manager\n")
    assert main(["put", "DEMO.PRIVACY", "--qm", qm, "--keystore-conf", keystores["alice"]]) == 0
    raw = EmbeddedQueueManager(qm, create=True).connect().open("DEMO.PRIVACY", browse=True).browse_first()
    assert raw.body[:4] == b"PDMQ"  # protected by the policy read from SYSTEM.PROTECTION.POLICY.QUEUE
    assert main(["get", "DEMO.PRIVACY", "--qm", qm, "--keystore-conf", keystores["bob"]]) == 0
    assert capsysbinary.readouterr().out == b"policy from the queue manager\n"
    assert main(["policy", "apply", "--policies", policies]) == 2


def test_proxy_command(
    tmp_path: Path, world: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    define(tmp_path / "proxy.sqlite")
    qm = ["--qm", str(tmp_path / "proxy.sqlite"), "--policies", str(Path(__file__).parents[1] / "policies")]
    feed(monkeypatch, b"one\ntwo\n")
    main(["put", "DEMO.PRIVACY", *qm, "--keystore-conf", str(world / "pki" / "alice" / "keystore.conf")])
    bob = ["--keystore-conf", str(world / "pki" / "bob" / "keystore.conf")]
    assert main(["proxy", "--from", "DEMO.PRIVACY", "--to", "DEMO.CONFIDENTIAL", *qm, *bob]) == 0
    assert b"moved 2 message(s) from DEMO.PRIVACY to DEMO.CONFIDENTIAL, refused 0" in capsysbinary.readouterr().err
    assert main(["get", "DEMO.CONFIDENTIAL", *qm, *bob]) == 0
    assert capsysbinary.readouterr().out == b"one\ntwo\n"


def test_qm_commands_define_show_restart_and_deny(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    qm = ["--qm", str(tmp_path / "admin.sqlite")]
    assert main(["qm", "create", *qm]) == 0
    assert main(["qm", "define", "APP.Q", "--bothresh", "3", "--boqname", "APP.BOQ", "--propctl", "none", *qm]) == 0
    assert main(["qm", "define", "APP.BOQ", "--defpsist", "yes", *qm]) == 0
    assert main(["qm", "alias", "APP.ALIAS", "APP.Q", *qm]) == 0
    capsys.readouterr()
    assert main(["qm", "show", "--mqsc", *qm]) == 0
    shown = capsys.readouterr().out
    assert "DEFINE QLOCAL('APP.Q') BOTHRESH(3) BOQNAME('APP.BOQ') PROPCTL(NONE) REPLACE" in shown
    assert "DEFINE QALIAS('APP.ALIAS') TARGET('APP.Q') REPLACE" in shown
    assert "DEFINE QLOCAL('SYSTEM.PROTECTION.ERROR.QUEUE') DEFPSIST(YES) REPLACE" in shown
    assert main(["qm", "show", "NOT.THERE", *qm]) == 1
    assert "ams qm define NOT.THERE" in capsys.readouterr().out

    manager = EmbeddedQueueManager(tmp_path / "admin.sqlite", create=True)
    connection = manager.connect("app")
    connection.put1("APP.ALIAS", MQMD(), b"non-persistent")
    connection.put1("APP.BOQ", MQMD(), b"persistent by the queue's default")
    assert main(["qm", "show", "APP.Q", *qm]) == 0
    assert "CURDEPTH(1)" in capsys.readouterr().out
    assert main(["qm", "restart", *qm]) == 0
    assert "1 non-persistent message(s) discarded" in capsys.readouterr().out
    with pytest.raises(MQError) as broken:  # a restart breaks every connection
        connection.put1("APP.Q", MQMD(), b"x")
    assert broken.value.reason == 2009
    connection = manager.connect("app again")
    assert connection.depth("APP.Q") == 0 and connection.depth("APP.BOQ") == 1

    assert main(["qm", "deny", "APP.Q", "put", *qm]) == 0
    with pytest.raises(MQError) as caught:
        connection.put1("APP.Q", MQMD(), b"x")
    assert caught.value.reason == 2035 and "setmqaut" in str(caught.value)
    assert main(["qm", "deny", "APP.Q", "put", "--allow", *qm]) == 0
    connection.put1("APP.Q", MQMD(), b"x")
    assert main(["qm", "define", "BAD.Q", "--defprty", "12", *qm]) == 2
    assert "DEFPRTY from 0 to 9" in capsys.readouterr().err


def test_qm_commands_print_mqsc_for_ibm_mq_and_refuse_to_administer_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["qm", "define", "APP.Q", "--noshare", "--maxmsgl", "1048576", "--mqsc"]) == 0
    assert capsys.readouterr().out == "DEFINE QLOCAL('APP.Q') MAXMSGL(1048576) NOSHARE REPLACE\n"
    assert main(["qm", "define", "APP.Q", "--qm", "mq://host(1414)/QM1?channel=APP.SVRCONN"]) == 2
    assert "runmqsc" in capsys.readouterr().err
    assert main(["qm", "authorities", "--principal", "app", "-m", "QM1", "APP.Q"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "setmqaut -m QM1 -t queue -n SYSTEM.PROTECTION.ERROR.QUEUE -p app +put +inq" in lines
    assert "setmqaut -m QM1 -t queue -n SYSTEM.PROTECTION.POLICY.QUEUE -p app +browse +inq" in lines
    assert "setmqaut -m QM1 -t queue -n APP.Q -p app +put +get +browse +inq" in lines
    assert main(["qm", "authorities", "--principal", "gw", "-m", "QM2", "IN.Q", "--ledger", "AMS.PROXY.LEDGER"]) == 0
    assert "setmqaut -m QM2 -t queue -n AMS.PROXY.LEDGER -p gw +put +browse +inq" in capsys.readouterr().out
    assert main(["qm", "authorities", "--principal", "app", "--mqsc", "--writes-policies"]) == 0
    assert "PROFILE('SYSTEM.PROTECTION.POLICY.QUEUE') OBJTYPE(QUEUE) PRINCIPAL('app') AUTHADD(BROWSE,INQ,GET,PUT)" in (
        capsys.readouterr().out
    )
    assert main(["qm", "authorities", "--principal", "app"]) == 2
    policies = str(Path(__file__).parents[1] / "policies")
    assert main(["policy", "apply", "--policies", policies, "--qm", "mq://host(1414)/QM1?channel=C"]) == 2
    assert "SET POLICY" in capsys.readouterr().err
