"""``ams proxy``: re-protect messages from one queue onto another, once (``--from --to``) or as a
service of routes (``run``, ``check``, ``status``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from ams.cli.common import add_keys_options, manager_for
from ams.errors import UsageError, plural
from ams.mq import connect
from ams.mq.proxy import ReprotectionProxy

if TYPE_CHECKING:
    from ams.mq.proxy.config import ServiceConfig


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this command group's subcommands to ``commands``."""
    proxy = commands.add_parser(
        "proxy",
        help="re-protect messages: once (--from Q1 --to Q2), or as a service (run, check, status)",
        description="With --from and --to: move the messages on one queue manager once, then exit. "
        "`ams proxy run --config FILE` runs routes as a service.",
    )
    proxy.add_argument("--from", dest="source", help="queue to read (as this identity)")
    proxy.add_argument("--to", dest="target", help="queue to write (protected by its policy)")
    add_keys_options(proxy, queue_manager=True)  # one queue manager for both queues
    proxy.add_argument("--count", type=int, default=None, help="stop after this many messages")
    proxy.add_argument("--wait", type=float, default=0.0, help="keep waiting this long for each next message")
    proxy.add_argument("--batch", type=int, default=1, help="messages per unit of work (default 1)")
    proxy.set_defaults(run=run_once)
    actions = proxy.add_subparsers(dest="proxy_command", required=False)

    serve = actions.add_parser("run", help="run the routes of a configuration file until SIGTERM")
    serve.add_argument("--config", required=True, type=Path, help="the routes (TOML)")
    serve.add_argument("--metrics", default=None, help="serve Prometheus metrics at this loopback HOST:PORT")
    serve.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=None,
        help="write each log line (one per message handled, and the service's own) as key=value text or as JSON "
        "(default: the file's log_format, else text)",
    )
    serve.set_defaults(run=run_service)

    check = actions.add_parser("check", help="validate a configuration before anything moves")
    check.add_argument("--config", required=True, type=Path)
    check.add_argument(
        "--json",
        action="store_true",
        help="as JSON: config, ok, problems, routes (name, source, target, delivery, workers, batch_size)",
    )
    check.set_defaults(run=run_check)

    status = actions.add_parser("status", help="what a running service's metrics say, per route")
    status.add_argument("--metrics", required=True, help="the HOST:PORT given to `ams proxy run --metrics`")
    status.add_argument("--json", action="store_true")
    status.set_defaults(run=run_status)


def run_once(args: argparse.Namespace) -> int:
    """``ams proxy --from --to``: the exit status (0 done, 2 usage or configuration, 3 some not moved)."""
    if not args.source or not args.target:
        raise UsageError("ams proxy needs --from QUEUE and --to QUEUE (or a subcommand: run, check, status)")
    manager = manager_for(args, connect(args.qm, appl_name="ams proxy"))
    try:
        proxy = ReprotectionProxy(manager, args.source, manager, args.target, batch_size=args.batch)
        stats = proxy.run(limit=args.count, wait=args.wait)
        proxy.close()
    finally:
        manager.close()
    for reason in stats.reasons:
        print(f"ams: not moved: {reason}", file=sys.stderr)
    print(
        f"moved {stats.moved} message(s) from {args.source} to {args.target}, refused {stats.refused} (on the "
        f"error queue), {stats.poison} poison (on the backout or error queue), {stats.failed} failed attempt(s) "
        f"(backed out, still on {args.source})",
        file=sys.stderr,
    )
    return 3 if stats.refused or stats.failed or stats.poison else 0


def _address(text: str | None) -> tuple[str, int] | None:
    if text is None:
        return None
    from ams.mq.proxy.config import _metrics_address

    wrong = _metrics_address(text)
    if wrong:
        raise UsageError(f"--metrics {text}: {wrong}")
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def run_service(args: argparse.Namespace) -> int:
    """``ams proxy run``: 0 once stopped by SIGTERM/SIGINT, 2 for a configuration that does not load."""
    from ams.mq.proxy.service import ProxyService

    service = ProxyService(args.config, log_format=args.log_format, metrics=_address(args.metrics))
    return service.run()


def run_check(args: argparse.Namespace) -> int:
    """``ams proxy check``: 0 when every route can run, 1 with the problems listed, 2 if it does not load."""
    from ams.mq.proxy.assemble import check_config
    from ams.mq.proxy.config import load_config

    config = load_config(args.config)
    problems = check_config(config)
    if args.json:
        print(json.dumps(_check_json(config, problems), indent=2))
        return 1 if problems else 0
    for problem in problems:
        print(problem)
    if problems:
        print(
            f"{plural(len(problems), 'problem')}: nothing would move on those routes until they are fixed",
            file=sys.stderr,
        )
        return 1
    for route in config.routes:
        mode = "one queue manager: exactly once" if route.one_queue_manager else "two queue managers: ledger"
        print(
            f"{route.name}: {route.source.queue} -> {route.target.queue} ({mode}), "
            f"{plural(route.workers, 'worker')}, batches of {route.batch_size}: ok"
        )
    return 0


def _check_json(config: ServiceConfig, problems: list[str]) -> dict[str, object]:
    """``proxy check --json``: the file, ``ok``, the problems (text, each naming its file and line)
    and per route its name, source and target queues, delivery (``exactly_once`` on one queue
    manager, ``ledger`` between two), workers and batch size."""
    routes = [
        {
            "name": route.name,
            "source": route.source.queue,
            "target": route.target.queue,
            "delivery": "exactly_once" if route.one_queue_manager else "ledger",
            "workers": route.workers,
            "batch_size": route.batch_size,
        }
        for route in config.routes
    ]
    return {"config": str(config.path), "ok": not problems, "problems": problems, "routes": routes}


def run_status(args: argparse.Namespace) -> int:
    """``ams proxy status``: 0 (2 when no service answers)."""
    from ams.mq.proxy.metrics import read_status

    statuses = read_status(args.metrics)
    if args.json:
        print(json.dumps([attrs.asdict(s) for s in statuses], indent=2))
        return 0
    print(
        f"{'route':<24} {'workers':>7} {'restarts':>8} {'depth':>7} {'moved':>9} {'refused':>8} {'poison':>6} "
        f"{'dupes':>6} {'backout':>8} mean ms"
    )
    for s in statuses:
        print(
            f"{s.route:<24} {s.workers:>7} {s.restarts:>8} {s.depth:>7} {s.moved:>9} {s.refused:>8} {s.poison:>6} "
            f"{s.duplicate:>6} {s.backed_out:>8} {s.mean_seconds * 1000:7.1f}"
        )
    return 0
