"""The MQMD as the embedded queue manager's file holds it: since format 7 a fixed binary layout,
packed and unpacked with ``struct`` (one C call each way); before, JSON (an array in the order of
_MD_ORDER in format 6, an object before), read only to migrate a file of an earlier format.

Separate from ams/mq/embedded_schema.py (tables, statements, migration): this is one row's bytes.

The layout (little-endian), whatever MQMD's own field order becomes:

* eight signed 64-bit integers: Encoding, CodedCharSetId, Persistence, MsgType, Priority, Expiry,
  BackoutCount, PutApplType (the values the put used; the row's ``backouts`` column overrides
  BackoutCount and its ``expires`` the Expiry left, on the way out);
* MsgId and CorrelId, 24 bytes each;
* the lengths, in characters, of the seven text fields (Format, ReplyToQ, ReplyToQMgr,
  UserIdentifier, PutApplName, PutDate, PutTime), unsigned 32-bit;
* the seven texts concatenated, UTF-8 (lone surrogates kept: "surrogatepass", so that any Python
  string an MQMD held comes back equal).
"""

from __future__ import annotations

import collections
import json
import os
import struct

from ams.mq.mqmd import MD_FIELDS, MQMD, new_md
from ams.mq.transport import MQError
from ams.mqconstants import MQRC_MD_ERROR, MQRC_UNEXPECTED_ERROR

# the MQMD as stored in format 6: its fields' values in this order (MsgId and CorrelId in hex), a JSON array
_MD_ORDER = (
    "format",
    "encoding",
    "ccsid",
    "persistence",
    "msg_type",
    "priority",
    "expiry",
    "msg_id",
    "correl_id",
    "backout_count",
    "reply_to_q",
    "reply_to_qmgr",
    "user_identifier",
    "put_appl_type",
    "put_appl_name",
    "put_date",
    "put_time",
)
_INTEGERS = ("encoding", "ccsid", "persistence", "msg_type", "priority", "expiry", "backout_count", "put_appl_type")
_TEXTS = ("format", "reply_to_q", "reply_to_qmgr", "user_identifier", "put_appl_name", "put_date", "put_time")
_LAYOUT = struct.Struct(f"<{len(_INTEGERS)}q24s24s{len(_TEXTS)}I")
# the order in which md_from_bytes and embedded_connection._put_result pass MQMD's fields, by position
# (a call by keyword, matching 17 names, cost a microsecond more per MQMD): MQMD's own, checked here. The
# same as format 6's today; a field added to MQMD changes this one, never that file format's
POSITIONAL = _MD_ORDER
if MD_FIELDS != POSITIONAL:
    raise ImportError(
        f"MQMD's fields are now {', '.join(MD_FIELDS)}: expected {', '.join(POSITIONAL)}, the order in which "
        "ams/mq/embedded_md.py and embedded_connection.py pass them by position; change those calls with it"
    )


_TAIL = 8  # random bytes at the end of a MsgId the queue manager makes
_DRAW = 512  # tails drawn from os.urandom at a time (4 KiB: one system call per 512 MsgIds)
_tails: collections.deque[bytes] = collections.deque()  # each handed out once (popleft is atomic: threads share it)


def random_tail() -> bytes:
    """8 bytes from os.urandom for a new MsgId, drawn 4 KiB at a time and each handed out once:
    as unpredictable as a call per MsgId, at a tenth of its cost. A forked child starts with none
    (it would hand out its parent's next ones again: the same MsgIds)."""
    try:
        return _tails.popleft()
    except IndexError:
        drawn = os.urandom(_TAIL * _DRAW)
        _tails.extend(drawn[at : at + _TAIL] for at in range(0, len(drawn), _TAIL))
        return _tails.popleft()


os.register_at_fork(after_in_child=_tails.clear)


def md_to_bytes(
    md: MQMD,
    persistence: int,
    priority: int,
    msg_id: bytes,
    correl_id: bytes,
    appl: str,
    date: str,
    time: str,
) -> bytearray:
    """The MQMD a put stores: ``md`` with the persistence and priority used, its 24-byte MsgId and
    CorrelId, the put application, date and time, and a BackoutCount of 0. An integer outside
    64 bits (MQ's own are 32) is MQRC 2026 (MQRC_MD_ERROR). A put passes them by position (matching
    eight keywords is a few hundred instructions per put)."""
    # the texts named one by one, not a tuple mapped and joined: a put's per-message cost
    form, reply_to_q, reply_to_qmgr, user = md.format, md.reply_to_q, md.reply_to_qmgr, md.user_identifier
    try:
        head = _LAYOUT.pack(
            md.encoding,
            md.ccsid,
            persistence,
            md.msg_type,
            priority,
            md.expiry,
            0,
            md.put_appl_type,
            msg_id,
            correl_id,
            len(form),
            len(reply_to_q),
            len(reply_to_qmgr),
            len(user),
            len(appl),
            len(date),
            len(time),
        )
    except struct.error as error:
        raise MQError(
            f"MQPUT: an MQMD integer field does not fit in 64 bits ({error}); expected MQ's MQLONG values "
            "(32-bit signed)",
            MQRC_MD_ERROR,
        ) from None
    # a bytearray: sqlite3 binds it as it is, where a bytes parameter goes through its adapter protocol
    # first (a failed __adapt__ lookup on a type: half a microsecond per parameter)
    data = bytearray(head)
    data += (form + reply_to_q + reply_to_qmgr + user + appl + date + time).encode("utf-8", "surrogatepass")
    return data


def md_from_bytes(data: bytes | bytearray, backouts: int, expiry: int | None = None) -> MQMD:
    """The MQMD stored as ``data`` (format 7), with the row's backout count and, given, the Expiry
    left: one unpack, one decode, the texts sliced out in a straight line and MQMD's fields passed
    by position (POSITIONAL: a get's per-message cost). Bytes that are not that layout (a damaged
    row) are MQRC 2195, never a struct or decoding error."""
    try:
        (
            encoding,
            ccsid,
            persistence,
            msg_type,
            priority,
            stored_expiry,
            _,
            appl_type,
            msg_id,
            correl_id,
            a,
            b,
            c,
            d,
            e,
            f,
            g,
        ) = _LAYOUT.unpack_from(data)
        text = data[_LAYOUT.size :].decode("utf-8", "surrogatepass")
    except (struct.error, UnicodeDecodeError):
        raise _damaged(data, None) from None
    b += a  # where each text ends
    c += b
    d += c
    e += d
    f += e
    if f + g != len(text):  # the texts would be cut in the wrong places
        raise _damaged(data, f + g)
    return new_md(
        text[:a],
        encoding,
        ccsid,
        persistence,
        msg_type,
        priority,
        stored_expiry if expiry is None else expiry,
        msg_id,
        correl_id,
        backouts,
        text[a:b],
        text[b:c],
        text[c:d],
        appl_type,
        text[d:e],
        text[e:f],
        text[f:],
    )


_IDS = struct.Struct(f"<{8 * len(_INTEGERS)}x24s24s")  # the MsgId and CorrelId inside format 7's layout


def stored_ids(data: bytes) -> tuple[bytes, bytes | None]:
    """The MsgId and CorrelId of a stored MQMD (format 7's layout) as its row's columns hold them:
    the 24 bytes each, an all-zero CorrelId as NULL (None). Every writer sets the columns so (a put,
    the conversion to format 7), which lets a get keep only the MQMD to restore its row from."""
    msg_id, correl_id = _IDS.unpack_from(data)
    return msg_id, correl_id if any(correl_id) else None


def _damaged(data: bytes | bytearray, characters: int | None) -> MQError:
    """MQRC 2195 for a stored MQMD that is not format 7's layout (``characters``: the texts' lengths
    add up to that, not to what follows the fields; None: the bytes do not unpack or decode)."""
    found = (
        "fields that do not unpack or texts that do not decode"
        if characters is None
        else (f"text lengths adding up to {characters} characters, not what follows the fields")
    )
    return MQError(
        f"a message's stored MQMD is damaged: expected format 7's layout ({_LAYOUT.size} bytes of fields, then the "
        f"UTF-8 texts their lengths give), found {len(data)} bytes with {found}; restore the queue manager's file "
        "from a backup, or remove the message's row",
        MQRC_UNEXPECTED_ERROR,
    )


def md_from_json(text: str, backouts: int) -> MQMD:
    """The MQMD of a row of format 6 (a JSON array in the order of _MD_ORDER) or earlier (an
    object), MsgId and CorrelId in hex, with the row's backout count: what a migration reads. A
    text that is not that JSON (a damaged row) is MQRC 2195, never a decoding or type error."""
    try:
        raw = json.loads(text)
        fields = dict(zip(_MD_ORDER, raw, strict=True)) if isinstance(raw, list) else raw
        fields["msg_id"] = bytes.fromhex(fields["msg_id"])
        fields["correl_id"] = bytes.fromhex(fields["correl_id"])
        fields["backout_count"] = backouts
        return MQMD(**fields)
    except (ValueError, TypeError, KeyError) as error:
        raise MQError(
            f"a message's stored MQMD is damaged: expected the JSON of format 6 (an array of {len(_MD_ORDER)} "
            f"fields) or earlier (an object), found {len(text)} characters that are not ({type(error).__name__}); "
            "restore the queue manager's file from a backup, or remove the message's row",
            MQRC_UNEXPECTED_ERROR,
        ) from None


def md_from_row(stored: bytes | str, backouts: int) -> MQMD:
    """The MQMD of a row of any format (binary since 7, JSON before)."""
    return md_from_json(stored, backouts) if isinstance(stored, str) else md_from_bytes(bytes(stored), backouts)


def md_row_bytes(md: MQMD) -> bytearray:
    """``md`` in the layout of format 7, every field as it is (a migration's re-encoding)."""
    return md_to_bytes(
        md,
        persistence=md.persistence,
        priority=md.priority,
        msg_id=md.msg_id,
        correl_id=md.correl_id,
        appl=md.put_appl_name,
        date=md.put_date,
        time=md.put_time,
    )
