"""Prometheus metrics of the proxy service, served on a loopback address (``prometheus-client``,
the ``metrics`` extra), and the reading of them that ``ams proxy status`` prints.

* ``ams_proxy_messages_total{route,outcome}``: moved, refused, poison, duplicate, backed_out;
* ``ams_proxy_message_seconds{route}``: from the get to the settled unit of work, per message
  (a histogram: ``_bucket``, ``_sum``, ``_count``);
* ``ams_proxy_source_depth{route}``: the source queue's CURDEPTH, read every few seconds;
* ``ams_proxy_workers{route}`` and ``ams_proxy_worker_restarts_total{route}``.

The names follow Prometheus's conventions: the ``ams_proxy_`` prefix, snake_case, base units
(seconds), ``_total`` on counters. The README's proxy section has them in one table with the
log fields.
"""

from __future__ import annotations

import errno
import re
import urllib.request
from collections.abc import Iterable
from typing import Any

import attrs

from ams.errors import UsageError
from ams.mq.proxy.events import OUTCOMES, ProxyEvent


class ProxyMetrics:
    """The service's metrics, in a registry of their own, served once :meth:`serve` is called.
    ``asked_by`` says where the metrics address came from (``--metrics``, or the configuration
    file's ``metrics`` key), so that the hint for a missing prometheus-client says how to turn
    them off."""

    def __init__(self, routes: Iterable[str], *, asked_by: str = "--metrics") -> None:
        try:
            import prometheus_client
        except ImportError:
            raise UsageError(
                f"metrics were asked for by {asked_by}, and they need prometheus-client: "
                f"pip install 'ams[metrics]', or run without metrics ({_turn_off(asked_by)})"
            ) from None
        self._client: Any = prometheus_client
        self.registry = prometheus_client.CollectorRegistry()
        self.messages = prometheus_client.Counter(
            "ams_proxy_messages", "Messages handled, by route and outcome", ["route", "outcome"], registry=self.registry
        )
        self.latency = prometheus_client.Histogram(
            "ams_proxy_message_seconds",
            "Seconds from the get to the settled unit of work, per message",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self.depth = prometheus_client.Gauge(
            "ams_proxy_source_depth", "CURDEPTH of the route's source queue", ["route"], registry=self.registry
        )
        self.workers = prometheus_client.Gauge(
            "ams_proxy_workers", "Worker processes running, by route", ["route"], registry=self.registry
        )
        self.restarts = prometheus_client.Counter(
            "ams_proxy_worker_restarts", "Workers started again after they died", ["route"], registry=self.registry
        )
        for route in routes:
            self.add_route(route)

    def add_route(self, route: str) -> None:
        """Show every series of ``route`` from the start (at zero)."""
        for outcome in OUTCOMES:
            self.messages.labels(route, outcome)
        self.latency.labels(route)
        self.workers.labels(route)

    def observe(self, event: ProxyEvent) -> None:
        """Count one message."""
        self.messages.labels(event.route, event.outcome).inc()
        if event.outcome != "backed_out":
            self.latency.labels(event.route).observe(event.elapsed_ms / 1000)

    def serve(self, host: str, port: int) -> None:
        """Start serving ``/metrics`` at ``host:port`` (a loopback address) in a thread of this
        process; an address in use (or any other socket error) is a UsageError naming it."""
        try:
            self._client.start_http_server(port, addr=host, registry=self.registry)
        except OSError as error:
            shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            cause = "it is in use by another process" if error.errno == errno.EADDRINUSE else error.strerror or error
            raise UsageError(
                f"cannot serve metrics on {shown}: {cause}; choose another port (--metrics, or the "
                "configuration file's metrics key) or stop what listens there"
            ) from None


def _turn_off(asked_by: str) -> str:
    if asked_by == "--metrics":
        return "leave out --metrics"
    return f"remove or comment out {asked_by}"


@attrs.frozen
class RouteStatus:
    """What ``ams proxy status`` shows for one route."""

    route: str
    workers: int = 0
    depth: int = 0
    moved: int = 0
    refused: int = 0
    duplicate: int = 0
    backed_out: int = 0
    poison: int = 0
    restarts: int = 0
    mean_seconds: float = 0.0


_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def read_status(address: str, *, timeout: float = 5.0) -> list[RouteStatus]:
    """Fetch ``http://address/metrics`` (loopback only) and summarise it per route."""
    host = address.rpartition(":")[0].strip("[]")
    if host not in ("127.0.0.1", "::1", "localhost") and not host.startswith("127."):
        raise UsageError(f"the proxy serves metrics on a loopback address only (found {address})")
    url = f"http://{address}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # loopback http only
            text = response.read(4 * 1024 * 1024).decode("utf-8", "replace")
    except OSError as error:
        raise UsageError(
            f"no proxy answering at {url} ({error}): is `ams proxy run --metrics {address}` running?"
        ) from None
    return parse_status(text)


def parse_status(text: str) -> list[RouteStatus]:
    """Per-route figures from Prometheus text exposition."""
    routes: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line.strip())
        if not match or not match["name"].startswith("ams_proxy_"):
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        figures = routes.setdefault(labels.get("route", "?"), {})
        name, value = match["name"], float(match["value"])
        if name == "ams_proxy_messages_total":
            figures[labels.get("outcome", "?")] = value
        elif name in ("ams_proxy_source_depth", "ams_proxy_workers"):
            figures[name.rsplit("_", 1)[-1]] = value
        elif name == "ams_proxy_worker_restarts_total":
            figures["restarts"] = value
        elif name in ("ams_proxy_message_seconds_sum", "ams_proxy_message_seconds_count"):
            figures[name.rsplit("_", 1)[-1]] = value
    return [
        RouteStatus(
            route=route,
            workers=int(f.get("workers", 0)),
            depth=int(f.get("depth", 0)),
            moved=int(f.get("moved", 0)),
            refused=int(f.get("refused", 0)),
            duplicate=int(f.get("duplicate", 0)),
            backed_out=int(f.get("backed_out", 0)),
            poison=int(f.get("poison", 0)),
            restarts=int(f.get("restarts", 0)),
            mean_seconds=f.get("sum", 0.0) / f["count"] if f.get("count") else 0.0,
        )
        for route, f in sorted(routes.items())
    ]
