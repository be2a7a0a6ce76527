"""The proxy's log lines and metrics: one unit for elapsed, levels, poison as its own outcome, the
README's one table naming every field and metric, `proxy status` with restarts, and the errors
of metrics that cannot start (a port in use, prometheus-client missing)."""

from __future__ import annotations

import json
import logging
import re
import socket
import sys
from pathlib import Path

import attrs
import pytest

from ams.cli.main import main
from ams.errors import UsageError
from ams.mq.proxy.events import OUTCOMES, ProxyEvent, log_line
from ams.mq.proxy.metrics import ProxyMetrics, RouteStatus, parse_status
from ams.mq.proxy.service import ProxyService
from ams.mq.proxy.worker import RouteWorker
from tests.proxy_world import make_world

README = (Path(__file__).parents[1] / "README.md").read_text()
EVENT = ProxyEvent(
    route="in",
    outcome="refused",
    msg_id="ab" * 24,
    signer="CN=intruder,O=X",
    qop_in="PRIVACY",
    elapsed_ms=12.5,
    reason="UnauthorisedSignerError: ...",
)


def test_elapsed_is_milliseconds_in_text_and_json_and_lines_carry_a_level() -> None:
    as_json = json.loads(log_line(EVENT, as_json=True, worker="0"))
    assert as_json["elapsed_ms"] == 12.5 and "elapsed" not in as_json
    assert (as_json["level"], as_json["signer"], as_json["msg_id"]) == ("WARNING", "CN=intruder,O=X", "ab" * 24)
    text = log_line(EVENT, as_json=False, worker="0")
    assert " level=WARNING worker=0 route=in outcome=refused " in text and "elapsed_ms=12.5" in text
    levels = {o: json.loads(log_line(attrs.evolve(EVENT, outcome=o), as_json=True))["level"] for o in OUTCOMES}
    assert levels == {
        "moved": "INFO",
        "duplicate": "INFO",
        "refused": "WARNING",
        "poison": "WARNING",
        "backed_out": "ERROR",
    }
    assert attrs.evolve(EVENT, outcome="moved").level == logging.INFO
    assert ProxyEvent.from_json(EVENT.to_json()) == EVENT


class _Pipe:
    """A worker's standard output as the service sees it: only what was flushed has arrived."""

    def __init__(self) -> None:
        self.buffered: list[str] = []
        self.arrived: list[str] = []

    def write(self, text: str) -> int:
        self.buffered.append(text)
        return len(text)

    def flush(self) -> None:
        self.arrived.extend("".join(self.buffered).splitlines())
        self.buffered.clear()


def test_a_workers_event_lines_go_to_the_service_together_and_its_news_at_once(tmp_path: Path) -> None:
    pipe = _Pipe()
    worker = RouteWorker(tmp_path / "proxy.toml", "in", 0, out=pipe)  # type: ignore[arg-type]
    moved = attrs.evolve(EVENT, outcome="moved", reason="")
    worker.emit(EVENT)
    worker.emit(moved)
    assert pipe.arrived == []  # a unit of work's lines wait for its end
    worker.flush()
    records = [json.loads(line) for line in pipe.arrived]
    assert [r.pop("kind") for r in records] == ["event", "event"]
    assert [ProxyEvent.from_fields(r) for r in records] == [EVENT, moved]
    worker.emit(EVENT)
    worker.say(logging.WARNING, "route in waits")  # news is sent at once, after the lines before it
    assert [json.loads(line)["kind"] for line in pipe.arrived[2:]] == ["event", "log"]
    assert ProxyEvent.from_fields({**EVENT.fields(), "kind": "event", "time": "later"}) == EVENT


def _documented() -> set[str]:
    """The names in the first column of the README's table of log fields and metrics."""
    rows = re.findall(r"^\s*\| `([^|]+?)` \| (?:log field|counter|histogram|gauge) \|", README, re.MULTILINE)
    names: set[str] = set()
    for row in rows:
        names.update(name.strip("` ").split("{")[0] for name in row.split(","))
    return names


def test_every_log_field_and_metric_is_in_the_readme_table() -> None:
    metrics = ProxyMetrics(["in"])
    for outcome in OUTCOMES:
        metrics.observe(attrs.evolve(EVENT, outcome=outcome))
    metrics.restarts.labels("in").inc()
    exposition = sys.modules["prometheus_client"].generate_latest(metrics.registry).decode()
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", exposition, re.MULTILINE))
    exposed = {name for name in types if not name.endswith("_created")}
    assert exposed == {
        "ams_proxy_messages_total",
        "ams_proxy_message_seconds",
        "ams_proxy_source_depth",
        "ams_proxy_workers",
        "ams_proxy_worker_restarts_total",
    }
    assert all(name.endswith("_total") for name, kind in types.items() if kind == "counter")
    samples = set(re.findall(r"^(ams_proxy_[a-z_]+)[{ ]", exposition, re.MULTILINE))
    assert all(re.fullmatch(r"ams_proxy_[a-z_]+", name) for name in samples)
    assert 'ams_proxy_messages_total{outcome="poison",route="in"} 1.0' in exposition
    documented = _documented()
    assert exposed | {"ams_proxy_*_created"} <= documented, exposed - documented
    fields = set(json.loads(log_line(EVENT, as_json=True, worker="0"))) | {"message"}  # and the service's lines
    assert fields <= documented, fields - documented
    assert "elapsed" not in documented  # the rejected twin: the old name in seconds is gone


def test_status_reads_poison_and_restarts_and_prints_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    exposition = "\n".join(
        [
            'ams_proxy_messages_total{outcome="moved",route="in"} 7.0',
            'ams_proxy_messages_total{outcome="poison",route="in"} 2.0',
            'ams_proxy_worker_restarts_total{route="in"} 3.0',
            'ams_proxy_workers{route="in"} 1.0',
        ]
    )
    (status,) = parse_status(exposition)
    assert (status.moved, status.poison, status.restarts, status.refused) == (7, 2, 3, 0)
    monkeypatch.setattr("ams.mq.proxy.metrics.read_status", lambda address: [status])
    assert main(["proxy", "status", "--metrics", "127.0.0.1:9"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split()[:7] == ["route", "workers", "restarts", "depth", "moved", "refused", "poison"]
    assert row.split()[:7] == ["in", "1", "3", "0", "7", "0", "2"]
    assert RouteStatus("x").restarts == 0


def test_a_metrics_port_in_use_is_named() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UsageError, match=rf"cannot serve metrics on 127\.0\.0\.1:{port}: it is in use"):
            ProxyMetrics(["in"]).serve("127.0.0.1", port)


def test_the_missing_prometheus_client_hint_says_where_metrics_were_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(tmp_path)
    config = world.config()
    config.write_text('[service]\nmetrics = "127.0.0.1:9464"\n' + config.read_text().replace("[service]\n", ""))
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as when it is not installed
    with pytest.raises(UsageError) as from_file:
        ProxyService(config)
    assert f"the metrics key of [service] in {config}" in from_file.value.message
    assert "remove or comment out" in from_file.value.message and "--metrics" not in from_file.value.message
    with pytest.raises(UsageError) as from_option:
        ProxyService(config, metrics=("127.0.0.1", 9465))
    assert "asked for by --metrics" in from_option.value.message and "leave out --metrics" in from_option.value.message
    # the rejected twin: without metrics anywhere nothing needs prometheus-client
    assert ProxyService(world.config("plain.toml")).metrics is None


def test_log_format_help_says_what_it_does(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["proxy", "run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "as key=value text or as JSON" in text and "as ..." not in text
