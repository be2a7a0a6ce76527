"""AMS's path validation against two others: OpenSSL's and cryptography's.

Hypothesis generates certificate paths (tests/path_chains.py): a root and up to three
intermediate CAs with and without name constraints (directoryName and rfc822Name subtrees,
permitted and excluded, on the root too), pathLenConstraints, self-issued CAs and unknown
critical extensions, and an end entity inside or outside the subtrees. For each, AMS's verdict
(``Verifier.validate_signer``, the keystore holding every CA) must equal OpenSSL's
(``X509_verify_cert``, what ``openssl verify`` runs) and, where cryptography's verifier can judge
the path (no directoryName constraint: it refuses them all), cryptography's.

The CI run is ``AMS_PATH_EXAMPLES`` examples (300 by default, a few seconds); SECURITY.md records
a 10,000-example run and the command that repeats it. A fixed set of the attack paths is also
run through the ``openssl verify`` command itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ams.testing.pki import pem
from tests import openssl_chain
from tests.path_chains import (
    CaSpec,
    Chain,
    ChainSpec,
    Dn,
    Subtree,
    ams_verdict,
    build,
    cryptography_judges,
    cryptography_verdict,
    describe,
    openssl_verdict,
)

EXAMPLES = int(os.environ.get("AMS_PATH_EXAMPLES", "300"))
needs_libcrypto = pytest.mark.skipif(openssl_chain.libcrypto() is None, reason="no OpenSSL 3 libcrypto to load")
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command line is not installed")

COUNTRIES = ("GB", "gb", "US")
ORGANISATIONS = ("Partner", "partner", "PARTNER", " Partner ", "Partner  Two", "AMS")
UNITS = ("", "Systems", "systems")
DIRECTORY_SUBTREES: tuple[Dn, ...] = (
    (),
    (("C", "GB"),),
    (("C", "us"),),
    (("C", "GB"), ("O", "Partner")),
    (("C", "gb"), ("O", "partner ")),
    (("C", "GB"), ("O", "partner two")),
    (("C", "GB"), ("O", "AMS")),
    (("C", "GB"), ("O", "Partner"), ("OU", "Systems")),
)
EMAIL_SUBTREES = ("partner.example", "PARTNER.example", ".partner.example", "orders@partner.example", "ams.example")
EMAILS = ("orders@partner.example", "Orders@Partner.Example", "a@sub.partner.example", "alice@ams.example", "no-at")


def dns(common_name: str) -> st.SearchStrategy[Dn]:
    def make(country: str, organisation: str, unit: str) -> Dn:
        return (("C", country), ("O", organisation)) + ((("OU", unit),) if unit else ()) + (("CN", common_name),)

    return st.builds(make, st.sampled_from(COUNTRIES), st.sampled_from(ORGANISATIONS), st.sampled_from(UNITS))


# a middle value: Hypothesis favours the ends of a range, so "n == 0" would come far more often than 1 in 12
rarely = st.integers(0, 11).map(lambda n: n == 5)
seldom = st.integers(0, 29).map(lambda n: n == 13)  # per certificate: most paths reach the name checks
subtrees = st.one_of(
    st.sampled_from(DIRECTORY_SUBTREES).map(lambda dn: Subtree(dn=dn)),
    st.sampled_from(EMAIL_SUBTREES).map(lambda email: Subtree(email=email)),
)
constraints = st.one_of(st.just(()), st.lists(subtrees, min_size=1, max_size=2).map(tuple))


def cas(common_name: str, *, root: bool) -> st.SearchStrategy[CaSpec]:
    return st.builds(
        CaSpec,
        dn=dns(common_name),
        path_length=st.sampled_from((None, None, None, 0, 1, 2)),
        permitted=st.one_of(st.just(()), constraints),
        excluded=st.one_of(st.just(()), st.just(()), constraints),
        unknown_critical=seldom,
        self_issued=st.just(False) if root else rarely,
    )


AUTHORITIES = (cas("Root", root=True), *(cas(f"CA {n}", root=False) for n in range(1, 4)))
LEAVES = dns("orders")


@st.composite
def chains(draw: st.DrawFn) -> ChainSpec:
    depth = draw(st.integers(0, 3))
    authorities = tuple(draw(AUTHORITIES[n]) for n in range(depth + 1))
    leaf = draw(LEAVES)
    if draw(rarely):
        leaf = (*leaf, ("E", draw(st.sampled_from(EMAILS))))
    emails = draw(st.lists(st.sampled_from(EMAILS), max_size=2, unique=True))
    return ChainSpec(authorities, leaf, tuple(emails), draw(seldom))


RULES = (
    "permitted subtree",
    "excluded subtree",
    "not a mailbox",
    "pathLenConstraint",
    "critical extension",
    "not checked by AMS",
    "requireExplicitPolicy",
)


def _record(spec: ChainSpec, verdict: str | None) -> None:
    rule = next((r for r in RULES if verdict is not None and r in verdict), "another rule")
    event("accepted" if verdict is None else f"refused: {rule}")
    event(f"intermediates: {len(spec.cas) - 1}")
    event("with directoryName constraints" if spec.has_directory_constraints else "no directoryName constraint")


@needs_libcrypto
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chains())
def test_ams_judges_generated_paths_as_openssl_and_cryptography_do(spec: ChainSpec) -> None:
    chain = build(spec)
    mine = ams_verdict(chain)
    openssl = openssl_verdict(chain)
    _record(spec, mine)
    assert (mine is None) == (openssl is None), f"{describe(spec)}\nAMS: {mine}\nOpenSSL: {openssl}"
    if cryptography_judges(spec):
        theirs = cryptography_verdict(chain)
        event("judged by cryptography too")
        assert (mine is None) == (theirs is None), f"{describe(spec)}\nAMS: {mine}\ncryptography: {theirs}"


# -- a fixed set, through the openssl command too ----------------------------------------------------

PARTNER: Dn = (("C", "GB"), ("O", "Partner"))
OURS: Dn = (("C", "GB"), ("O", "AMS"))
ROOT = CaSpec(dn=(*OURS, ("CN", "AMS Root")))
CONSTRAINED = CaSpec(dn=(*PARTNER, ("CN", "Partner CA")), permitted=(Subtree(dn=PARTNER),))
ALICE: Dn = (*OURS, ("CN", "alice"))
ORDERS: Dn = (*PARTNER, ("CN", "orders"))
SUB = CaSpec(dn=(*PARTNER, ("CN", "Partner Issuing CA")))
FIXED: dict[str, tuple[ChainSpec, bool, tuple[str, ...]]] = {
    "partner CA issues our alice": (ChainSpec((ROOT, CONSTRAINED), ALICE), False, ()),
    "partner CA issues its own orders": (ChainSpec((ROOT, CONSTRAINED), ORDERS), True, ()),
    "constrained anchor issues our alice": (ChainSpec((CONSTRAINED,), ALICE), False, ()),
    "constrained anchor issues its orders": (ChainSpec((CONSTRAINED,), ORDERS), True, ()),
    "a deeper CA under the constraint issues alice": (ChainSpec((ROOT, CONSTRAINED, SUB), ALICE), False, ()),
    "a sub-CA outside the constraint": (
        ChainSpec((ROOT, CONSTRAINED, CaSpec(dn=(*OURS, ("CN", "Sub")))), ORDERS),
        False,
        (),
    ),
    "excluded subtree, other case": (
        ChainSpec((ROOT, CaSpec(dn=SUB.dn, excluded=(Subtree(dn=(("C", "gb"), ("O", "ams"))),))), ALICE),
        False,
        (),
    ),
    "excluded subtree, the partner's own": (
        ChainSpec((ROOT, CaSpec(dn=SUB.dn, excluded=(Subtree(dn=OURS),))), ORDERS),
        True,
        (),
    ),
    "email outside the rfc822 subtree": (
        ChainSpec((ROOT, CaSpec(dn=SUB.dn, permitted=(Subtree(email="partner.example"),))), ORDERS, ("a@ams.example",)),
        False,
        (),
    ),
    "email inside the rfc822 subtree": (
        ChainSpec(
            (ROOT, CaSpec(dn=SUB.dn, permitted=(Subtree(email="partner.example"),))), ORDERS, ("a@PARTNER.example",)
        ),
        True,
        (),
    ),
    "subject emailAddress outside": (
        ChainSpec(
            (ROOT, CaSpec(dn=SUB.dn, permitted=(Subtree(email=".partner.example"),))), (*ORDERS, ("E", "a@ams.example"))
        ),
        False,
        (),
    ),
    "unknown critical extension on the signer": (ChainSpec((ROOT, SUB), ORDERS, unknown_critical=True), False, ()),
    "unknown critical extension on the CA": (
        ChainSpec((ROOT, CaSpec(dn=SUB.dn, unknown_critical=True)), ORDERS),
        False,
        (),
    ),
    "unknown critical extension on the root": (
        ChainSpec((CaSpec(dn=ROOT.dn, unknown_critical=True), SUB), ORDERS),
        False,
        (),
    ),
    "pathLen 0 with a CA below": (ChainSpec((ROOT, CaSpec(dn=CONSTRAINED.dn, path_length=0), SUB), ORDERS), False, ()),
    "pathLen 1 with a CA below": (ChainSpec((ROOT, CaSpec(dn=CONSTRAINED.dn, path_length=1), SUB), ORDERS), True, ()),
    "pathLen 0 over a self-issued CA": (
        ChainSpec((CaSpec(dn=ROOT.dn, path_length=0), CaSpec(dn=(), self_issued=True)), ORDERS),
        True,
        (),
    ),
    "requireExplicitPolicy 0, no policies": (
        ChainSpec((ROOT, CaSpec(dn=SUB.dn, require_explicit_policy=0)), ORDERS),
        False,
        ("-policy_check",),
    ),
}


def _openssl_verify(chain: Chain, directory: Path, options: tuple[str, ...]) -> str | None:
    """None when ``openssl verify`` says OK, else what it printed."""
    (directory / "root.pem").write_bytes(pem(chain.root))
    (directory / "leaf.pem").write_bytes(pem(chain.leaf.certificate))
    command = ["openssl", "verify", *options, "-CAfile", str(directory / "root.pem")]
    if chain.intermediates:
        (directory / "untrusted.pem").write_bytes(pem(*chain.intermediates))
        command += ["-untrusted", str(directory / "untrusted.pem")]
    run = subprocess.run(
        [*command, str(directory / "leaf.pem")], capture_output=True, text=True, timeout=30, check=False
    )
    return None if run.returncode == 0 and run.stdout.strip().endswith(": OK") else (run.stdout + run.stderr).strip()


@needs_openssl
@pytest.mark.parametrize("case", list(FIXED))
def test_fixed_paths_are_judged_alike_by_ams_openssl_verify_and_cryptography(case: str, tmp_path: Path) -> None:
    spec, accepted, options = FIXED[case]
    chain = build(spec)
    verdicts: dict[str, Callable[[], str | None]] = {
        "AMS": lambda: ams_verdict(chain),
        "openssl verify": lambda: _openssl_verify(chain, tmp_path, options),
    }
    if openssl_chain.libcrypto() is not None:
        flags = openssl_chain.X509_V_FLAG_POLICY_CHECK if options else 0
        verdicts["X509_verify_cert"] = lambda: openssl_verdict(chain, flags)
    if cryptography_judges(spec) and not options:
        verdicts["cryptography"] = lambda: cryptography_verdict(chain)
    for who, verdict in verdicts.items():
        found = verdict()
        assert (found is None) == accepted, f"{case}: {who} {'refused' if found else 'accepted'}: {found}"
