"""``ams policy``: setmqspl and dspmqspl over a policy directory, and roll-out to queue managers."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ams.errors import PolicyError, UsageError
from ams.policy import Policy, PolicyStore, parse_dspmqspl, parse_setmqspl, render_dspmqspl
from ams.policy.diff import commands_for, diff_policies


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    policy = commands.add_parser("policy", help="manage a directory of AMS policies like setmqspl/dspmqspl")
    actions = policy.add_subparsers(dest="policy_command", required=True)

    def with_store(name: str, help: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help)
        parser.add_argument("--policies", required=True, type=Path, help="policy directory (*.spl, *.mqsc)")
        return parser

    set_ = with_store("set", "set (replace) one policy, as setmqspl does; writes DIR/<policy>.spl")
    set_.add_argument("-m", dest="qmgr", default="QM", help="queue manager name written in the file")
    set_.add_argument("-p", dest="name", required=True)
    set_.add_argument("-s", default="NONE")
    set_.add_argument("-e", default="NONE")
    set_.add_argument("-r", action="append", default=[], metavar="DN", help="recipient (repeat)")
    set_.add_argument("-a", action="append", default=[], metavar="DN", help="authorised signer (repeat)")
    set_.add_argument("-t", default="0", choices=["0", "1"])
    set_.add_argument("-c", default="0", help="key reuse: 0, * or 1..9999999")
    set_.set_defaults(run=run_set)

    show = with_store("show", "print policies as dspmqspl does")
    show.add_argument("-p", dest="name", default=None)
    show.set_defaults(run=run_show)

    remove = with_store("remove", "remove one policy (deletes DIR/<policy>.spl)")
    remove.add_argument("-p", dest="name", required=True)
    remove.set_defaults(run=run_remove)

    export = with_store("export", "print one setmqspl (or MQSC) command per policy, as dspmqspl -export")
    export.add_argument("-m", dest="qmgr", required=True)
    export.add_argument("--mqsc", action="store_true", help="print MQSC SET POLICY commands")
    export.set_defaults(run=run_export)

    check = with_store("check", "validate every file; exit non-zero on any error")
    check.set_defaults(run=run_check)

    apply = with_store("apply", "print the commands that make each queue manager match the store (or write them)")
    apply.add_argument("-m", dest="qmgrs", action="append", default=[], metavar="QMGR")
    apply.add_argument(
        "--qm",
        dest="write_to",
        default=None,
        help="write the store into this queue manager's SYSTEM.PROTECTION.POLICY.QUEUE instead "
        "(an embedded queue manager file or mq://...)",
    )
    apply.add_argument("--mqsc", action="store_true", help="print MQSC instead of setmqspl")
    apply.add_argument(
        "--from",
        dest="dump",
        type=Path,
        default=None,
        help="dspmqspl output of the queue managers now: print only what changes",
    )
    apply.set_defaults(run=run_apply)

    diff = with_store("diff", "compare the store with a dspmqspl dump; exit 1 when they differ")
    diff.add_argument("--from", dest="dump", type=Path, required=True, help="dspmqspl output")
    diff.set_defaults(run=run_diff)


def run_set(args: argparse.Namespace) -> int:
    words = ["setmqspl", "-m", args.qmgr, "-p", args.name, "-s", args.s, "-e", args.e]
    for dn in args.a:
        words += ["-a", dn]
    for dn in args.r:
        words += ["-r", dn]
    words += ["-t", args.t, "-c", args.c]
    line = shlex.join(words)
    command = parse_setmqspl(line)  # validates with IBM's rules before anything is written
    assert command.policy is not None
    store = PolicyStore.from_directory(args.policies) if args.policies.is_dir() else PolicyStore()
    target = args.policies / f"{args.name}.spl"
    _refuse_other_origin(store, args.name, target)
    args.policies.mkdir(parents=True, exist_ok=True)
    target.write_text(command.policy.to_setmqspl(args.qmgr) + "\n", encoding="utf-8")
    print(f"policy {args.name} ({command.policy.qop}) written to {target}")
    return 0


def _refuse_other_origin(store: PolicyStore, name: str, target: Path) -> None:
    origin = store.origins.get(name)
    if origin is not None and origin.path.resolve() != target.resolve():
        raise PolicyError(
            f"policy {name} is set in {origin}; edit that file (or move the policy to {target.name}) so that "
            "one file decides it"
        )


def run_show(args: argparse.Namespace) -> int:
    store = PolicyStore.from_directory(args.policies)
    if args.name is not None and args.name not in store:
        raise PolicyError(f"no policy {args.name} in {args.policies} (it has: {', '.join(store) or 'none'})")
    chosen = [store[args.name]] if args.name else list(store.values())
    sys.stdout.write(render_dspmqspl(chosen))
    return 0


def run_remove(args: argparse.Namespace) -> int:
    store = PolicyStore.from_directory(args.policies)
    if args.name not in store:
        raise PolicyError(f"no policy {args.name} in {args.policies} (it has: {', '.join(store) or 'none'})")
    target = args.policies / f"{args.name}.spl"
    _refuse_other_origin(store, args.name, target)
    others = [n for n, o in store.origins.items() if n != args.name and o.path.resolve() == target.resolve()]
    if others:
        raise PolicyError(f"{target} also sets {', '.join(others)}; edit it by hand")
    target.unlink()
    print(f"policy {args.name} removed ({target} deleted)")
    return 0


def run_export(args: argparse.Namespace) -> int:
    store = PolicyStore.from_directory(args.policies)
    for line in commands_for(diff_policies({}, store), args.qmgr, mqsc=args.mqsc):
        print(line)
    return 0


def run_check(args: argparse.Namespace) -> int:
    store, errors = PolicyStore.check_directory(args.policies)
    for error in errors:
        print(f"error: {error.message}", file=sys.stderr)
    if errors:
        print(f"{len(errors)} error(s) in {args.policies}", file=sys.stderr)
        return 1
    print(f"{len(store)} policies in {args.policies}: all valid")
    return 0


def _dump(path: Path) -> dict[str, Policy]:
    return {p.name: p for p in parse_dspmqspl(path.read_text(encoding="utf-8"), source=str(path))}


def run_apply(args: argparse.Namespace) -> int:
    store = PolicyStore.from_directory(args.policies)
    if args.write_to is not None:
        from ams.mq import connect, write_policies_to_queue_manager

        qm = connect(args.write_to, appl_name="ams policy")
        try:
            count = write_policies_to_queue_manager(qm, store)
        finally:
            qm.close()
        print(f"wrote {count} policies to {qm.name}'s SYSTEM.PROTECTION.POLICY.QUEUE")
        return 0
    if not args.qmgrs:
        raise UsageError("ams policy apply needs -m QMGR (to print commands) or --qm (to write the policy queue)")
    current: dict[str, Policy] = _dump(args.dump) if args.dump else {}
    changes = diff_policies(current, store)
    if args.dump is None:
        changes = [c for c in changes if c.after is not None]
    for qmgr in args.qmgrs:
        print(
            f"* queue manager {qmgr}: {len(changes)} command(s)"
            if args.mqsc
            else f"# queue manager {qmgr}: {len(changes)} command(s)"
        )
        for line in commands_for(changes, qmgr, mqsc=args.mqsc):
            print(line)
    return 0


def run_diff(args: argparse.Namespace) -> int:
    store = PolicyStore.from_directory(args.policies)
    changes = diff_policies(_dump(args.dump), store)
    for change in changes:
        sign = {"add": "+", "remove": "-", "change": "~"}[change.kind]
        print(f"{sign} {change.name}")
        for detail in change.details():
            print(f"    {detail}")
    if not changes:
        print(f"{args.policies} matches {args.dump}")
    return 1 if changes else 0
