"""Distinguished names as AMS policies write them, and how certificates are matched to them.

Policies name people and systems by DN strings such as ``CN=alice, O=VECTORS, C=GB``: most
specific component first (RFC 4514 order, the reverse of the DER order inside a certificate).
IBM's Java client compares them case-insensitively with whitespace normalised and order
significant; :meth:`DistinguishedName.matches` does the same, and ``strict=True`` compares
values exactly, as IBM's documentation says.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import attrs
from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier

from ams.errors import DistinguishedNameError

# Canonical short name for each attribute type, in the style IBM prints DNs.
_SHORT_NAMES: dict[str, str] = {
    NameOID.COMMON_NAME.dotted_string: "CN",
    NameOID.ORGANIZATION_NAME.dotted_string: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME.dotted_string: "OU",
    NameOID.COUNTRY_NAME.dotted_string: "C",
    NameOID.LOCALITY_NAME.dotted_string: "L",
    NameOID.STATE_OR_PROVINCE_NAME.dotted_string: "ST",
    NameOID.STREET_ADDRESS.dotted_string: "STREET",
    NameOID.EMAIL_ADDRESS.dotted_string: "E",
    NameOID.DOMAIN_COMPONENT.dotted_string: "DC",
    NameOID.USER_ID.dotted_string: "UID",
    NameOID.SERIAL_NUMBER.dotted_string: "SERIALNUMBER",
    NameOID.TITLE.dotted_string: "T",
    NameOID.GIVEN_NAME.dotted_string: "GIVENNAME",
    NameOID.SURNAME.dotted_string: "SN",
    NameOID.INITIALS.dotted_string: "INITIALS",
    NameOID.POSTAL_CODE.dotted_string: "PC",
    NameOID.DN_QUALIFIER.dotted_string: "DNQ",
    NameOID.GENERATION_QUALIFIER.dotted_string: "GENERATION",
    NameOID.PSEUDONYM.dotted_string: "PSEUDONYM",
}

# Every spelling people use, upper-cased, to its OID.
_ALIASES: dict[str, str] = {short: oid for oid, short in _SHORT_NAMES.items()}
_ALIASES.update(
    {
        "COMMONNAME": NameOID.COMMON_NAME.dotted_string,
        "ORGANIZATIONNAME": NameOID.ORGANIZATION_NAME.dotted_string,
        "ORGANISATIONNAME": NameOID.ORGANIZATION_NAME.dotted_string,
        "ORGANIZATIONALUNITNAME": NameOID.ORGANIZATIONAL_UNIT_NAME.dotted_string,
        "COUNTRYNAME": NameOID.COUNTRY_NAME.dotted_string,
        "LOCALITYNAME": NameOID.LOCALITY_NAME.dotted_string,
        "S": NameOID.STATE_OR_PROVINCE_NAME.dotted_string,
        "SP": NameOID.STATE_OR_PROVINCE_NAME.dotted_string,
        "STATEORPROVINCENAME": NameOID.STATE_OR_PROVINCE_NAME.dotted_string,
        "STREETADDRESS": NameOID.STREET_ADDRESS.dotted_string,
        "EMAIL": NameOID.EMAIL_ADDRESS.dotted_string,
        "EMAILADDRESS": NameOID.EMAIL_ADDRESS.dotted_string,
        "MAIL": NameOID.EMAIL_ADDRESS.dotted_string,
        "DOMAINCOMPONENT": NameOID.DOMAIN_COMPONENT.dotted_string,
        "USERID": NameOID.USER_ID.dotted_string,
        "TITLE": NameOID.TITLE.dotted_string,
        "G": NameOID.GIVEN_NAME.dotted_string,
        "GN": NameOID.GIVEN_NAME.dotted_string,
        "SURNAME": NameOID.SURNAME.dotted_string,
        "POSTALCODE": NameOID.POSTAL_CODE.dotted_string,
        "DNQUALIFIER": NameOID.DN_QUALIFIER.dotted_string,
    }
)

_OID_RE = re.compile(r"^(?:OID\.)?([0-2](?:\.\d+)+)$", re.IGNORECASE)
_SPECIAL = set(',+"\\<>;=')


def _attribute_oid(name: str) -> str:
    key = name.strip()
    match = _OID_RE.match(key)
    if match:
        return match.group(1)
    oid = _ALIASES.get(key.upper())
    if oid is None:
        known = ", ".join(sorted(_SHORT_NAMES.values()))
        raise DistinguishedNameError(
            f"unknown attribute type {name!r} in a distinguished name; expected one of {known}, "
            "a long name such as organizationName, or OID.n.n.n"
        )
    return oid


def short_name(oid: str) -> str:
    """The display name of an attribute type: ``CN``, ``O``... or ``OID.n.n.n``."""
    return _SHORT_NAMES.get(oid, f"OID.{oid}")


def _normalise(value: str) -> str:
    return " ".join(value.split()).casefold()


@attrs.frozen
class Attribute:
    """One ``type=value`` pair; ``oid`` is the dotted attribute type."""

    oid: str
    value: str

    @property
    def name(self) -> str:
        return short_name(self.oid)


@attrs.frozen(repr=False)
class DistinguishedName:
    """A DN as a tuple of RDNs, most specific first (``CN=...`` before ``C=...``)."""

    rdns: tuple[tuple[Attribute, ...], ...]

    @classmethod
    def parse(cls, text: str) -> DistinguishedName:
        """Parse RFC 4514, IBM style (``CN=A, O=B``), ``;`` separators and attribute aliases."""
        if not text or not text.strip():
            raise DistinguishedNameError("empty distinguished name; expected e.g. 'CN=alice,O=ORG,C=GB'")
        rdns: list[tuple[Attribute, ...]] = []
        current: list[Attribute] = []
        for attribute, separator in _split(text):
            current.append(attribute)
            if separator != "+":
                rdns.append(tuple(current))
                current = []
        return cls(tuple(rdns))

    @classmethod
    def from_x509(cls, name: x509.Name) -> DistinguishedName:
        """The DN of a certificate's subject or issuer, in display (RFC 4514) order."""
        rdns = []
        for rdn in reversed(name.rdns):
            attributes = []
            for attribute in rdn:
                value = attribute.value
                text = value if isinstance(value, str) else "#" + value.hex()
                attributes.append(Attribute(attribute.oid.dotted_string, text))
            rdns.append(tuple(attributes))
        return cls(tuple(rdns))

    @classmethod
    def from_der(cls, encoded: bytes) -> DistinguishedName:
        """The DN of a DER-encoded Name (as in an IssuerAndSerialNumber)."""
        from asn1crypto import x509 as asn1_x509

        try:
            parsed = asn1_x509.Name.load(encoded, strict=True)
            rdns = []
            for rdn in reversed(list(parsed.chosen)):
                attributes = []
                for attribute in rdn:
                    value = attribute["value"].native
                    text = value if isinstance(value, str) else "#" + attribute["value"].dump().hex()
                    attributes.append(Attribute(attribute["type"].dotted, text))
                rdns.append(tuple(attributes))
        except (ValueError, TypeError) as error:
            raise DistinguishedNameError(f"cannot parse a DER Name: {error}") from None
        return cls(tuple(rdns))

    def to_x509(self) -> x509.Name:
        """A cryptography Name with the same components (DER order)."""
        return x509.Name(
            [
                x509.RelativeDistinguishedName([x509.NameAttribute(ObjectIdentifier(a.oid), a.value) for a in rdn])
                for rdn in reversed(self.rdns)
            ]
        )

    def __repr__(self) -> str:
        return f"DistinguishedName({str(self)!r})"

    def __str__(self) -> str:
        return ",".join("+".join(f"{a.name}={_escape(a.value)}" for a in rdn) for rdn in self.rdns)

    @property
    def match_key(self) -> tuple[tuple[tuple[str, str], ...], ...]:
        """What IBM's Java client compares: types, values case- and space-insensitively."""
        return tuple(tuple(sorted((a.oid, _normalise(a.value)) for a in rdn)) for rdn in self.rdns)

    def matches(self, other: DistinguishedName, *, strict: bool = False) -> bool:
        if strict:
            return self.rdns == other.rdns
        return self.match_key == other.match_key

    def differences(self, other: DistinguishedName) -> list[str]:
        """Why two DNs do not match, in words (for near-miss reports)."""
        if self.matches(other, strict=True):
            return []
        if self.matches(other):
            return ["they differ only in case or spacing (IBM's documentation asks for an exact match)"]
        mine = [tuple(sorted((a.oid, _normalise(a.value)) for a in rdn)) for rdn in self.rdns]
        theirs = [tuple(sorted((a.oid, _normalise(a.value)) for a in rdn)) for rdn in other.rdns]
        if sorted(mine) == sorted(theirs):
            return ["same components in a different order (order is significant)"]
        reasons = []
        missing = [r for r in theirs if r not in mine]
        extra = [r for r in mine if r not in theirs]
        for rdn in missing:
            reasons.append("missing " + "+".join(f"{short_name(o)}={v}" for o, v in rdn))
        for rdn in extra:
            reasons.append("has extra " + "+".join(f"{short_name(o)}={v}" for o, v in rdn))
        return reasons


def _escape(value: str) -> str:
    if value.startswith("#") and len(value) > 1 and all(c in "0123456789abcdef" for c in value[1:]):
        return value  # hex-encoded BER value, written as is
    out = []
    for index, char in enumerate(value):
        if char in _SPECIAL or (char == "#" and index == 0):
            out.append("\\" + char)
        elif char == " " and (index == 0 or index == len(value) - 1):
            out.append("\\ ")
        else:
            out.append(char)
    return "".join(out)


def _split(text: str) -> Iterable[tuple[Attribute, str]]:
    """Yield each attribute with the separator after it (``,``, ``;``, ``+`` or end)."""
    index = 0
    length = len(text)
    while True:
        equals = text.find("=", index)
        if equals < 0:
            raise DistinguishedNameError(f"no '=' after {text[index:]!r} in {text!r}; each component is TYPE=value")
        name = text[index:equals]
        if any(c in name for c in ",;+"):
            raise DistinguishedNameError(
                f"component {name.strip()!r} in {text!r} has no '='; each component is TYPE=value"
            )
        oid = _attribute_oid(name)
        index = equals + 1
        while index < length and text[index] == " ":
            index += 1
        value_chars: list[str] = []
        if index < length and text[index] == '"':
            index += 1
            while index < length and text[index] != '"':
                if text[index] == "\\" and index + 1 < length:
                    index += 1
                value_chars.append(text[index])
                index += 1
            if index >= length:
                raise DistinguishedNameError(f"unterminated quoted value in {text!r}")
            index += 1
            value = "".join(value_chars)
            while index < length and text[index] == " ":
                index += 1
        else:
            trailing_literal = 0
            while index < length and text[index] not in ",;+":
                char = text[index]
                if char == "\\":
                    if index + 1 >= length:
                        raise DistinguishedNameError(f"dangling '\\' at the end of {text!r}")
                    pair = text[index + 1 : index + 3]
                    if re.fullmatch(r"[0-9a-fA-F]{2}", pair):
                        # a run of \XX escapes encodes UTF-8 bytes
                        raw = bytearray()
                        while index < length and re.fullmatch(r"\\[0-9a-fA-F]{2}", text[index : index + 3]):
                            raw.append(int(text[index + 1 : index + 3], 16))
                            index += 3
                        value_chars.append(raw.decode("utf-8", errors="replace"))
                        trailing_literal = len(value_chars)
                        continue
                    value_chars.append(text[index + 1])
                    trailing_literal = len(value_chars)
                    index += 2
                    continue
                value_chars.append(char)
                index += 1
            # strip unescaped trailing spaces only
            while len(value_chars) > trailing_literal and value_chars[-1] == " ":
                value_chars.pop()
            value = "".join(value_chars)
        if value == "":
            raise DistinguishedNameError(f"empty value for {name.strip()} in {text!r}")
        separator = text[index] if index < length else ""
        yield Attribute(oid, value), separator
        if not separator:
            return
        index += 1
        while index < length and text[index] == " ":
            index += 1
        if index >= length:
            raise DistinguishedNameError(f"{text!r} ends with a separator")
