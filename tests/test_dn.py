"""Distinguished names: the forms people write, one canonical form, IBM Java-style matching."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ams import DistinguishedName
from ams.errors import DistinguishedNameError
from ams.pki import make_ca
from ams.testing.strategies import WrittenDN, dn_attribute_names, dn_values, written_dns

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
    st.lists(st.tuples(dn_attribute_names(), dn_values()), min_size=1, max_size=2), min_size=1, max_size=4
).map(lambda rdns: DistinguishedName.parse(",".join("+".join(f"{k}={_quote(v)}" for k, v in rdn) for rdn in rdns)))


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@given(names)
def test_parse_render_round_trip(dn: DistinguishedName) -> None:
    assert DistinguishedName.parse(str(dn)) == dn


@given(written_dns())
def test_every_way_people_write_a_dn_means_that_dn(written: WrittenDN) -> None:
    """Spellings (cn, commonName, OID.2.5.4.3), quotes, escapes, \\XX bytes, ; separators, spaces, + RDNs."""
    parsed = DistinguishedName.parse(written.text)
    assert parsed == written.dn
    assert parsed.matches(written.dn, strict=True)
    assert DistinguishedName.parse(str(parsed)) == parsed


@given(names, names, names)
def test_matching_is_an_equivalence_relation(a: DistinguishedName, b: DistinguishedName, c: DistinguishedName) -> None:
    assert a.matches(a)
    assert a.matches(b) == b.matches(a)
    if a.matches(b) and b.matches(c):
        assert a.matches(c)


# -- IBM's Java client: String.equalsIgnoreCase, no normalisation, ASCII spaces only ------------


@pytest.mark.parametrize(
    "a,b",
    [
        ("CN=ﬁona", "CN=fiona"),  # a ligature is not its letters (no compatibility folding)
        ("CN=straße", "CN=STRASSE"),  # ß upper-cases to SS, two characters: not applied
        ("CN=alice\u00a0", "CN=alice"),  # a no-break space is not whitespace
        ("CN=alice\u2003", "CN=alice"),  # nor an em space
        ("CN=a\tb", "CN=a b"),  # nor a tab
        ("CN=caf\u00e9", "CN=cafe\u0301"),  # precomposed and combining forms differ (no NFC)
        ("CN=a\u00a0b", "CN=a b"),
    ],
)
def test_matching_folds_no_compatibility_forms_and_no_unicode_whitespace(a: str, b: str) -> None:
    assert not DistinguishedName.parse(a).matches(DistinguishedName.parse(b))
    assert DistinguishedName.parse(a).match_key != DistinguishedName.parse(b).match_key


# Each pair's answer is what OpenJDK 17 gives for a.equalsIgnoreCase(b).
@pytest.mark.parametrize(
    "a,b",
    [
        ("ALICE", "alice"),
        ("Ørsted", "øRSTED"),
        ("Σ", "σ"),
        ("Σ", "ς"),
        ("σ", "ς"),  # Java maps final sigma to Σ
        ("a  b", "a b"),  # runs of ASCII spaces inside a value are one space
        ("ß", "ẞ"),  # single-character mappings: ẞ lower-cases to ß
        ("ſ", "S"),  # long s upper-cases to S
        ("\u212a", "k"),  # Kelvin sign lower-cases to k
        ("İ", "i"),  # Java's single-character lower case of İ is i (Python's is i + combining dot)
        ("İ", "I"),
        ("ı", "I"),
        ("ᾀ", "ᾈ"),  # Java's single-character upper case of ᾀ is ᾈ (Python's is two characters)
        ("ǅ", "ǆ"),
        ("\U00010400", "\U00010428"),  # Deseret, outside the BMP: compared per code point
    ],
)
def test_matching_follows_java_equals_ignore_case(a: str, b: str) -> None:
    assert DistinguishedName.parse(f"CN={a}").matches(DistinguishedName.parse(f"CN={b}"))
    assert DistinguishedName.parse(f"CN={a}").match_key == DistinguishedName.parse(f"CN={b}").match_key


def test_strict_matching_stays_exact_and_order_stays_significant() -> None:
    dn = DistinguishedName.parse("CN=Ørsted,O=AMS")
    assert dn.matches(DistinguishedName.parse("CN=øRSTED,O=ams"))
    assert not dn.matches(DistinguishedName.parse("CN=øRSTED,O=ams"), strict=True)
    assert not dn.matches(DistinguishedName.parse("O=AMS,CN=Ørsted"))
    assert DistinguishedName.parse("CN=a+UID=b,O=X").matches(DistinguishedName.parse("UID=B+CN=A,O=x"))
    assert DistinguishedName.parse("CN=a+UID=b,O=X").matches(DistinguishedName.parse("UID=b+CN=a,O=X"), strict=True)
    assert not DistinguishedName.parse("CN=a+UID=b").matches(DistinguishedName.parse("UID=B+CN=a"), strict=True)


def test_match_key_is_hashable_cached_and_agrees_with_matches() -> None:
    dn = DistinguishedName.parse("CN=Ørsted,  O=AMS")
    assert dn.match_key is dn.match_key  # computed once
    assert hash(dn.match_key) == hash(DistinguishedName.parse("cn=øRSTED, o=ams").match_key)
    assert dn == DistinguishedName.parse("CN=Ørsted,  O=AMS")  # the cache is not part of equality


def test_every_character_folds_to_one_character() -> None:
    from ams.dn import fold

    assert all(len(fold(chr(code))) == 1 for code in range(0x110000) if not 0xD800 <= code <= 0xDFFF and code != 0x20)


@given(names, names)
def test_matches_is_equality_of_match_keys(a: DistinguishedName, b: DistinguishedName) -> None:
    assert a.matches(b) == (a.match_key == b.match_key)


# -- parsing refuses what no certificate name can hold ---------------------------------------------


@pytest.mark.parametrize(
    "text,match",
    [
        ("CN=a\x00b", "NUL"),
        ("CN=a\\00b", "NUL"),
        ("CN=\ud800", "surrogate"),
        ('CN="a"x,O=b', "after the quoted value"),
        ("CN=\\ff", "not UTF-8"),
        ("CN=\\C3", "not UTF-8"),
        ("OID.1.50=x", "second arc"),
        ("OID.2.5.4.\u0663=x", "unknown attribute type"),  # an Arabic-Indic digit is not an OID digit
        ("CN=" + "x" * 1025, "longer than 1024 bytes"),
        (",".join(["CN=a"] * 65), "more than 64 components"),
        ("+".join(["CN=a"] * 17), "more than 16 attributes"),
    ],
)
def test_unusable_names_are_refused(text: str, match: str) -> None:
    with pytest.raises(DistinguishedNameError, match=match):
        DistinguishedName.parse(text)


def test_oid_spellings_have_one_form() -> None:
    assert DistinguishedName.parse("OID.2.5.4.03=a").rdns[0][0].oid == "2.5.4.3"
    assert str(DistinguishedName.parse("2.5.4.3=a,OID.1.2.840.113549.1.9.1=b")) == "CN=a,E=b"


def test_error_texts_quote_a_short_prefix_only() -> None:
    with pytest.raises(DistinguishedNameError) as caught:
        DistinguishedName.parse("CN=a," + "x" * 100_000)
    assert len(str(caught.value)) < 400


# -- DER Names: a strict reader, no recursion, bounded ----------------------------------------------


def _tlv(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes((tag, size)) + content
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(octets))) + octets + content


def _name(*rdns: list[tuple[bytes, bytes]]) -> bytes:
    """A DER Name from RDNs (DER order) of (OID TLV, value TLV) pairs."""
    return _tlv(0x30, b"".join(_tlv(0x31, b"".join(_tlv(0x30, oid + value) for oid, value in rdn)) for rdn in rdns))


CN = bytes.fromhex("0603550403")
O = bytes.fromhex("060355040a")  # noqa: E741


@pytest.mark.parametrize(
    "tag,content,text",
    [
        (0x0C, "café".encode(), "café"),
        (0x13, b"alice", "alice"),
        (0x16, b"a@b.org", "a@b.org"),
        (0x14, b"caf\xe9", "café"),  # TeletexString read as Latin-1
        (0x1E, "café😀".encode("utf-16-be"), "café😀"),
        (0x1C, "café😀".encode("utf-32-be"), "café😀"),
        (0x04, b"\x01\x02", "#04020102"),  # any other value: '#' and the hex of its encoding
        (0x30, b"\x05\x00", "#30020500"),
    ],
)
def test_der_value_types(tag: int, content: bytes, text: str) -> None:
    dn = DistinguishedName.from_der(_name([(CN, _tlv(tag, content))], [(O, _tlv(0x0C, b"ORG"))]))
    assert [[a.value for a in rdn] for rdn in dn.rdns] == [["ORG"], [text]]  # display order: the last RDN first


@pytest.mark.parametrize(
    "encoded,match",
    [
        (b"", "missing at offset 0"),
        (_name([(CN, _tlv(0x0C, b"a"))]) + b"\x00", "bytes follow the Name"),
        (_tlv(0x30, _tlv(0x31, b"")), "RDN 1 at offset 2 is empty"),
        (_tlv(0x30, _tlv(0x30, b"")), "expected RDN 1"),
        (_name([(CN, _tlv(0x0C, b"a") + b"\x05\x00")]), "fields after its value"),
        (_name([(b"\x06\x00", _tlv(0x0C, b"a"))]), "not a valid OBJECT IDENTIFIER"),
        (_name([(_tlv(0x06, b"\x2a" * 65), _tlv(0x0C, b"a"))]), "longer than 64 bytes"),
        (_name([(CN, _tlv(0x0C, b"\xff"))]), "UTF8String that is not valid utf-8"),
        (_name([(CN, _tlv(0x1E, b"\x00a\x00"))]), "BMPString"),
        (_name([(CN, _tlv(0x1E, b"\xd8\x00"))]), "BMPString"),  # a lone surrogate
        (_name([(CN, _tlv(0x1C, b"\x00\x11\x00\x00"))]), "UniversalString"),  # beyond U+10FFFF
        (_name([(CN, _tlv(0x13, b"caf\xe9"))]), "PrintableString"),
        (_name([(CN, _tlv(0x0C, b"x" * 1025))]), "longer than 1024 bytes"),
        (_name(*[[(CN, _tlv(0x0C, b"a"))]] * 65), "more than 64 RDNs"),
        (_name([(CN, _tlv(0x0C, b"a"))] * 17), "more than 16 attributes"),
        (b"\x30\x80\x00\x00", "not strict DER"),  # indefinite length
        (b"\x30\x81\x01\x00", "not strict DER"),  # non-minimal length
        (b"\x30\x05\x31\x03", "not strict DER"),  # runs past the end
    ],
)
def test_der_names_are_read_strictly(encoded: bytes, match: str) -> None:
    with pytest.raises(DistinguishedNameError, match=match):
        DistinguishedName.from_der(encoded)


def test_der_errors_never_quote_the_bytes() -> None:
    secret = b"\xde\xad\xbe\xef\xca\xfe"
    for encoded in (
        _name([(CN, _tlv(0x0C, secret))]),
        _name([(_tlv(0x06, secret + b"\x80"), _tlv(0x0C, b"a"))]),
        _name([(CN, _tlv(0x13, secret))]) + secret,
    ):
        with pytest.raises(DistinguishedNameError) as caught:
            DistinguishedName.from_der(encoded)
        assert "deadbeef" not in str(caught.value).lower() and "\\xde" not in str(caught.value)


def test_a_name_nested_a_thousand_deep_is_refused_without_recursion() -> None:
    value = b"\x05\x00"
    for _ in range(1000):
        value = _tlv(0x30, value)
    # an attribute type asn1crypto does not know, whose value it would descend into
    with pytest.raises(DistinguishedNameError, match="longer than 1024 bytes"):
        DistinguishedName.from_der(_name([(bytes.fromhex("06022a03"), value)]))
    with pytest.raises(DistinguishedNameError, match="expected RDN 1"):
        DistinguishedName.from_der(value)


_string_types = st.sampled_from(["UTF8String", "BMPString", "UniversalString", "PrintableString", "IA5String"])


@given(
    st.lists(
        st.lists(
            st.tuples(dn_attribute_names(), dn_values(), _string_types),
            min_size=1,
            max_size=3,
            unique_by=lambda a: a[0],
        ),
        max_size=5,
    )
)
def test_der_names_read_as_cryptography_reads_them(rdns: list[list[tuple[str, str, str]]]) -> None:
    from cryptography import x509
    from cryptography.x509.name import _ASN1Type

    from ams._dn_attributes import _ALIASES

    def attribute(name: str, value: str, kind: str) -> x509.NameAttribute[str]:
        if kind in ("PrintableString", "IA5String") and not value.isascii():
            kind = "UTF8String"  # cryptography would write these as UTF-8 bytes
        if kind == "PrintableString" and not all(c.isalnum() or c in " '()+,-./:=?" for c in value):
            kind = "IA5String"
        if name == "C":
            value, kind = (value * 2)[:2] if value.isascii() else "GB", "PrintableString"
        return x509.NameAttribute(x509.ObjectIdentifier(_ALIASES[name]), value, _type=_ASN1Type[kind])

    name = x509.Name([x509.RelativeDistinguishedName([attribute(*a) for a in rdn]) for rdn in rdns])
    # a multi-valued RDN is a SET OF: DER sorts it, cryptography keeps the order it was given
    assert DistinguishedName.from_der(name.public_bytes()).matches(DistinguishedName.from_x509(name), strict=True)


def test_control_characters_in_a_name_are_printed_escaped_and_read_back() -> None:
    """A certificate name is attacker's text: a newline or a terminal escape in it must never reach
    a log line or a terminal as itself."""
    hostile = DistinguishedName.parse("CN=m\\0A2026-01-01 level=info fake line\\1B[2J\\C2\\85,O=X")
    shown = str(hostile)
    assert "\n" not in shown and "\x1b" not in shown and "\x85" not in shown
    assert "\\0A" in shown and "\\1B" in shown and "\\C2\\85" in shown
    assert DistinguishedName.parse(shown) == hostile


def test_near_misses_are_ordered_by_closeness_of_their_canonical_forms() -> None:
    from ams.dn import by_closeness, closeness

    target = DistinguishedName.parse("CN=carl,O=AMS,C=GB")
    names = [DistinguishedName.parse(t) for t in ("CN=zed,O=Far,C=US", "CN=bob,O=AMS,C=GB", "CN=Carol,O=AMS,C=GB")]
    assert [str(dn) for dn in by_closeness(target, names)] == [
        "CN=Carol,O=AMS,C=GB",
        "CN=bob,O=AMS,C=GB",
        "CN=zed,O=Far,C=US",
    ]
    # spelling does not count: the canonical forms compare (case, spaces, attribute aliases folded)
    assert closeness(target, DistinguishedName.parse("cn = CARL, o=AMS, c=GB")) == 1.0
    assert closeness(target, names[0]) < 0.7
    huge = DistinguishedName.parse(",".join(f"OU={'x' * 1000}" for _ in range(50)))  # bounded work: a hostile name
    assert 0 < closeness(huge, target) < 1


def test_recipient_near_misses_and_unauthorised_signers_come_closest_first(pki: Any) -> None:
    import ams
    from ams.verify import Verifier

    with pytest.raises(ams.errors.RecipientNotFoundError) as caught:
        pki.keystore("alice").recipient(DistinguishedName.parse("CN=carl,O=AMS,C=GB"))
    text = caught.value.message
    assert text.index("CN=carol") < text.index("CN=alice") < text.index("CN=bob"), text  # not keystore order
    policy = ams.Policy.from_setmqspl(
        'setmqspl -m QM -p Q -s SHA256 -a "CN=zed,O=Far,C=US" -a "CN=bob,O=AMS,C=GB" -a "CN=carl,O=AMS,C=GB"'
    )
    with pytest.raises(ams.errors.UnauthorisedSignerError) as refused:
        Verifier(pki.keystore("bob")).check_authorised(policy, pki.issued("carol").certificate)
    text = refused.value.message
    assert "closest first" in text and text.index("CN=carl") < text.index("CN=bob") < text.index("CN=zed"), text
    assert refused.value.signer == pki.dn("carol")  # the structured field the proxy logs
