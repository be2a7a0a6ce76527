"""The identities the worked example in policies/ names, with certificates from two CAs."""

from __future__ import annotations

from pathlib import Path

import ams
from ams.pki import Issued, issue, make_ca

POLICIES = ams.PolicyStore.from_directory(Path(__file__).parents[1] / "policies")
NAMES = {
    "orders": "CN=orders,OU=Systems,O=PARTNER,C=US",
    "invoices": "CN=invoices,OU=Systems,O=PARTNER,C=US",
    "receiver": "CN=receiver,OU=Systems,O=PARTNER,C=US",
    "intruder": "CN=intruder,OU=Systems,O=PARTNER,C=US",
    "gateway": "CN=gateway,OU=Integration,O=AMS,C=GB",
    "alice": "CN=alice,OU=Finance,O=AMS,C=GB",
    "bob": "CN=bob,OU=Finance,O=AMS,C=GB",
    "payments": "CN=payments,OU=Finance,O=AMS,C=GB",
}


def make_people() -> dict[str, Issued]:
    """Everyone in NAMES (the partner's people from the partner's CA), plus both CAs."""
    partner_ca = make_ca("CN=Partner CA,O=PARTNER,C=US")
    our_ca = make_ca("CN=AMS CA,O=AMS,C=GB")
    out = {name: issue(partner_ca if "PARTNER" in dn else our_ca, dn) for name, dn in NAMES.items()}
    out["partner-ca"], out["our-ca"] = partner_ca, our_ca
    return out


def keystore(people: dict[str, Issued], name: str, *, without: str | None = None) -> ams.Keystore:
    """``name``'s keystore: its identity and everyone else's certificates (except ``without``)."""
    me = people[name]
    others = [p.certificate for n, p in people.items() if n not in (name, without)]
    return ams.Keystore(ams.Identity(me.certificate, me.key), others, source=f"{name}'s keystore")
