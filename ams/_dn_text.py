"""The text form of a distinguished name: RFC 4514 strings (IBM's style too) read and written.

:func:`_split` reads each ``type=value`` of a DN string with the separator after it (``,``,
``;``, ``+``): quoted values, ``\\`` escapes and runs of ``\\XX`` (UTF-8) decoded, bounded by the
limits of :mod:`ams._dn_attributes`. :func:`_escape` writes a value back, with control characters
escaped so that a certificate name printed is never obeyed by a terminal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ams._dn_attributes import MAX_VALUE_BYTES, Attribute, _attribute_oid, _shown
from ams.errors import DistinguishedNameError

_HEX_PAIR = re.compile(r"\\[0-9a-fA-F]{2}")
_UNUSABLE = re.compile(r"[\x00\ud800-\udfff]")  # NUL, and lone surrogates (not encodable as UTF-8)
_SPECIAL = set(',+"\\<>;=')


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
