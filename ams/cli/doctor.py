"""``ams doctor``: check a keystore and policies before anything runs."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import attrs

from ams.cli.common import add_check_options, add_keystore_option, verifier_for
from ams.doctor import ROLE_BOTH, ROLE_RECEIVE, ROLE_SEND, diagnose
from ams.errors import plural
from ams.mq.connect import DEFAULT_EMBEDDED
from ams.policy import PolicyStore


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this command group's subcommands to ``commands``."""
    doctor = commands.add_parser("doctor", help="check a keystore (and policies) and say how to fix each finding")
    doctor.add_argument("--policies", type=Path, default=None)
    doctor.add_argument("--queue", default=None, help="check only this queue's policy")
    doctor.add_argument(
        "--json", action="store_true", help="as JSON: findings (level, subject, problem, fix), errors, warnings"
    )
    doctor.add_argument(
        "--qm",
        default=None,
        help="the embedded queue manager file to check (default $AMS_QM or ./ams-qm.sqlite, when it exists)",
    )
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


def _queue_manager_file(spec: str | None) -> Path | None:
    """The embedded queue manager file named (or the default one, if it exists); None for IBM MQ."""
    target = spec or os.environ.get("AMS_QM") or DEFAULT_EMBEDDED
    if target.startswith("mq:") or (spec is None and not os.path.lexists(target)):
        return None
    return Path(target)


def run(args: argparse.Namespace) -> int:
    """Run the command; the exit status (0 done, 1 problems found, 2 usage or configuration, 3 refused)."""
    policies = PolicyStore.from_directory(args.policies) if args.policies else PolicyStore()
    findings = diagnose(
        args.keystore_conf,
        policies,
        queue=args.queue,
        queue_manager_file=_queue_manager_file(args.qm),
        strict=args.strict_keystore,
        verifier=lambda keystore: verifier_for(args, keystore),
        role=args.role,
        allow_deprecated=args.allow_deprecated,
    )
    errors = sum(1 for f in findings if f.level == "error")
    if args.json:
        report = {"findings": [attrs.asdict(f) for f in findings], "errors": errors, "warnings": len(findings) - errors}
        print(json.dumps(report, indent=2))
        return 1 if errors else 0
    for finding in findings:
        print(finding)
    summary = f"{plural(errors, 'error')}, {plural(len(findings) - errors, 'warning')}"
    print(summary if findings else "no problems found")
    return 1 if errors else 0
