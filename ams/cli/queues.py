"""``ams put``, ``ams get``, ``ams browse`` (in the spirit of amqsput/amqsget) and ``ams errors``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from ams.cli.common import (
    add_keys_options,
    keystore_for,
    manager_for,
    policies_for,
    read_input,
    verifier_for,
    warn_unprotected,
)
from ams.cli.message_output import MessageWriter
from ams.errors import AmsError, ConfigurationError, SecurityError, UsageError, clip
from ams.inspect import inspect_message, render
from ams.mq import connect
from ams.mq.errors_queue import FailedMessage, Requeue, explain, plan_requeue, read_error_queue, take
from ams.mq.mqmd import MQMD
from ams.mq.protected import ERROR_QUEUE, PoisonMessageError, ProtectedMessage, ProtectedQueueManager
from ams.mq.transport import MQ_ID_LENGTH, NoMessageAvailable, QueueManager


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this command group's subcommands to ``commands``."""
    put = commands.add_parser("put", help="put messages (one per line of standard input, or one per --file)")
    put.add_argument("queue")
    add_keys_options(put, queue_manager=True)
    put.add_argument("--file", action="append", type=Path, default=[], help="put this file as one message (repeat)")
    put.add_argument("--format", default="MQSTR")
    put.add_argument("--one-shot", action="store_true", help="MQPUT1 each message (never reuses a key)")
    put.set_defaults(run=run_put)

    get = commands.add_parser("get", help="get messages until the queue is empty (or --wait ends)")
    get.add_argument("queue")
    add_keys_options(get, queue_manager=True)
    get.add_argument("--wait", type=float, default=0.0, help="wait this many seconds for each next message")
    _add_output_options(get)
    get.add_argument("--msg-id", type=_identifier, help="only messages with this MsgId (hex, up to 24 bytes)")
    get.add_argument("--correl-id", type=_identifier, help="only messages with this CorrelId (hex, up to 24 bytes)")
    get.set_defaults(run=run_get)

    browse = commands.add_parser("browse", help="browse messages without removing them")
    browse.add_argument("queue")
    add_keys_options(browse, queue_manager=True)
    _add_output_options(browse)
    browse.set_defaults(run=run_browse)

    errors = commands.add_parser("errors", help="read SYSTEM.PROTECTION.ERROR.QUEUE")
    actions = errors.add_subparsers(dest="errors_command", required=True)
    for name, help_text in (
        ("list", "one line per failed message"),
        ("show", "the MQDLH and the message"),
        ("explain", "why this identity could not read it"),
    ):
        action = actions.add_parser(name, help=help_text)
        if name != "list":
            action.add_argument("index", type=int, help="the number `ams errors list` shows")
            action.add_argument("--remove", action="store_true", help="remove it from the error queue")
            action.add_argument(
                "--requeue",
                action="store_true",
                help="put it back on its queue (after a fix) and remove it from the error queue; the destination "
                "is shown and confirmed first",
            )
            action.add_argument(
                "--to",
                default=None,
                metavar="QUEUE",
                help="requeue to this queue (needed for a SYSTEM queue or one no policy protects: the entry's "
                "own MQDLH, which whoever puts it writes, is trusted only for protected queues)",
            )
            action.add_argument("--yes", action="store_true", help="requeue without asking (for scripts)")
        add_keys_options(action, queue_manager=True)
        action.add_argument("--json", action="store_true")
        action.set_defaults(run=run_errors)


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    """--json, --output-dir and --framed (ams.cli.message_output says what each writes)."""
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--json", action="store_true", help="one JSON object per message, one per line")
    how.add_argument(
        "--output-dir", type=Path, default=None, metavar="DIR", help="NNN.body and NNN.mqmd.json per message"
    )
    how.add_argument(
        "--framed",
        action="store_true",
        help="a header line per message and its body escaped (the default on a terminal; "
        "elsewhere each body and a newline)",
    )


def _writer(args: argparse.Namespace) -> MessageWriter:
    return MessageWriter(as_json=args.json, output_dir=args.output_dir, frame=True if args.framed else None)


def _identifier(text: str) -> bytes:
    """A MsgId or CorrelId given in hex (as amqsbcg and `DISPLAY` show them): at most 24 bytes."""
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected hexadecimal digits (found {text!r})") from None
    if len(value) > MQ_ID_LENGTH:
        raise argparse.ArgumentTypeError(f"a MsgId or CorrelId is at most {MQ_ID_LENGTH} bytes (found {len(value)})")
    return value


def _manager(args: argparse.Namespace) -> ProtectedQueueManager:
    return manager_for(args, connect(args.qm, appl_name="ams"))


def run_put(args: argparse.Namespace) -> int:
    """``ams ... put``: the exit status (0 done, 2 usage or configuration, 3 refused)."""
    manager = _manager(args)
    bodies = (
        [read_input(f, "message file (--file)") for f in args.file]
        if args.file
        else [line.rstrip(b"\r\n") for line in sys.stdin.buffer if line.strip()]
    )
    md = MQMD(format=args.format.ljust(8))
    try:
        if not args.require_policy:  # with it, the open below refuses instead
            warn_unprotected(manager.policies, args.queue, "sent")
        if args.one_shot:
            for body in bodies:
                manager.put1(args.queue, md, body)
        else:
            queue = manager.open(args.queue, output=True)
            for body in bodies:
                queue.put(md, body)
            queue.close()
    finally:
        manager.close()
    print(f"put {len(bodies)} message(s) to {args.queue}", file=sys.stderr)
    return 0


def run_get(args: argparse.Namespace) -> int:
    """Each message is got under syncpoint and committed once written out: none is lost on the way."""
    writer = _writer(args)
    manager = _manager(args)
    failed = got = 0
    try:
        queue = manager.open(args.queue, input=True)
        warn_unprotected(manager.policies, args.queue, "read")
        while True:
            try:
                message = queue.get(wait=args.wait, syncpoint=True, msg_id=args.msg_id, correl_id=args.correl_id)
            except NoMessageAvailable:
                break
            except (SecurityError, PoisonMessageError) as error:
                manager.commit()  # moved to the error (or backout) queue: make that final
                failed += 1
                _report_refusal(error)
                continue
            except ConfigurationError:
                raise  # backed out: the message stays, and so would every other
            except AmsError as error:
                failed += 1  # backed out: the message is back on the queue, moved aside past BOTHRESH
                _report_refusal(error)
                continue
            writer.write(message, got + 1)
            manager.commit()
            got += 1
    finally:
        manager.close()
    into = f" into {args.output_dir}" if args.output_dir else ""
    print(f"got {got} message(s) from {args.queue}{into}" + (f", {failed} refused" if failed else ""), file=sys.stderr)
    return 3 if failed else 0


def _report_refusal(error: AmsError) -> None:
    print(f"ams: message refused (MQRC {error.reason}): {error}", file=sys.stderr)
    for note in getattr(error, "__notes__", []):
        print(f"     {note}", file=sys.stderr)


def run_browse(args: argparse.Namespace) -> int:
    """``ams ... browse``: the exit status (0 done, 2 usage or configuration, 3 refused)."""
    writer = _writer(args)
    manager = _manager(args)
    failed = shown = 0
    try:
        queue = manager.open(args.queue, browse=True)
        warn_unprotected(manager.policies, args.queue, "read")
        step: Callable[[], ProtectedMessage] = queue.browse_first
        while True:
            try:
                message = step()
                shown += 1
                writer.write(message, shown)
            except NoMessageAvailable:
                break
            except SecurityError as error:
                failed += 1
                print(f"ams: message refused (MQRC {error.reason}), left on the queue: {error}", file=sys.stderr)
            step = queue.browse_next
    finally:
        manager.close()
    return 3 if failed else 0


def run_errors(args: argparse.Namespace) -> int:
    """``ams ... errors``: the exit status (0 done, 2 usage or configuration, 3 refused)."""
    qm = connect(args.qm, appl_name="ams")
    try:
        failed = read_error_queue(qm)
        if args.errors_command == "list":
            _list(failed, args.json)
            return 0
        chosen = next((f for f in failed if f.index == args.index), None)
        if chosen is None:
            raise AmsError(f"no message {args.index} on {ERROR_QUEUE} (it holds {len(failed)})")
        policies = policies_for(args, qm)
        if args.errors_command == "show":
            report: dict[str, Any] = {**_summary(chosen)}
            report["dlh"] = attrs.asdict(chosen.dlh) if chosen.dlh else {"malformed": chosen.problem}
            md = chosen.original_md
            try:
                report["message"] = inspect_message(chosen.body, md.format, encoding=md.encoding, ccsid=md.ccsid)
            except AmsError as error:
                report["message"] = {"unreadable": error.message}
        else:
            keystore = keystore_for(args)
            report = explain(chosen, keystore, policies, verifier=verifier_for(args, keystore))
        _print_report(report, args.json)
        if args.requeue:
            _requeue(qm, chosen, plan_requeue(chosen, policies, to=args.to), confirmed=args.yes)
        elif args.remove:
            take(qm, chosen)
            print(f"message {chosen.index} removed", file=sys.stderr)
        return 0
    finally:
        qm.close()


def _list(failed: list[FailedMessage], as_json: bool) -> None:
    rows = [_summary(f) for f in failed]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:  # every string of an entry is its putter's: escaped before it reaches a terminal
        queue, put = clip(str(row["queue"]), 48), clip(str(row["put"]), 40)
        print(f"{row['index']:>3}  {queue:<24} {put:<20} {row['qop']:<16} {row['size']:>8} bytes")
    if not rows:
        print(f"{ERROR_QUEUE} is empty")


def _requeue(qm: QueueManager, chosen: FailedMessage, plan: Requeue, *, confirmed: bool) -> None:
    """Show what the requeue will do, ask (unless ``confirmed``), then do it and say what was not kept."""
    for line in plan.describe():
        print(line, file=sys.stderr)
    if not confirmed:
        if not sys.stdin.isatty():
            raise UsageError(
                "--requeue acts on an entry whose every field its putter wrote, so it asks first, and standard input "
                "is not a terminal: check the destination above, then run again with --yes"
            )
        print(f"requeue to {plan.destination}? [y/N] ", end="", file=sys.stderr, flush=True)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            raise UsageError(f"not requeued: entry {chosen.index} stays on {ERROR_QUEUE}")
    for note in take(qm, chosen, requeue=plan):
        print(f"note: {note}", file=sys.stderr)
    print(f"message {chosen.index} put back on {plan.destination}", file=sys.stderr)


def _summary(failed: FailedMessage) -> dict[str, Any]:
    if failed.dlh is None:
        unknown = {"queue": "?", "reason": "?", "put": "?"}
        return {"index": failed.index, **unknown, "qop": "malformed", "size": len(failed.body)}
    md = failed.original_md
    try:
        qop = inspect_message(failed.body, md.format, encoding=md.encoding, ccsid=md.ccsid).get("qop", "unprotected")
    except AmsError:
        qop = "unreadable"
    return {
        "index": failed.index,
        "queue": failed.dlh.dest_q_name,
        "reason": failed.dlh.reason,
        "put": f"{failed.dlh.put_date} {failed.dlh.put_time}",
        "qop": qop,
        "size": len(failed.body),
    }


def _print_report(report: dict[str, Any], as_json: bool) -> None:
    print(json.dumps(report, indent=2, default=str) if as_json else render(report))
