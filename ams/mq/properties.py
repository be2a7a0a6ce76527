"""What a queue's PROPCTL does to MQRFH2 headers on a get that does not ask for them.

IBM MQ applies a queue's PROPCTL when an application gets without a message handle and without
MQGMO_PROPERTIES_FORCE_MQRFH2: COMPAT (the default) keeps the MQRFH2 headers only when a folder
``mcd``, ``jms``, ``usr`` or ``mqext`` is among them, and NONE removes them; ALL, FORCE and
V6COMPAT keep them. A removed header takes its Format, Encoding and CCSID to the MQMD. For an
AMS-protected message that silently drops the properties (the blanked Format moves to the MQMD
and the PDMQ header follows), which is why this library's adapters always force MQRFH2. The
embedded queue manager applies these rules so that a get that forgot to would fail a test.
"""

from __future__ import annotations

import re
import struct

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
        folders = _folders(body[offset + _RFH2_FIXED : offset + length], order)
        headers.append(_Header(offset + length, fmt, next_encoding, ccsid, folders))
        encoding, offset = next_encoding, offset + length
    return headers


def _folders(data: bytes, order: str) -> frozenset[str]:
    """The folder names of an MQRFH2's NameValueData: each is a length, then ``<folder>...``."""
    names, offset = set(), 0
    while offset + 4 <= len(data):
        (size,) = struct.unpack_from(order + "i", data, offset)
        if size < 0 or offset + 4 + size > len(data):
            break
        match = _FOLDER.match(data[offset + 4 : offset + 4 + size])
        if match:
            names.add(match.group(1).decode("ascii").lower())
        offset += 4 + size
    return frozenset(names)
