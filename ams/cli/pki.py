"""``ams pki init``: a throwaway test PKI."""

from __future__ import annotations

import argparse
from pathlib import Path

from ams.pki import init_pki


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this command group's subcommands to ``commands``."""
    pki = commands.add_parser("pki", help="test PKI tools")
    actions = pki.add_subparsers(dest="pki_command", required=True)
    init = actions.add_parser("init", help="make a CA and users with keystores (for tests and demos)")
    init.add_argument(
        "directory",
        type=Path,
        help="where to write ca/ and one directory per user (created 0700); existing files are never overwritten",
    )
    init.add_argument("--users", default="alice,bob,carol", help="comma-separated user names (letters, digits, _ . -)")
    init.add_argument("--organisation", default="AMS", help="O= of every DN (default AMS)")
    init.set_defaults(run=run_init)


def run_init(args: argparse.Namespace) -> int:
    """``ams ... init``: the exit status (0 done, 2 usage or configuration, 3 refused)."""
    users = [u.strip() for u in args.users.split(",") if u.strip()]
    made = init_pki(args.directory, users, organisation=args.organisation)
    print(f"CA      {made.ca.dn}  ({args.directory / 'ca' / 'ca.pem'})")
    for user, issued in made.users.items():
        print(f"{user:<7} {issued.dn}  ({made.keystores[user]})")
    return 0
