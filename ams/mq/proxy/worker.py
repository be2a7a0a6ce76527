"""One worker process of the proxy service: it runs one route until told to stop.

``python -m ams.mq.proxy.worker CONFIG ROUTE INDEX``, started by :mod:`ams.mq.proxy.service`.
It writes one JSON line per message handled (after its unit of work is settled) and per thing
worth saying to standard output, which the service reads.

* SIGTERM (or SIGINT): the unit of work in hand finishes, then the worker exits 0.
* SIGHUP: after the unit of work in hand, the route, keystores and policies are read again (a
  rotated certificate is used from the next message on); a configuration that fails to load
  leaves the one in use.
* Its parent gone (the service killed): it stops as on SIGTERM.
* A queue manager that goes away: the connections are closed (backing out) and opened again,
  waiting 1 s, then 2, 4... up to 30 s between attempts. A configuration error (a recipient's
  certificate expired, say) pauses the route until the next SIGHUP or for 30 s.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TextIO

from ams.errors import AmsError, ConfigurationError
from ams.mq.proxy.assemble import OpenRoute, open_route
from ams.mq.proxy.config import Route, ServiceConfig, load_config
from ams.mq.proxy.events import ProxyEvent, level_name
from ams.mq.proxy.mover import RouteUnavailable

MAX_BACKOFF_SECONDS = 30.0
_CONNECTION_LOST = frozenset({2009, 2018, 2059, 2161, 2162, 2195, 2202})
_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class RouteWorker:
    """Runs one route of the configuration at ``path``; ``index`` tells competing workers apart."""

    def __init__(self, path: Path, route_name: str, index: int, *, out: TextIO | None = None) -> None:
        self.path, self.route_name, self.index = path, route_name, index
        self.out = out or sys.stdout
        self.stopping = False
        self.reloading = False
        self._parent = os.getppid()

    # -- what the service reads ---------------------------------------------------------------

    def emit(self, event: ProxyEvent) -> None:
        """One line for one message, flushed with the others of its unit of work (:meth:`flush`):
        one write to the service's pipe per batch, not per message."""
        self.out.write(json.dumps({"kind": "event", **event.fields()}, separators=(",", ":")) + "\n")

    def flush(self) -> None:
        """Send the lines written so far to the service."""
        self.out.flush()

    def say(self, level: int, message: str) -> None:
        """One line of news about the worker itself, at a :mod:`logging` level."""
        self._write({"kind": "log", "level": level_name(level), "route": self.route_name, "message": message})

    def _write(self, record: dict[str, object]) -> None:
        self.out.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.out.flush()

    # -- signals ------------------------------------------------------------------------------

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _on_reload(self, signum: int, frame: FrameType | None) -> None:
        self.reloading = True

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop, SIGHUP reloads; both at the next unit-of-work boundary. The
        service starts workers with these signals blocked (a signal during start-up would
        otherwise kill them): they are unblocked here, once handled, and any that came meanwhile
        is delivered now."""
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)

    def _pause(self, seconds: float) -> None:
        """Sleep, waking early for a stop or a reload."""
        deadline = time.monotonic() + seconds
        while not (self.stopping or self.reloading or self._orphaned()) and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def _orphaned(self) -> bool:
        if os.getppid() != self._parent:
            self.stopping = True
        return self.stopping

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> int:
        """Serve the route until stopped; the exit status (0: stopped as asked)."""
        config = load_config(self.path)
        route = config.route(self.route_name)
        backoff = 1.0
        self.say(logging.INFO, f"worker {self.index} of route {route.name} started (pid {os.getpid()})")
        while not self.stopping:
            try:
                opened = open_route(route, config, on_event=self.emit, appl_name=f"ams proxy {route.name}"[:28])
            except ConfigurationError as error:
                self.say(
                    logging.ERROR, f"route {route.name} cannot start: {error.message}; waiting for a fix and SIGHUP"
                )
                self._pause(MAX_BACKOFF_SECONDS)
            except AmsError as error:
                self.say(
                    logging.ERROR,
                    f"route {route.name} cannot open its queues: {error.message}; retrying in {backoff:g} s",
                )
                self._pause(backoff)
                backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)
            else:
                backoff = self._serve(opened, route, backoff)
            if self.reloading:
                config, route = self._reloaded(config, route)
        self.say(logging.INFO, f"worker {self.index} of route {route.name} stopped")
        return 0

    def _serve(self, opened: OpenRoute, route: Route, backoff: float) -> float:
        """Move batches until a stop or a reload; the backoff to use next (reset once a batch ran)."""
        try:
            while not (self.stopping or self.reloading or self._orphaned()):
                try:
                    opened.proxy.move_batch(wait=route.wait_seconds)
                    backoff = 1.0
                except RouteUnavailable as error:
                    backoff = self._until_ready(opened, route, error, backoff)
                finally:
                    self.flush()  # the batch's lines, before the next one waits for messages
        except ConfigurationError as error:
            self.say(logging.ERROR, f"route {route.name} paused: {error.message}; waiting for a fix and SIGHUP")
            opened.close()
            self._pause(MAX_BACKOFF_SECONDS)
        except AmsError as error:
            self.say(
                logging.ERROR,
                f"route {route.name} lost its queue manager: {error.message}; reconnecting in {backoff:g} s",
            )
            opened.close()
            self._pause(backoff)
            return min(MAX_BACKOFF_SECONDS, backoff * 2)
        finally:
            opened.close()
        return backoff

    def _until_ready(self, opened: OpenRoute, route: Route, error: AmsError, backoff: float) -> float:
        """Wait, getting nothing, until a probe put to the target would succeed (no message pays a
        backout for the wait); a lost connection (2009 and the like) goes to the caller, which
        connects again."""
        self.say(
            logging.WARNING, f"route {route.name} waits: {error.message}; getting nothing until the target takes puts"
        )
        while not (self.stopping or self.reloading or self._orphaned()):
            self._pause(backoff)
            backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)
            problem = opened.proxy.probe()
            if problem is None:
                self.say(logging.INFO, f"route {route.name} resumes")
                return 1.0
            if problem.reason in _CONNECTION_LOST:
                raise problem
        return backoff

    def _reloaded(self, config: ServiceConfig, route: Route) -> tuple[ServiceConfig, Route]:
        """The configuration read again, or the one in use when it does not load."""
        self.reloading = False
        try:
            fresh = load_config(self.path)
            fresh_route = fresh.route(self.route_name)
        except AmsError as error:
            self.say(logging.ERROR, f"reload refused, still running the configuration loaded before: {error.message}")
            return config, route
        self.say(logging.INFO, f"route {route.name} reloaded its configuration, keystores and policies")
        return fresh, fresh_route


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ams.mq.proxy.worker CONFIG ROUTE INDEX``."""
    path, route_name, index = argv if argv is not None else sys.argv[1:]
    worker = RouteWorker(Path(path), route_name, int(index))
    worker.install_signal_handlers()
    try:
        return worker.run()
    except AmsError as error:
        worker.say(logging.ERROR, f"worker stopped: {error.message}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
