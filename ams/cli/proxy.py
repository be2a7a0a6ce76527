"""``ams proxy``: re-protect messages from one queue onto another."""

from __future__ import annotations

import argparse
import sys

from ams.cli.common import add_keys_options, manager_for
from ams.mq import connect
from ams.mq.proxy import ReprotectionProxy


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this command group's subcommands to ``commands``."""
    proxy = commands.add_parser("proxy", help="get from one protected queue and put to another, re-protected")
    proxy.add_argument("--from", dest="source", required=True, help="queue to read (as this identity)")
    proxy.add_argument("--to", dest="target", required=True, help="queue to write (protected by its policy)")
    add_keys_options(proxy, queue_manager=True)  # one queue manager for both queues
    proxy.add_argument("--count", type=int, default=None, help="stop after this many messages")
    proxy.add_argument("--wait", type=float, default=0.0, help="keep waiting this long for each next message")
    proxy.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the command; the exit status (0 done, 1 problems found, 2 usage or configuration, 3 refused)."""
    manager = manager_for(args, connect(args.qm, appl_name="ams proxy"))
    try:
        proxy = ReprotectionProxy(manager, args.source, manager, args.target)
        stats = proxy.run(limit=args.count, wait=args.wait)
        proxy.close()
    finally:
        manager.close()
    for reason in stats.reasons:
        print(f"ams: not moved: {reason}", file=sys.stderr)
    print(
        f"moved {stats.moved} message(s) from {args.source} to {args.target}, refused {stats.refused} (on the "
        f"error or backout queue), {stats.failed} failed attempt(s) (backed out, still on {args.source})",
        file=sys.stderr,
    )
    return 3 if stats.refused or stats.failed else 0
