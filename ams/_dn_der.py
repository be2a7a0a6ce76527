"""A DER-encoded X.501 Name read into attributes, strictly and without recursion.

Name ::= SEQUENCE OF RDN, RDN ::= SET OF AttributeTypeAndValue; at most the limits of
:mod:`ams._dn_attributes`. Error texts name the field and its offset, never the bytes read.
"""

from __future__ import annotations

from collections.abc import Iterator

from ams._dn_attributes import _MAX_OID_OCTETS, MAX_ATTRIBUTES_PER_RDN, MAX_VALUE_BYTES, Attribute
from ams.errors import DistinguishedNameError
from ams.hazmat import der

# DER string types a value is decoded from; any other value is kept as '#' + the hex of its encoding.
_STRING_TYPES: dict[int, tuple[str, str]] = {
    0x0C: ("UTF8String", "utf-8"),
    0x13: ("PrintableString", "ascii"),
    0x16: ("IA5String", "ascii"),
    0x14: ("TeletexString", "latin-1"),
    0x1E: ("BMPString", "utf-16-be"),
    0x1C: ("UniversalString", "utf-32-be"),
}


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
