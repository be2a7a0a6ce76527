"""Adding a message property in an MQRFH2 header of its own, in front of whatever the message holds.

A new MQRFH2 (version 2) goes first: its Format, Encoding and CCSID describe what followed the
MQMD before, so the existing headers and payload are left byte for byte, and a reader sees the
property in the ``usr`` folder as it would any other.
"""

from __future__ import annotations

import re
import struct
from xml.sax.saxutils import escape

import attrs

from ams.errors import UsageError
from ams.mq.mqmd import MQMD
from ams.mqconstants import MQCCSI_UTF8, MQENC_NATIVE

MQFMT_RF_HEADER_2 = "MQHRF2  "
_FIXED = 36
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def with_usr_property(md: MQMD, body: bytes, name: str, value: str) -> tuple[MQMD, bytes]:
    """``md`` and ``body`` with an MQRFH2 in front carrying ``usr.<name>`` = ``value`` (a string)."""
    if not _NAME.match(name):
        raise UsageError(f"a property name is a letter or _, then letters, digits or _ (found {name!r})")
    folder = f"<usr><{name}>{escape(value)}</{name}></usr>".encode()
    folder += b" " * (-len(folder) % 4)  # NameValueLength is a multiple of 4
    header = struct.pack(
        "<4siiii8sii",
        b"RFH ",
        2,
        _FIXED + 4 + len(folder),
        md.encoding,
        md.ccsid,
        md.format.ljust(8)[:8].encode("ascii", "replace"),
        0,
        MQCCSI_UTF8,
    )
    header += struct.pack("<i", len(folder)) + folder
    # the new header's own integers are little-endian (MQENC_NATIVE) and its strings ASCII
    return attrs.evolve(md, format=MQFMT_RF_HEADER_2, encoding=MQENC_NATIVE, ccsid=MQCCSI_UTF8), header + body
