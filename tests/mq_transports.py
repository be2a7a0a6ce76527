"""The transports the MQ tests run over: the embedded queue manager in memory and in a file, and
IBM MQ itself when AMS_TEST_MQ names one (mq://host(port)/QMGR?channel=CHANNEL; the queues used
must exist there, with AMS_MQ_USER / AMS_MQ_PASSWORD if the channel needs them)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ams.mq import EmbeddedQueueManager, QueueManager, connect

Factory = Callable[[str], QueueManager]

TRANSPORTS = ["embedded-memory", "embedded-file", "pymqi-adapter", "ibm-mq"]


@pytest.fixture(params=TRANSPORTS)
def connections(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    """A function that opens another connection (its own unit of work) to one queue manager."""
    kind = request.param
    opened: list[QueueManager] = []
    if kind == "ibm-mq":
        target = os.environ.get("AMS_TEST_MQ")
        if not target:
            pytest.skip("no IBM MQ here: set AMS_TEST_MQ=mq://host(port)/QMGR?channel=CHANNEL to run against one")

        def factory(appl: str) -> QueueManager:
            connection = connect(target, appl_name=appl)
            opened.append(connection)
            return connection
    elif kind == "pymqi-adapter":
        # the adapter's own code over a pymqi stand-in (IBM MQ cannot run here): tests/fake_pymqi.py
        from tests import fake_pymqi

        fake_pymqi.MANAGERS["TESTQM"] = EmbeddedQueueManager(tmp_path / "qm.sqlite", name="TESTQM")
        request.getfixturevalue("monkeypatch").setitem(sys.modules, "pymqi", fake_pymqi)
        request.getfixturevalue("monkeypatch").setitem(sys.modules, "ibmmq", None)

        def factory(appl: str) -> QueueManager:
            connection = connect("mq://127.0.0.1(1414)/TESTQM?channel=TEST.SVRCONN", appl_name=appl)
            opened.append(connection)
            return connection
    else:
        manager = EmbeddedQueueManager(None if kind == "embedded-memory" else tmp_path / "qm.sqlite", name="TESTQM")

        def factory(appl: str) -> QueueManager:
            connection = manager.connect(appl)
            opened.append(connection)
            return connection

    yield factory
    for connection in opened:
        with contextlib.suppress(Exception):
            connection.close()
