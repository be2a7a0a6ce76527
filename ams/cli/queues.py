"""``ams put``, ``ams get``, ``ams browse`` (in the spirit of amqsput/amqsget) and ``ams errors``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from ams.cli.common import add_keys_options, keystore_for, manager_for, policies_for, verifier_for
from ams.errors import AmsError, ConfigurationError, SecurityError
from ams.inspect import inspect_message, render
from ams.mq import connect
from ams.mq.errors_queue import FailedMessage, explain, read_error_queue, take
from ams.mq.mqmd import MQMD
from ams.mq.protected import ERROR_QUEUE, PoisonMessageError, ProtectedMessage, ProtectedQueueManager
from ams.mq.transport import MQ_ID_LENGTH, NoMessageAvailable


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
    get.add_argument("--msg-id", type=_identifier, help="only messages with this MsgId (hex, up to 24 bytes)")
    get.add_argument("--correl-id", type=_identifier, help="only messages with this CorrelId (hex, up to 24 bytes)")
    get.set_defaults(run=run_get)

    browse = commands.add_parser("browse", help="browse messages without removing them")
    browse.add_argument("queue")
    add_keys_options(browse, queue_manager=True)
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
                help="put it back on its queue (after a fix) and remove it from the error queue",
            )
        add_keys_options(action, queue_manager=True)
        action.add_argument("--json", action="store_true")
        action.set_defaults(run=run_errors)


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
        [f.read_bytes() for f in args.file]
        if args.file
        else [line.rstrip(b"\r\n") for line in sys.stdin.buffer if line.strip()]
    )
    md = MQMD(format=args.format.ljust(8))
    try:
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


def _emit(body: bytes) -> None:
    sys.stdout.buffer.write(body + b"\n")
    sys.stdout.buffer.flush()


def run_get(args: argparse.Namespace) -> int:
    """Each message is got under syncpoint and committed once written out: none is lost on the way."""
    manager = _manager(args)
    failed = got = 0
    try:
        queue = manager.open(args.queue, input=True)
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
            _emit(message.body)
            manager.commit()
            got += 1
    finally:
        manager.close()
    print(f"got {got} message(s) from {args.queue}" + (f", {failed} refused" if failed else ""), file=sys.stderr)
    return 3 if failed else 0


def _report_refusal(error: AmsError) -> None:
    print(f"ams: message refused (MQRC {error.reason}): {error}", file=sys.stderr)
    for note in getattr(error, "__notes__", []):
        print(f"     {note}", file=sys.stderr)


def run_browse(args: argparse.Namespace) -> int:
    """``ams ... browse``: the exit status (0 done, 2 usage or configuration, 3 refused)."""
    manager = _manager(args)
    failed = 0
    try:
        queue = manager.open(args.queue, browse=True)
        step: Callable[[], ProtectedMessage] = queue.browse_first
        while True:
            try:
                message = step()
                _emit(message.body)
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
            rows = [_summary(f) for f in failed]
            if args.json:
                print(json.dumps(rows, indent=2))
            for row in rows if not args.json else []:
                print(f"{row['index']:>3}  {row['queue']:<24} {row['put']:<20} {row['qop']:<16} {row['size']:>8} bytes")
            if not rows and not args.json:
                print(f"{ERROR_QUEUE} is empty")
            return 0
        chosen = next((f for f in failed if f.index == args.index), None)
        if chosen is None:
            raise AmsError(f"no message {args.index} on {ERROR_QUEUE} (it holds {len(failed)})")
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
            report = explain(chosen, keystore, policies_for(args, qm), verifier=verifier_for(args, keystore))
        _print_report(report, args.json)
        if args.remove or args.requeue:
            take(qm, chosen, requeue=args.requeue)
            action = f"put back on {chosen.dlh.dest_q_name}" if args.requeue and chosen.dlh else "removed"
            print(f"message {chosen.index} {action}", file=sys.stderr)
        return 0
    finally:
        qm.close()


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
