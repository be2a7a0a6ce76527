"""The worked example in policies/: partner -> EXTERNAL_IN -> gateway -> INTERNAL_IN -> staff,
and PAYMENTS.OUT back to the partner, with a certificate for every DN the policies name."""

from __future__ import annotations

import pytest

import ams
import ams.errors
from ams.pki import Issued
from tests.example_people import NAMES, POLICIES, keystore, make_people


@pytest.fixture(scope="module")
def people() -> dict[str, Issued]:
    return make_people()


def handle(people: dict[str, Issued], name: str) -> ams.Protector:
    return ams.Protector(keystore(people, name), POLICIES)


def test_partner_to_staff_through_the_gateway(people: dict[str, Issued]) -> None:
    order = b"<order id='42'>100 widgets</order>"
    incoming = handle(people, "orders").protect("EXTERNAL_IN", order).body
    gateway = handle(people, "gateway")
    received = gateway.unprotect("EXTERNAL_IN", incoming)
    assert received.body == order and str(received.signer_dn) == NAMES["orders"]
    internal = gateway.protect("INTERNAL_IN", received.body).body
    for staff in ("alice", "bob"):  # bob was added with ACTION(ADD) in INTERNAL_IN.mqsc
        message = handle(people, staff).unprotect("INTERNAL_IN", internal)
        assert message.body == order and str(message.signer_dn) == NAMES["gateway"]


def test_only_the_partners_systems_may_write_to_external_in(people: dict[str, Issued]) -> None:
    forged = handle(people, "intruder").protect("EXTERNAL_IN", b"pay me").body
    with pytest.raises(ams.errors.UnauthorisedSignerError, match="CN=intruder"):
        handle(people, "gateway").unprotect("EXTERNAL_IN", forged)
    with pytest.raises(ams.errors.NotARecipientError):
        handle(people, "alice").unprotect("EXTERNAL_IN", handle(people, "orders").protect("EXTERNAL_IN", b"x").body)


def test_staff_cannot_bypass_the_gateway(people: dict[str, Issued]) -> None:
    direct = handle(people, "alice").protect("INTERNAL_IN", b"self-approved").body
    with pytest.raises(ams.errors.UnauthorisedSignerError, match="CN=alice,OU=Finance"):
        handle(people, "bob").unprotect("INTERNAL_IN", direct)


def test_payments_leave_signed_by_the_department(people: dict[str, Issued]) -> None:
    payment = handle(people, "payments").protect("PAYMENTS.OUT", b"pay 100 to PARTNER").body
    message = handle(people, "receiver").unprotect("PAYMENTS.OUT", payment)
    assert message.signature_algorithm is ams.SignatureAlgorithm.SHA512
    assert str(message.signer_dn) == NAMES["payments"]
    with pytest.raises(ams.errors.UnauthorisedSignerError):
        handle(people, "receiver").unprotect("PAYMENTS.OUT", handle(people, "alice").protect("PAYMENTS.OUT", b"x").body)
