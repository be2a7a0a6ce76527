"""What the command groups share: loading keystores and policies, reading and writing data."""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from ams._files import read_bounded
from ams.algorithms import QoP
from ams.errors import ConfigurationError
from ams.keys import Keystore, RevocationChecker, RevocationSettings
from ams.keys.hygiene import check_trusted
from ams.keys.loading import default_conf_path, default_conf_tried
from ams.limits import DEFAULT_LIMITS, Limits
from ams.policy import Policy, PolicyStore
from ams.protector import Protector
from ams.verify import Verifier

if TYPE_CHECKING:  # the queue manager's modules are loaded when a command uses one (ams protect does not)
    from ams.mq.protected import ProtectedQueueManager
    from ams.mq.transport import QueueManager


def add_keys_options(parser: argparse.ArgumentParser, *, queue_manager: bool = False) -> None:
    """--policies and --keystore-conf, and the options of the checks; with ``queue_manager`` also --qm,
    and --policies becomes optional (the queue manager's SYSTEM.PROTECTION.POLICY.QUEUE is the default)."""
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
    add_keystore_option(parser)
    add_check_options(parser)
    parser.add_argument(
        "--require-policy",
        action="store_true",
        help="refuse a queue that has no policy protecting it, instead of sending or reading it in the clear "
        "(as IBM AMS does)",
    )


def add_keystore_option(
    parser: argparse.ArgumentParser,
    help: str = "keystore.conf (default: $MQS_KEYSTORE_CONF, else ~/.mqs/keystore.conf)",
) -> None:
    """--keystore-conf and --strict-keystore."""
    parser.add_argument("--keystore-conf", type=Path, default=None, help=help)
    parser.add_argument(
        "--strict-keystore",
        action="store_true",
        help="refuse unencrypted or group/world-readable key files and readable plain-text passwords",
    )


def add_check_options(parser: argparse.ArgumentParser) -> None:
    """The Protector's and the Verifier's options a deployment may need to set."""
    checks = parser.add_argument_group("checks")
    checks.add_argument(
        "--strict-dn", action="store_true", help="compare signers' DNs exactly too (recipients' always are)"
    )
    checks.add_argument(
        "--clock-skew", type=float, default=300.0, metavar="SECONDS", help="certificate date tolerance (default 300)"
    )
    checks.add_argument(
        "--max-recipients", type=int, default=None, metavar="N", help="RecipientInfos a message may hold (1024)"
    )
    checks.add_argument("--allow-deprecated", action="store_true", help="allow writing MD5, SHA1, RC2, DES, 3DES")
    checks.add_argument("--crl", action="append", type=Path, default=[], metavar="FILE", help="a CRL file (repeat)")
    checks.add_argument("--ocsp", action="store_true", help="check signers' and recipients' certificates with OCSP")
    checks.add_argument("--ocsp-url", default=None, metavar="URL", help="the OCSP responder to ask (http://)")
    checks.add_argument(
        "--revocation-fail", choices=["hard", "soft"], default=None, help="refuse (hard) or accept (soft) unknown"
    )


def add_io_options(parser: argparse.ArgumentParser) -> None:
    """-i and -o: input and output files, standard input and output by default."""
    parser.add_argument("-i", "--input", type=Path, default=None, help="input file (default: standard input)")
    parser.add_argument("-o", "--output", type=Path, default=None, help="output file (default: standard output)")


def parse_time(text: str) -> datetime.datetime:
    """An ISO 8601 time, UTC when it names no zone."""
    value = datetime.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


def read_input(path: Path | None, what: str = "input") -> bytes:
    """The bytes of ``path`` (a file or a pipe, not a device), or of standard input, at most
    :attr:`ams.Limits.message_file_size` (MQ's largest message): ConfigurationError past it."""
    limit = DEFAULT_LIMITS.message_file_size
    if path is not None:
        return read_bounded(path, what, limit=limit, allow_pipe=True)
    data = sys.stdin.buffer.read(limit + 1)
    if len(data) > limit:
        raise ConfigurationError(
            f"refusing to read standard input: expected at most {limit:,} bytes (ams.Limits.message_file_size, "
            "MQ's largest message), found more"
        )
    return data


def write_output(path: Path | None, data: bytes) -> None:
    """Write ``data`` to ``path``, or to standard output."""
    if path is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        path.write_bytes(data)


def keystore_for(args: argparse.Namespace) -> Keystore:
    """The --keystore-conf keystore, or IBM's default one; none at all when no keystore.conf exists."""
    path = args.keystore_conf or default_conf_path()
    if args.keystore_conf is None and not path.exists():
        # queues without a policy need no keys; anything that does says where keys were looked for
        return Keystore(
            None, source=f"the empty keystore (no keystore.conf named or found: tried {default_conf_tried()})"
        )
    return Keystore.from_conf(path, strict=getattr(args, "strict_keystore", False))


def verifier_for(args: argparse.Namespace, keystore: Keystore) -> Verifier:
    """A verifier with the keystore.conf's revocation settings, changed by the command line's."""
    settings = keystore.revocation or RevocationSettings()
    changes: dict[str, object] = {}
    if args.crl:
        # a CRL another local user can write is a revocation they decide: warned, refused when strict
        check_trusted(args.crl, "the CRL file (--crl)", strict=getattr(args, "strict_keystore", False))
        changes["crl_files"] = (*settings.crl_files, *args.crl)
    if args.ocsp or args.ocsp_url:
        changes["ocsp"] = True
    if args.ocsp_url:
        changes["ocsp_url"] = args.ocsp_url
    if args.revocation_fail:
        changes["hard_fail"] = args.revocation_fail == "hard"
    settings = attrs.evolve(settings, **changes)  # type: ignore[arg-type]
    return Verifier(
        keystore,
        clock_skew=datetime.timedelta(seconds=args.clock_skew),
        strict_dn=args.strict_dn,
        revocation=RevocationChecker.online(settings) if settings.enabled else None,
    )


def limits_for(args: argparse.Namespace) -> Limits:
    """The bounds on received messages, with --max-recipients."""
    return Limits(recipients=args.max_recipients) if args.max_recipients else DEFAULT_LIMITS


def protector(args: argparse.Namespace) -> Protector:
    """A Protector from --keystore-conf, --policies and the check options."""
    keystore = keystore_for(args)
    return Protector(
        keystore,
        PolicyStore.from_directory(args.policies),
        verifier=verifier_for(args, keystore),
        allow_deprecated=args.allow_deprecated,
        at=getattr(args, "at", None),
        limits=limits_for(args),
        diagnose_decryption=getattr(args, "diagnose_decryption", False),
        require_policy=args.require_policy,
    )


def manager_for(args: argparse.Namespace, qm: QueueManager) -> ProtectedQueueManager:
    """A protected connection to ``qm`` with the command line's keystore, policies and checks."""
    from ams.mq.protected import ProtectedQueueManager

    keystore = keystore_for(args)
    return ProtectedQueueManager(
        qm,
        keystore,
        policies_for(args, qm),
        verifier=verifier_for(args, keystore),
        allow_deprecated=args.allow_deprecated,
        limits=limits_for(args),
        require_policy=args.require_policy,
    )


def policies_for(args: argparse.Namespace, qm: QueueManager) -> Mapping[str, Policy]:
    """The --policies directory, or the queue manager's SYSTEM.PROTECTION.POLICY.QUEUE."""
    if args.policies is not None:
        return PolicyStore.from_directory(args.policies)
    from ams.mq.protected import POLICY_QUEUE, policies_from_queue_manager

    store = PolicyStore(policies_from_queue_manager(qm).values())
    store.source = f"{qm.name}'s {POLICY_QUEUE}"
    return store


def warn_unprotected(policies: Mapping[str, Policy], queue: str, verb: str) -> None:
    """On standard error: ``queue`` has no policy that protects it, so its messages are ``verb`` in the clear."""
    policy = policies.get(queue)
    if policy is not None and policy.qop is not QoP.NONE:
        return
    from ams.mq.protected import never_protected  # here: a protected queue's command need not load ams.mq

    if never_protected(queue):
        return
    what = "has no policy" if policy is None else "has a policy that sets no algorithm (-s NONE -e NONE)"
    print(
        f"ams: warning: {queue} {what}: {verb} in the clear (IBM AMS does the same); use --require-policy to refuse",
        file=sys.stderr,
    )
