"""Where the microseconds of one small message go: ``python -m benchmarks.profile``.

For each small-message case it times ours and the bound (interleaved, best of several runs): the
bound is the cryptographic work, so ours minus the bound is what this library adds. It then runs
ours under cProfile and splits the Python part of its time into groups by where the code lives
(cryptography's Python layer, our DER readers, the PDMQ header and header chain, the verifier,
the signature checks, the protector's flow, the rest). cProfile slows Python calls far more than
C calls, so the groups' shares of the profiled Python time are applied to the measured
difference: the split is approximate, the totals are measured.

    python -m benchmarks.profile                 # 2 KiB, every small-message case
    python -m benchmarks.profile --size 256 --top 12
    python -m benchmarks.profile --case privacy-1:unprotect   # one case
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from benchmarks.__main__ import _ours
from benchmarks.cases import CASES, Primitives
from benchmarks.setup import World
from benchmarks.timing import rates

SMALL_CASES = [
    ("integrity", "unprotect"),
    ("integrity", "protect"),
    ("privacy-1", "unprotect"),
    ("privacy-3", "unprotect"),
    ("privacy-10", "unprotect"),
    ("privacy-1", "protect"),
    ("confidentiality-reuse-unlimited", "unprotect"),
    ("confidentiality-reuse-32", "unprotect"),
    ("confidentiality-reuse-unlimited", "protect"),
    ("confidentiality-reuse-32", "protect"),
]

PRIMITIVES = "primitives (RSA, AES, SHA in C)"
# (group, test on "file:function") in order: the first that matches names the group
GROUPS: list[tuple[str, Callable[[str], bool]]] = [
    (PRIMITIVES, lambda k: "_rust.openssl" in k or any(m in k for m in ("ciphers.create", "hashes.", "_hashlib"))),
    ("cryptography's Python layer", lambda k: "cryptography" in k),
    (
        "DER readers and writers (hazmat)",
        lambda k: any(
            m in k for m in ("der.py", "signed.py", "signed_writer.py", "enveloped.py", "enveloped_writer.py", "cbc.py")
        ),
    ),
    ("PDMQ header, header chain, wire", lambda k: any(m in k for m in ("pdmq.py", "mqheaders.py", "_wire.py"))),
    ("verifier (caches, chain, dates)", lambda k: "verify.py" in k or "_trust.py" in k),
    ("signature and privacy checks", lambda k: any(m in k for m in ("_signature.py", "_privacy.py", "unwrap.py"))),
    (
        "protector flow, results, sender",
        # protector.py, _protector_state.py, _protecting.py, _unprotecting.py
        lambda k: any(
            m in k for m in ("protector.py", "_protector_state.py", "protecting.py", "message.py", "_sending")
        ),
    ),
    ("the rest: builtins, attrs, enums, policy", lambda k: True),
]


def _group(key: tuple[str, int, str]) -> str:
    label = f"{key[0]}:{key[2]}"
    return next(name for name, test in GROUPS if test(label))


def profile_case(world: World, size: int, name: str, op: str, top: int) -> dict[str, Any]:
    """Ours and the bound for one case, and ours split into groups (microseconds per message)."""
    case = next(c for c in CASES if c.name == name)
    primitives = Primitives(world, size)
    ours = _ours(world, world.sender(), world.receiver(), case, op, primitives.payload)
    ours_rate, bound_rate = rates([ours, primitives.bound(case, op)], seconds=0.3, repeats=5)
    count = max(200, int(ours_rate * 1.5))
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        ours()
    profiler.disable()
    # pstats keys: (file, line, function) -> (calls, primitive calls, own time, cumulative time, callers)
    stats: dict[tuple[str, int, str], Any] = getattr(pstats.Stats(profiler), "stats")  # noqa: B009 - untyped
    own: dict[str, float] = defaultdict(float)
    functions: list[tuple[float, str]] = []
    for key, (_, calls, own_time, _, _) in stats.items():
        group = _group(key)
        own[group] += own_time
        if group != PRIMITIVES:
            functions.append((own_time, f"{key[0].rsplit('/', 1)[-1]}:{key[2]} ({calls // count}/msg)"))
    python = sum(t for group, t in own.items() if group != PRIMITIVES)
    ours_us, bound_us = 1e6 / ours_rate, 1e6 / bound_rate
    added = max(0.0, ours_us - bound_us)
    shares = sorted(((t, group) for group, t in own.items() if group != PRIMITIVES), reverse=True)
    return {
        "case": name,
        "op": op,
        "size": size,
        "ours_us": round(ours_us, 1),
        "bound_us": round(bound_us, 1),
        "bound_ratio": round(ours_rate / bound_rate, 3),
        "added_us": {group: round(added * t / python, 1) for t, group in shares},
        "top": [(round(added * t / python, 2), label) for t, label in sorted(functions, reverse=True)[:top]],
    }


def render(found: dict[str, Any]) -> str:
    added = found["ours_us"] - found["bound_us"]
    lines = [
        f"{found['case']} {found['op']} {found['size']} B: ours {found['ours_us']} us, bound {found['bound_us']} us "
        f"(bound_ratio {found['bound_ratio']}); added by ams about {added:.1f} us:",
    ]
    lines += [f"    {us:7.1f} us  {group}" for group, us in found["added_us"].items() if us >= 0.05]
    lines += ["  the Python functions with the most own time (their share of the added time):"]
    lines += [f"    {us:7.2f} us  {label}" for us, label in found["top"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("--size", type=int, default=2048, help="payload size in bytes (default 2048)")
    parser.add_argument("--top", type=int, default=8, help="functions to list per case")
    parser.add_argument("--case", action="append", help="only this case, as NAME or NAME:OP (repeatable)")
    args = parser.parse_args(argv)
    world = World()
    chosen = args.case or []
    for name, op in SMALL_CASES:
        if chosen and name not in chosen and f"{name}:{op}" not in chosen:
            continue
        print(render(profile_case(world, args.size, name, op, args.top)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
