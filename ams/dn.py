"""Distinguished names as AMS policies write them, and how certificates are matched to them.

Policies name people and systems by DN strings such as ``CN=alice, O=VECTORS, C=GB``: most
specific component first (RFC 4514 order, the reverse of the DER order inside a certificate).

How :meth:`DistinguishedName.matches` compares, as IBM's Java client does (``String.equalsIgnoreCase``):

* Attribute types compare by OID: ``CN``, ``commonName`` and ``OID.2.5.4.3`` are one type.
* RDNs compare in order (``CN=a,O=b`` does not match ``O=b,CN=a``); the attributes of a
  multi-valued RDN (``CN=a+UID=b``) compare as a set.
* Values compare character by character (Unicode code point by code point). Two characters are
  equal when they are the same, when their single-character upper-case mappings are the same,
  or when the lower-case mappings of those are the same: ``A`` matches ``a``, ``Ø`` ``ø``, and
  ``Σ``, ``σ`` and ``ς`` match each other. A mapping to more than one character does not apply
  (``ß`` does not match ``SS``, ``ﬁ`` does not match ``fi``), and nothing is normalised: no
  compatibility (NFKC) or composition (NFC) folding, so ``é`` written as ``e`` plus a
  combining accent does not match a precomposed ``é``.
* Only the ASCII space (U+0020) is whitespace: leading and trailing spaces are ignored and a run
  of spaces inside a value matches one space. Tabs, no-break spaces (U+00A0), em spaces (U+2003)
  and every other character compare as themselves.

``strict=True`` compares values exactly, as IBM's documentation says (RDN order and multi-valued
RDNs as above). The case mappings are the
Unicode tables of the running Python, with Java's single-character mappings where Python's
differ (the Greek iota-subscript letters, ``İ``); Java before 16 compared the two halves of a
character outside the Basic Multilingual Plane separately, so such letters (Deseret, Osage...)
matched case-sensitively there.

Reading is bounded: at most 64 RDNs of at most 16 attributes, values of at most 1,024 bytes
(UTF-8 when parsed from text); error texts quote at most a short prefix of a DN string and never
the bytes of a DER Name.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable, Iterator, Sequence

import attrs
from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier

from ams.errors import DistinguishedNameError
from ams.hazmat import der

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
_HEX_PAIR = re.compile(r"\\[0-9a-fA-F]{2}")
_UNUSABLE = re.compile(r"[\x00\ud800-\udfff]")  # NUL, and lone surrogates (not encodable as UTF-8)
_SPECIAL = set(',+"\\<>;=')

# DER string types a value is decoded from; any other value is kept as '#' + the hex of its encoding.
_STRING_TYPES: dict[int, tuple[str, str]] = {
    0x0C: ("UTF8String", "utf-8"),
    0x13: ("PrintableString", "ascii"),
    0x16: ("IA5String", "ascii"),
    0x14: ("TeletexString", "latin-1"),
    0x1E: ("BMPString", "utf-16-be"),
    0x1C: ("UniversalString", "utf-32-be"),
}

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


MatchKey = tuple[tuple[tuple[str, str], ...], ...]


@attrs.frozen(repr=False)
class DistinguishedName:
    """A DN as a tuple of RDNs, most specific first (``CN=...`` before ``C=...``)."""

    rdns: tuple[tuple[Attribute, ...], ...]

    @classmethod
    def parse(cls, text: str) -> DistinguishedName:
        """Parse RFC 4514, IBM style (``CN=A, O=B``), ``;`` separators and attribute aliases.

        Only :class:`DistinguishedNameError` is raised, whatever the text.
        """
        if not isinstance(text, str):
            raise DistinguishedNameError(f"expected a distinguished name as text, found {type(text).__name__}")
        if not text or not text.strip():
            raise DistinguishedNameError("empty distinguished name; expected e.g. 'CN=alice,O=ORG,C=GB'")
        unusable = _UNUSABLE.search(text)
        if unusable:
            raise DistinguishedNameError(
                f"character U+{ord(unusable.group()):04X} at position {unusable.start()} of a distinguished name "
                "is a NUL or a lone surrogate, which no certificate name can hold: remove it"
            )
        rdns: list[tuple[Attribute, ...]] = []
        current: list[Attribute] = []
        for attribute, separator in _split(text):
            if len(current) == MAX_ATTRIBUTES_PER_RDN:
                raise DistinguishedNameError(
                    f"RDN {len(rdns) + 1} of {_shown(text)} has more than {MAX_ATTRIBUTES_PER_RDN} attributes "
                    "joined by '+'; AMS reads at most that many"
                )
            current.append(attribute)
            if separator != "+":
                if len(rdns) == MAX_RDNS:
                    raise DistinguishedNameError(
                        f"{_shown(text)} has more than {MAX_RDNS} components; AMS reads at most that many"
                    )
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
    def from_der(cls, encoded: bytes | memoryview) -> DistinguishedName:
        """The DN of a DER-encoded Name (as in an IssuerAndSerialNumber), in display order.

        Name ::= SEQUENCE OF RDN, RDN ::= SET OF AttributeTypeAndValue, read strictly and without
        recursion. String values (UTF8String, PrintableString, IA5String, TeletexString,
        BMPString, UniversalString) are decoded; any other value is ``#`` + the hex of its
        encoding. Only :class:`DistinguishedNameError` is raised, whatever the bytes.
        """
        reader = der.Reader(encoded, "Name")
        name = _der_read(reader, "the Name (a SEQUENCE)", der.SEQUENCE, 0)
        if reader.peek() is not None:
            raise DistinguishedNameError(
                f"DER Name: bytes follow the Name at offset {len(name.encoded)}; expected the Name alone"
            )
        rdn_reader, offset = _der_children(name, "the Name", 0)
        rdns = [
            _der_rdn(rdn, f"RDN {number}", at)
            for number, rdn, at in _der_each(rdn_reader, offset, "RDN", "the Name", der.SET, MAX_RDNS)
        ]
        return cls(tuple(reversed(rdns)))

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

    @functools.cached_property
    def match_key(self) -> MatchKey:
        """What :meth:`matches` compares: per RDN, the sorted (OID, folded value) pairs (see :func:`fold`).

        Equal keys mean matching DNs, so the key also finds duplicates. Computed once per DN.
        """
        return tuple(tuple(sorted((a.oid, fold(a.value)) for a in rdn)) for rdn in self.rdns)

    def matches(self, other: DistinguishedName, *, strict: bool = False) -> bool:
        """Whether ``other`` names the same entity: as IBM's Java client compares, or exactly (``strict``).

        Either way RDNs compare in order and the attributes of a multi-valued RDN as a set (a SET
        OF in the certificate, whose order a certificate library may not keep).
        """
        if strict:
            return self.rdns == other.rdns or _exact_key(self) == _exact_key(other)
        return self.match_key == other.match_key

    def differences(self, other: DistinguishedName) -> list[str]:
        """Why two DNs do not match, in words (for near-miss reports)."""
        if self.matches(other, strict=True):
            return []
        if self.matches(other):
            return ["they differ only in case or spacing (IBM's documentation asks for an exact match)"]
        mine, theirs = list(self.match_key), list(other.match_key)
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


_CLOSENESS_CHARACTERS = 256  # difflib is quadratic: a hostile certificate's huge DN costs no more than this


def _canonical_text(dn: DistinguishedName) -> str:
    text = ",".join("+".join(f"{short_name(oid)}={value}" for oid, value in rdn) for rdn in dn.match_key)
    return text[:_CLOSENESS_CHARACTERS]


def closeness(first: DistinguishedName, second: DistinguishedName) -> float:
    """How alike two DNs read, from 0 to 1: difflib's ratio over their canonical forms (attribute
    short names, case and spacing folded as :meth:`DistinguishedName.matches` folds them)."""
    return difflib.SequenceMatcher(None, _canonical_text(first), _canonical_text(second), autojunk=False).ratio()


def by_closeness(target: DistinguishedName, candidates: Sequence[DistinguishedName]) -> list[DistinguishedName]:
    """``candidates`` ordered from the closest to ``target`` to the farthest (ties keep their order),
    so that a near-miss report names the likeliest intended DN first."""
    scores = [closeness(target, candidate) for candidate in candidates]
    return [candidates[i] for i in sorted(range(len(candidates)), key=lambda i: -scores[i])]


def _exact_key(dn: DistinguishedName) -> MatchKey:
    return tuple(tuple(sorted((a.oid, a.value) for a in rdn)) for rdn in dn.rdns)


def _der_read(reader: der.Reader, what: str, tag: int | None, offset: int) -> der.Element:
    """The next element, with an error that names the field and offset only (never the bytes)."""
    found = reader.peek()
    if found is None:
        raise DistinguishedNameError(f"DER Name: {what} is missing at offset {offset}; the encoding is truncated")
    if tag is not None and found != tag:
        raise DistinguishedNameError(
            f"DER Name: expected {what} with tag {tag:#04x} at offset {offset}, found another tag"
        )
    try:
        return reader.read(what, tag)
    except (der.DerError, ValueError, IndexError):
        raise DistinguishedNameError(
            f"DER Name: {what} at offset {offset} is not strict DER (a single-byte tag, a definite minimal "
            "length, within its container)"
        ) from None


def _der_children(element: der.Element, what: str, offset: int) -> tuple[der.Reader, int]:
    """A reader of a constructed element's content, and the offset where that content starts."""
    try:
        reader = element.children(what)
    except der.DerError:
        raise DistinguishedNameError(f"DER Name: {what} at offset {offset} is not constructed") from None
    return reader, offset + len(element.encoded) - len(element.content)


def _der_each(
    reader: der.Reader, offset: int, kind: str, where: str, tag: int, limit: int
) -> Iterator[tuple[int, der.Element, int]]:
    """Each remaining element (its number, the element, its offset), at most ``limit`` of them."""
    number = 0
    while reader.peek() is not None:
        if number == limit:
            raise DistinguishedNameError(
                f"DER Name: {where} has more than {limit} {kind}s (the next at offset {offset}); AMS reads at most "
                "that many"
            )
        number += 1
        element = _der_read(reader, f"{kind} {number} of {where}", tag, offset)
        yield number, element, offset
        offset += len(element.encoded)


def _der_rdn(rdn: der.Element, where: str, offset: int) -> tuple[Attribute, ...]:
    reader, position = _der_children(rdn, where, offset)
    attributes = [
        _der_attribute(pair, f"{where} attribute {number}", at)
        for number, pair, at in _der_each(reader, position, "attribute", where, der.SEQUENCE, MAX_ATTRIBUTES_PER_RDN)
    ]
    if not attributes:
        raise DistinguishedNameError(f"DER Name: {where} at offset {offset} is empty; an RDN holds an attribute")
    return tuple(attributes)


def _der_attribute(pair: der.Element, field: str, offset: int) -> Attribute:
    reader, position = _der_children(pair, field, offset)
    kind = _der_read(reader, f"{field} type (an OBJECT IDENTIFIER)", der.OID, position)
    if len(kind.content) > _MAX_OID_OCTETS:
        raise DistinguishedNameError(
            f"DER Name: {field} type at offset {position} is longer than {_MAX_OID_OCTETS} bytes; "
            "no attribute type is that long"
        )
    try:
        oid = kind.oid(field)
    except (der.DerError, ValueError):
        raise DistinguishedNameError(
            f"DER Name: {field} type at offset {position} is not a valid OBJECT IDENTIFIER"
        ) from None
    position += len(kind.encoded)
    value = _der_read(reader, f"{field} value", None, position)
    if reader.peek() is not None:
        raise DistinguishedNameError(
            f"DER Name: {field} at offset {offset} has fields after its value; expected a type and a value"
        )
    size = len(value.content)
    if size > MAX_VALUE_BYTES:
        raise DistinguishedNameError(
            f"DER Name: {field} value at offset {position} is longer than {MAX_VALUE_BYTES} bytes; "
            "AMS reads at most that many"
        )
    string_type = _STRING_TYPES.get(value.tag)
    if string_type is None:
        return Attribute(oid, "#" + bytes(value.encoded).hex())
    type_name, codec = string_type
    try:
        text = bytes(value.content).decode(codec)
    except UnicodeDecodeError as error:
        start = position + len(value.encoded) - size + error.start
        raise DistinguishedNameError(
            f"DER Name: {field} value is a {type_name} that is not valid {codec} (at offset {start}); "
            "the certificate or message that carries it is damaged"
        ) from None
    return Attribute(oid, text)


def _is_control(char: str) -> bool:
    """C0 and C1 control characters, DEL, and the line and paragraph separators."""
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F or code in (0x2028, 0x2029)


def _escape(value: str) -> str:
    if value.startswith("#") and len(value) > 1 and all(c in "0123456789abcdef" for c in value[1:]):
        return value  # hex-encoded BER value, written as is
    out = []
    for index, char in enumerate(value):
        if _is_control(char):  # a newline or terminal escape in a certificate name is printed, never obeyed
            out.append("".join(f"\\{byte:02X}" for byte in char.encode("utf-8")))
        elif char in _SPECIAL or (char == "#" and index == 0):
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
        name, index = _read_type(text, index)
        oid = _attribute_oid(name)
        index = _skip_spaces(text, index + 1)
        if index < length and text[index] == '"':
            value, index = _read_quoted(text, index, name)
        else:
            value, index = _read_plain(text, index)
        _check_value(text, name, value)
        separator = text[index] if index < length else ""
        yield Attribute(oid, value), separator
        if not separator:
            return
        index = _skip_spaces(text, index + 1)
        if index >= length:
            raise DistinguishedNameError(f"{_shown(text)} ends with a separator; remove it or add a component")


def _skip_spaces(text: str, index: int) -> int:
    """The first position at or after ``index`` that is not an ASCII space."""
    while index < len(text) and text[index] == " ":
        index += 1
    return index


def _read_type(text: str, index: int) -> tuple[str, int]:
    """The attribute type text of the component at ``index``, and the position of its ``=``."""
    equals = text.find("=", index)
    if equals < 0:
        raise DistinguishedNameError(f"no '=' after position {index} of {_shown(text)}; each component is TYPE=value")
    name = text[index:equals]
    if any(c in name for c in ",;+"):
        raise DistinguishedNameError(
            f"component {_shown(name.strip())} in {_shown(text)} has no '='; each component is TYPE=value"
        )
    return name, equals


def _read_quoted(text: str, index: int, name: str) -> tuple[str, int]:
    """A ``"..."`` value starting at ``index``, and the position of the separator (or end) after it."""
    length = len(text)
    value_chars: list[str] = []
    index += 1
    while index < length and text[index] != '"':
        if text[index] == "\\" and index + 1 < length:
            index += 1
        value_chars.append(text[index])
        index += 1
    if index >= length:
        raise DistinguishedNameError(f"unterminated quoted value in {_shown(text)}; close it with '\"'")
    index = _skip_spaces(text, index + 1)
    if index < length and text[index] not in ",;+":
        raise DistinguishedNameError(
            f"unexpected character after the quoted value of {name.strip()} at position {index} of "
            f"{_shown(text)}; expected ',', ';', '+' or the end"
        )
    return "".join(value_chars), index


def _read_plain(text: str, index: int) -> tuple[str, int]:
    """An unquoted value starting at ``index``, unescaped, and the position of the separator (or end) after it.

    Trailing spaces are dropped unless escaped.
    """
    length = len(text)
    value_chars: list[str] = []
    trailing_literal = 0
    while index < length and text[index] not in ",;+":
        char = text[index]
        if char != "\\":
            value_chars.append(char)
            index += 1
            continue
        if index + 1 >= length:
            raise DistinguishedNameError(f"dangling '\\' at the end of {_shown(text)}")
        if _HEX_PAIR.match(text, index):
            decoded, index = _read_hex_escapes(text, index)
            value_chars.append(decoded)
        else:
            value_chars.append(text[index + 1])
            index += 2
        trailing_literal = len(value_chars)
    # strip unescaped trailing spaces only
    while len(value_chars) > trailing_literal and value_chars[-1] == " ":
        value_chars.pop()
    return "".join(value_chars), index


def _read_hex_escapes(text: str, index: int) -> tuple[str, int]:
    """A run of ``\\XX`` escapes at ``index``, decoded as the UTF-8 bytes they encode, and the position after it."""
    start = index
    raw = bytearray()
    while _HEX_PAIR.match(text, index):
        raw.append(int(text[index + 1 : index + 3], 16))
        index += 3
    try:
        return raw.decode("utf-8"), index
    except UnicodeDecodeError:
        raise DistinguishedNameError(
            f"the \\XX escapes at position {start} of {_shown(text)} are not UTF-8; "
            "escape each byte of a character's UTF-8 encoding"
        ) from None


def _check_value(text: str, name: str, value: str) -> None:
    """Refuse an empty value, a NUL, or a value longer than MAX_VALUE_BYTES in UTF-8."""
    if value == "":
        raise DistinguishedNameError(f"empty value for {_shown(name.strip())} in {_shown(text)}")
    if "\x00" in value:
        raise DistinguishedNameError(
            f"the value of {name.strip()} in {_shown(text)} holds a NUL (\\00), which no certificate name "
            "can hold: remove it"
        )
    if len(value) > MAX_VALUE_BYTES // 4 and len(value.encode("utf-8")) > MAX_VALUE_BYTES:
        raise DistinguishedNameError(
            f"the value of {_shown(name.strip())} in {_shown(text)} is longer than {MAX_VALUE_BYTES} bytes "
            "(UTF-8); AMS reads at most that many"
        )
