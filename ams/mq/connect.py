"""Open a queue manager from a command-line style name: an embedded file, or an IBM MQ connection."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from ams.errors import UsageError
from ams.mq.transport import QueueManager

if TYPE_CHECKING:
    from ams.mq.embedded import EmbeddedQueueManager

DEFAULT_EMBEDDED = "ams-qm.sqlite"
_MQ = re.compile(r"^mq://(?P<host>[^/(:]+)(?:[(:](?P<port>\d+)\)?)?/(?P<qmgr>[^/?]+)(?:\?channel=(?P<channel>[^&]+))?$")


def connect(spec: str | None = None, *, appl_name: str = "ams") -> QueueManager:
    """``mq://host(port)/QMGR?channel=CHL`` for IBM MQ (needs the ``mq`` extra); anything else is
    the path of an embedded queue manager's file (default ``$AMS_QM`` or ``./ams-qm.sqlite``)."""
    target = spec or os.environ.get("AMS_QM") or DEFAULT_EMBEDDED
    match = _MQ.match(target)
    if match:
        from ams.mq.pymqi_adapter import connect_client

        return connect_client(
            match["qmgr"],
            host=match["host"],
            port=int(match["port"] or 1414),
            channel=match["channel"] or "DEV.APP.SVRCONN",
            appl_name=appl_name,
            user=os.environ.get("AMS_MQ_USER"),
            password=os.environ.get("AMS_MQ_PASSWORD"),
        )
    return open_embedded(target).connect(appl_name)


def open_embedded(spec: str | None = None, *, create: bool = False) -> EmbeddedQueueManager:
    """The embedded queue manager in the file ``spec`` (default ``$AMS_QM`` or ``./ams-qm.sqlite``),
    which must exist (MQRC 2058) unless ``create``; an ``mq://`` name is refused: IBM MQ is
    administered with MQSC, not through this library."""
    from ams.mq.embedded import EmbeddedQueueManager

    target = spec or os.environ.get("AMS_QM") or DEFAULT_EMBEDDED
    if _MQ.match(target):
        raise UsageError(
            f"{target} is an IBM MQ queue manager: administer it with runmqsc and setmqaut "
            "(`ams qm define ... --mqsc` prints the commands)"
        )
    if target.startswith("mq:"):
        raise UsageError(f"cannot read {target!r}: expected mq://host(port)/QMGR?channel=CHANNEL")
    path = Path(target)
    return EmbeddedQueueManager(path, name=path.stem.upper().replace("-", ".")[:48] or "AMSQM", create=create)
