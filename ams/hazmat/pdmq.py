"""The PDMQ header that precedes every AMS-protected payload (format.md §2)."""

from __future__ import annotations

import struct

import attrs

from ams._rules import PDMQ_VERSION
from ams.algorithms import QoP
from ams.errors import MalformedMessageError
from ams.hazmat.mqheaders import describe_bytes

STRUC_ID = b"PDMQ"
V2_SIZE = 104
V3_SIZE = 112
KEY_REUSE_FLAG = 0x20
HEADER_CCSID = 1208
ENCODING_NORMAL = 1
ENCODING_REVERSED = 2
NAME_SIZE = 48

_COMMON = "4sBBBBiiiiii8s8s8s48s"
_V3_TAIL = "hhi"
_EMPTY_FLAG = b"\x01" + bytes(7)
_NO_FLAG = bytes(8)


@attrs.frozen
class PdmqHeader:
    """The fields of a PDMQ header; ``qop`` and ``key_reuse`` are decoded from protType."""

    qop: QoP
    orig_size: int
    orig_format: str
    name: str
    key_reuse: bool = False
    empty: bool = False
    encoding: int = ENCODING_NORMAL
    key_block_size: int = 0
    iv_block_size: int = 0
    tag_block_size: int = 0
    enc_block_size: int = 0
    dynamic_queue_info: int = 0

    @property
    def version(self) -> int:
        """The header's major version: 3 for confidentiality, 2 for integrity and privacy."""
        return PDMQ_VERSION[self.qop]

    @property
    def size(self) -> int:
        """The header's length in bytes, also its dataOffset: 112 for version 3, 104 for version 2."""
        return V3_SIZE if self.version == 3 else V2_SIZE

    @property
    def prot_type(self) -> int:
        """The protType field: the QoP value, plus 0x20 when keys are reused."""
        return self.qop.value | (KEY_REUSE_FLAG if self.key_reuse else 0)

    def pack(self) -> bytes:
        """The header's bytes, in the byte order ``encoding`` names (format.md §2)."""
        encoding = ENCODING_REVERSED if self.encoding == ENCODING_REVERSED else ENCODING_NORMAL
        name = self.name.encode("utf-8")[:NAME_SIZE]
        fmt = self.orig_format.encode("utf-8")[:8].ljust(8, b" ")
        flag = _EMPTY_FLAG if self.empty else _NO_FLAG
        version = 3 if self.qop is QoP.CONFIDENTIALITY else 2
        size = V3_SIZE if version == 3 else V2_SIZE
        head = _COMMON_STRUCTS[encoding].pack(
            STRUC_ID,
            version,
            0,
            self.encoding,
            self.dynamic_queue_info,
            size,
            size,
            self.prot_type,
            HEADER_CCSID,
            self.orig_size,
            self.key_block_size if version == 3 else 0,
            fmt,
            flag,
            b"\x00" * 8,
            name.ljust(NAME_SIZE, b"\x00"),
        )
        if version == 3:
            head += _V3_STRUCTS[encoding].pack(self.iv_block_size, self.tag_block_size, self.enc_block_size)
        return head

    @classmethod
    def unpack(cls, data: bytes | memoryview) -> PdmqHeader:
        """Parse and check a header; every malformed field is a MalformedMessageError."""
        # one sender's headers repeat byte for byte (same queue, same size): each is read once
        exact = bytes(data[: V3_SIZE if len(data) >= V3_SIZE and data[4] == 3 else V2_SIZE])
        header = _UNPACKED.get(exact)
        if header is None:
            header = cls._unpack(data)
            if len(_UNPACKED) >= _UNPACKED_KEPT:
                _UNPACKED.clear()
            _UNPACKED[exact] = header
        return header

    @classmethod
    def _unpack(cls, data: bytes | memoryview) -> PdmqHeader:
        # the usual header in one pass; anything unusual goes through the field-by-field checks
        unpacker = _COMMON_STRUCTS.get(data[6]) if len(data) >= V2_SIZE else None
        if unpacker is None or bytes(data[:4]) != STRUC_ID:
            return cls._unpack_checked(data)
        _, major, minor, _, dynamic, size, offset, prot_type, ccsid, orig_size, reserved1, fmt, flag, _, name = (
            unpacker.unpack_from(data, 0)
        )
        protection = _PROTECTIONS.get((major, minor, size, offset, prot_type))
        if protection is None or ccsid != HEADER_CCSID or flag[0] > 1 or orig_size < 1 or len(data) < size:
            return cls._unpack_checked(data)
        qop, reuse = protection
        iv_size = tag_size = enc_size = 0
        if major == 3:
            iv_size, tag_size, enc_size = _V3_STRUCTS[data[6]].unpack_from(data, V2_SIZE)
            if iv_size not in (8, 16) or tag_size != 0 or reserved1 <= 0 or enc_size <= 0:
                return cls._unpack_checked(data)
        orig_format, queue = _text_fields(fmt, name)
        return cls(
            qop,
            orig_size,
            orig_format,
            queue,
            reuse,
            flag[0] == 1,
            data[6],
            reserved1 if major == 3 else 0,
            iv_size,
            tag_size,
            enc_size,
            dynamic,
        )

    @classmethod
    def _unpack_checked(cls, data: bytes | memoryview) -> PdmqHeader:
        """:meth:`unpack` field by field, each malformed field with its own error."""
        encoding, order = _encoding(data)
        (
            _,
            major,
            minor,
            _,
            dynamic,
            header_size,
            data_offset,
            prot_type,
            ccsid,
            orig_size,
            reserved1,
            orig_format,
            flag,
            _,
            name,
        ) = struct.unpack_from(order + _COMMON, data, 0)
        _check_version(data, major, minor, header_size, data_offset)
        qop, reuse = _protection(major, prot_type)
        _check_fields(ccsid, flag, orig_size)
        fmt, queue = _text_fields(orig_format, name)
        iv_size, tag_size, enc_size = _v3_sizes(data, order, reserved1) if major == 3 else (0, 0, 0)
        return cls(
            qop=qop,
            orig_size=orig_size,
            orig_format=fmt,
            name=queue,
            key_reuse=reuse,
            empty=flag[0] == 1,
            encoding=encoding,
            key_block_size=reserved1 if major == 3 else 0,
            iv_block_size=iv_size,
            tag_block_size=tag_size,
            enc_block_size=enc_size,
            dynamic_queue_info=dynamic,
        )


# Each major version (minor 0): its header size, and the protections its protType may name.
_SIZES = {2: V2_SIZE, 3: V3_SIZE}  # headerSize and dataOffset of each major version
# major version -> (its size, the QoPs it carries), from the receiver's rules (ams._rules)
_VERSIONS: dict[int, tuple[int, tuple[QoP, ...]]] = {
    major: (size, tuple(qop for qop in QoP if PDMQ_VERSION.get(qop) == major)) for major, size in _SIZES.items()
}
# (major, minor, headerSize, dataOffset, protType) of every valid header -> (QoP, key reuse)
_PROTECTIONS: dict[tuple[int, int, int, int, int], tuple[QoP, bool]] = {
    (major, 0, size, size, qop.value | flag): (qop, bool(flag))
    for major, (size, qops) in _VERSIONS.items()
    for qop in qops
    for flag in ((0, KEY_REUSE_FLAG) if major == 3 else (0,))
}
_UNPACKED_KEPT = 256
_UNPACKED: dict[bytes, PdmqHeader] = {}  # the exact bytes of a valid header -> its value
_COMMON_STRUCTS = {ENCODING_NORMAL: struct.Struct(">" + _COMMON), ENCODING_REVERSED: struct.Struct("<" + _COMMON)}
_V3_STRUCTS = {ENCODING_NORMAL: struct.Struct(">" + _V3_TAIL), ENCODING_REVERSED: struct.Struct("<" + _V3_TAIL)}


def _encoding(data: bytes | memoryview) -> tuple[int, str]:
    """The header's encoding byte and its struct byte order, once length and StrucId are checked."""
    if len(data) < V2_SIZE:
        raise MalformedMessageError(f"PDMQ header truncated: expected at least {V2_SIZE} bytes, found {len(data)}")
    if bytes(data[:4]) != STRUC_ID:
        # what was found is not quoted: it is the start of a payload that is not protected
        raise MalformedMessageError(
            f"PDMQ header StrucId: expected 'PDMQ', but the {len(data)} bytes do not start with it "
            f"({describe_bytes(data[:4])})"
        )
    encoding = data[6]
    if encoding not in (ENCODING_NORMAL, ENCODING_REVERSED):
        raise MalformedMessageError(f"PDMQ headerEncoding: expected 1 (big-endian) or 2 (reversed), found {encoding}")
    return encoding, "<" if encoding == ENCODING_REVERSED else ">"


def _check_version(data: bytes | memoryview, major: int, minor: int, header_size: int, data_offset: int) -> None:
    """The version is 2.0 or 3.0, headerSize and dataOffset are its size, and ``data`` holds that much."""
    if major not in _VERSIONS or minor != 0:
        raise MalformedMessageError(
            f"PDMQ version: expected 2.0 (integrity, privacy) or 3.0 (confidentiality), found {major}.{minor}"
        )
    expected_size = _VERSIONS[major][0]
    if header_size != expected_size or data_offset != expected_size:
        raise MalformedMessageError(
            f"PDMQ v{major} headerSize/dataOffset: expected {expected_size}/{expected_size}, "
            f"found {header_size}/{data_offset}"
        )
    if len(data) < expected_size:
        raise MalformedMessageError(
            f"PDMQ v{major} header truncated: expected {expected_size} bytes, found {len(data)}"
        )


def _protection(major: int, prot_type: int) -> tuple[QoP, bool]:
    """The QoP and key-reuse flag protType gives; the flag only in a v3 header."""
    expected_qop = _VERSIONS[major][1]
    base = prot_type & ~KEY_REUSE_FLAG
    qop = next((q for q in expected_qop if q.value == base), None)
    reuse = bool(prot_type & KEY_REUSE_FLAG)
    if qop is None or (reuse and major != 3):
        allowed = " or ".join(f"{q.value} ({q})" for q in expected_qop)
        raise MalformedMessageError(
            f"PDMQ v{major} protType: expected {allowed}{' (with 0x20 for key reuse)' if major == 3 else ''}, "
            f"found {prot_type:#x}"
        )
    return qop, reuse


def _check_fields(ccsid: int, flag: bytes, orig_size: int) -> None:
    """headerCCSID is 1208, the empty flag 0 or 1, origSize at least 1."""
    if ccsid != HEADER_CCSID:
        raise MalformedMessageError(f"PDMQ headerCCSID: expected {HEADER_CCSID}, found {ccsid}")
    if flag[0] not in (0, 1):
        raise MalformedMessageError(f"PDMQ flag[0] (empty message): expected 0 or 1, found {flag[0]}")
    if orig_size < 1:
        raise MalformedMessageError(f"PDMQ origSize: expected at least 1, found {orig_size}")


def _text_fields(orig_format: bytes, name: bytes) -> tuple[str, str]:
    """origFormat (ASCII) and the policy name (UTF-8, NUL padding removed) as text."""
    try:
        return orig_format.decode("ascii"), name.rstrip(b"\x00").decode("utf-8")
    except UnicodeDecodeError:
        # not quoted: bytes that start with "PDMQ" may be a payload that is not protected after all
        which = "origFormat" if not orig_format.isascii() else "policy name"
        raise MalformedMessageError(
            f"PDMQ origFormat (8 bytes) must be ASCII and the policy name (48 bytes) UTF-8: the {which} is not"
        ) from None


def _v3_sizes(data: bytes | memoryview, order: str, key_block_size: int) -> tuple[int, int, int]:
    """IVBlockSize, tagBlockSize and EncBlockSize of a v3 header, checked with its keyBlockSize."""
    iv_size, tag_size, enc_size = struct.unpack_from(order + _V3_TAIL, data, V2_SIZE)
    if iv_size not in (8, 16) or tag_size != 0 or key_block_size <= 0 or enc_size <= 0:
        raise MalformedMessageError(
            "PDMQ v3 block sizes: expected keyBlockSize > 0, IVBlockSize 8 or 16, "
            f"tagBlockSize 0, EncBlockSize > 0; found {key_block_size}, {iv_size}, {tag_size}, {enc_size}"
        )
    return iv_size, tag_size, enc_size


def looks_protected(payload: bytes | memoryview) -> bool:
    """AMS's test on get: the payload starts with PDMQ and is long enough for a header."""
    return len(payload) >= V2_SIZE and bytes(payload[:4]) == STRUC_ID


def unprotected_reason(payload: bytes | memoryview) -> str:
    """Why ``payload`` is not read as protected, in public facts only: its length, and whether it
    starts with the StrucId "PDMQ" (and with printable text); never a byte of it, which is a
    message that was not protected."""
    if len(payload) < V2_SIZE:
        return f"the {len(payload)}-byte payload is shorter than a PDMQ header ({V2_SIZE} bytes)"
    return f"the {len(payload)}-byte payload does not start with StrucId 'PDMQ' ({describe_bytes(payload[:4])})"
