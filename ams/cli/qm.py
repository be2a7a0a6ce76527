"""``ams qm``: define queues and aliases on the embedded queue manager, show them, restart it, and
take authorities away, or print the MQSC that does the same on IBM MQ."""

from __future__ import annotations

import argparse
import json
import os

from ams.errors import UsageError
from ams.mq.connect import DEFAULT_EMBEDDED, open_embedded
from ams.mq.embedded import OPERATIONS
from ams.mq.mqsc import (
    authorities_needed,
    changed_attributes,
    define_qalias,
    define_qlocal,
    mqsc_attributes,
    set_authrec,
    setmqaut,
)
from ams.mq.transport import QueueAttributes


def _yes_no(text: str) -> bool:
    if text.upper() not in ("YES", "NO"):
        raise argparse.ArgumentTypeError(f"expected YES or NO, found {text!r}")
    return text.upper() == "YES"


def _add_qm(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--qm", default=None, help="embedded queue manager file (default $AMS_QM or ./ams-qm.sqlite)")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this command group's subcommands to ``commands``."""
    qm = commands.add_parser("qm", help="administer the embedded queue manager (queues, aliases, authorities)")
    actions = qm.add_subparsers(dest="qm_command", required=True)
    _register_create(actions)
    define = actions.add_parser("define", help="DEFINE QLOCAL ... REPLACE (MQ's defaults unless told)")
    define.add_argument("queues", nargs="+", metavar="QUEUE")
    define.add_argument("--bothresh", type=int, default=0, help="BOTHRESH: backouts before a get moves it aside")
    define.add_argument("--boqname", default="", help="BOQNAME: where a message backed out too often goes")
    define.add_argument("--propctl", default="COMPAT", type=str.upper, help="PROPCTL (COMPAT, NONE, ALL, FORCE)")
    define.add_argument("--defpsist", type=_yes_no, default=False, help="DEFPSIST YES|NO")
    define.add_argument("--defprty", type=int, default=0, help="DEFPRTY 0-9")
    define.add_argument("--maxmsgl", type=int, default=QueueAttributes().max_message_length, help="MAXMSGL bytes")
    define.add_argument("--defsopt", choices=("SHARED", "EXCL"), type=str.upper, default="SHARED")
    define.add_argument("--noshare", action="store_true", help="NOSHARE: one input handle at a time")
    define.add_argument("--maxdepth", type=int, default=QueueAttributes().max_depth, help="MAXDEPTH (default 5000)")
    define.add_argument("--put", choices=("ENABLED", "DISABLED"), type=str.upper, default="ENABLED", help="PUT()")
    define.add_argument("--get", choices=("ENABLED", "DISABLED"), type=str.upper, default="ENABLED", help="GET()")
    define.add_argument("--mqsc", action="store_true", help="print the MQSC for IBM MQ instead")
    _add_qm(define)
    define.set_defaults(run=run_define)

    alias = actions.add_parser("alias", help="DEFINE QALIAS(ALIAS) TARGET(QUEUE) REPLACE")
    alias.add_argument("alias")
    alias.add_argument("target")
    alias.add_argument("--mqsc", action="store_true", help="print the MQSC for IBM MQ instead")
    _add_qm(alias)
    alias.set_defaults(run=run_alias)

    _register_show(actions)

    restart = actions.add_parser("restart", help="back out uncommitted work and discard non-persistent messages")
    _add_qm(restart)
    restart.set_defaults(run=run_restart)

    grants = actions.add_parser(
        "authorities", help="print the setmqaut (or MQSC SET AUTHREC) commands an application using ams needs"
    )
    grants.add_argument("queues", nargs="*", metavar="QUEUE", help="its queues, and their BOQNAME queues")
    grants.add_argument("--principal", required=True, help="the user (or -g group with setmqaut) to grant")
    grants.add_argument("-m", dest="qmgr", default=None, help="the queue manager (for setmqaut)")
    grants.add_argument("--writes-policies", action="store_true", help="also +get +put on the policy queue")
    grants.add_argument(
        "--ledger", action="append", default=[], metavar="QUEUE", help="a proxy's delivery ledger queue (repeatable)"
    )
    grants.add_argument("--mqsc", action="store_true", help="as SET AUTHREC commands for runmqsc")
    grants.set_defaults(run=run_authorities)

    deny = actions.add_parser(
        "deny", help="refuse put/get/browse/setall on a queue with MQRC 2035, as setmqaut -put (-setall) would"
    )
    deny.add_argument("queue")
    deny.add_argument("operations", nargs="+", choices=OPERATIONS)
    deny.add_argument("--allow", action="store_true", help="give the operations back")
    _add_qm(deny)
    deny.set_defaults(run=run_deny)


def _register_show(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``ams qm show [QUEUE] [--mqsc | --json]``."""
    show = actions.add_parser("show", help="every queue with its attributes and depth, or one queue's")
    show.add_argument("queue", nargs="?")
    shown_as = show.add_mutually_exclusive_group()
    shown_as.add_argument("--mqsc", action="store_true", help="as the MQSC that defines them on IBM MQ")
    shown_as.add_argument(
        "--json",
        action="store_true",
        help="a list of objects: QUEUE, TYPE, CURDEPTH and every attribute by its MQSC name",
    )
    _add_qm(show)
    show.set_defaults(run=run_show)


def _register_create(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    create = actions.add_parser(
        "create", help="create an embedded queue manager file, as crtmqm does (its SYSTEM.* queues defined)"
    )
    create.add_argument("file", nargs="?", default=None, help="the file (default --qm, $AMS_QM or ./ams-qm.sqlite)")
    _add_qm(create)
    create.set_defaults(run=run_create)


def _attributes(args: argparse.Namespace) -> QueueAttributes:
    return QueueAttributes(
        backout_threshold=args.bothresh,
        backout_queue=args.boqname,
        propctl=args.propctl,
        default_persistent=args.defpsist,
        default_priority=args.defprty,
        max_message_length=args.maxmsgl,
        shared_by_default=args.defsopt == "SHARED",
        shareable=not args.noshare,
        max_depth=args.maxdepth,
        put_inhibited=args.put == "DISABLED",
        get_inhibited=args.get == "DISABLED",
    )


def run_create(args: argparse.Namespace) -> int:
    """``ams qm create``: the exit status (0 done, 2 usage, or the file exists already)."""
    target = args.file or args.qm or os.environ.get("AMS_QM") or DEFAULT_EMBEDDED
    if os.path.lexists(target):
        raise UsageError(
            f"{target} exists already (as crtmqm refuses an existing queue manager): use it with --qm {target}, "
            "or choose another file"
        )
    qm = open_embedded(target, create=True)
    qm.close()
    print(f"created queue manager {qm.name} in {target}; define its queues with `ams qm define QUEUE --qm {target}`")
    return 0


def run_define(args: argparse.Namespace) -> int:
    """``ams qm define``: the exit status (0 done, 2 usage)."""
    attributes = _attributes(args)
    if args.mqsc:
        for queue in args.queues:
            print(define_qlocal(queue, attributes))
        return 0
    qm = open_embedded(args.qm)
    try:
        for queue in args.queues:
            qm.define_queue(queue, attributes)
            print(f"defined {queue} on {qm.name}: {define_qlocal(queue, attributes)}")
    finally:
        qm.close()
    return 0


def run_alias(args: argparse.Namespace) -> int:
    """``ams qm alias``: the exit status (0 done, 2 usage)."""
    if args.mqsc:
        print(define_qalias(args.alias, args.target))
        return 0
    qm = open_embedded(args.qm)
    try:
        qm.define_alias(args.alias, args.target)
        print(f"defined {args.alias} on {qm.name}: an alias of {args.target}")
    finally:
        qm.close()
    return 0


def _describe(name: str, definition: QueueAttributes | str, depth: int | None) -> str:
    """One line: the queue, its type, CURDEPTH and the attributes that differ from MQ's defaults,
    all in MQSC's names and forms."""
    if isinstance(definition, str):
        return f"{name:<48} QALIAS  TARGET({definition})"
    return " ".join([f"{name:<48} QLOCAL  CURDEPTH({depth})", *changed_attributes(definition)])


def _as_json(name: str, definition: QueueAttributes | str, depth: int | None) -> dict[str, object]:
    """``ams qm show --json``'s object for one queue: QUEUE, TYPE, then TARGET (an alias) or
    CURDEPTH and every attribute (mqsc_attributes), keyed by MQSC names."""
    if isinstance(definition, str):
        return {"QUEUE": name, "TYPE": "QALIAS", "TARGET": definition}
    return {"QUEUE": name, "TYPE": "QLOCAL", "CURDEPTH": depth, **mqsc_attributes(definition)}


def run_show(args: argparse.Namespace) -> int:
    """``ams qm show``: the exit status (0 done, 1 no such queue, 2 usage)."""
    qm = open_embedded(args.qm)
    try:
        queues = qm.queues()
        if args.queue is not None:
            if args.queue not in queues:
                print(f"no queue {args.queue} on {qm.name}: define it with `ams qm define {args.queue}`")
                return 1
            queues = {args.queue: queues[args.queue]}
        with qm.connect("ams qm") as connection:
            rows = []
            for name, definition in queues.items():
                depth = connection.depth(name) if isinstance(definition, QueueAttributes) else None
                if args.json:
                    rows.append(_as_json(name, definition, depth))
                elif args.mqsc:
                    print(
                        define_qlocal(name, definition)
                        if isinstance(definition, QueueAttributes)
                        else define_qalias(name, definition)
                    )
                else:
                    print(_describe(name, definition, depth))
            if args.json:
                print(json.dumps(rows, indent=2))
    finally:
        qm.close()
    return 0


def run_restart(args: argparse.Namespace) -> int:
    """``ams qm restart``: the exit status (0 done, 2 usage)."""
    qm = open_embedded(args.qm)
    try:
        discarded = qm.restart()
    finally:
        qm.close()
    print(f"restarted {qm.name}: uncommitted work backed out, {discarded} non-persistent message(s) discarded")
    return 0


def run_authorities(args: argparse.Namespace) -> int:
    """``ams qm authorities``: the exit status (0 done, 2 usage)."""
    needed = authorities_needed(args.queues, writes_policies=args.writes_policies, ledgers=args.ledger)
    if args.mqsc:
        lines = set_authrec(args.principal, needed)
    elif args.qmgr is None:
        raise UsageError("setmqaut needs the queue manager: add -m QMGR (or --mqsc for SET AUTHREC commands)")
    else:
        lines = setmqaut(args.qmgr, args.principal, needed)
    print("\n".join(lines))
    return 0


def run_deny(args: argparse.Namespace) -> int:
    """``ams qm deny``: the exit status (0 done, 2 usage)."""
    qm = open_embedded(args.qm)
    try:
        qm.deny(args.queue, *args.operations, allowed=args.allow)
    finally:
        qm.close()
    verb = "allowed again" if args.allow else "now refused with MQRC 2035 (MQRC_NOT_AUTHORIZED)"
    print(f"{', '.join(args.operations)} on {args.queue}: {verb}")
    return 0
