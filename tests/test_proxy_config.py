"""The proxy service's configuration: every problem named with its file and line, and ``ams proxy
check`` finding what would stop a route before anything moves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ams.cli.main import main
from ams.mq.proxy.assemble import check_config
from ams.mq.proxy.config import ConfigError, load_config
from tests.proxy_world import World, make_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(tmp_path_factory.mktemp("proxy-config"))


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_a_good_configuration_loads_and_checks(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    config = load_config(world.config(workers=3, batch_size=50, backout_threshold=4, signer_property="AMSSigner"))
    (route,) = config.routes
    assert (route.name, route.workers, route.batch_size, route.backout_threshold) == ("in", 3, 50, 4)
    assert route.one_queue_manager and route.source.keystore_conf.is_file()
    assert check_config(config) == []
    assert main(["proxy", "check", "--config", str(config.path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["ok"], report["problems"]) == (True, [])
    assert report["routes"] == [
        {"name": "in", "source": "IN.Q", "target": "OUT.Q", "delivery": "exactly_once", "workers": 3, "batch_size": 50}
    ]
    assert main(["proxy", "check", "--config", str(config.path)]) == 0
    assert (
        "in: IN.Q -> OUT.Q (one queue manager: exactly once), 3 workers, batches of 50: ok" in capsys.readouterr().out
    )


@pytest.mark.parametrize(
    ("change", "key", "says"),
    [
        (("batch_size = 10", "batch_size = 0"), "batch_size", "expected 1 to 10000"),
        (("workers = 1", 'workers = "two"'), "workers", "expected int, found str"),
        (("wait_seconds = 0.2", "wait_secs = 0.2"), "wait_secs", "unknown key 'wait_secs'"),
        (('queue = "OUT.Q"', 'queue = "IN.Q"'), 'queue = "IN.Q"', "a loop"),
        (('queue = "OUT.Q"', 'queue = "OUT Q!"'), "OUT Q!", "expected an MQ queue name"),
        (('log_format = "text"', 'log_format = "xml"'), "log_format", "expected text or json"),
        (('log_format = "text"', 'metrics = "0.0.0.0:9464"'), "metrics", "loopback"),
        (("[routes.target]", "[routes.destination]"), "[routes.destination]", "unknown key 'destination'"),
        (("batch_ms = 100", "batch_ms = nan"), "batch_ms", "expected 0 to 60000"),
        (("wait_seconds = 0.2", "wait_seconds = inf"), "wait_seconds", "expected 0 to 60"),
        (("workers = 1", "workers = 1\nbackout_threshold = 1"), "backout_threshold", "expected 2 to"),
        (("workers = 1", 'workers = 1\nbackout_queue = "IN.Q"'), "backout_queue", "source or target queue"),
        (('qm = "qm.sqlite"', 'qm = " "'), 'qm = " "', "expected an embedded queue manager file"),
        (('log_format = "text"', "ledger_retention_seconds = 1e12"), "ledger_retention", "expected 1 to"),
    ],
)
def test_each_problem_names_its_file_and_line(
    world: World, tmp_path: Path, change: tuple[str, str], key: str, says: str
) -> None:
    path = world.config(f"broken-{abs(hash(change))}.toml")
    text = path.read_text()
    if change[1].startswith('queue = "IN.Q"'):  # the target's queue, not the source's
        head, _, tail = text.partition("[routes.target]")
        text = head + "[routes.target]" + tail.replace(*change)
    else:
        text = text.replace(*change, 1)
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    line = max(n for n, row in enumerate(text.splitlines(), 1) if key in row)
    assert any(p.startswith(f"{path}:{line}:") and says in p for p in caught.value.problems), caught.value.problems


def test_not_toml_and_no_routes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[routes]\nname = 1\n")
    with pytest.raises(ConfigError, match=r"not TOML: .*line 1"):
        load_config(bad)
    empty = tmp_path / "empty.toml"
    empty.write_text("[service]\n")
    with pytest.raises(ConfigError, match="at least one"):
        load_config(empty)
    assert main(["proxy", "check", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read the proxy configuration" in capsys.readouterr().err


def test_check_finds_what_would_stop_a_route(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    path = world.config("check.toml", backout_queue="NO.SUCH.BACKOUT")
    text = path.read_text()
    head, _, tail = text.partition("[routes.target]")
    bob = str(world.pki.keystores["bob"].relative_to(world.root))
    carol = str(world.pki.keystores["carol"].relative_to(world.root))
    path.write_text(head.replace(bob, carol) + "[routes.target]" + tail.replace(bob, carol))
    problems = check_config(load_config(path))
    assert any(p.startswith(f"{path}:{line_of(path, 'backout_queue')}:") and "2085" in p for p in problems)
    assert main(["proxy", "check", "--config", str(path)]) == 1
    assert "NO.SUCH.BACKOUT" in capsys.readouterr().out
    assert main(["proxy", "check", "--config", str(path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["config"], report["ok"]) == (str(path), False) and report["problems"] == problems
    path.write_text(path.read_text().replace('backout_queue = "NO.SUCH.BACKOUT"\n', ""))
    problems = check_config(load_config(path))
    source_keystore = line_of(path, "keystore_conf")
    target_keystore = max(n for n, row in enumerate(path.read_text().splitlines(), 1) if "keystore_conf" in row)
    reader = [p for p in problems if p.startswith(f"{path}:{source_keystore}:")]
    signer = [p for p in problems if p.startswith(f"{path}:{target_keystore}:")]
    assert reader and "CN=carol,O=AMS,C=GB) is not a recipient of IN.Q's policy (CN=bob,O=AMS,C=GB)" in reader[0]
    assert signer and "is not an authorised signer of OUT.Q's policy (CN=bob,O=AMS,C=GB)" in signer[0]


def test_check_names_an_undefined_queue_and_a_missing_keystore(world: World) -> None:
    path = world.config("queues.toml")
    path.write_text(path.read_text().replace('queue = "IN.Q"', 'queue = "NOT.DEFINED"'))
    (problem,) = check_config(load_config(path))
    assert problem.startswith(f"{path}:{line_of(path, 'NOT.DEFINED')}:") and "2085" in problem
    path.write_text(path.read_text().replace("pki/bob/keystore.conf", "pki/nobody/keystore.conf", 1))
    (problem,) = check_config(load_config(path))
    assert problem.startswith(f"{path}:{line_of(path, 'pki/nobody')}:") and "nobody" in problem


def test_a_missing_queue_manager_file_is_not_made_up(world: World) -> None:
    path = world.config("typo.toml", target_qm="qn")
    (problem,) = check_config(load_config(path))
    assert problem.startswith(f"{path}:") and "no embedded queue manager file" in problem and "qn.sqlite" in problem
    assert not (world.root / "qn.sqlite").exists()


def test_two_queue_managers_need_the_ledger_queue(world: World) -> None:
    other = world.qm("partner")
    del other
    path = world.config("two.toml", target_qm="partner", ledger_queue="NO.LEDGER")
    (problem,) = check_config(load_config(path))
    assert problem.startswith(f"{path}:{line_of(path, 'ledger_queue')}:") and "NO.LEDGER" in problem
    assert re.search(r"2085", problem)


def test_the_readmes_example_configuration_loads(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    example = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "proxy.toml"
    path.write_text(example)
    config = load_config(path)
    (route,) = config.routes
    assert (route.name, route.workers, route.batch_size, config.log_format, config.metrics) == (
        "partner-in",
        2,
        50,
        "json",
        ("127.0.0.1", 9464),
    )
    assert not route.one_queue_manager and route.target.policies is None
