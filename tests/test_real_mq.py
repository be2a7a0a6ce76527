"""The cases only a real IBM MQ queue manager can show (issue 18): skipped unless AMS_TEST_MQ names
one, and those that change the queue manager (runmqsc, a restart) unless AMS_MQ_CONTAINER names
the container it runs in. scripts/test-real-mq sets both, defines the queues and authorities, and
says how to start IBM's developer container.

Each test that alters the queue manager puts it back in a ``finally``, so that a failure leaves
the next test what scripts/test-real-mq defined."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

import ams
import ams.errors
import ams.mq
from ams.hazmat.pdmq import looks_protected
from ams.inspect import inspect_message
from ams.mq import MQMD, MQError, NoMessageAvailable, ProtectedQueueManager, connect
from ams.mq.ledger import DeliveryLedger
from ams.mq.properties import read_properties
from ams.mq.protected import ERROR_QUEUE, policies_from_queue_manager
from ams.mq.proxy import ProxyEvent, ReprotectionProxy
from ams.pki import Issued
from tests.conftest import Pki, store
from tests.example_people import NAMES, POLICIES, keystore, make_people
from tests.mq_transports import Factory, clear_test_queues
from tests.test_mq_rfh2_render import RFH2, rfh2

TARGET = os.environ.get("AMS_TEST_MQ", "")
CONTAINER = os.environ.get("AMS_MQ_CONTAINER", "")
USER = os.environ.get("AMS_MQ_USER", "app")
_URL = re.compile(r"^mq://[^/]+/(?P<qmgr>[^?]+)\?(?:.*&)?channel=(?P<channel>[^&]+)")

pytestmark = pytest.mark.skipif(not TARGET, reason="no IBM MQ here: scripts/test-real-mq sets AMS_TEST_MQ")


@pytest.fixture(scope="module")
def people() -> dict[str, Issued]:
    return make_people()


@pytest.fixture
def real() -> Iterator[Factory]:
    """Connections to the IBM MQ queue manager, its test queues emptied first."""
    clear_test_queues(TARGET)
    factory = Factory("ibm-mq", lambda appl: connect(TARGET, appl_name=appl), None)
    yield factory
    factory.close_all()


def _names() -> tuple[str, str]:
    found = _URL.match(TARGET)
    assert found, f"AMS_TEST_MQ is mq://host(port)/QMGR?channel=CHANNEL (found {TARGET!r})"
    return found["qmgr"], found["channel"]


def mqsc(*commands: str) -> str:
    """Run MQSC commands in the container with runmqsc; any that fails fails the test, loudly."""
    if not CONTAINER or shutil.which("docker") is None:
        pytest.skip("changes the queue manager: set AMS_MQ_CONTAINER to its container (scripts/test-real-mq does)")
    qmgr, _ = _names()
    done = subprocess.run(
        ["docker", "exec", "-i", CONTAINER, "runmqsc", qmgr],
        input="\n".join(commands) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:  # runmqsc: 10 when a command failed, 20 when it could not run
        pytest.fail(f"runmqsc {qmgr} in {CONTAINER} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout


def _docker(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *arguments], capture_output=True, text=True, timeout=300, check=False)


def _protected(real: Factory, people: dict[str, Issued], name: str) -> ProtectedQueueManager:
    return ProtectedQueueManager(real(name), keystore(people, name), POLICIES)


# -- no change to the queue manager ----------------------------------------------------------------


def test_a_route_from_an_alias_source_moves_its_messages(real: Factory, people: dict[str, Issued]) -> None:
    """MQINQ of BOTHRESH on an alias is 2068 on IBM MQ: read at open from the base queue, so the
    route moves; a poison message goes to the base queue's BOQNAME after BOTHRESH (2) backouts."""
    out = _protected(real, people, "orders").open("T.ALIAS", output=True)
    for n in range(3):
        out.put(MQMD(), b"order %d" % n)
    gateway = _protected(real, people, "gateway")
    events: list[ProxyEvent] = []
    proxy = ReprotectionProxy(gateway, "T.ALIAS", gateway, "INTERNAL_IN", batch_size=2, on_event=events.append)
    assert proxy.run().moved == 3 and [e.outcome for e in events] == ["moved"] * 3
    reader = _protected(real, people, "alice").open("INTERNAL_IN", input=True)
    assert [reader.get().body for _ in range(3)] == [b"order 0", b"order 1", b"order 2"]
    assert real("spy").depth("T.ALIASED") == 0 == real("spy").depth("T.BOQ")


def test_duplicate_properties_and_the_signer_after_a_real_put_and_get(real: Factory, people: dict[str, Issued]) -> None:
    """What IBM MQ documents, checked on it: of two same-named properties the one closest to the
    head is the property ("MQRFH2 element name conflicts"); the proxy's signer property is there
    once; and every get of a message returns the same bytes, which the ledger's key needs."""
    headers = rfh2(b"<usr><Amount>1</Amount><Amount>2</Amount></usr>", next_format=RFH2.encode())
    headers += rfh2(b"<usr><Amount>3</Amount><Payee>bob</Payee></usr>")
    real("sender").put1("Q", MQMD(format=RFH2), headers + b"pay")
    qm = real("receiver")
    handle = qm.open("Q", input=True)
    first = handle.get(syncpoint=True)
    qm.backout()
    again = handle.get(syncpoint=True)
    qm.commit()
    properties = read_properties(again.md, again.body)
    assert properties.folders["usr"]["Amount"] == "1" and properties.folders["usr"]["Payee"] == "bob"
    assert again.body[properties.payload_offset :] == b"pay" and again.md.backout_count == 1
    assert again.body == first.body  # the ledger keys a redelivery by these bytes
    ledger = DeliveryLedger(real("ledger"), "T.DISC")
    assert ledger.key(first.md.msg_id, first.body) == ledger.key(again.md.msg_id, again.body)
    folders = rfh2(b"<usr><Colour>blue</Colour><Signer>someone</Signer></usr>")
    _protected(real, people, "orders").open("EXTERNAL_IN", output=True).put(MQMD(format=RFH2), folders + b"ok")
    gateway = _protected(real, people, "gateway")
    proxy = ReprotectionProxy(gateway, "EXTERNAL_IN", gateway, "INTERNAL_IN", signer_property="AMSOriginalSigner")
    assert proxy.move_one() and proxy.stats.moved == 1
    got = _protected(real, people, "alice").open("INTERNAL_IN", input=True).get()
    delivered = read_properties(got.md, got.body)
    assert (
        got.body.count(b"<AMSOriginalSigner") == 1 and delivered.folders["usr"]["AMSOriginalSigner"] == NAMES["orders"]
    )
    assert got.body[delivered.payload_offset :] == b"ok"


# -- changes made with runmqsc in the container, put back afterwards ------------------------------


def test_a_message_over_4_mib_on_a_4_mib_channel(real: Factory) -> None:
    """The SVRCONN's MAXMSGL (4 MiB by default) decides: a 5 MiB put is 2010 and puts nothing;
    with MAXMSGL raised, the same message goes and comes back whole."""
    _, channel = _names()
    big = bytes(range(256)) * (5 * 4096)
    mqsc(f"ALTER CHANNEL('{channel}') CHLTYPE(SVRCONN) MAXMSGL(4194304)")
    try:
        with pytest.raises(MQError) as caught:
            real("small").put1("T.HUGE", MQMD(), big)
        assert caught.value.reason == 2010
        assert real("spy").depth("T.HUGE") == 0
        mqsc(f"ALTER CHANNEL('{channel}') CHLTYPE(SVRCONN) MAXMSGL(10485760)")
        real("large").put1("T.HUGE", MQMD(), big)
        assert real("reader").open("T.HUGE", input=True).get().body == big
    finally:
        mqsc(f"ALTER CHANNEL('{channel}') CHLTYPE(SVRCONN) MAXMSGL(4194304)")


def test_a_batch_over_maxumsgs_is_bounded_by_the_queue_manager(real: Factory, people: dict[str, Issued]) -> None:
    """MAXUMSGS 20: a route configured for batches of 50 inquires it and moves 10 per batch (a get
    and a put each), none backed out; over IBM MQ a batch of 50 would be 2024 every time."""
    mqsc("ALTER QMGR MAXUMSGS(20)")
    try:
        out = _protected(real, people, "orders").open("EXTERNAL_IN", output=True)
        for n in range(30):
            out.put(MQMD(), b"order %d" % n)
        gateway = _protected(real, people, "gateway")
        proxy = ReprotectionProxy(gateway, "EXTERNAL_IN", gateway, "INTERNAL_IN", batch_size=50)
        assert proxy.batch_size == 10
        assert [proxy.move_batch() for _ in range(4)] == [10, 10, 10, 0]
        reader = _protected(real, people, "alice").open("INTERNAL_IN", input=True)
        assert [reader.get().md.backout_count for _ in range(30)] == [0] * 30
    finally:
        mqsc("ALTER QMGR MAXUMSGS(10000)")


def test_2035_on_the_error_queue_put_keeps_the_message(real: Factory, pki: Pki) -> None:
    """Without +put on the error queue, a refused message cannot be moved aside: the get fails with
    2035 and the message stays where it was; with +put back it is moved."""
    policies = store(f'setmqspl -m QM -p P.PRIV -s SHA256 -e AES256 -r "{pki.dn("bob")}"')
    ProtectedQueueManager(real("alice"), pki.keystore("alice"), policies).open("P.PRIV", output=True).put(
        MQMD(), b"not for carol"
    )
    grant = f"PROFILE('{ERROR_QUEUE}') OBJTYPE(QUEUE) PRINCIPAL('{USER}')"
    mqsc(f"SET AUTHREC {grant} AUTHRMV(PUT)", "REFRESH SECURITY TYPE(AUTHSERV)")
    try:
        carol = ProtectedQueueManager(real("carol"), pki.keystore("carol"), policies)
        with pytest.raises(MQError) as caught:
            carol.open("P.PRIV", input=True).get(syncpoint=True)
        assert caught.value.reason == 2035
        assert real("spy").depth("P.PRIV") == 1 and real("spy").depth(ERROR_QUEUE) == 0
    finally:
        mqsc(f"SET AUTHREC {grant} AUTHADD(PUT)", "REFRESH SECURITY TYPE(AUTHSERV)")
    carol = ProtectedQueueManager(real("carol again"), pki.keystore("carol"), policies)
    with pytest.raises(ams.errors.NotARecipientError):
        carol.open("P.PRIV", input=True).get()
    assert real("spy").depth(ERROR_QUEUE) == 1


def test_a_real_setmqspl_policy_is_read_and_protects_once(real: Factory, pki: Pki) -> None:
    """A policy written by IBM's own setmqspl (in the container) is read from the policy queue as
    set, and a message put under it through ams is protected once: one PDMQ header on the queue,
    and the plaintext inside (IBM's client-side AMS, switched off for ams's connections, would
    have wrapped it a second time)."""
    qmgr, _ = _names()
    mqsc("DISPLAY QMGR QMNAME")  # skips without a container
    recipient, signer = pki.dn("bob"), pki.dn("alice")
    made = _docker(
        "exec", CONTAINER, "setmqspl", "-m", qmgr, "-p", "P.PRIV", "-s", "SHA256", "-e", "AES256",
        "-r", recipient, "-a", signer,
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    try:
        found = policies_from_queue_manager(real("admin"))
        policy = found["P.PRIV"]
        assert (policy.signature_algorithm.name, policy.encryption_algorithm.name) == ("SHA256", "AES256")
        assert [str(dn) for dn in policy.recipients] == [recipient] and [str(dn) for dn in policy.signers] == [signer]
        policies = ams.PolicyStore(found.values())
        ProtectedQueueManager(real("alice"), pki.keystore("alice"), policies).open("P.PRIV", output=True).put(
            MQMD(), b"protected once"
        )
        raw = real("spy").open("P.PRIV", input=True, browse=True).browse_first()
        assert looks_protected(raw.body), "the message on the queue carries no PDMQ header"
        report = inspect_message(raw.body, raw.md.format, keystore=pki.keystore("bob"))
        assert report["qop"] == "PRIVACY", report
        got = ProtectedQueueManager(real("bob"), pki.keystore("bob"), policies).open("P.PRIV", input=True).get()
        assert got.body == b"protected once" and not looks_protected(got.body)
    finally:
        removed = _docker("exec", CONTAINER, "setmqspl", "-m", qmgr, "-p", "P.PRIV", "-remove")
        assert removed.returncode == 0, removed.stdout + removed.stderr


def test_a_restart_keeps_persistent_messages_only(real: Factory) -> None:
    """T.PERSIST is DEFPSIST(YES): a message put as the queue's default survives endmqm and strmqm
    (through docker exec); one put through the alias T.ALIAS.PERSIST (DEFPSIST(NO), MQ takes the
    first definition on the path) does not."""
    qmgr, _ = _names()
    mqsc("DISPLAY QMGR QMNAME")  # skips without a container
    app = real("app")
    app.put1("T.PERSIST", MQMD(), b"direct")
    app.put1("T.ALIAS.PERSIST", MQMD(), b"through the alias")
    real.close_all()
    ended = _docker("exec", CONTAINER, "endmqm", "-i", qmgr)
    assert ended.returncode == 0, ended.stdout + ended.stderr
    started = _docker("exec", CONTAINER, "strmqm", qmgr)
    if started.returncode != 0:  # the container's main process ended with the queue manager
        restarted = _docker("start", CONTAINER)
        assert restarted.returncode == 0, started.stdout + started.stderr + restarted.stderr
    reader = _reconnect(real)
    handle = reader.open("T.PERSIST", input=True)
    assert handle.get().body == b"direct"
    with pytest.raises(NoMessageAvailable):
        handle.get()


def _reconnect(real: Factory, seconds: float = 120) -> ams.mq.QueueManager:
    """A connection once the restarted queue manager and its listener take one."""
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(ams.AmsError):  # 2059, 2009, 2538... until the listener is back
            return real("after the restart")
        if time.monotonic() > deadline:
            pytest.fail(f"{TARGET} took no connection {seconds:.0f} s after the restart")
        time.sleep(2)
