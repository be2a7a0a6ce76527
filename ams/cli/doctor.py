"""``ams doctor``: check a keystore and policies before anything runs."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import attrs

from ams.doctor import diagnose
from ams.errors import plural
from ams.mq.connect import DEFAULT_EMBEDDED
from ams.policy import PolicyStore


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this command group's subcommands to ``commands``."""
    doctor = commands.add_parser("doctor", help="check a keystore (and policies) and say how to fix each finding")
    doctor.add_argument("--keystore-conf", type=Path, default=None)
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
    findings = diagnose(args.keystore_conf, policies, queue=args.queue, queue_manager_file=_queue_manager_file(args.qm))
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
