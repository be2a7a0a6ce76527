"""The message descriptor (MQMD) fields AMS reads, rewrites and copies to the error queue."""

from __future__ import annotations

import datetime

import attrs

from ams.mqconstants import MQAT_UNIX, MQCCSI_UTF8, MQENC_NATIVE, MQFMT_STRING, MQMT_DATAGRAM, MQPER_NOT_PERSISTENT


def _now_date_time() -> tuple[str, str]:
    now = datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y%m%d"), now.strftime("%H%M%S") + f"{now.microsecond // 10000:02d}"


@attrs.frozen
class MQMD:
    """An MQ message descriptor, reduced to what AMS and its error queue use.

    Text fields are kept as Python strings (blank padded on the wire by the transports).
    """

    format: str = MQFMT_STRING
    encoding: int = MQENC_NATIVE
    ccsid: int = MQCCSI_UTF8
    persistence: int = MQPER_NOT_PERSISTENT
    msg_type: int = MQMT_DATAGRAM
    priority: int = 0
    expiry: int = -1
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
        """What the queue manager fills in on put: put date, time, application and MsgId."""
        date, time = _now_date_time()
        return attrs.evolve(
            self,
            put_date=date,
            put_time=time,
            put_appl_name=self.put_appl_name or appl_name[:28],
            msg_id=self.msg_id if any(self.msg_id) else msg_id,
        )
