"""Request/reply over every transport: gets and browses select by MsgId and CorrelId, put returns
the MsgId, ReplyToQ and ReplyToQMgr pass through, 1,000 requests answered by two responders with
no reply mismatched, `ams get --correl-id`, and the README's worked example runs as pasted."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import ams
from ams.cli.main import main
from ams.mq import MQMD, WAIT_UNLIMITED, EmbeddedQueueManager, NoMessageAvailable, ProtectedQueueManager
from ams.mqconstants import MQMT_REPLY, MQMT_REQUEST
from ams.pki import new_key
from tests.conftest import Pki, store
from tests.mq_transports import Factory

ROOT = Path(__file__).parents[1]
REQUESTS = 1_000


@pytest.fixture(scope="module")
def people(pki: Pki) -> tuple[str, str]:
    """A requester and a responder with 1,024-bit keys (signing 2,000 messages with 2,048-bit ones
    would take most of a test run's budget; the checks are the same)."""
    for name in ("rr-requester", "rr-responder"):
        if name not in pki.users:
            pki.add_user(name, key=new_key(1024))
    return pki.dn("rr-requester"), pki.dn("rr-responder")


@pytest.fixture
def policies(people: tuple[str, str]) -> ams.PolicyStore:
    requester, responder = people
    return store(
        f'setmqspl -m QM -p T.REQUEST -s SHA256 -e AES256 -a "{requester}" -r "{responder}"',
        f'setmqspl -m QM -p T.REPLY -s SHA256 -e AES256 -a "{responder}" -r "{requester}"',
    )


def side(factory: Factory, pki: Pki, name: str, policies: ams.PolicyStore) -> ProtectedQueueManager:
    return ProtectedQueueManager(factory(name), pki.keystore(name), policies)


def test_put_returns_the_msg_id_and_reply_fields_pass_through(
    connections: Factory, pki: Pki, policies: ams.PolicyStore
) -> None:
    requester = side(connections, pki, "rr-requester", policies)
    queue = requester.open("T.REQUEST", output=True)
    given = b"my own id".ljust(24, b"\0")
    md = MQMD(msg_type=MQMT_REQUEST, msg_id=given, reply_to_q="T.REPLY", reply_to_qmgr="OTHERQM")
    assert queue.put(md, b"with an id").msg_id == given  # the MsgId given is the one put
    made = queue.put(MQMD(msg_type=MQMT_REQUEST, reply_to_q="T.REPLY"), b"without").msg_id
    assert any(made) and made != given  # none given: the queue manager made one
    responder = side(connections, pki, "rr-responder", policies).open("T.REQUEST", input=True)
    first = responder.get()
    assert (first.md.msg_id, first.md.msg_type, first.md.reply_to_q, first.md.reply_to_qmgr) == (
        given,
        MQMT_REQUEST,
        "T.REPLY",
        "OTHERQM",
    )
    assert responder.get().md.msg_id == made


def test_get_and_browse_select_by_msg_id_and_correl_id(
    connections: Factory, pki: Pki, policies: ams.PolicyStore
) -> None:
    responder = side(connections, pki, "rr-responder", policies)
    replies = responder.open("T.REPLY", output=True)
    ids = [replies.put(MQMD(correl_id=b"C%d" % n), b"reply %d" % n).msg_id for n in range(4)]
    reader = side(connections, pki, "rr-requester", policies).open("T.REPLY", input=True, browse=True)
    assert reader.browse_first(correl_id=b"C2").body == b"reply 2"  # padded with nulls to 24 bytes
    assert reader.browse_first(msg_id=ids[3]).body == b"reply 3"
    assert reader.browse_first(msg_id=ids[1], correl_id=b"C1").body == b"reply 1"
    with pytest.raises(NoMessageAvailable, match="CorrelId"):  # both must match: its twin
        reader.browse_first(msg_id=ids[1], correl_id=b"C2")
    assert reader.get(correl_id=b"C3", syncpoint=True).body == b"reply 3"
    reader.manager.backout()
    assert reader.get(correl_id=b"C3").md.correl_id == b"C3".ljust(24, b"\0")
    with pytest.raises(NoMessageAvailable, match="CorrelId 4333"):  # got already: nothing else matches
        reader.get(correl_id=b"C3", wait=0.1)
    assert reader.get(correl_id=bytes(24)).body == b"reply 0"  # all nulls (MQCI_NONE) matches any
    with pytest.raises(ams.UsageError, match="at most 24 bytes"):
        reader.get(msg_id=bytes(25))
    assert [reader.get(msg_id=ids[n]).body for n in (2, 1)] == [b"reply 2", b"reply 1"]


def test_a_get_waits_for_its_reply(connections: Factory, pki: Pki, policies: ams.PolicyStore) -> None:
    reader = side(connections, pki, "rr-requester", policies).open("T.REPLY", input=True)
    writer = side(connections, pki, "rr-responder", policies).open("T.REPLY", output=True)
    writer.put(MQMD(correl_id=b"other"), b"not mine")
    timer = threading.Timer(0.3, lambda: writer.put(MQMD(correl_id=b"mine"), b"mine"))
    started = time.monotonic()
    timer.start()
    try:
        assert reader.get(correl_id=b"mine", wait=WAIT_UNLIMITED).body == b"mine"
    finally:
        timer.join()
    assert time.monotonic() - started >= 0.25
    assert reader.get().body == b"not mine"  # left where it was


BATCH = 20  # requests a responder answers in one unit of work (a commit each costs a disk flush in a file)


def _respond(factory: Factory, pki: Pki, policies: ams.PolicyStore, stop: threading.Event, done: list[int]) -> None:
    """A responder: its own connection, made in its own thread; up to BATCH requests got and
    answered in one unit of work, each request's MsgId copied to its reply's CorrelId."""
    me = side(factory, pki, "rr-responder", policies)
    requests = me.open("T.REQUEST", input=True)
    replies: dict[str, ams.mq.ProtectedQueue] = {}
    try:
        while not stop.is_set():
            for count in range(BATCH):
                try:
                    request = requests.get(wait=0.2 if count == 0 else 0, syncpoint=True)
                except NoMessageAvailable:
                    break
                target = request.md.reply_to_q
                queue = replies.get(target) or replies.setdefault(target, me.open(target, output=True))
                reply = MQMD(msg_type=MQMT_REPLY, correl_id=request.md.msg_id)
                queue.put(reply, b"answer to " + request.body, syncpoint=True)
                done.append(1)
            me.commit()
    finally:
        me.close()


def test_a_thousand_requests_two_responders_no_reply_mismatched(
    connections: Factory, pki: Pki, policies: ams.PolicyStore
) -> None:
    stop = threading.Event()
    counts: list[list[int]] = [[], []]
    failures: list[BaseException] = []

    def run(done: list[int]) -> None:
        try:
            _respond(connections, pki, policies, stop, done)
        except BaseException as error:  # reported below: a thread's exception is not the test's
            failures.append(error)

    responders = [threading.Thread(target=run, args=(count,)) for count in counts]
    for thread in responders:
        thread.start()
    requester = side(connections, pki, "rr-requester", policies)
    requests, replies = requester.open("T.REQUEST", output=True), requester.open("T.REPLY", input=True)
    try:
        sent = {}
        for n in range(REQUESTS):
            ask = MQMD(msg_type=MQMT_REQUEST, reply_to_q="T.REPLY")
            sent[requests.put(ask, b"request %d" % n, syncpoint=True).msg_id] = n
            if n % 100 == 99:
                requester.commit()
        for msg_id, n in reversed(sent.items()):  # the last first: each reply found by its CorrelId
            assert not failures, failures
            reply = replies.get(correl_id=msg_id, wait=30, syncpoint=True)
            assert (reply.body, reply.md.correl_id, reply.md.msg_type) == (
                b"answer to request %d" % n,
                msg_id,
                MQMT_REPLY,
            )
            assert reply.signer is not None and reply.signer.subject == pki.issued("rr-responder").certificate.subject
            if n % 100 == 0:
                requester.commit()
    finally:
        stop.set()
        for thread in responders:
            thread.join(30)
    assert not failures, failures
    assert len(sent) == REQUESTS and sum(len(c) for c in counts) == REQUESTS
    with pytest.raises(NoMessageAvailable):  # nothing left over, nothing answered twice
        replies.get()


def _readme_example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Request and reply", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None, "README.md: the request/reply section has no Python example"
    return found.group(1)


def test_the_readme_request_reply_example_runs_as_pasted(tmp_path: Path) -> None:
    program = tmp_path / "request_reply.py"
    program.write_text(_readme_example(), encoding="utf-8")
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(program)], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=environment
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"accepted: order {n} from CN=gateway,OU=Integration,O=AMS,C=GB" for n in (2, 1, 0)
    ]


def test_ams_get_selects_by_correl_id_and_msg_id(
    tmp_path: Path, pki: Pki, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    qm = tmp_path / "qm.sqlite"
    manager = EmbeddedQueueManager(qm, create=True)
    manager.define_queue("Q")
    connection = manager.connect("app")
    ids = [connection.put1("Q", MQMD(correl_id=b"\x01\x02%c" % n), b"message %d" % n).msg_id for n in range(3)]
    connection.close()
    policies = tmp_path / "policies"
    policies.mkdir()
    conf = pki.write_keystore(tmp_path / "keys", "bob")
    common = ["--qm", str(qm), "--keystore-conf", str(conf), "--policies", str(policies)]
    assert main(["get", "Q", "--correl-id", "010201", *common]) == 0
    assert capsysbinary.readouterr().out == b"message 1\n"
    assert main(["get", "Q", "--msg-id", ids[2].hex(), *common]) == 0
    assert capsysbinary.readouterr().out == b"message 2\n"
    assert main(["get", "Q", "--correl-id", "0102ff", *common]) == 0  # its twin: nothing matches
    assert capsysbinary.readouterr().out == b""
    with pytest.raises(SystemExit):
        main(["get", "Q", "--correl-id", "not hex", *common])
    with pytest.raises(SystemExit):
        main(["get", "Q", "--msg-id", "00" * 25, *common])
    errors = capsysbinary.readouterr().err.decode()
    assert "expected hexadecimal digits" in errors and "at most 24 bytes (found 25)" in errors
    assert main(["get", "Q", *common]) == 0
    assert capsysbinary.readouterr().out == b"message 0\n"


def test_browse_next_walks_the_messages_with_one_correl_id(
    connections: Factory, pki: Pki, policies: ams.PolicyStore
) -> None:
    writer = side(connections, pki, "rr-responder", policies).open("T.REPLY", output=True)
    for n, correl_id in enumerate((b"A", b"B", b"A", b"B", b"A")):
        writer.put(MQMD(correl_id=correl_id), b"%d" % n)
    reader = side(connections, pki, "rr-requester", policies).open("T.REPLY", browse=True)
    walked = [reader.browse_first(correl_id=b"A").body]
    with pytest.raises(NoMessageAvailable):
        while True:
            walked.append(reader.browse_next(correl_id=b"A").body)
    assert walked == [b"0", b"2", b"4"]
    assert [reader.browse_first(correl_id=b"B").body, reader.browse_next(correl_id=b"B").body] == [b"1", b"3"]
    assert reader.browse_next().body == b"4"  # no selection: the next of any
