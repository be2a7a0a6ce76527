"""``ams inspect``."""

from __future__ import annotations

import argparse
import json

from ams.cli.common import read_input
from ams.inspect import inspect_message, render
from ams.keys import Keystore
from ams.mqconstants import MQFMT_NONE


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this command group's subcommands to ``commands``."""
    inspect = commands.add_parser("inspect", help="describe a protected message without unprotecting it")
    inspect.add_argument("-i", "--input", default=None, help="input file (default: standard input)")
    inspect.add_argument("--format", default=MQFMT_NONE, help="MQMD Format of the input (default blank)")
    inspect.add_argument("--keystore-conf", default=None, help="name recipients this keystore knows by DN")
    inspect.add_argument("--json", action="store_true", help="print JSON")
    inspect.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the command; the exit status (0 done, 1 problems found, 2 usage or configuration, 3 refused)."""
    from pathlib import Path

    data = read_input(Path(args.input) if args.input else None)
    keystore = Keystore.from_conf(args.keystore_conf) if args.keystore_conf else None
    report = inspect_message(data, args.format, keystore=keystore)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0
