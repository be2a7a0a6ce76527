"""The proxy service's configuration: a TOML file of routes, read with the standard library.

::

    [service]
    log_format = "text"                  # or "json": one line per message either way
    metrics = "127.0.0.1:9464"           # Prometheus metrics on a loopback address (optional)
    ledger_retention_seconds = 86400     # how long duplicates are recognised between two queue managers

    [[routes]]
    name = "partner-in"
    workers = 2                          # processes, competing consumers of the source queue
    batch_size = 50                      # messages per unit of work
    batch_ms = 200                       # ... or fewer, once this long has passed
    wait_seconds = 1.0                   # MQGET wait: how soon a stop or reload is noticed when idle
    backout_threshold = 5                # optional: the source queue's BOTHRESH otherwise
    backout_queue = "EXTERNAL_IN.BACKOUT"  # optional: the source queue's BOQNAME otherwise
    keep_msg_id = true                   # the target message keeps the source MsgId
    signer_property = "AMSOriginalSigner"  # optional: the sender's DN as an MQRFH2 usr property
    ledger_queue = "AMS.PROXY.LEDGER"    # between two queue managers: on the target
    require_policy = true                # refuse to start when either queue has no policy protecting it

    [routes.source]
    qm = "gateway.sqlite"                # an embedded queue manager file, or mq://host(port)/QM?channel=CH
    queue = "EXTERNAL_IN"
    keystore_conf = "gateway/keystore.conf"   # the identity that reads
    policies = "policies"                # optional: the queue manager's policy queue otherwise

    [routes.target]
    qm = "gateway.sqlite"
    queue = "INTERNAL_IN"
    keystore_conf = "gateway/keystore.conf"   # the identity that signs
    policies = "policies"

Relative paths are relative to the file. Every problem is reported with the file and line.
"""

from __future__ import annotations

import ipaddress
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from ams._files import read_bounded
from ams.errors import ConfigurationError
from ams.limits import DEFAULT_LIMITS
from ams.mq.ledger import DEFAULT_LEDGER_QUEUE, DEFAULT_RETENTION_SECONDS, MAX_RETENTION_SECONDS

_MQ_URL = re.compile(r"^mq://")
_SERVICE_KEYS = {"log_format", "metrics", "ledger_retention_seconds"}
_ROUTE_KEYS = {
    "name",
    "workers",
    "batch_size",
    "batch_ms",
    "wait_seconds",
    "backout_threshold",
    "backout_queue",
    "keep_msg_id",
    "signer_property",
    "ledger_queue",
    "require_policy",
    "source",
    "target",
}
_SIDE_KEYS = {"qm", "queue", "keystore_conf", "policies"}
MAX_WORKERS = 64


class ConfigError(ConfigurationError):
    """A proxy configuration with problems; ``problems`` holds each as ``FILE:LINE: what``."""

    code = "proxy_config"

    def __init__(self, path: Path, problems: list[str]) -> None:
        listed = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"{len(problems)} problem(s) in {path}:\n{listed}")
        self.problems = problems


@attrs.frozen
class Side:
    """One end of a route: a queue on a queue manager, and the identity that reads or signs there."""

    qm: str
    queue: str
    keystore_conf: Path
    policies: Path | None

    @property
    def qm_key(self) -> str:
        """What identifies the queue manager: two sides with one key share a connection."""
        return self.qm if _MQ_URL.match(self.qm) else str(Path(self.qm).resolve())


@attrs.frozen
class Route:
    """A route of the service (see the module's example for the meaning of each field)."""

    name: str
    source: Side
    target: Side
    workers: int = 1
    batch_size: int = 1
    batch_seconds: float = 0.2
    wait_seconds: float = 1.0
    backout_threshold: int | None = None
    backout_queue: str | None = None
    keep_msg_id: bool = True
    signer_property: str | None = None
    ledger_queue: str = DEFAULT_LEDGER_QUEUE
    require_policy: bool = False
    line: int = 0

    @property
    def one_queue_manager(self) -> bool:
        """Whether both sides are on one queue manager (one unit of work: exactly once)."""
        return self.source.qm_key == self.target.qm_key


@attrs.frozen
class ServiceConfig:
    """The whole file: the routes and the service settings."""

    path: Path
    routes: tuple[Route, ...]
    log_format: str = "text"
    metrics: tuple[str, int] | None = None
    ledger_retention: float = DEFAULT_RETENTION_SECONDS

    def route(self, name: str) -> Route:
        """The route called ``name``."""
        for route in self.routes:
            if route.name == name:
                return route
        raise ConfigurationError(f"no route {name!r} in {self.path}: expected one of {[r.name for r in self.routes]}")


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """The line of each table and key: ``("routes", "0", "source", "queue")`` -> line number.

    TOML's reader gives no positions; this follows table headers and ``key =`` lines, which is
    what configuration files are made of (inline tables get their table's line)."""
    lines: dict[tuple[str, ...], int] = {}
    counts: dict[str, int] = {}
    table: tuple[str, ...] = ()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        array = re.match(r"^\[\[\s*([A-Za-z0-9_.-]+)\s*\]\]", line)
        plain = re.match(r"^\[\s*([A-Za-z0-9_.-]+)\s*\]", line)
        key = re.match(r"^([A-Za-z0-9_-]+)\s*=", line)
        if array:
            name = array.group(1)
            counts[name] = counts.get(name, -1) + 1
            table = (*name.split("."), str(counts[name]))
            lines[table] = number
        elif plain:
            parts = plain.group(1).split(".")
            table = (parts[0], str(counts[parts[0]]), *parts[1:]) if parts[0] in counts else tuple(parts)
            lines[table] = number
        elif key:
            lines[(*table, key.group(1))] = number
    return lines


class _Reader:
    """Reads values out of the parsed TOML, collecting problems with their lines."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = _key_lines(text)
        self.problems: list[str] = []

    def line(self, *where: str) -> int:
        for end in range(len(where), 0, -1):
            if where[:end] in self.lines:
                return self.lines[where[:end]]
        return 1

    def problem(self, where: tuple[str, ...], text: str) -> None:
        self.problems.append(f"{self.path}:{self.line(*where)}: {'.'.join(where) or 'file'}: {text}")

    def value(
        self,
        table: Mapping[str, Any],
        where: tuple[str, ...],
        key: str,
        kind: type | tuple[type, ...],
        default: Any = None,
        *,
        check: Callable[[Any], str | None] | None = None,
    ) -> Any:
        """``table[key]`` if it is of ``kind`` and passes ``check`` (which says what is wrong), else
        ``default`` with the problem recorded."""
        if key not in table:
            return default
        found = table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if (isinstance(found, bool) and bool not in kinds) or not isinstance(found, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            self.problem((*where, key), f"expected {names}, found {type(found).__name__} {found!r}")
            return default
        wrong = check(found) if check else None
        if wrong:
            self.problem((*where, key), f"{wrong} (found {found!r})")
            return default
        return found

    def unknown(self, table: Mapping[str, Any], where: tuple[str, ...], allowed: set[str]) -> None:
        for key in sorted(set(table) - allowed):
            self.problem((*where, key), f"unknown key {key!r}: expected one of {', '.join(sorted(allowed))}")


def _at_least(low: float, high: float | None = None) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if not math.isfinite(value) or value < low or (high is not None and value > high):
            return f"expected {low} or more" if high is None else f"expected {low} to {high}"
        return None

    return check


def _queue_name(value: Any) -> str | None:
    if not 1 <= len(value) <= 48 or not re.match(r"^[A-Za-z0-9._/%]+$", value):
        return "expected an MQ queue name: 1 to 48 of A-Z a-z 0-9 . _ / %"
    return None


def _qm_name(value: Any) -> str | None:
    if not value.strip():
        return "expected an embedded queue manager file or mq://host(port)/QMGR?channel=CHANNEL"
    return None


def _side(reader: _Reader, raw: Any, where: tuple[str, ...], base: Path) -> Side | None:
    if not isinstance(raw, dict):
        reader.problem(
            where,
            f"expected a table [{'.'.join(w for w in where if not w.isdigit())}] with "
            "qm, queue, keystore_conf and policies",
        )
        return None
    reader.unknown(raw, where, _SIDE_KEYS)
    for key in ("qm", "queue", "keystore_conf"):
        if key not in raw:
            reader.problem(where, f"missing {key}")
    qm = reader.value(raw, where, "qm", str, check=_qm_name)
    queue = reader.value(raw, where, "queue", str, check=_queue_name)
    keystore = reader.value(raw, where, "keystore_conf", str)
    policies = reader.value(raw, where, "policies", str)
    if qm is None or queue is None or keystore is None:
        return None
    qm_spec = qm if _MQ_URL.match(qm) else str(base / qm)
    return Side(qm_spec, queue, base / keystore, base / policies if policies else None)


def _route(reader: _Reader, raw: Any, index: int, base: Path) -> Route | None:
    where = ("routes", str(index))
    if not isinstance(raw, dict):
        reader.problem(where, "expected a [[routes]] table")
        return None
    reader.unknown(raw, where, _ROUTE_KEYS)
    name = reader.value(raw, where, "name", str, f"route-{index + 1}", check=lambda v: None if v.strip() else "empty")
    source = _side(reader, raw.get("source"), (*where, "source"), base)
    target = _side(reader, raw.get("target"), (*where, "target"), base)
    values = {
        "workers": reader.value(raw, where, "workers", int, 1, check=_at_least(1, MAX_WORKERS)),
        "batch_size": reader.value(raw, where, "batch_size", int, 1, check=_at_least(1, 10_000)),
        "batch_seconds": reader.value(raw, where, "batch_ms", (int, float), 200, check=_at_least(0, 60_000)) / 1000,
        "wait_seconds": float(reader.value(raw, where, "wait_seconds", (int, float), 1.0, check=_at_least(0, 60))),
        # at least 2: backing out a batch counts one backout for every message in it
        "backout_threshold": reader.value(raw, where, "backout_threshold", int, None, check=_at_least(2, 999_999_999)),
        "backout_queue": reader.value(raw, where, "backout_queue", str, None, check=_queue_name),
        "keep_msg_id": reader.value(raw, where, "keep_msg_id", bool, True),
        "signer_property": reader.value(
            raw,
            where,
            "signer_property",
            str,
            None,
            check=lambda v: None if re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", v) else "expected a property name",
        ),
        "ledger_queue": reader.value(raw, where, "ledger_queue", str, DEFAULT_LEDGER_QUEUE, check=_queue_name),
        "require_policy": reader.value(raw, where, "require_policy", bool, False),
    }
    if source is None or target is None:
        return None
    if source.qm_key == target.qm_key and source.queue == target.queue:
        reader.problem((*where, "target", "queue"), f"the target is the source queue {source.queue}: a loop")
    for key in ("backout_queue", "ledger_queue"):
        if values[key] in (source.queue, target.queue):
            reader.problem((*where, key), f"{values[key]} is the route's source or target queue: choose another")
    return Route(name=name, source=source, target=target, line=reader.line(*where), **values)


def _metrics_address(value: Any) -> str | None:
    host, _, port = value.rpartition(":")
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback or not port.isdigit() or not 0 < int(port) < 65536:
        return "expected a loopback address and port, such as 127.0.0.1:9464 (metrics are never served beyond the host)"
    return None


def load_config(path: str | Path) -> ServiceConfig:
    """Read and validate the file's syntax and values; ConfigError lists every problem with its line."""
    path = Path(path)
    data = read_bounded(path, "the proxy configuration", limit=DEFAULT_LIMITS.file_size)
    try:
        text = data.decode("utf-8")
        document = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(path, [f"{path}: not TOML: {error}"]) from None
    reader = _Reader(path, text)
    reader.unknown(document, (), {"service", "routes"})
    service = document.get("service", {})
    if not isinstance(service, dict):
        reader.problem(("service",), "expected a [service] table")
        service = {}
    reader.unknown(service, ("service",), _SERVICE_KEYS)
    log_format = reader.value(
        service,
        ("service",),
        "log_format",
        str,
        "text",
        check=lambda v: None if v in ("text", "json") else "expected text or json",
    )
    metrics = reader.value(service, ("service",), "metrics", str, None, check=_metrics_address)
    retention = reader.value(
        service,
        ("service",),
        "ledger_retention_seconds",
        (int, float),
        DEFAULT_RETENTION_SECONDS,
        check=_at_least(1, MAX_RETENTION_SECONDS),
    )
    raw_routes = document.get("routes", [])
    if not isinstance(raw_routes, list) or not raw_routes:
        reader.problem(("routes",), "expected at least one [[routes]] table")
        raw_routes = []
    routes = [r for i, raw in enumerate(raw_routes) if (r := _route(reader, raw, i, path.parent)) is not None]
    seen: set[str] = set()
    for route in routes:
        if route.name in seen:
            reader.problems.append(f"{path}:{route.line}: routes: two routes are called {route.name!r}")
        seen.add(route.name)
    if reader.problems:
        raise ConfigError(path, reader.problems)
    address = None
    if metrics:
        host, _, port = metrics.rpartition(":")
        address = (host.strip("[]"), int(port))
    return ServiceConfig(path, tuple(routes), log_format, address, float(retention))
