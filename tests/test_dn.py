"""Distinguished names: the forms people write, one canonical form, IBM Java-style matching."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ams import DistinguishedName, DistinguishedNameError
from ams.pki import make_ca
from tests.strategies import dn_attribute_names, dn_values

CANONICAL = "CN=alice,O=AMS,C=GB"


@pytest.mark.parametrize(
    "text",
    [
        "CN=alice,O=AMS,C=GB",
        "CN=alice, O=AMS, C=GB",
        "  CN = alice ;O=AMS; C=GB ",
        "commonName=alice,organizationName=AMS,countryName=GB",
        "cn=alice,o=AMS,c=GB",
        "OID.2.5.4.3=alice,2.5.4.10=AMS,C=GB",
        'CN="alice",O=AMS,C=GB',
    ],
)
def test_spellings_parse_to_the_canonical_form(text: str) -> None:
    assert str(DistinguishedName.parse(text)) == CANONICAL


def test_aliases_and_escapes() -> None:
    dn = DistinguishedName.parse(r'CN=Smith\, John,OU="Sales, EMEA",S=Kent,STREET=1 High St,email=j@x.org,L=Town')
    assert str(dn) == r"CN=Smith\, John,OU=Sales\, EMEA,ST=Kent,STREET=1 High St,E=j@x.org,L=Town"
    assert DistinguishedName.parse(r"CN=caf\C3\A9").rdns[0][0].value == "café"
    assert DistinguishedName.parse("CN=a+UID=b,O=X").rdns[0][1].name == "UID"


@pytest.mark.parametrize("text", ["", "CN", "CN=alice,", "XX=1", "CN=", 'CN="open', "CN=a\\"])
def test_bad_dns_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(DistinguishedNameError):
        DistinguishedName.parse(text)


def test_matching_is_case_and_space_insensitive_but_order_sensitive() -> None:
    dn = DistinguishedName.parse(CANONICAL)
    assert dn.matches(DistinguishedName.parse("cn=ALICE,  o=ams, c=gb"))
    assert dn.matches(DistinguishedName.parse("CN=alice   ,O=AMS,C=GB"))
    assert not dn.matches(DistinguishedName.parse("C=GB,O=AMS,CN=alice"))
    assert not dn.matches(DistinguishedName.parse("CN=alice,O=AMS"))
    assert not dn.matches(DistinguishedName.parse("cn=ALICE,o=ams,c=gb"), strict=True)
    assert dn.matches(DistinguishedName.parse(CANONICAL), strict=True)


def test_differences_explain_near_misses() -> None:
    dn = DistinguishedName.parse(CANONICAL)
    assert "case or spacing" in dn.differences(DistinguishedName.parse("cn=Alice,O=AMS,C=GB"))[0]
    assert "order" in dn.differences(DistinguishedName.parse("C=GB,O=AMS,CN=alice"))[0]
    assert dn.differences(DistinguishedName.parse("CN=alice,OU=IT,O=AMS,C=GB")) == ["missing OU=it"]


def test_certificate_names_read_in_display_order() -> None:
    ca = make_ca("CN=Issuer,OU=PKI,O=AMS,C=GB")
    assert str(DistinguishedName.from_x509(ca.certificate.subject)) == "CN=Issuer,OU=PKI,O=AMS,C=GB"
    assert DistinguishedName.from_der(ca.certificate.subject.public_bytes()) == DistinguishedName.from_x509(
        ca.certificate.subject
    )


names = st.lists(
    st.lists(st.tuples(dn_attribute_names, dn_values), min_size=1, max_size=2), min_size=1, max_size=4
).map(lambda rdns: DistinguishedName.parse(",".join("+".join(f"{k}={_quote(v)}" for k, v in rdn) for rdn in rdns)))


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@given(names)
def test_parse_render_round_trip(dn: DistinguishedName) -> None:
    assert DistinguishedName.parse(str(dn)) == dn


@given(names, names, names)
def test_matching_is_an_equivalence_relation(a: DistinguishedName, b: DistinguishedName, c: DistinguishedName) -> None:
    assert a.matches(a)
    assert a.matches(b) == b.matches(a)
    if a.matches(b) and b.matches(c):
        assert a.matches(c)
