"""A world for the proxy service's tests: a PKI (alice signs for the gateway bob, who signs for
carol), policies, an embedded queue manager file (or two), and configuration files."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import attrs

from ams.keys import Keystore
from ams.mq import MQMD, EmbeddedQueueManager, NoMessageAvailable, ProtectedQueueManager
from ams.pki import GeneratedPki, init_pki
from ams.policy import PolicyStore

POLICIES = {
    "IN.Q": 'setmqspl -m QM -p IN.Q -s SHA256 -e AES256 -a "CN=alice,O=AMS,C=GB" -r "CN=bob,O=AMS,C=GB"\n',
    "OUT.Q": 'setmqspl -m QM -p OUT.Q -s SHA256 -e AES256 -a "CN=bob,O=AMS,C=GB" -r "CN=carol,O=AMS,C=GB"\n',
}
QUEUES = ("IN.Q", "OUT.Q", "IN.BACKOUT", "AMS.PROXY.LEDGER")


@attrs.define
class World:
    root: Path
    pki: GeneratedPki

    @property
    def policies(self) -> Path:
        return self.root / "policies"

    def qm(self, name: str = "qm") -> EmbeddedQueueManager:
        manager = EmbeddedQueueManager(self.root / f"{name}.sqlite", name=name.upper(), create=True)
        for queue in QUEUES:
            if queue not in manager.queues():
                manager.define_queue(queue, max_depth=999_999_999)
        return manager

    def manager(self, user: str, qm: str = "qm") -> ProtectedQueueManager:
        store = PolicyStore.from_directory(self.policies)
        return ProtectedQueueManager(self.qm(qm).connect(user), Keystore.from_conf(self.pki.keystores[user]), store)

    def send(self, bodies: list[bytes], qm: str = "qm") -> None:
        alice = self.manager("alice", qm)
        out = alice.open("IN.Q", output=True)
        for body in bodies:
            out.put(MQMD(persistence=1), body, syncpoint=True)
        alice.commit()
        alice.close()

    def received(self, qm: str = "qm", queue: str = "OUT.Q") -> list[bytes]:
        """What carol can read on ``queue`` (browsed: left there)."""
        carol = self.manager("carol", qm)
        handle = carol.open(queue, browse=True)
        bodies = []
        try:
            bodies.append(handle.browse_first().body)
            while True:
                bodies.append(handle.browse_next().body)
        except NoMessageAvailable:
            pass
        finally:
            carol.close()
        return bodies

    def depth(self, queue: str, qm: str = "qm") -> int:
        with self.qm(qm).connect("spy") as spy:
            return spy.depth(queue)

    def config(self, name: str = "proxy.toml", *, target_qm: str = "qm", **route: object) -> Path:
        settings = {"workers": 1, "batch_size": 10, "batch_ms": 100, "wait_seconds": 0.2, **route}
        lines = ["[service]", 'log_format = "text"', "", "[[routes]]", 'name = "in"']
        lines += [f"{key} = {_toml(value)}" for key, value in settings.items()]
        for side, queue, user, qm in (("source", "IN.Q", "bob", "qm"), ("target", "OUT.Q", "bob", target_qm)):
            lines += [
                "",
                f"[routes.{side}]",
                f'qm = "{qm}.sqlite"',
                f'queue = "{queue}"',
                f'keystore_conf = "{self.pki.keystores[user].relative_to(self.root)}"',
                'policies = "policies"',
            ]
        path = self.root / name
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def make_world(root: Path) -> World:
    pki = init_pki(root / "pki", ["alice", "bob", "carol"])
    (root / "policies").mkdir()
    for queue, line in POLICIES.items():
        (root / "policies" / f"{queue}.spl").write_text(line, encoding="utf-8")
    world = World(root, pki)
    world.qm()
    return world


RUNNING: list[Service] = []


def kill_all() -> None:
    """Kill every service a test started and left running (a failed assertion, say)."""
    while RUNNING:
        service = RUNNING.pop()
        if service.process.poll() is None:
            service.kill()


class Service:
    """``ams proxy run`` in a process group of its own, its output collected in a file."""

    def __init__(self, config: Path, *extra: str) -> None:
        RUNNING.append(self)
        self.log = config.with_suffix(".log")
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ams", "proxy", "run", "--config", str(config), *extra],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8")

    def wait_for(self, condition: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; the service said:\n{self.output()[-3000:]}")
            if self.process.poll() is not None:
                raise AssertionError(f"the service ended ({self.process.returncode}):\n{self.output()[-3000:]}")
            time.sleep(0.05)

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout: float = 60.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the service and its workers at once."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
