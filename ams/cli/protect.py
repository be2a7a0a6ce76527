"""``ams protect`` and ``ams unprotect``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ams.algorithms import QoP
from ams.cli.common import (
    add_io_options,
    add_keys_options,
    parse_time,
    protector,
    read_input,
    warn_unprotected,
    write_output,
)
from ams.errors import DecryptionError
from ams.mqconstants import MQFMT_NONE


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this command group's subcommands to ``commands``."""
    protect = commands.add_parser("protect", help="protect a message body under a queue's policy")
    protect.add_argument("-p", "--queue", required=True, help="queue (policy) name")
    add_keys_options(protect)
    protect.add_argument("--format", default="MQSTR", help="MQMD Format of the input (default MQSTR)")
    protect.add_argument("--one-shot", action="store_true", help="as MQPUT1: never reuse a key")
    add_io_options(protect)
    protect.set_defaults(run=run_protect)

    unprotect = commands.add_parser("unprotect", help="check and unprotect a protected message body")
    unprotect.add_argument("-p", "--queue", required=True, help="queue (policy) name")
    add_keys_options(unprotect)
    unprotect.add_argument(
        "--format", default=MQFMT_NONE, help="MQMD Format of the input (default blank: no clear headers)"
    )
    unprotect.add_argument(
        "--format-out",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the MQMD Format handed back (8 characters, blank-padded) to FILE",
    )
    unprotect.add_argument("--at", type=parse_time, default=None, help="validation time (ISO 8601; default now)")
    unprotect.add_argument(
        "--diagnose-decryption",
        action="store_true",
        help="print which step of a failed decryption failed: for the key owner only, never for senders",
    )
    add_io_options(unprotect)
    unprotect.set_defaults(run=run_unprotect)


def run_protect(args: argparse.Namespace) -> int:
    """``ams ... protect``: the exit status (0 done, 2 usage or configuration, 3 refused)."""
    handle = protector(args)
    result = handle.protect(args.queue, read_input(args.input), args.format, one_shot=args.one_shot)
    write_output(args.output, result.body)
    if result.qop is QoP.NONE:
        warn_unprotected(handle.policies, args.queue, "sent")
        return 0
    print(
        f"protected for {args.queue}: {result.qop}, MQMD Format now {result.format.strip() or 'MQFMT_NONE'!s}",
        file=sys.stderr,
    )
    return 0


def run_unprotect(args: argparse.Namespace) -> int:
    """``ams ... unprotect``: the exit status (0 done, 2 usage or configuration, 3 refused)."""
    handle = protector(args)
    try:
        message = handle.unprotect(args.queue, read_input(args.input), args.format)
    except DecryptionError as error:
        if error.diagnostic:
            print(
                f"ams: local decryption diagnostic (do not show this to senders: it is an oracle): {error.diagnostic}",
                file=sys.stderr,
            )
        raise
    write_output(args.output, message.body)
    if args.format_out is not None:
        args.format_out.write_bytes(message.format.ljust(8).encode("ascii", "replace"))
    warn_unprotected(handle.policies, args.queue, "read")
    signer = f", signed by {message.signer_dn}" if message.signer_dn else ""
    print(f"unprotected from {args.queue}: {message.qop}, Format {message.format.strip()!r}{signer}", file=sys.stderr)
    return 0
