"""``ams proxy run`` as a service: routes in worker processes, SIGTERM, SIGHUP with a rotated
certificate, a killed worker, metrics and ``ams proxy status``, and SIGKILL at random points."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ams.cli.main import main
from ams.pki import issue, user_dn, write_user_keystore
from tests.proxy_world import Service, World, kill_all, make_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield make_world(tmp_path)
    kill_all()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def moved(service: Service) -> int:
    return service.output().count("outcome=moved")


def test_the_service_moves_every_message_and_stops_on_sigterm(world: World) -> None:
    bodies = [b"payment %d" % i for i in range(60)]
    world.send(bodies)
    service = Service(world.config(workers=2, batch_size=10), "--log-format", "json")
    service.wait_for(lambda: world.depth("OUT.Q") == 60 and world.depth("IN.Q") == 0)
    service.wait_for(lambda: service.output().count('"outcome":"moved"') == 60)
    assert service.stop() == 0
    assert sorted(world.received()) == sorted(bodies)
    lines = [json.loads(line) for line in service.output().splitlines() if '"outcome"' in line]
    assert {line["signer"] for line in lines} == {"CN=alice,O=AMS,C=GB"}
    assert {(line["qop_in"], line["qop_out"]) for line in lines} == {("PRIVACY", "PRIVACY")}
    assert {line["worker"] for line in lines} <= {"0", "1"} and all(len(line["msg_id"]) == 48 for line in lines)
    assert {line["level"] for line in lines} == {"INFO"} and all(0 < line["elapsed_ms"] < 60_000 for line in lines)
    assert not any(b.decode() in service.output() for b in bodies)  # never a payload in a log line
    assert "proxy service stopped" in service.output()


def test_sighup_rotates_the_signing_certificate_without_losing_or_repeating(world: World) -> None:
    config = world.config(batch_size=5)
    service = Service(config)
    world.send([b"before %d" % i for i in range(20)])
    service.wait_for(lambda: moved(service) == 20)
    rotated = issue(world.pki.ca, user_dn("bob"))  # bob's new key and certificate, same DN
    others = [world.pki.ca.certificate] + [world.pki.users[u].certificate for u in ("alice", "carol")]
    conf = write_user_keystore(world.root / "bob-2027", "bob", rotated, others)
    # the target's identity (the signer) only: the source's must still decrypt what was sent to it
    text = config.read_text()
    head, _, tail = text.partition("[routes.target]")
    old = str(world.pki.keystores["bob"].relative_to(world.root))
    config.write_text(head + "[routes.target]" + tail.replace(old, str(conf)))
    service.signal(signal.SIGHUP)
    service.wait_for(lambda: "reloaded its configuration" in service.output())
    world.send([b"after %d" % i for i in range(20)])
    service.wait_for(lambda: moved(service) == 40)
    assert service.stop() == 0
    carol = world.manager("carol")
    handle = carol.open("OUT.Q", input=True)
    signers = {}
    for _ in range(40):
        message = handle.get()
        signers[message.body] = message.signer.serial_number  # type: ignore[union-attr]
    assert sorted(signers) == sorted([b"before %d" % i for i in range(20)] + [b"after %d" % i for i in range(20)])
    assert {signers[b"after %d" % i] for i in range(20)} == {rotated.certificate.serial_number}
    assert {signers[b"before %d" % i] for i in range(20)} == {world.pki.users["bob"].certificate.serial_number}


def test_a_configuration_that_no_longer_loads_is_refused_on_sighup(world: World) -> None:
    config = world.config()
    service = Service(config)
    service.wait_for(lambda: "worker 0 of route in started" in service.output())
    config.write_text(config.read_text().replace("batch_size = 10", "batch_size = -1"))
    service.signal(signal.SIGHUP)
    service.wait_for(lambda: "reload refused" in service.output())
    assert re.search(r"proxy\.toml:\d+: routes\.0\.batch_size", service.output())
    world.send([b"still running"])
    service.wait_for(lambda: moved(service) == 1)
    assert service.stop() == 0


def test_a_sighup_while_workers_start_kills_none_of_them(world: World) -> None:
    """Workers start with the service's signals blocked until their handlers are in place."""
    service = Service(world.config(workers=2))
    service.wait_for(lambda: "proxy service started" in service.output())
    service.signal(signal.SIGHUP)  # while the workers are still importing
    service.wait_for(
        lambda: service.output().count("reloaded its configuration") + service.output().count("started (pid") >= 2
    )
    world.send([b"after the early reload"])
    service.wait_for(lambda: moved(service) == 1)
    assert service.stop() == 0
    assert "ended (status" not in service.output()


def test_a_killed_worker_is_started_again_and_loses_nothing(world: World) -> None:
    service = Service(world.config(workers=1, batch_size=1))
    service.wait_for(lambda: "worker 0 of route in started" in service.output())
    pid = int(re.findall(r"started \(pid (\d+)\)", service.output())[-1])
    os.kill(pid, signal.SIGKILL)
    service.wait_for(lambda: "starting it again" in service.output())
    world.send([b"after the crash %d" % i for i in range(5)])
    service.wait_for(lambda: moved(service) == 5)
    assert service.stop() == 0
    assert sorted(world.received()) == [b"after the crash %d" % i for i in range(5)]


def test_metrics_and_status(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    world.send([b"m%d" % i for i in range(12)])
    service = Service(world.config(batch_size=4), "--metrics", f"127.0.0.1:{port}")
    service.wait_for(lambda: moved(service) == 12)
    assert main(["proxy", "status", "--metrics", f"127.0.0.1:{port}", "--json"]) == 0
    (status,) = json.loads(capsys.readouterr().out)
    assert (status["route"], status["moved"], status["workers"], status["refused"]) == ("in", 12, 1, 0)
    assert status["mean_seconds"] > 0
    assert main(["proxy", "status", "--metrics", f"127.0.0.1:{port}"]) == 0
    text = capsys.readouterr().out
    assert text.split()[:3] == ["route", "workers", "restarts"]
    assert re.search(r"^in\s+1\s+0\s+\d+\s+12\s+0\s+0", text, re.MULTILINE), text
    line = r" level=INFO worker=0 route=in outcome=moved msg_id=[0-9a-f]{48} .*elapsed_ms=\d"
    assert re.search(line, service.output())
    assert service.stop() == 0
    assert main(["proxy", "status", "--metrics", f"127.0.0.1:{port}"]) == 2
    assert "no proxy answering" in capsys.readouterr().err
    assert main(["proxy", "status", "--metrics", "192.0.2.1:9464"]) == 2


# -- crashes ---------------------------------------------------------------------------------------

CRASH_RUNS = int(os.environ.get("AMS_PROXY_CRASH_RUNS", "6"))


def _check_once(world: World, bodies: list[bytes], *, target_qm: str) -> None:
    """After a crash: nothing lost, nothing twice on the target."""
    delivered = world.received(target_qm)
    assert len(delivered) == len(set(delivered)), "a message arrived twice"
    assert set(delivered) <= set(bodies)
    waiting = world.depth("IN.Q")
    if target_qm == "qm":  # one unit of work: each message is on exactly one side
        assert len(delivered) + waiting == len(bodies)
    else:
        assert len(delivered) + waiting >= len(bodies)


@pytest.mark.parametrize("target_qm", ["qm", "other"])
def test_sigkill_at_random_points_loses_nothing_and_repeats_nothing(world: World, target_qm: str) -> None:
    """The service and its workers SIGKILLed while messages move (in a get, the crypto, a put or a
    commit), then started again; AMS_PROXY_CRASH_RUNS sets how many times (100+ in benchmarks/)."""
    chooser = random.Random(int(os.environ.get("AMS_PROXY_CRASH_SEED", "7")))
    world.qm("other")
    bodies = [b"transfer %d" % i for i in range(40 * CRASH_RUNS)]
    world.send(bodies)
    config = world.config(workers=2, batch_size=chooser.choice([1, 5, 20]), target_qm=target_qm)
    for _ in range(CRASH_RUNS):
        service = Service(config)
        service.wait_for(lambda: moved(service) > 0 or world.depth("IN.Q") == 0, timeout=120)  # noqa: B023
        if chooser.random() < 0.5:
            time.sleep(chooser.uniform(0, 0.3))
        service.kill()
        _check_once(world, bodies, target_qm=target_qm)
    final = Service(config)
    final.wait_for(lambda: world.depth("IN.Q") == 0, timeout=300)
    assert final.stop() == 0
    delivered = world.received(target_qm)
    assert sorted(delivered) == sorted(bodies), "a message was lost or arrived twice"
