"""What a queue's PROPCTL does to MQRFH2 headers on a get that does not ask for them.

IBM MQ applies a queue's PROPCTL when an application gets without a message handle and without
MQGMO_PROPERTIES_FORCE_MQRFH2: COMPAT (the default) keeps the MQRFH2 headers only when a folder
``mcd``, ``jms``, ``usr`` or ``mqext`` is among them, and NONE removes them; ALL, FORCE and
V6COMPAT keep them. A removed header takes its Format, Encoding and CCSID to the MQMD. For an
AMS-protected message that silently drops the properties (the blanked Format moves to the MQMD
and the PDMQ header follows), which is why this library's adapters always force MQRFH2. The
embedded queue manager applies these rules so that a get that forgot to would fail a test.

:func:`read_properties` reads the properties those headers carry (``ams get --json`` shows them),
with work bounded by the header's size and at most 1,000 properties.
"""

from __future__ import annotations

import re
import struct
from xml.sax.saxutils import unescape

import attrs

from ams.mq.mqmd import MQMD
from ams.mqconstants import integer_order

_RFH2_FIXED = 36
_KEEPING_FOLDERS = frozenset({"mcd", "jms", "usr", "mqext"})
_FOLDER = re.compile(rb"\s*<([A-Za-z][A-Za-z0-9_.-]*)")


@attrs.frozen
class _Header:
    end: int
    format: str
    encoding: int
    ccsid: int
    folders: frozenset[str]
    texts: tuple[bytes, ...] = ()
    charset: str = "utf-8"  # of ``texts``: its NameValueCCSID (CodedCharSetId above is what follows)


@attrs.frozen
class Properties:
    """What the leading MQRFH2 headers of a message say: its properties by folder (``{"usr":
    {"name": "value"}}``), and the Format, Encoding, CCSID and offset of what follows them."""

    folders: dict[str, dict[str, str]]
    format: str
    encoding: int
    ccsid: int
    payload_offset: int
    complete: bool = True  # False: reading stopped at its bound (1,000 properties, 32 levels) before the end


def deliver(md: MQMD, body: bytes, propctl: str) -> tuple[MQMD, bytes]:
    """The MQMD and body a get without a message handle or FORCE_MQRFH2 receives under ``propctl``."""
    if propctl not in ("COMPAT", "NONE"):
        return md, body
    headers = _leading_rfh2(md, body)
    if not headers:
        return md, body
    if propctl == "COMPAT" and any(h.folders & _KEEPING_FOLDERS for h in headers):
        return md, body
    last = headers[-1]
    return attrs.evolve(md, format=last.format, encoding=last.encoding, ccsid=last.ccsid), body[last.end :]


def _leading_rfh2(md: MQMD, body: bytes) -> list[_Header]:
    """The MQRFH2 headers at the start of ``body`` (an unreadable one ends the list, as is)."""
    headers: list[_Header] = []
    fmt, encoding, offset = md.format, md.encoding, 0
    while fmt.strip() == "MQHRF2" and len(body) - offset >= _RFH2_FIXED and body[offset : offset + 4] == b"RFH ":
        order = integer_order(encoding)
        (length,) = struct.unpack_from(order + "i", body, offset + 8)
        if length < _RFH2_FIXED or offset + length > len(body):
            break
        next_encoding, ccsid = struct.unpack_from(order + "ii", body, offset + 12)
        fmt = body[offset + 20 : offset + 28].decode("ascii", "replace")
        (name_value_ccsid,) = struct.unpack_from(order + "i", body, offset + 32)
        texts = _folder_texts(body[offset + _RFH2_FIXED : offset + length], order)
        charset = _charset(name_value_ccsid, order)
        folders = frozenset(_folder_name(text.decode(charset, "replace").encode()) for text in texts) - {""}
        headers.append(_Header(offset + length, fmt, next_encoding, ccsid, folders, texts, charset))
        encoding, offset = next_encoding, offset + length
    return headers


def _folder_texts(data: bytes, order: str) -> tuple[bytes, ...]:
    """The folders of an MQRFH2's NameValueData: each is a length, then ``<folder>...</folder>``."""
    texts, offset = [], 0
    while offset + 4 <= len(data):
        (size,) = struct.unpack_from(order + "i", data, offset)
        if size < 0 or offset + 4 + size > len(data):
            break
        texts.append(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return tuple(texts)


def _folder_name(text: bytes) -> str:
    match = _FOLDER.match(text)
    return match.group(1).decode("ascii").lower() if match else ""


# a leaf element: <name>value</name>, <name dt='i4'>5</name> or <name xsi:nil='true'/>
_LEAF = re.compile(r"\s*<([A-Za-z_][\w.-]*)(?:\s[^<>]*?)?(?:/>|>([^<]*)</\1\s*>)")
_TAG = re.compile(r"<(/?)([A-Za-z_][\w.-]*)[^<>]*?(/?)>")
_MAX_PROPERTIES = 1000
_MAX_DEPTH = 32  # folders, groups and subgroups: a deeper nesting is not a property header anyone wrote


def read_properties(md: MQMD, body: bytes) -> Properties:
    """The properties the leading MQRFH2 headers of ``body`` carry (none when ``md`` says no
    MQRFH2 follows). Each folder's leaf elements become ``name: value`` (text, XML escapes
    undone; an element in a group is named ``group.name``, as JMS and IBM's property names
    read); at most 1,000 per message, so a hostile header costs work in proportion to its size."""
    headers = _leading_rfh2(md, body)
    folders: dict[str, dict[str, str]] = {}
    count, complete = 0, True
    for header in headers:
        for text in header.texts:
            # NameValueData is in the header's NameValueCCSID, not in its CodedCharSetId (which
            # describes what follows): decoding by the latter hid a UTF-8 folder behind a 1200
            text_read = text.decode(header.charset, "replace")
            leaves, read_whole = _leaves(text_read, _MAX_PROPERTIES - count)
            complete = complete and read_whole
            # of two same-named elements, the one closest to the head is the property (IBM's
            # "MQRFH2 element name conflicts"), as after a queue manager re-rendered them
            for folder, name, value in leaves:
                folders.setdefault(folder, {}).setdefault(name, value)
                count += 1
    if not headers:
        return Properties({}, md.format, md.encoding, md.ccsid, 0)
    last = headers[-1]
    return Properties(folders, last.format, last.encoding, last.ccsid, last.end, complete)


def _charset(ccsid: int, order: str) -> str:
    # NameValueCCSID is 1208 (UTF-8), 1200, 13488 or 17584 (UTF-16) per IBM's MQRFH2 reference,
    # UTF-16 "in the same byte order as the numeric fields in the MQRFH2" (``order``)
    if ccsid in (1200, 13488, 17584):
        return "utf-16-le" if order == "<" else "utf-16-be"
    return "utf-8"


def _leaves(text: str, limit: int = _MAX_PROPERTIES) -> tuple[list[tuple[str, str, str]], bool]:
    """``(folder, dotted name, value)`` for each leaf element inside the folder elements of ``text``:
    at most ``limit``, and none nested deeper than 32 (reading stops there), so the work stays in
    proportion to the text; and whether the text was read to its end."""
    opened: list[str] = []
    found: list[tuple[str, str, str]] = []
    position = 0
    while True:
        if len(found) >= limit or len(opened) > _MAX_DEPTH:
            return found, False
        leaf = _LEAF.match(text, position)
        if leaf is not None and opened:
            name = ".".join([*opened[1:], leaf.group(1)])
            found.append((opened[0].lower(), name, unescape(leaf.group(2) or "", {"&quot;": '"', "&apos;": "'"})))
            position = leaf.end()
            continue
        tag = _TAG.search(text, position)
        if tag is None:
            return found, True
        closing, name, empty = tag.groups()
        if closing and opened:
            opened.pop()
        elif not closing and not empty:
            opened.append(name)
        position = tag.end()
