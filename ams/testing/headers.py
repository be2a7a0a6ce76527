"""Clear MQ header chains for tests: the headers AMS leaves in the clear, as applications write them.

A body may start with MQ headers, each naming the Format of what follows (format.md §1). This
module builds them with realistic field values and lengths, in either integer encoding and
with ASCII or EBCDIC names::

    chain = ClearChain((HeaderSpec("MQHRF2", folders=(MCD_TEXT, "<usr><Region>EMEA</Region></usr>")),
                        HeaderSpec("MQCICS")), final_format="MQSTR", encodings=(546, 273, 546))
    body = chain.message(b"payload")          # the MQMD carries chain.mqmd_format and chain.mqmd_encoding

Each header is written in the encoding the structure before it announces (the MQMD's for the
first); its own Encoding field announces the next one. An ``MQXMIT`` payload gets the MQXQH
(with its embedded MQMD) it starts with on a transmission queue: that is payload, not a clear
header, so AMS protects it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import attrs

from ams.mqconstants import MQCCSI_UTF8, MQENC_NATIVE

# Format name -> StrucId, for every header AMS leaves in the clear (format.md §1)
STRUC_IDS: dict[str, str] = {
    "MQHRF2": "RFH ",
    "MQHRF": "RFH ",
    "MQHMDE": "MDE ",
    "MQHWIH": "WIH ",
    "MQHREF": "RMH ",
    "MQIMS": "IIH ",
    "MQCICS": "CIH ",
    "MQHDIST": "DH  ",
    "MQDEAD": "DLH ",
    "MQHEPCF": "EPH ",
}
CLEAR_FORMATS = tuple(sorted(STRUC_IDS))
MQENC_BIG = 273  # integers big-endian (MQENC_INTEGER_NORMAL), as on z/OS and IBM i
MCD_TEXT = "<mcd><Msd>jms_text</Msd></mcd>"
JMS_FOLDER = "<jms><Dst>queue:///PAYROLL.Q</Dst><Tms>1700000000000</Tms><Dlv>2</Dlv></jms>"
PSC_FOLDER = "<psc><Command>Publish</Command><Topic>prices/eur</Topic></psc>"


@attrs.frozen
class HeaderSpec:
    """One clear header: its Format name (``MQHRF2``...), whether its names are EBCDIC, and for
    MQRFH2 the NameValueData folders (for MQRFH, the NameValueString pieces)."""

    kind: str
    ebcdic: bool = False
    folders: tuple[str, ...] = ()


@attrs.frozen
class ClearChain:
    """A chain of clear headers before a payload of Format ``final_format``.

    ``encodings`` are the MQMD's Encoding and then each header's Encoding field (one more than
    there are headers; default: native, 546, throughout).
    """

    headers: tuple[HeaderSpec, ...] = ()
    final_format: str = "MQSTR"
    encodings: tuple[int, ...] = ()

    def __attrs_post_init__(self) -> None:
        if self.encodings and len(self.encodings) != len(self.headers) + 1:
            raise ValueError(
                f"a chain of {len(self.headers)} headers needs {len(self.headers) + 1} encodings "
                f"(the MQMD's, then each header's), found {len(self.encodings)}"
            )

    @property
    def mqmd_format(self) -> str:
        """The Format the MQMD carries: the first header's, or the payload's when there is none."""
        return self.headers[0].kind if self.headers else self.final_format

    @property
    def mqmd_encoding(self) -> int:
        """The MQMD's Encoding, which the first header's integers follow."""
        return self.encodings[0] if self.encodings else MQENC_NATIVE

    def prefix(self) -> bytes:
        """The headers' bytes."""
        encodings = self.encodings or (MQENC_NATIVE,) * (len(self.headers) + 1)
        out = []
        for index, spec in enumerate(self.headers):
            following = self.headers[index + 1].kind if index + 1 < len(self.headers) else self.final_format
            out.append(build(spec, following, encoding=encodings[index], next_encoding=encodings[index + 1]))
        return b"".join(out)

    def message(self, payload: bytes) -> bytes:
        """The body after the MQMD: the headers, then (for ``MQXMIT``) an MQXQH, then ``payload``."""
        extra = transmission_header(encoding=self.encodings[-1] if self.encodings else MQENC_NATIVE)
        return self.prefix() + (extra if self.final_format.strip() == "MQXMIT" else b"") + payload

    def describe(self) -> str:
        """The chain in words: ``MQHRF2 (2 folders, EBCDIC) > MQCICS > payload MQSTR``."""
        parts = []
        for spec in self.headers:
            notes = [f"{len(spec.folders)} folders"] if spec.folders else []
            notes += ["EBCDIC"] if spec.ebcdic else []
            parts.append(spec.kind + (f" ({', '.join(notes)})" if notes else ""))
        encodings = (
            "" if not self.encodings or set(self.encodings) == {MQENC_NATIVE} else f", encodings {self.encodings}"
        )
        return " > ".join([*parts, f"payload {self.final_format.strip() or 'MQFMT_NONE'}"]) + encodings


def _order(encoding: int) -> str:
    return "<" if encoding & 0x0F == 2 else ">"


def _text(value: str, size: int, ebcdic: bool) -> bytes:
    """A blank-padded character field."""
    return value.ljust(size)[:size].encode("cp500" if ebcdic else "ascii")


def _padded(text: str) -> bytes:
    """NameValueData: UTF-8, blank-padded to a multiple of four bytes."""
    data = text.encode("utf-8")
    return data + b" " * (-len(data) % 4)


def build(
    spec: HeaderSpec, next_format: str, *, encoding: int, next_encoding: int, next_ccsid: int = MQCCSI_UTF8
) -> bytes:
    """One header of ``spec.kind`` whose Format field names ``next_format``; its integers follow ``encoding``."""
    order = _order(encoding)
    if spec.kind == "MQDEAD":
        return _dead_letter(spec, next_format, order, next_encoding, next_ccsid)
    version, tail = _TAILS[spec.kind](spec, order)
    length = 32 + len(tail)
    common = _text(STRUC_IDS[spec.kind], 4, spec.ebcdic) + struct.pack(
        order + "iiii", version, length, next_encoding, next_ccsid
    )
    return common + _text(next_format, 8, spec.ebcdic) + struct.pack(order + "i", 0) + tail


def _dead_letter(spec: HeaderSpec, next_format: str, order: str, next_encoding: int, next_ccsid: int) -> bytes:
    """MQDLH version 1: 172 bytes, reason 2063 (MQRC_SECURITY_ERROR)."""
    e = spec.ebcdic
    return (
        _text("DLH ", 4, e)
        + struct.pack(order + "ii", 1, 2063)
        + _text("PAYROLL.Q", 48, e)
        + _text("QM1", 48, e)
        + struct.pack(order + "ii", next_encoding, next_ccsid)
        + _text(next_format, 8, e)
        + struct.pack(order + "i", 6)
        + _text("payroll-app", 28, e)
        + _text("20260101", 8, e)
        + _text("12000000", 8, e)
    )


def _rfh2(spec: HeaderSpec, order: str) -> tuple[int, bytes]:
    folders = spec.folders or (MCD_TEXT,)
    data = b"".join(struct.pack(order + "i", len(_padded(f))) + _padded(f) for f in folders)
    return 2, struct.pack(order + "i", MQCCSI_UTF8) + data


def _rfh1(spec: HeaderSpec, order: str) -> tuple[int, bytes]:
    return 1, _padded(" ".join(spec.folders or ("OPT_APP_GRP 1",)))


def _cics(spec: HeaderSpec, order: str) -> tuple[int, bytes]:
    e = spec.ebcdic
    numbers = struct.pack(order + "11i", 0, 0, 0, 273, -2, 1, -1, 0, 0, 0, 0)  # UOWControl ONLY, LinkType PROGRAM
    texts = (
        bytes(8)  # Facility
        + _text("", 4, e)  # Function
        + _text("", 4, e)  # AbendCode
        + _text("", 8, e)  # Authenticator
        + _text("", 8, e)  # Reserved1
        + _text("MQSTR", 8, e)  # ReplyToFormat
        + b"".join(_text(t, 4, e) for t in ("", "", "TRN1", "", "", "", "", ""))
        + _text("", 8, e)  # Reserved2
        + _text("", 8, e)  # Reserved3
    )
    return 2, numbers + texts + struct.pack(order + "4i", 0, 0, 0, 0)


def _ims(spec: HeaderSpec, order: str) -> tuple[int, bytes]:
    e = spec.ebcdic
    fields = _text("LTERM1", 8, e) + _text("MFSMAP", 8, e) + _text("MQIMSVS", 8, e) + _text("", 8, e)
    return 1, fields + bytes(16) + _text(" 0C ", 4, e)  # TranInstanceId, TranState, CommitMode, SecurityScope


def _mde(spec: HeaderSpec, order: str) -> tuple[int, bytes]:
    return 2, b"G" * 24 + struct.pack(order + "iiii", 1, 0, 0, -1)


def _wih(spec: HeaderSpec, order: str) -> tuple[int, bytes]:
    e = spec.ebcdic
    return 1, _text("PAYROLL.SERVICE", 32, e) + _text("STEP1", 8, e) + bytes(16) + _text("", 32, e)


def _rmh(spec: HeaderSpec, order: str) -> tuple[int, bytes]:
    name = _text("PAYROLL.FILE", 12, spec.ebcdic)
    fixed = 108
    numbers = struct.pack(order + "11i", 0, 0, 0, 0, 0, 0, len(name), fixed, 0, 0, 0)
    return 1, _text("FILE", 8, spec.ebcdic) + bytes(24) + numbers + name


def _dh(spec: HeaderSpec, order: str) -> tuple[int, bytes]:
    record = _text("PAYROLL.Q", 48, spec.ebcdic) + _text("QM2", 48, spec.ebcdic)  # one MQOR
    return 1, struct.pack(order + "iiii", 0, 1, 48, 0) + record


def _eph(spec: HeaderSpec, order: str) -> tuple[int, bytes]:
    return 1, struct.pack(order + "9i", 1, 36, 3, 0, 1, 1, 0, 0, 0)  # an MQCFH, last in its set


_TAILS: dict[str, Callable[[HeaderSpec, str], tuple[int, bytes]]] = {
    "MQHRF2": _rfh2,
    "MQHRF": _rfh1,
    "MQCICS": _cics,
    "MQIMS": _ims,
    "MQHMDE": _mde,
    "MQHWIH": _wih,
    "MQHREF": _rmh,
    "MQHDIST": _dh,
    "MQHEPCF": _eph,
}


def transmission_header(
    remote_queue: str = "PAYROLL.Q", remote_qmgr: str = "QM2", *, encoding: int = MQENC_NATIVE
) -> bytes:
    """An MQXQH with its embedded MQMD version 1 (428 bytes): what an ``MQXMIT`` payload starts with."""
    order = _order(encoding)
    mqmd = (
        b"MD  "
        + struct.pack(order + "7i", 1, 0, 8, -1, 0, encoding, MQCCSI_UTF8)  # Version .. CodedCharSetId
        + b"MQSTR   "
        + struct.pack(order + "ii", 0, 1)
        + bytes(48)
        + struct.pack(order + "i", 0)
        + b" " * 96
        + b"app".ljust(12)
        + bytes(32)
        + b" " * 32
        + struct.pack(order + "i", 6)
        + b"payroll-app".ljust(28)
        + b"20260101"
        + b"12000000"
        + b"    "
    )
    return (
        b"XQH " + struct.pack(order + "i", 1) + remote_queue.ljust(48).encode() + remote_qmgr.ljust(48).encode() + mqmd
    )
