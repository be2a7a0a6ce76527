"""The transports the MQ tests run over: the embedded queue manager in memory and in a file, the
pymqi adapter over tests/fake_pymqi.py, and IBM MQ itself when AMS_TEST_MQ names one
(mq://host(port)/QMGR?channel=CHANNEL, with AMS_MQ_USER / AMS_MQ_PASSWORD if the channel needs
them; scripts/test-real-mq defines the queues below there).

``python -m tests.mq_transports`` prints the MQSC that defines the test queues on IBM MQ."""

from __future__ import annotations

import contextlib
import os
import sys
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ams.mq import EmbeddedQueueManager, QueueManager, connect
from ams.mq.mqsc import Authority, define_qalias, define_qlocal, set_authrec
from ams.mq.transport import QueueAttributes

_DEFAULT = QueueAttributes()

# The queues the MQ tests use, with the attributes the tests rely on (MQ's defaults otherwise)
TEST_QUEUES: dict[str, QueueAttributes] = {
    **{
        name: _DEFAULT
        for name in (
            "P.INT", "P.PRIV", "P.CONF", "P.TOL", "P.OUT", "P.MISSING", "P.INT.BACKOUT",
            "PRIV.Q", "CONF.Q", "PAY.Q", "NO.POLICY.Q", "Q",
            "EXTERNAL_IN", "INTERNAL_IN", "PAYMENTS.OUT",
            "DEMO.INTEGRITY", "DEMO.PRIVACY", "DEMO.CONFIDENTIAL",
            "T.CRASH", "T.FIFO", "T.BACKOUT", "T.UOW", "T.MSGID", "T.BROWSE", "T.WAIT", "T.SHARED", "T.MODES",
            "T.DISCARD", "T.BIG", "T.PRIORITY", "T.EXPIRY", "T.DEPTH", "T.DISC", "T.DROP", "T.RACE",
            "T.REQUEST", "T.REPLY",
        )
    },
    "T.PROPS.NONE": QueueAttributes(propctl="NONE"),
    "T.PROPS.COMPAT": QueueAttributes(propctl="COMPAT"),
    "T.EXCL": QueueAttributes(shared_by_default=False),
    "T.NOSHARE": QueueAttributes(shareable=False),
    "T.SMALL": QueueAttributes(max_message_length=1024),
    "T.PERSIST": QueueAttributes(default_persistent=True, default_priority=4),
    "T.FULL": QueueAttributes(max_depth=3),
    "T.PUTINH": QueueAttributes(put_inhibited=True),
    "T.GETINH": QueueAttributes(get_inhibited=True),
    "T.ALIASED": QueueAttributes(backout_threshold=2, backout_queue="T.BOQ"),
    "T.BOQ": _DEFAULT,
    "T.STUCK": _DEFAULT,
    "T.STUCK.B": QueueAttributes(backout_queue="T.BOQ"),
    "T.INQ": _DEFAULT,
    "T.HUGE": QueueAttributes(max_message_length=10 * 1024 * 1024),
}  # fmt: skip
# alias queues (DEFINE QALIAS) and the queues they name
TEST_ALIASES = {"T.ALIAS": "T.ALIASED", "T.ALIAS.STUCK": "T.STUCK", "T.ALIAS.PERSIST": "T.PERSIST"}


def define_test_queues(manager: EmbeddedQueueManager) -> EmbeddedQueueManager:
    """The test queues, with their attributes, on an embedded queue manager."""
    for queue, attributes in TEST_QUEUES.items():
        manager.define_queue(queue, attributes)
    for alias, target in TEST_ALIASES.items():
        manager.define_alias(alias, target)
    return manager


class Factory:
    """Opens another connection (its own unit of work) to one queue manager: ``factory("appl")``.

    ``manager`` is the embedded queue manager underneath (None on IBM MQ), for what only a test can
    switch on there (authorities, restarts). Connections are held weakly, so that a test can drop
    one; those still open at the end are closed."""

    def __init__(self, kind: str, opener: Callable[[str], QueueManager], manager: EmbeddedQueueManager | None) -> None:
        self.kind = kind
        self.manager = manager
        self._opener = opener
        self._opened: list[weakref.ref[QueueManager]] = []

    def __call__(self, appl: str) -> QueueManager:
        connection = self._opener(appl)
        self._opened.append(weakref.ref(connection))
        return connection

    def close_all(self) -> None:
        for reference in self._opened:
            connection = reference()
            if connection is not None:
                with contextlib.suppress(Exception):
                    connection.close()


TRANSPORTS = ["embedded-memory", "embedded-file", "pymqi-adapter", "ibmmq-adapter", "ibm-mq"]
_CLIENTS = {"pymqi-adapter": "pymqi", "ibmmq-adapter": "ibmmq"}


@pytest.fixture(params=TRANSPORTS)
def connections(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    """A :class:`Factory` for one queue manager of each kind."""
    kind = request.param
    if kind == "ibm-mq":
        target = os.environ.get("AMS_TEST_MQ")
        if not target:
            pytest.skip("no IBM MQ here: set AMS_TEST_MQ=mq://host(port)/QMGR?channel=CHANNEL to run against one")
        clear_test_queues(target)
        factory = Factory(kind, lambda appl: connect(target, appl_name=appl), None)
    elif kind in _CLIENTS:
        # the adapter's own code over a stand-in for pymqi or ibmmq (IBM MQ cannot run here):
        # tests/fake_pymqi.py, tests/fake_ibmmq.py; the other library is made unimportable
        from tests import fake_ibmmq, fake_pymqi

        manager = define_test_queues(EmbeddedQueueManager(tmp_path / "qm.sqlite", name="TESTQM", create=True))
        fake_pymqi.MANAGERS["TESTQM"] = manager
        fake_pymqi.forget_connections()
        client = _CLIENTS[kind]
        fakes = {"pymqi": fake_pymqi, "ibmmq": fake_ibmmq}
        for name, module in fakes.items():
            request.getfixturevalue("monkeypatch").setitem(sys.modules, name, module if name == client else None)
        url = "mq://127.0.0.1(1414)/TESTQM?channel=TEST.SVRCONN"
        factory = Factory(kind, lambda appl: connect(url, appl_name=appl), manager)
    else:
        manager = define_test_queues(
            EmbeddedQueueManager(
                None if kind == "embedded-memory" else tmp_path / "qm.sqlite", name="TESTQM", create=True
            )
        )
        factory = Factory(kind, manager.connect, manager)
    yield factory
    factory.close_all()


# emptied before each test on IBM MQ besides the test queues (tests count the errors and write policies)
ERROR_QUEUE, POLICY_QUEUE = "SYSTEM.PROTECTION.ERROR.QUEUE", "SYSTEM.PROTECTION.POLICY.QUEUE"
_MOST_MESSAGES_CLEARED = 100_000


def clear_test_queues(target: str) -> None:
    """Empty the test queues and the error queue on IBM MQ before a test, by destructive gets (the
    test user has +get, not CLEAR's +clr). A queue that cannot be opened for input fails the test,
    naming the queue: scripts/test-real-mq defines them and grants the authorities. Get-inhibited
    queues are left to the script's CLEAR QLOCAL."""
    from ams.mq.transport import MQError, NoMessageAvailable

    with contextlib.closing(connect(target, appl_name="ams-test-clear")) as qm:
        for queue in [*TEST_QUEUES, ERROR_QUEUE, POLICY_QUEUE]:
            if TEST_QUEUES.get(queue, _DEFAULT).get_inhibited:
                continue
            try:
                handle = qm.open(queue, input=True)
                for _ in range(_MOST_MESSAGES_CLEARED):
                    handle.get()
                pytest.fail(f"{queue} still holds messages after {_MOST_MESSAGES_CLEARED:,} gets")
            except NoMessageAvailable:
                handle.close()
            except MQError as error:
                pytest.fail(f"cannot empty {queue} before the test (run scripts/test-real-mq): {error}")


def mqsc() -> str:
    """The MQSC that defines the test queues on IBM MQ, empty."""
    lines = []
    for name, attributes in TEST_QUEUES.items():
        lines += [define_qlocal(name, attributes), f"CLEAR QLOCAL('{name}')"]
    lines += [define_qalias(alias, target) for alias, target in TEST_ALIASES.items()]
    user = os.environ.get("AMS_MQ_USER")
    if user:  # MQ checks an alias's own authorities (scripts/test-real-mq grants the local queues')
        grants = [Authority("queue", alias, ("put", "get", "browse", "inq")) for alias in TEST_ALIASES]
        lines += set_authrec(user, grants)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(mqsc())
