"""Open a queue manager from a command-line style name: an embedded file, or an IBM MQ connection."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ams.errors import UsageError
from ams.mq.transport import QueueManager

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
    if target.startswith("mq:"):
        raise UsageError(f"cannot read {target!r}: expected mq://host(port)/QMGR?channel=CHANNEL")
    from ams.mq.embedded import EmbeddedQueueManager

    path = Path(target)
    return EmbeddedQueueManager(path, name=path.stem.upper().replace("-", ".")[:48] or "AMSQM").connect(appl_name)
