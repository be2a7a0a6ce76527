"""MQDLH version 1, the dead-letter header AMS puts in front of a message on its error queue."""

from __future__ import annotations

import struct

import attrs

from ams.errors import MalformedMessageError
from ams.mq.mqmd import MQMD
from ams.mqconstants import MQDLH_LENGTH, integer_order

_LAYOUT = "4si i48s48s ii8s i28s8s8s"  # StrucId Version Reason DestQName DestQMgrName Encoding CCSID Format ...


def _text(value: str, size: int) -> bytes:
    return value.encode("utf-8")[:size].ljust(size, b" ")


@attrs.frozen
class MQDLH:
    """The fields of an MQDLH; Format/Encoding/CCSID describe what follows it."""

    reason: int
    dest_q_name: str
    dest_qmgr_name: str
    encoding: int
    ccsid: int
    format: str
    put_appl_type: int
    put_appl_name: str
    put_date: str
    put_time: str

    @classmethod
    def for_message(cls, reason: int, queue: str, qmgr: str, failed: MQMD) -> MQDLH:
        """The header AMS writes: the failed message's Format, Encoding, CCSID and put details."""
        return cls(
            reason,
            queue,
            qmgr,
            failed.encoding,
            failed.ccsid,
            failed.format,
            failed.put_appl_type,
            failed.put_appl_name,
            failed.put_date,
            failed.put_time,
        )

    def pack(self, encoding: int) -> bytes:
        """172 bytes, integers in ``encoding`` (the error message's MQMD encoding)."""
        return struct.pack(
            integer_order(encoding) + _LAYOUT.replace(" ", ""),
            b"DLH ",
            1,
            self.reason,
            _text(self.dest_q_name, 48),
            _text(self.dest_qmgr_name, 48),
            self.encoding,
            self.ccsid,
            _text(self.format, 8),
            self.put_appl_type,
            _text(self.put_appl_name, 28),
            _text(self.put_date, 8),
            _text(self.put_time, 8),
        )

    @classmethod
    def unpack(cls, data: bytes, encoding: int) -> MQDLH:
        """The MQDLH at the start of ``data``, integers in ``encoding``; MalformedMessageError unless version 1."""
        if len(data) < MQDLH_LENGTH or data[:4] != b"DLH ":
            raise MalformedMessageError(
                f"not an MQDLH: expected {MQDLH_LENGTH} bytes starting b'DLH ', found {data[:4]!r} ({len(data)} bytes)"
            )
        fields = struct.unpack_from(integer_order(encoding) + _LAYOUT.replace(" ", ""), data)
        if fields[1] != 1:
            raise MalformedMessageError(f"MQDLH version {fields[1]}: expected 1")
        text = [f.decode("utf-8", "replace").rstrip(" \x00") if isinstance(f, bytes) else f for f in fields]
        return cls(
            reason=fields[2],
            dest_q_name=str(text[3]),
            dest_qmgr_name=str(text[4]),
            encoding=fields[5],
            ccsid=fields[6],
            format=fields[7].decode("ascii", "replace"),
            put_appl_type=fields[8],
            put_appl_name=str(text[9]),
            put_date=str(text[10]),
            put_time=str(text[11]),
        )
