"""``ams doctor``: check a keystore and policies before anything runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from ams.cli.common import add_check_options, add_keystore_option, verifier_for
from ams.doctor import ROLE_BOTH, ROLE_RECEIVE, ROLE_SEND, diagnose
from ams.policy import PolicyStore


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this command group's subcommands to ``commands``."""
    doctor = commands.add_parser("doctor", help="check a keystore (and policies) and say how to fix each finding")
    doctor.add_argument("--policies", type=Path, default=None)
    doctor.add_argument("--queue", default=None, help="check only this queue's policy")
    doctor.add_argument(
        "--role",
        choices=[ROLE_SEND, ROLE_RECEIVE, ROLE_BOTH],
        default=ROLE_BOTH,
        help="whether this identity sends or receives on the queues: a policy that does not work for it in that "
        "role (not an authorised signer, not a recipient, -r and -a swapped) is an error (default both)",
    )
    add_keystore_option(doctor)
    add_check_options(doctor)
    doctor.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the command; the exit status (0 done, 1 problems found, 2 usage or configuration, 3 refused)."""
    policies = PolicyStore.from_directory(args.policies) if args.policies else PolicyStore()
    findings = diagnose(
        args.keystore_conf,
        policies,
        queue=args.queue,
        strict=args.strict_keystore,
        verifier=lambda keystore: verifier_for(args, keystore),
        role=args.role,
        allow_deprecated=args.allow_deprecated,
    )
    for finding in findings:
        print(finding)
    errors = sum(1 for f in findings if f.level == "error")
    print(f"{errors} error(s), {len(findings) - errors} warning(s)" if findings else "no problems found")
    return 1 if errors else 0
