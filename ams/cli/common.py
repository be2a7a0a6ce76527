"""What the command groups share: loading keystores and policies, reading and writing data."""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from ams.keys import Keystore
from ams.keys.loading import default_conf_path
from ams.mq.protected import policies_from_queue_manager
from ams.mq.transport import QueueManager
from ams.policy import Policy, PolicyStore
from ams.protector import Protector


def add_keys_options(parser: argparse.ArgumentParser, *, queue_manager: bool = False) -> None:
    """--policies and --keystore-conf; with ``queue_manager`` also --qm, and --policies becomes optional
    (the queue manager's SYSTEM.PROTECTION.POLICY.QUEUE is the default)."""
    if queue_manager:
        parser.add_argument(
            "--qm",
            default=None,
            help="embedded queue manager file (default $AMS_QM or ./ams-qm.sqlite) or mq://host(port)/QM",
        )
        parser.add_argument(
            "--policies",
            type=Path,
            default=None,
            help="policy directory (default: the queue manager's SYSTEM.PROTECTION.POLICY.QUEUE)",
        )
    else:
        parser.add_argument("--policies", required=True, type=Path, help="policy directory (*.spl, *.mqsc)")
    parser.add_argument(
        "--keystore-conf",
        type=Path,
        default=None,
        help="keystore.conf (default: $MQS_KEYSTORE_CONF, else ~/.mqs/keystore.conf)",
    )


def add_io_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", type=Path, default=None, help="input file (default: standard input)")
    parser.add_argument("-o", "--output", type=Path, default=None, help="output file (default: standard output)")


def parse_time(text: str) -> datetime.datetime:
    value = datetime.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


def read_input(path: Path | None) -> bytes:
    return sys.stdin.buffer.read() if path is None else path.read_bytes()


def write_output(path: Path | None, data: bytes) -> None:
    if path is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        path.write_bytes(data)


def protector(args: argparse.Namespace) -> Protector:
    keystore = Keystore.from_conf(args.keystore_conf)
    policies = PolicyStore.from_directory(args.policies)
    return Protector(
        keystore,
        policies,
        allow_deprecated=getattr(args, "allow_deprecated", False),
        at=getattr(args, "at", None),
        diagnose_decryption=getattr(args, "diagnose_decryption", False),
    )


def keystore_for(args: argparse.Namespace) -> Keystore:
    """The --keystore-conf keystore, or IBM's default one; none at all when no keystore.conf exists."""
    path = args.keystore_conf or default_conf_path()
    if args.keystore_conf is None and not path.exists():
        return Keystore(None, source="no keystore.conf")
    return Keystore.from_conf(path)


def policies_for(args: argparse.Namespace, qm: QueueManager) -> dict[str, Policy]:
    """The --policies directory, or the queue manager's SYSTEM.PROTECTION.POLICY.QUEUE."""
    if args.policies is not None:
        return dict(PolicyStore.from_directory(args.policies))
    return policies_from_queue_manager(qm)
