"""The re-protection proxy: the mover (one route, batches, duplicates suppressed between queue
managers), and the service that runs routes in worker processes (``ams proxy run``)."""

from ams.mq.proxy.events import ProxyEvent
from ams.mq.proxy.mover import ProxyStats, ReprotectionProxy, RouteUnavailable

__all__ = ["ProxyEvent", "ProxyStats", "ReprotectionProxy", "RouteUnavailable"]
