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

This module holds :class:`DistinguishedName` and how DNs are compared and ranked; the attribute
types, limits and case folding are in ``ams._dn_attributes`` (their public names are importable
from here), the text form in ``ams._dn_text``, the DER form in ``ams._dn_der``.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Sequence

import attrs
from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from ams._dn_attributes import MAX_ATTRIBUTES_PER_RDN as MAX_ATTRIBUTES_PER_RDN
from ams._dn_attributes import MAX_RDNS as MAX_RDNS
from ams._dn_attributes import MAX_VALUE_BYTES as MAX_VALUE_BYTES
from ams._dn_attributes import Attribute as Attribute
from ams._dn_attributes import _shown
from ams._dn_attributes import fold as fold
from ams._dn_attributes import short_name as short_name
from ams._dn_der import _der_children, _der_each, _der_rdn, _der_read
from ams._dn_text import _UNUSABLE, _escape, _split
from ams.errors import DistinguishedNameError
from ams.hazmat import der

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
