"""What the pymqi/ibmmq adapter asks the MQ client for, read from the pymqi stand-in's call log:
the options that keep a message and its headers whole, and the client's own AMS switched off."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ams
from ams.mq import MQMD, EmbeddedQueueManager, connect
from tests import fake_ibmmq, fake_pymqi
from tests.mq_transports import define_test_queues

URL = "mq://127.0.0.1(1414)/TESTQM?channel=TEST.SVRCONN"


@pytest.fixture(params=["pymqi", "ibmmq"])
def client(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The stand-in installed as pymqi, or ibmmq's (tests/fake_ibmmq.py: the adapter prefers it when both exist)."""
    fake_pymqi.MANAGERS["TESTQM"] = define_test_queues(
        EmbeddedQueueManager(tmp_path / "qm.sqlite", name="TESTQM", create=True)
    )
    fake_pymqi.CALLS.clear()
    fake_pymqi.forget_connections()
    if request.param == "ibmmq":
        monkeypatch.setitem(sys.modules, "ibmmq", fake_ibmmq)
        monkeypatch.setitem(sys.modules, "pymqi", None)
    else:
        monkeypatch.setitem(sys.modules, "pymqi", fake_pymqi)
        monkeypatch.setitem(sys.modules, "ibmmq", None)
    yield request.param
    fake_pymqi.CALLS.clear()


def calls(kind: str) -> list[dict[str, Any]]:
    return [arguments for name, arguments in fake_pymqi.CALLS if name == kind]


def test_connect_switches_the_clients_own_ams_off_and_names_the_application(
    client: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MQS_DISABLE_ALL_INTERCEPT", raising=False)
    connect(URL, appl_name="payments-gateway").close()
    (made,) = calls("connect")
    assert made["intercept"] == "TRUE" and made["appl"] == "payments-gateway"
    assert (made["channel"], made["conn_info"]) == ("TEST.SVRCONN", "127.0.0.1(1414)")
    assert made["disconnect_on_exit"] is False  # the library's own disconnect (__del__, atexit) would commit
    import os

    assert "MQS_DISABLE_ALL_INTERCEPT" not in os.environ  # set for the connect only


def test_a_user_without_a_password_is_a_usage_error(client: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMS_MQ_USER", "app")
    monkeypatch.delenv("AMS_MQ_PASSWORD", raising=False)
    with pytest.raises(ams.UsageError, match="AMS_MQ_PASSWORD"):
        connect(URL)


def test_every_get_forces_mqrfh2_and_matches_with_a_version_2_gmo(client: str) -> None:
    connection = connect(URL)
    first = connection.put1("T.MSGID", MQMD(), b"a")
    connection.put1("T.MSGID", MQMD(), b"b")
    handle = connection.open("T.MSGID", input=True, browse=True)
    fake_pymqi.CALLS.clear()
    handle.browse_first()
    handle.get(msg_id=first.msg_id)
    handle.get()
    gets = calls("get")
    assert len(gets) == 3 and all(g["version"] >= 2 and g["force_rfh2"] for g in gets)
    assert [g["match"] for g in gets] == [0, 1, 0] and all(g["max_length"] == 64 * 1024 for g in gets)
    opened = calls("open")
    assert opened == [] or all(o["options"] & fake_pymqi.CMQC.MQOO_INPUT_AS_Q_DEF == 0 for o in opened)
    connection.close()


def test_a_long_message_is_got_again_by_its_msgid(client: str) -> None:
    connection = connect(URL)
    done = connection.put1("T.BIG", MQMD(), b"L" * 100_000)
    fake_pymqi.CALLS.clear()
    assert connection.open("T.BIG", input=True).get().body == b"L" * 100_000
    first, again = calls("get")
    assert (first["max_length"], first["match"]) == (64 * 1024, 0)
    assert (again["max_length"], again["match"], again["msg_id"]) == (100_000, 1, done.msg_id)
    connection.close()


def test_a_long_message_another_reader_took_is_not_a_failure(client: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the 2080 and the get by MsgId, a second reader takes the message: the first reader
    gets the next one, and nothing is lost or read twice."""
    connection, other = connect(URL, appl_name="first"), connect(URL, appl_name="second")
    for body in (b"1" * 70_000, b"2" * 10):
        connection.put1("T.RACE", MQMD(), body)
    genuine = fake_pymqi.Queue.get
    raced: list[bytes] = []
    racing_now: list[bool] = []

    def racing(self: fake_pymqi.Queue, max_length: int | None, md: Any, gmo: Any) -> bytes:
        try:
            return genuine(self, max_length, md, gmo)
        except fake_pymqi.MQMIError as error:
            if error.reason == 2080 and not racing_now:
                racing_now.append(True)  # the second reader's own gets run undisturbed
                raced.append(other.open("T.RACE", input=True).get().body)
            raise

    monkeypatch.setattr(fake_pymqi.Queue, "get", racing)
    assert connection.open("T.RACE", input=True).get().body == b"2" * 10
    assert raced == [b"1" * 70_000]
    connection.close()
    other.close()


def test_client_failures_are_mq_errors_with_their_reason(client: str) -> None:
    connection = connect(URL)
    connection.close()
    with pytest.raises(ams.mq.MQError):
        connection.commit()
    with pytest.raises(ams.mq.MQError) as caught:
        connect("mq://127.0.0.1(1414)/NOSUCHQM?channel=TEST.SVRCONN")
    assert caught.value.reason == 2059 and "MQRC_Q_MGR_NOT_AVAILABLE" in str(caught.value)


def test_a_message_over_the_channels_maxmsgl_is_refused(client: str) -> None:
    connection = connect(URL)
    with pytest.raises(ams.mq.MQError) as caught:
        connection.put1("T.BIG", MQMD(), bytes(fake_pymqi.CHANNEL_MAX_MESSAGE_LENGTH + 1))
    assert caught.value.reason == 2010 and "MAXMSGL" in str(caught.value)
    connection.close()


def test_close_never_disconnects_when_the_backout_failed(client: str) -> None:
    """MQDISC commits: if MQBACK fails on a live connection, close must not disconnect, and the
    client's own clean-up must not either."""
    import gc

    connection = connect(URL)
    connection.put1("T.UOW", MQMD(), b"must not be committed", syncpoint=True)

    def refused() -> None:
        raise fake_pymqi.MQMIError(2, 2219)  # MQRC_CALL_IN_PROGRESS

    connection._qmgr.backout = refused  # type: ignore[attr-defined]  # the client object itself: nothing else holds it
    with pytest.raises(ams.mq.MQError) as caught:
        connection.close()
    assert caught.value.reason == 2219 and "left open" in caught.value.__notes__[0]
    del connection, caught
    gc.collect()  # the client's QueueManager.__del__ runs: it must not MQDISC (which commits)
    spy = fake_pymqi.MANAGERS["TESTQM"].connect("spy")
    assert spy.depth("T.UOW") in (0, 1)  # CURDEPTH counts the pending put...
    with pytest.raises(ams.mq.NoMessageAvailable):  # ...which was never committed
        spy.open("T.UOW", input=True).get()
