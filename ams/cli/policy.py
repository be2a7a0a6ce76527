"""``ams policy``: setmqspl and dspmqspl over a policy directory, and roll-out to queue managers."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from ams._files import file_errors, replace_file
from ams.algorithms import KEYREUSE_UNLIMITED
from ams.errors import PolicyError, UsageError, plural
from ams.policy import Policy, PolicyStore, parse_setmqspl, render_dspmqspl
from ams.policy.diff import PolicyChange, commands_for, diff_policies
from ams.policy.setmqspl import PolicyRemoval
from ams.policy.store import policy_file_name

_POLICY_FILE_MODE = 0o644  # policies are not secret; queue managers' tools must read them


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this command group's subcommands to ``commands``."""
    policy = commands.add_parser("policy", help="manage a directory of AMS policies like setmqspl/dspmqspl")
    actions = policy.add_subparsers(dest="policy_command", required=True)

    def with_store(name: str, help: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help)
        parser.add_argument("--policies", required=True, type=Path, help="policy directory (*.spl, *.mqsc)")
        return parser

    set_ = with_store(
        "set",
        "set (replace) one policy, as setmqspl does; writes DIR/<policy>.spl (characters other than "
        "A-Z a-z 0-9 _ . and a leading . are written %%XX: PAY/IN -> PAY%%2FIN.spl)",
    )
    set_.add_argument("-m", dest="qmgr", default=None, help="queue manager name written in the file (default QM)")
    set_.add_argument("-p", dest="name", required=True)
    set_.add_argument("-s", default=None, help="signature algorithm (default NONE)")
    set_.add_argument("-e", default=None, help="encryption algorithm (default NONE)")
    set_.add_argument("-r", action="append", default=[], metavar="DN", help="recipient (repeat)")
    set_.add_argument("-a", action="append", default=[], metavar="DN", help="authorised signer (repeat)")
    set_.add_argument("-t", default=None, help="toleration: 0 (default) or 1")
    set_.add_argument("-c", default=None, help="key reuse: 0 (default), * or 1..9999999")
    # setmqspl's own word: registered, or argparse would read it as -r with the value "emove"
    set_.add_argument("-remove", action="store_true", help="remove the policy, as setmqspl -remove does")
    set_.set_defaults(run=run_set)

    show = with_store("show", "print policies as dspmqspl does")
    show.add_argument("-p", dest="name", default=None)
    show.add_argument("--json", action="store_true", help="a list of objects (see `policy_json`)")
    show.set_defaults(run=run_show)

    remove = with_store("remove", "remove one policy (deletes DIR/<policy>.spl)")
    remove.add_argument("-p", dest="name", required=True)
    remove.set_defaults(run=run_remove)

    export = with_store("export", "print one setmqspl (or MQSC) command per policy, as dspmqspl -export")
    export.add_argument("-m", dest="qmgr", required=True)
    export.add_argument("--mqsc", action="store_true", help="print MQSC SET POLICY commands")
    export.set_defaults(run=run_export)

    check = with_store("check", "validate every file; exit non-zero on any error")
    check.add_argument("--json", action="store_true", help='{"directory", "valid", "policies", "errors"}')
    check.set_defaults(run=run_check)

    _register_rollout(with_store)


def _register_rollout(with_store: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """``ams policy apply`` and ``ams policy diff``: from a policy directory to queue managers."""
    apply = with_store("apply", "print the commands that make each queue manager match the store (or write them)")
    apply.add_argument("-m", dest="qmgrs", action="append", default=[], metavar="QMGR")
    apply.add_argument(
        "--qm",
        dest="write_to",
        default=None,
        help="write the store into this queue manager's SYSTEM.PROTECTION.POLICY.QUEUE instead "
        "(an embedded queue manager file or mq://...)",
    )
    apply.add_argument(
        "--write-queue",
        action="store_true",
        help="with --qm mq://...: write IBM MQ's policy queue directly (needs +get +put on it) instead of "
        "the supported setmqspl / SET POLICY route",
    )
    apply.add_argument("--mqsc", action="store_true", help="print MQSC instead of setmqspl")
    apply.add_argument(
        "--from",
        dest="dump",
        type=Path,
        default=None,
        help="the queue managers' policies now (dspmqspl output, or setmqspl/MQSC as export prints them): "
        "print only what changes",
    )
    apply.set_defaults(run=run_apply)

    diff = with_store("diff", "compare the store with a dspmqspl dump; exit 1 when they differ")
    diff.add_argument(
        "--from", dest="dump", type=Path, required=True, help="dspmqspl output, or setmqspl/MQSC as export prints"
    )
    diff.add_argument("--json", action="store_true", help="a list of changes: policy, change, details, before, after")
    diff.set_defaults(run=run_diff)


def run_set(args: argparse.Namespace) -> int:
    """``ams ... set``: the exit status (0 done, 2 usage or configuration, 3 refused)."""
    words = ["setmqspl", "-m", args.qmgr or "QM", "-p", args.name]
    for flag, value in (("-s", args.s), ("-e", args.e), ("-t", args.t), ("-c", args.c)):
        if value is not None:
            words += [flag, value]
    for dn in args.a:
        words += ["-a", dn]
    for dn in args.r:
        words += ["-r", dn]
    if args.remove:
        words.append("-remove")
    # the same parser as a .spl file's lines: IBM's rules (and -remove's) are checked before anything is written
    policy = parse_setmqspl(shlex.join(words))
    if isinstance(policy, PolicyRemoval):
        return run_remove(args)
    directory: Path = args.policies
    with file_errors("read the policy directory", directory):
        exists = directory.is_dir()
    store = _load(directory) if exists else PolicyStore()
    target = _policy_file(directory, args.name)
    _refuse_other_origin(store, args.name, target)
    _refuse_shared_file(store, args.name, target, "setting it would replace that file and drop them")
    with file_errors("create the policy directory", directory):
        directory.mkdir(parents=True, exist_ok=True)
    text = policy.to_setmqspl(args.qmgr or "QM") + "\n"
    replace_file(target, text.encode("utf-8"), mode=_POLICY_FILE_MODE)
    print(f"policy {args.name} ({policy.qop}) written to {target}")
    return 0


def _load(directory: Path) -> PolicyStore:
    with file_errors("read the policies in", directory):
        return PolicyStore.from_directory(directory)


def _policy_file(directory: Path, name: str) -> Path:
    """``DIR/<encoded name>.spl``, checked to be a plain entry of the policy directory."""
    file_name = policy_file_name(name)
    with file_errors("resolve the policy directory", directory):
        root = os.path.realpath(directory)
    # the encoding already guarantees this; checked again because a file outside DIR would go unnoticed
    if "\0" in file_name or os.path.dirname(os.path.normpath(os.path.join(root, file_name))) != root:
        raise PolicyError(
            f"policy {name!r} would be stored as {file_name!r}, which is not a file directly in {directory}; "
            "report this as a bug and choose another policy name meanwhile"
        )
    return directory / file_name


def _same_entry(first: Path, second: Path) -> bool:
    """Whether two paths name one directory entry (links not followed; also true on case-insensitive systems)."""
    try:
        return os.path.samestat(os.lstat(first), os.lstat(second))
    except (OSError, ValueError):
        return False


def _refuse_other_origin(store: PolicyStore, name: str, target: Path) -> None:
    origin = store.origins.get(name)
    if origin is not None and not _same_entry(origin.path, target):
        raise PolicyError(
            f"policy {name} is set in {origin}; edit that file (or move the policy to {target.name}) so that "
            "one file decides it"
        )


def _refuse_shared_file(store: PolicyStore, name: str, target: Path, consequence: str) -> None:
    others = [n for n, o in store.origins.items() if n != name and _same_entry(o.path, target)]
    if others:
        raise PolicyError(
            f"{target} also sets {', '.join(others)}; {consequence}. Edit it by hand, or move {name} to a file "
            "of its own"
        )


def run_show(args: argparse.Namespace) -> int:
    """``ams ... show``: the exit status (0 done, 2 usage or configuration, 3 refused)."""
    store = _load(args.policies)
    if args.name is not None and args.name not in store:
        raise PolicyError(f"no policy {args.name} in {args.policies} (it has: {', '.join(store) or 'none'})")
    chosen = [store[args.name]] if args.name else list(store.values())
    if args.json:
        print(json.dumps([policy_json(policy) for policy in chosen], indent=2))
        return 0
    sys.stdout.write(render_dspmqspl(chosen))
    return 0


def policy_json(policy: Policy) -> dict[str, object]:
    """A policy as ``--json`` shows it, the fields of dspmqspl under stable keys: ``policy``,
    ``qop``, ``signature_algorithm``, ``encryption_algorithm`` (setmqspl's labels), ``signers``
    and ``recipients`` (DNs), ``toleration`` (0 or 1) and ``key_reuse`` (a count, 0 for none, or
    "UNLIMITED")."""
    return {
        "policy": policy.name,
        "qop": policy.qop.name,
        "signature_algorithm": policy.signature_algorithm.label,
        "encryption_algorithm": policy.encryption_algorithm.label,
        "signers": [str(dn) for dn in policy.signers],
        "recipients": [str(dn) for dn in policy.recipients],
        "toleration": 1 if policy.tolerate else 0,
        "key_reuse": "UNLIMITED" if policy.key_reuse == KEYREUSE_UNLIMITED else policy.key_reuse,
    }


def run_remove(args: argparse.Namespace) -> int:
    """``ams ... remove``: the exit status (0 done, 2 usage or configuration, 3 refused)."""
    store = _load(args.policies)
    if args.name not in store:
        raise PolicyError(f"no policy {args.name} in {args.policies} (it has: {', '.join(store) or 'none'})")
    target = _policy_file(args.policies, args.name)
    _refuse_other_origin(store, args.name, target)
    _refuse_shared_file(store, args.name, target, "deleting it would remove them too")
    with file_errors("delete", target):
        target.unlink()
    print(f"policy {args.name} removed ({target} deleted)")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """``ams ... export``: the exit status (0 done, 2 usage or configuration, 3 refused)."""
    store = _load(args.policies)
    for line in commands_for(diff_policies({}, store), args.qmgr, mqsc=args.mqsc):
        print(line)
    return 0


def run_check(args: argparse.Namespace) -> int:
    """``ams ... check``: the exit status (0 done, 2 usage or configuration, 3 refused)."""
    with file_errors("read the policies in", args.policies):
        store, errors = PolicyStore.check_directory(args.policies)
    if args.json:
        report = {
            "directory": str(args.policies),
            "valid": not errors,
            "policies": sorted(store),
            "errors": [error.message for error in errors],
        }
        print(json.dumps(report, indent=2))
        return 1 if errors else 0
    for error in errors:
        print(f"error: {error.message}", file=sys.stderr)
    if errors:
        print(f"{plural(len(errors), 'error')} in {args.policies}", file=sys.stderr)
        return 1
    print(f"{plural(len(store), 'policy', 'policies')} in {args.policies}: all valid")
    return 0


def _dump(path: Path) -> dict[str, Policy]:
    """The policies a queue manager has now: dspmqspl output, or what export or apply printed (setmqspl or MQSC)."""
    return dict(PolicyStore.from_dump(path))


def run_apply(args: argparse.Namespace) -> int:
    """``ams ... apply``: the exit status (0 done, 2 usage or configuration, 3 refused)."""
    store = _load(args.policies)
    if args.write_to is not None:
        from ams.mq import connect, write_policies_to_queue_manager

        if args.write_to.startswith("mq:") and not args.write_queue:
            raise UsageError(
                f"{args.write_to} is IBM MQ, where policies are defined with setmqspl or SET POLICY: print them "
                "with `ams policy apply -m QMGR --mqsc` for runmqsc (or without --mqsc for setmqspl); to write "
                "SYSTEM.PROTECTION.POLICY.QUEUE directly anyway, add --write-queue"
            )
        qm = connect(args.write_to, appl_name="ams policy")
        try:
            count = write_policies_to_queue_manager(qm, store)
        finally:
            qm.close()
        print(f"wrote {plural(count, 'policy', 'policies')} to {qm.name}'s SYSTEM.PROTECTION.POLICY.QUEUE")
        return 0
    if not args.qmgrs:
        raise UsageError("ams policy apply needs -m QMGR (to print commands) or --qm (to write the policy queue)")
    current: dict[str, Policy] = _dump(args.dump) if args.dump else {}
    changes = diff_policies(current, store)
    if args.dump is None:
        changes = [c for c in changes if c.after is not None]
    for qmgr in args.qmgrs:
        print(
            f"* queue manager {qmgr}: {plural(len(changes), 'command')}"
            if args.mqsc
            else f"# queue manager {qmgr}: {plural(len(changes), 'command')}"
        )
        for line in commands_for(changes, qmgr, mqsc=args.mqsc):
            print(line)
    return 0


def run_diff(args: argparse.Namespace) -> int:
    """``ams ... diff``: the exit status (0 done, 2 usage or configuration, 3 refused)."""
    store = _load(args.policies)
    changes = diff_policies(_dump(args.dump), store)
    if args.json:
        print(json.dumps([_change_json(change) for change in changes], indent=2))
        return 1 if changes else 0
    for change in changes:
        sign = {"add": "+", "remove": "-", "change": "~"}[change.kind]
        print(f"{sign} {change.name}")
        for detail in change.details():
            print(f"    {detail}")
    if not changes:
        print(f"{args.policies} matches {args.dump}")
    return 1 if changes else 0


def _change_json(change: PolicyChange) -> dict[str, object]:
    """One change as ``policy diff --json`` shows it: ``policy``, ``change`` (add, remove or
    change), ``details`` (the text lines), ``before`` and ``after`` (policy_json, or null)."""
    return {
        "policy": change.name,
        "change": change.kind,
        "details": change.details(),
        "before": policy_json(change.before) if change.before is not None else None,
        "after": policy_json(change.after) if change.after is not None else None,
    }
