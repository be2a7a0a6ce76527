"""``ams``: the command line entry point."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ams import __version__
from ams.cli import conformance, demo, doctor, inspect, keys, pki, policy, protect, proxy, qm, queues
from ams.errors import AmsError, SecurityError


def build_parser() -> argparse.ArgumentParser:
    """The ``ams`` argument parser, with every command group."""
    parser = argparse.ArgumentParser(prog="ams", description="IBM MQ Advanced Message Security in Python")
    parser.add_argument("--version", action="version", version=f"ams {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (protect, inspect, queues, proxy, policy, qm, doctor, keys, pki, demo, conformance):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ams`` with ``argv``; only a status comes back: every failure is printed, never raised."""
    args = build_parser().parse_args(argv)
    try:
        result: int = args.run(args)
        return result
    except SecurityError as error:
        print(f"ams: refused (MQRC {error.reason}): {error}", file=sys.stderr)
        return 3
    except AmsError as error:
        print(f"ams: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"ams: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # a bug: say so, without a traceback that could hold message data
        print(f"ams: internal error ({type(error).__name__}): this is a bug in ams, please report it", file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())
