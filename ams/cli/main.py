"""``ams``: the command line entry point."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from ams import __version__
from ams.errors import AmsError, SecurityError

# the modules of ams.cli that register the commands, in the order `ams --help` lists them
GROUPS = ("protect", "inspect", "queues", "proxy", "policy", "qm", "doctor", "keys", "pki", "demo", "conformance")
# commands one group answers alone: `ams protect` loads only ams.cli.protect, not every group (a peer
# adapter, or a script, starts one process per message: the other groups' imports cost it a third)
ALONE = {"protect": "protect", "unprotect": "protect"}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``ams`` argument parser, with every command group (only ``command``'s group when one of
    :data:`ALONE`)."""
    parser = argparse.ArgumentParser(prog="ams", description="IBM MQ Advanced Message Security in Python")
    parser.add_argument("--version", action="version", version=f"ams {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for group in (ALONE[command],) if command in ALONE else GROUPS:
        importlib.import_module(f"ams.cli.{group}").register(commands)
    return parser


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command Ctrl-C stopped
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader went away (`ams get | head -1`)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ams`` with ``argv``; only a status comes back: every failure is printed, never raised.

    Ctrl-C ends with 130 and a closed standard output (``| head``) with 141, without a traceback:
    commands that take messages commit each one only after it was written, so the one being
    written when either happens is backed out onto its queue.
    """
    words = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(words[0] if words else None).parse_args(words)
    try:
        result: int = args.run(args)
        sys.stdout.flush()  # here, not at exit, so that a reader gone away is seen as one
        return result
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    except SecurityError as error:
        print(f"ams: refused (MQRC {error.reason}): {error}", file=sys.stderr)
        return 3
    except AmsError as error:
        print(f"ams: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"ams: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # a bug: say so, without a traceback that could hold message data
        print(f"ams: internal error ({type(error).__name__}): this is a bug in ams, please report it", file=sys.stderr)
        return 70


def _discard_stdout() -> None:
    """Point standard output at /dev/null: Python's exit would flush what is left into the closed pipe
    and print the BrokenPipeError it gets (the `signal` module's documentation does the same)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor (an embedding program's stream): nothing to flush into
        pass


if __name__ == "__main__":
    sys.exit(main())
