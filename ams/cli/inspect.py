"""``ams inspect``."""

from __future__ import annotations

import argparse
import json

from ams.cli.common import add_check_options, add_keystore_option, limits_for, read_input, verifier_for
from ams.inspect import inspect_message, render
from ams.keys import Keystore
from ams.mqconstants import MQFMT_NONE


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this command group's subcommands to ``commands``."""
    inspect = commands.add_parser("inspect", help="describe a protected message without unprotecting it")
    inspect.add_argument("-i", "--input", default=None, help="input file (default: standard input)")
    inspect.add_argument("--format", default=MQFMT_NONE, help="MQMD Format of the input (default blank)")
    inspect.add_argument("--json", action="store_true", help="print JSON")
    add_keystore_option(
        inspect, "name recipients this keystore knows by DN, and open a privacy message sent to it (default: none)"
    )
    add_check_options(inspect)
    inspect.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the command; the exit status (0 done, 1 problems found, 2 usage or configuration, 3 refused)."""
    from pathlib import Path

    data = read_input(Path(args.input) if args.input else None)
    keystore = Keystore.from_conf(args.keystore_conf, strict=args.strict_keystore) if args.keystore_conf else None
    verifier = verifier_for(args, keystore) if keystore is not None else None
    report = inspect_message(data, args.format, keystore=keystore, verifier=verifier, limits=limits_for(args))
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0
