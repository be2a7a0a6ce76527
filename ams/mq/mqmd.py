"""The message descriptor (MQMD) fields AMS reads, rewrites and copies to the error queue."""

from __future__ import annotations

import operator
import time
from typing import Any

import attrs

from ams._frozen_build import builder
from ams.mqconstants import (
    MQAT_UNIX,
    MQCCSI_UTF8,
    MQEI_UNLIMITED,
    MQENC_NATIVE,
    MQFMT_STRING,
    MQMT_DATAGRAM,
    MQPER_PERSISTENCE_AS_Q_DEF,
    MQPRI_PRIORITY_AS_Q_DEF,
)


def _now_date_time() -> tuple[str, str]:
    """PutDate and PutTime (UTC, to the hundredth of a second), as MQ stamps them."""
    now = time.time()
    day = time.gmtime(now)
    return (
        f"{day.tm_year:04d}{day.tm_mon:02d}{day.tm_mday:02d}",
        f"{day.tm_hour:02d}{day.tm_min:02d}{day.tm_sec:02d}{int(now * 100) % 100:02d}",
    )


@attrs.frozen(weakref_slot=False)  # no __weakref__ slot: new_md (ams/_frozen_build.py) needs that layout
class MQMD:
    """An MQ message descriptor, reduced to what AMS and its error queue use.

    Text fields are kept as Python strings (blank padded on the wire by the transports).
    Persistence and priority default to "as the queue defines" (DEFPSIST, DEFPRTY), as MQ's own
    MQMD does; the queue manager fills in the values it used.
    """

    format: str = MQFMT_STRING
    encoding: int = MQENC_NATIVE
    ccsid: int = MQCCSI_UTF8
    persistence: int = MQPER_PERSISTENCE_AS_Q_DEF
    msg_type: int = MQMT_DATAGRAM
    priority: int = MQPRI_PRIORITY_AS_Q_DEF
    expiry: int = MQEI_UNLIMITED
    msg_id: bytes = bytes(24)
    correl_id: bytes = bytes(24)
    backout_count: int = 0
    reply_to_q: str = ""
    reply_to_qmgr: str = ""
    user_identifier: str = ""
    put_appl_type: int = MQAT_UNIX
    put_appl_name: str = ""
    put_date: str = ""
    put_time: str = ""

    def stamped(self, appl_name: str, msg_id: bytes) -> MQMD:
        """What the queue manager fills in on put with the default context (MQPMO_DEFAULT_CONTEXT):
        put date, time and application, whatever the MQMD said, a MsgId when it had none, and a
        BackoutCount of 0."""
        date, time = _now_date_time()
        return attrs.evolve(
            self,
            put_date=date,
            put_time=time,
            put_appl_name=appl_name[:28],
            backout_count=0,
            msg_id=self.msg_id if any(self.msg_id) else msg_id,
        )


MD_FIELDS = tuple(field.name for field in attrs.fields(MQMD))  # MQMD's fields, in its initialiser's order
_MD_VALUES = operator.attrgetter(*MD_FIELDS)
_TEXT_FIELDS = {field.name for field in attrs.fields(MQMD) if field.type in ("str", str)}
_MD_INDEX = {name: index for index, name in enumerate(MD_FIELDS)}


# MQMD(*values), every field by position in MD_FIELDS' order, at a third of its cost (ams/_frozen_build.py):
# the queue manager's get and put, md_with
new_md = builder(MQMD, tuple(f"{index}" if name in _TEXT_FIELDS else index for index, name in enumerate(MD_FIELDS)))


def md_with(md: MQMD, **changes: Any) -> MQMD:
    """``attrs.evolve(md, **changes)`` at half its cost (it was two of a proxied message's per-message
    copies): the fields read in one C call and passed in their order to MQMD's own initialiser, so
    that its validators and any field added later apply as they do for evolve."""
    values = list(_MD_VALUES(md))
    for name, value in changes.items():
        index = _MD_INDEX.get(name)
        if index is None:
            raise TypeError(f"MQMD has no field {name!r} (its fields: {', '.join(MD_FIELDS)})")
        values[index] = value
    return new_md(*values)
