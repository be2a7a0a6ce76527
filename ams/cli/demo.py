"""``ams demo``: a throwaway PKI, the three qualities of protection, and an embedded queue manager
where a refused message lands on the error queue and ``ams errors explain`` says why."""

from __future__ import annotations

import argparse
import importlib.resources
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ams import _wire
from ams.errors import SecurityError
from ams.keys import Identity, Keystore
from ams.pki import Issued, init_pki, issue
from ams.policy import PolicyStore
from ams.protector import Protector

DEMO_POLICIES = ("DEMO.INTEGRITY.spl", "DEMO.PRIVACY.spl", "DEMO.CONFIDENTIAL.spl")


def shipped_policies() -> Path:
    """The example policies installed with ams (``policies/`` of the source tree, as package data)."""
    return Path(str(importlib.resources.files("ams").joinpath("_examples")))


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this command group's subcommands to ``commands``."""
    demo = commands.add_parser("demo", help="protect and unprotect with all three qualities of protection")
    demo.add_argument(
        "--policies",
        type=Path,
        default=Path("policies"),
        help="policy directory with the DEMO.* policies (default ./policies, else the examples installed with ams)",
    )
    demo.add_argument("--keep", type=Path, default=None, help="write the PKI here instead of a temporary folder")
    demo.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the command; the exit status (0 done, 1 problems found, 2 usage or configuration, 3 refused)."""
    with tempfile.TemporaryDirectory(prefix="ams-demo-") as scratch:
        root = args.keep or Path(scratch)
        return _demo(root, args.policies)


def _worked_example(ca: Issued, policies: PolicyStore) -> None:
    """The partner -> gateway -> staff flow of policies/README.md, with identities from the demo CA."""
    if not {"EXTERNAL_IN", "INTERNAL_IN"} <= set(policies):
        return
    print("\n== the worked example in policies/: partner -> EXTERNAL_IN -> gateway -> INTERNAL_IN -> staff")
    people = {
        name: issue(ca, dn)
        for name, dn in {
            "orders": "CN=orders,OU=Systems,O=PARTNER,C=US",
            "intruder": "CN=intruder,OU=Systems,O=PARTNER,C=US",
            "gateway": "CN=gateway,OU=Integration,O=AMS,C=GB",
            "alice": "CN=alice,OU=Finance,O=AMS,C=GB",
            "bob": "CN=bob,OU=Finance,O=AMS,C=GB",
        }.items()
    }

    def handle(name: str) -> Protector:
        others = [ca.certificate] + [p.certificate for n, p in people.items() if n != name]
        me = people[name]
        return Protector(Keystore(Identity(me.certificate, me.key), others, source=name), policies)

    gateway = handle("gateway")
    received = gateway.unprotect("EXTERNAL_IN", handle("orders").protect("EXTERNAL_IN", b"order 42: 100 widgets"))
    print(f"  the gateway read {received.body!r} from {received.signer_dn} and re-protected it for staff")
    staff = handle("alice").unprotect("INTERNAL_IN", gateway.protect("INTERNAL_IN", received.body))
    print(f"  alice (finance) read {staff.body!r}, signed by {staff.signer_dn}")
    try:
        gateway.unprotect("EXTERNAL_IN", handle("intruder").protect("EXTERNAL_IN", b"pay me"))
    except SecurityError as error:
        print(f"  a message signed by another partner system was refused: {type(error).__name__}")


def _policy_dir(policies: PolicyStore, root: Path) -> Path:
    origins = {o.path.parent for o in policies.origins.values()}
    return origins.pop() if len(origins) == 1 else root / "policies"


def _policies(root: Path, requested: Path) -> PolicyStore:
    if all((requested / name).is_file() for name in DEMO_POLICIES):
        print(f"policies: {requested}/ ({', '.join(sorted(DEMO_POLICIES))})")
        return PolicyStore.from_directory(requested)
    copy = root / "policies"
    shutil.copytree(shipped_policies(), copy, dirs_exist_ok=True)
    print(f"policies: the examples installed with ams, copied to {copy}/")
    return PolicyStore.from_directory(copy)


def _demo(root: Path, requested: Path) -> int:
    print("== a throwaway PKI")
    pki = init_pki(root / "pki", ["alice", "bob", "carol"])
    for user, issued in pki.users.items():
        print(f"  {user:<6} {issued.dn}")
    policies = _policies(root, requested)
    for name, policy in policies.items():
        print(f"  {name:<18} {policy.qop.name:<15} {policy.to_setmqspl('DEMOQM')}")
    alice, bob, carol = (Protector(Keystore.from_conf(pki.keystores[u]), policies) for u in ("alice", "bob", "carol"))
    body = b"Pay 1,000 GBP to account 12345678"
    sent = _round_trips(alice, bob, body)
    if not _rejections(bob, carol, sent, body):
        return 1
    _key_reuse(alice, bob, body)
    _queues(root, pki.keystores, policies)
    _worked_example(pki.ca, policies)
    print("\ndemo finished: every accepted case round-tripped and every rejected case was refused")
    return 0


def _round_trips(alice: Protector, bob: Protector, body: bytes) -> dict[str, bytes]:
    print("\n== alice protects, bob unprotects")
    sent = {}
    for queue in ("DEMO.INTEGRITY", "DEMO.PRIVACY", "DEMO.CONFIDENTIAL"):
        protected = alice.protect(queue, body, "MQSTR")
        sent[queue] = protected.body
        message = bob.unprotect(queue, protected)
        assert message.body == body
        signer = f"signed by {message.signer_dn}" if message.signer_dn else "no signer (confidentiality)"
        visible = body in protected.body
        print(
            f"  {queue:<18} {message.qop.name:<15} {len(body)} -> {len(protected.body)} bytes, "
            f"payload {'readable' if visible else 'encrypted'} on the queue; bob reads {message.body!r}, {signer}"
        )
    return sent


def _rejections(bob: Protector, carol: Protector, sent: dict[str, bytes], body: bytes) -> bool:
    print("\n== rejected cases (each is MQRC 2063 and a trip to the error queue)")
    tampered = bytearray(sent["DEMO.INTEGRITY"])
    tampered[tampered.index(b"1,000")] ^= 0x01
    cases: list[tuple[str, Callable[[], object]]] = [
        ("carol reads bob's privacy message", lambda: carol.unprotect("DEMO.PRIVACY", sent["DEMO.PRIVACY"])),
        ("bob reads a tampered integrity message", lambda: bob.unprotect("DEMO.INTEGRITY", bytes(tampered))),
        ("bob gets an unprotected message on DEMO.PRIVACY", lambda: bob.unprotect("DEMO.PRIVACY", body, "MQSTR")),
        (
            "carol signs for DEMO.PRIVACY, whose signer must be alice",
            lambda: bob.unprotect("DEMO.PRIVACY", carol.protect("DEMO.PRIVACY", body)),
        ),
    ]
    for title, attempt in cases:
        try:
            attempt()
        except SecurityError as error:
            print(f"  {title}:\n    {type(error).__name__}: {error}")
        else:  # pragma: no cover - the demo shows a failure of the library
            print(f"  {title}: UNEXPECTEDLY ACCEPTED")
            return False
    return True


def _key_reuse(alice: Protector, bob: Protector, body: bytes) -> None:
    print("\n== confidentiality key reuse (KEYREUSE 32): one RSA-wrapped key serves many messages")
    before = bob.stats.rsa_private_operations
    blocks = set()
    for _ in range(10):
        protected = alice.protect("DEMO.CONFIDENTIAL", body, "MQSTR")
        blocks.add(bytes(_wire.parse(protected.body).confidential().key_block))
        bob.unprotect("DEMO.CONFIDENTIAL", protected)
    print(
        f"  10 more messages: {len(blocks)} distinct key block(s), bob's RSA private-key operations: "
        f"{bob.stats.rsa_private_operations - before}, key-reuse cache hits so far: {bob.stats.key_reuse_hits}"
    )


def _queues(root: Path, keystores: dict[str, Path], policies: PolicyStore) -> None:
    from ams.cli.main import main
    from ams.mq import MQMD, EmbeddedQueueManager, ProtectedQueueManager
    from ams.mq.protected import ERROR_QUEUE

    path = root / "demo-qm.sqlite"
    print(f"\n== on a queue manager (embedded, {path.name})")
    qm = EmbeddedQueueManager(path, name="DEMOQM", create=True)  # the demo's own, as `ams qm create` makes one
    for queue in ("DEMO.INTEGRITY", "DEMO.PRIVACY", "DEMO.CONFIDENTIAL"):
        qm.define_queue(queue)  # as `ams qm define` (or runmqsc DEFINE QLOCAL on IBM MQ) would

    def connect(user: str) -> ProtectedQueueManager:
        return ProtectedQueueManager(qm.connect(user), Keystore.from_conf(keystores[user]), policies)

    alice, bob, carol = connect("alice"), connect("bob"), connect("carol")
    out = alice.open("DEMO.PRIVACY", output=True)
    for text in (b"invoice 1 for bob", b"invoice 2 for bob"):
        out.put(MQMD(), text)
    print("  alice put 2 messages to DEMO.PRIVACY")
    message = bob.open("DEMO.PRIVACY", input=True).get()
    print(f"  bob got {message.body!r} ({message.qop.name}, signed by alice)")
    try:
        carol.open("DEMO.PRIVACY", input=True).get()
    except SecurityError as error:
        print(f"  carol's get failed with MQRC {error.reason} ({type(error).__name__})")
    spy = qm.connect("operator")
    print(f"  {ERROR_QUEUE} now holds {spy.depth(ERROR_QUEUE)} message; `ams errors explain 1` as carol says:")
    main(
        [
            "errors",
            "explain",
            "1",
            "--qm",
            str(path),
            "--keystore-conf",
            str(keystores["carol"]),
            "--policies",
            str(_policy_dir(policies, root)),
        ]
    )
