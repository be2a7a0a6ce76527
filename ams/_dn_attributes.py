"""Attribute types and values of distinguished names: names, aliases, limits, case folding.

The short names IBM prints (``CN``, ``O``...), every spelling people use for a type (to its
OID), the bounds on what a DN may hold, :func:`fold` (the form :meth:`ams.dn.DistinguishedName.matches`
compares, as IBM's Java client does) and :class:`Attribute`, one ``type=value`` pair. The rules
are described in :mod:`ams.dn`, which re-exports the public names.
"""

from __future__ import annotations

import re

import attrs
from cryptography.x509.oid import NameOID

from ams.errors import DistinguishedNameError

MAX_RDNS = 64
MAX_ATTRIBUTES_PER_RDN = 16
MAX_VALUE_BYTES = 1024
_MAX_OID_CHARACTERS = 128  # dotted text; real attribute types are about 20
_MAX_OID_OCTETS = 64  # DER content; der.decode_oid refuses more too
_SHOWN = 60  # characters of a DN string quoted in an error text

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

# ASCII digits only: \d would accept other scripts' digits, which no OID has.
_OID_RE = re.compile(r"(?:OID\.)?([0-2](?:\.[0-9]+)+)", re.IGNORECASE)

# Java's single-character case mappings where Python's str.upper()/lower() give more than one
# character (all others are Java's mapping or none). Checked against OpenJDK 17 for every code point.
_SIMPLE_UPPER: dict[str, str] = {
    chr(code): chr(code + 8) for base in (0x1F80, 0x1F90, 0x1FA0) for code in range(base, base + 8)
}
_SIMPLE_UPPER.update({"\u1fb3": "\u1fbc", "\u1fc3": "\u1fcc", "\u1ff3": "\u1ffc"})
_SIMPLE_LOWER: dict[str, str] = {"\u0130": "i"}


def _shown(text: str) -> str:
    """A DN string for an error text: quoted, and cut short (it may be long or someone else's)."""
    return repr(text) if len(text) <= _SHOWN else repr(text[:_SHOWN]) + f"... ({len(text):,} characters)"


def _attribute_oid(name: str) -> str:
    key = name.strip()
    match = _OID_RE.fullmatch(key) if len(key) <= _MAX_OID_CHARACTERS else None
    if match:
        arcs = match.group(1).split(".")
        # one spelling per OID (as DER has), so that 2.5.4.03 and 2.5.4.3 are the same type
        arcs = [arc.lstrip("0") or "0" for arc in arcs]
        if arcs[0] != "2" and (len(arcs[1]) > 2 or int(arcs[1]) >= 40):
            raise DistinguishedNameError(
                f"attribute type OID.{'.'.join(arcs)} is not a valid OID: under arc 0 or 1 the second arc is 0 to 39"
            )
        return ".".join(arcs)
    oid = _ALIASES.get(key.upper())
    if oid is None:
        known = ", ".join(sorted(_SHORT_NAMES.values()))
        raise DistinguishedNameError(
            f"unknown attribute type {_shown(name)} in a distinguished name; expected one of {known}, "
            "a long name such as organizationName, or OID.n.n.n"
        )
    return oid


def short_name(oid: str) -> str:
    """The display name of an attribute type: ``CN``, ``O``... or ``OID.n.n.n``."""
    return _SHORT_NAMES.get(oid, f"OID.{oid}")


def _fold_char(char: str) -> str:
    """Java's ``toLowerCase(toUpperCase(c))`` with single-character mappings only."""
    upper = char.upper()
    if len(upper) != 1:
        upper = _SIMPLE_UPPER.get(char, char)
    lower = upper.lower()
    if len(lower) != 1:
        lower = _SIMPLE_LOWER.get(upper, upper)
    return lower


def fold(value: str) -> str:
    """The form of a value that :meth:`DistinguishedName.matches` compares (see the module docstring).

    Two values match exactly when their folded forms are equal: case folded per character the
    way Java's ``equalsIgnoreCase`` compares, ASCII spaces trimmed and runs of them collapsed.
    """
    spaced = " ".join(part for part in value.split(" ") if part)
    if spaced.isascii():
        return spaced.lower()  # the common case, and the same answer
    return "".join(map(_fold_char, spaced))


@attrs.frozen
class Attribute:
    """One ``type=value`` pair; ``oid`` is the dotted attribute type."""

    oid: str
    value: str

    @property
    def name(self) -> str:
        """The attribute type's display name: ``CN``, ``O``... or ``OID.n.n.n``."""
        return short_name(self.oid)
