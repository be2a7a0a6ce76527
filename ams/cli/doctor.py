"""``ams doctor``: check a keystore and policies before anything runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from ams.doctor import diagnose
from ams.policy import PolicyStore


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this command group's subcommands to ``commands``."""
    doctor = commands.add_parser("doctor", help="check a keystore (and policies) and say how to fix each finding")
    doctor.add_argument("--keystore-conf", type=Path, default=None)
    doctor.add_argument("--policies", type=Path, default=None)
    doctor.add_argument("--queue", default=None, help="check only this queue's policy")
    doctor.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the command; the exit status (0 done, 1 problems found, 2 usage or configuration, 3 refused)."""
    policies = PolicyStore.from_directory(args.policies) if args.policies else PolicyStore()
    findings = diagnose(args.keystore_conf, policies, queue=args.queue)
    for finding in findings:
        print(finding)
    errors = sum(1 for f in findings if f.level == "error")
    print(f"{errors} error(s), {len(findings) - errors} warning(s)" if findings else "no problems found")
    return 1 if errors else 0
