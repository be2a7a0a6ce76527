"""The proxy service (``ams proxy run``): worker processes per route, one log line per message,
metrics, and the signals a service manager sends.

The service starts ``workers`` processes per route (:mod:`ams.mq.proxy.worker`), competing
consumers of the route's source queue, each with its own connections. It reads their lines and
writes one line per message (text or JSON) to its output, counts them in the metrics, and:

* SIGTERM or SIGINT: tells every worker to stop after the unit of work in hand, waits for them,
  and exits 0;
* SIGHUP: reads the configuration again; if it loads, removed routes stop, worker counts change,
  and every remaining worker reloads its route, keystores and policies at its next unit-of-work
  boundary (a configuration that does not load is reported and the running one kept);
* a worker that dies (killed, or a bug) is started again, after 1 s, then 2, 4... up to 30 s.

A SIGKILL of the service or of a worker loses nothing: uncommitted work is backed out by the
queue manager (the embedded one when the next connection opens), and workers whose service is
gone stop on their own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import IO, TextIO

import attrs

from ams.errors import AmsError, plural
from ams.mq.connect import connect
from ams.mq.proxy.config import ServiceConfig, load_config
from ams.mq.proxy.events import ProxyEvent, level_name, log_line, stamp
from ams.mq.proxy.metrics import ProxyMetrics
from ams.mq.transport import QueueManager

_DEPTH_EVERY_SECONDS = 5.0
_MAX_RESTART_DELAY = 30.0
_STOP_GRACE_SECONDS = 60.0
_WORKER_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@attrs.define
class _Worker:
    """One worker slot: its process (None while waiting to be started again)."""

    route: str
    index: int
    process: subprocess.Popen[bytes] | None = None
    pending: bytes = b""  # the start of a line not yet complete
    restarts: int = 0
    start_after: float = 0.0
    retiring: bool = False


class ProxyService:
    """Runs the routes of the configuration at ``path``. ``log_format`` and ``metrics`` override the
    file's settings; the lines go to ``out``."""

    def __init__(
        self,
        path: str | Path,
        *,
        out: TextIO | None = None,
        log_format: str | None = None,
        metrics: tuple[str, int] | None = None,
    ) -> None:
        self.path = Path(path)
        self.config: ServiceConfig = load_config(self.path)
        self.out = out or sys.stdout
        self.as_json = (log_format or self.config.log_format) == "json"
        address = metrics or self.config.metrics
        asked_by = "--metrics" if metrics else f"the metrics key of [service] in {self.path}"
        self.metrics = ProxyMetrics((r.name for r in self.config.routes), asked_by=asked_by) if address else None
        self._address = address
        self._selector = selectors.DefaultSelector()
        self._workers: list[_Worker] = []
        self._stopping = False
        self._reload = False
        self._depth_at = 0.0
        self._depth_connections: dict[str, QueueManager] = {}

    # -- output -------------------------------------------------------------------------------

    def log(self, level: int | str, message: str, **fields: object) -> None:
        """One line about the service itself, at a :mod:`logging` level (or its name)."""
        name = level_name(level) if isinstance(level, int) else level.upper()
        if self.as_json:
            line = json.dumps({"time": stamp(), "level": name, "message": message, **fields}, separators=(",", ":"))
        else:
            extra = "".join(f" {key}={value}" for key, value in fields.items())
            line = f"{stamp()} level={name}{extra} {message}"
        self.out.write(line + "\n")
        self.out.flush()

    def _line_from(self, worker: _Worker, line: str) -> None:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            self.log(logging.WARNING, f"unreadable line from worker {worker.route}/{worker.index}")
            return
        if record.pop("kind", None) == "event":
            event = ProxyEvent.from_fields(record)
            self.out.write(log_line(event, as_json=self.as_json, worker=f"{worker.index}") + "\n")  # flushed by _lines
            if self.metrics is not None:
                self.metrics.observe(event)
        else:
            self.log(str(record.get("level", "INFO")), str(record.get("message", "")), route=worker.route)

    # -- workers ------------------------------------------------------------------------------

    def _start(self, worker: _Worker) -> None:
        command = [sys.executable, "-m", "ams.mq.proxy.worker", str(self.path), worker.route, str(worker.index)]
        # the worker inherits these blocked until its handlers are in place (worker.install_signal_handlers)
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _WORKER_SIGNALS)
        try:
            process = subprocess.Popen(command, stdout=subprocess.PIPE)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        worker.process, worker.pending = process, b""
        assert process.stdout is not None
        self._selector.register(process.stdout, selectors.EVENT_READ, worker)

    def _reconcile(self) -> None:
        """Match the worker slots to the configuration: start missing ones, retire extra ones."""
        wanted = {route.name: route.workers for route in self.config.routes}
        for worker in self._workers:
            if worker.index >= wanted.get(worker.route, 0) and not worker.retiring:
                worker.retiring = True
                self._signal(worker, signal.SIGTERM)
        have = {(w.route, w.index) for w in self._workers if not w.retiring}
        for route, count in wanted.items():
            if self.metrics is not None:
                self.metrics.add_route(route)
            for index in range(count):
                if (route, index) not in have:
                    worker = _Worker(route, index)
                    self._workers.append(worker)
                    self._start(worker)

    def _signal(self, worker: _Worker, signum: int) -> None:
        if worker.process is not None and worker.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signum)

    def _reap(self) -> None:
        """Notice workers that ended; start again those that should be running."""
        for worker in list(self._workers):
            process = worker.process
            if process is not None and process.poll() is not None:
                self._drain(worker)
                worker.process = None
                if worker.retiring or self._stopping:
                    self._workers.remove(worker)
                    continue
                worker.restarts += 1
                delay = min(_MAX_RESTART_DELAY, 2 ** min(worker.restarts - 1, 5))
                worker.start_after = time.monotonic() + delay
                self.log(
                    logging.ERROR,
                    f"worker {worker.route}/{worker.index} ended (status {process.returncode}); "
                    f"starting it again in {delay:g} s",
                    route=worker.route,
                )
                if self.metrics is not None:
                    self.metrics.restarts.labels(worker.route).inc()
            elif process is None and worker.retiring:
                self._workers.remove(worker)  # retired while it waited to be started again
            elif process is None and not self._stopping and time.monotonic() >= worker.start_after:
                self._start(worker)
        if self.metrics is not None:
            for route in self.config.routes:
                running = sum(1 for w in self._workers if w.route == route.name and w.process is not None)
                self.metrics.workers.labels(route.name).set(running)

    def _drain(self, worker: _Worker) -> None:
        """Read what an ended worker still had to say, and stop watching its output."""
        process = worker.process
        if process is None or process.stdout is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(process.stdout)
        self._lines(worker, worker.pending + process.stdout.read(), final=True)
        process.stdout.close()

    def _read(self, timeout: float) -> None:
        """Read what the workers wrote; whole lines are handled, a partial one waits for its end."""
        for key, _ in self._selector.select(timeout):
            worker: _Worker = key.data
            stream: IO[bytes] = key.fileobj  # type: ignore[assignment]
            data = os.read(stream.fileno(), 65536)
            if not data:
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(stream)
                continue
            worker.pending = self._lines(worker, worker.pending + data)

    def _lines(self, worker: _Worker, data: bytes, *, final: bool = False) -> bytes:
        """Handle the complete lines in ``data``; what is left of an incomplete one."""
        *lines, rest = data.split(b"\n")
        if final and rest.strip():
            lines.append(rest)
        for line in lines:
            if line.strip():
                self._line_from(worker, line.decode("utf-8", "replace"))
        self.out.flush()  # once for what the worker sent together (a unit of work's lines)
        return b"" if final else rest

    # -- signals and the loop -----------------------------------------------------------------

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def _on_reload(self, signum: int, frame: FrameType | None) -> None:
        self._reload = True

    def _reload_now(self) -> None:
        self._reload = False
        try:
            fresh = load_config(self.path)
        except AmsError as error:
            self.log(logging.ERROR, f"reload refused, still running the configuration loaded before: {error.message}")
            return
        self.config = fresh
        for worker in self._workers:
            if not worker.retiring:
                self._signal(worker, signal.SIGHUP)
        self._reconcile()
        self.log(logging.INFO, f"reloaded {self.path}: {plural(len(fresh.routes), 'route')}")

    def _poll_depths(self) -> None:
        if self.metrics is None or time.monotonic() < self._depth_at:
            return
        self._depth_at = time.monotonic() + _DEPTH_EVERY_SECONDS
        for route in self.config.routes:
            try:
                qm = self._depth_connections.get(route.source.qm_key)
                if qm is None:
                    qm = self._depth_connections[route.source.qm_key] = connect(route.source.qm, appl_name="ams proxy")
                # CURDEPTH of an alias is 2068 on MQ: ask the queue it names
                self.metrics.depth.labels(route.name).set(qm.depth(qm.resolve(route.source.queue)))
            except AmsError:
                self._depth_connections.pop(route.source.qm_key, None)

    def run(self) -> int:
        """Run until SIGTERM or SIGINT; the exit status (0: every worker stopped as asked)."""
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)
        if self.metrics is not None and self._address is not None:
            self.metrics.serve(*self._address)
            self.log(logging.INFO, f"metrics on http://{self._address[0]}:{self._address[1]}/metrics")
        self.log(
            logging.INFO,
            f"proxy service started (pid {os.getpid()}): "
            + ", ".join(
                f"{r.name} ({plural(r.workers, 'worker')}, batches of {r.batch_size})" for r in self.config.routes
            ),
        )
        self._reconcile()
        while not self._stopping:
            self._read(0.2)
            self._reap()
            if self._reload:
                self._reload_now()
            self._poll_depths()
        return self._stop()

    def _stop(self) -> int:
        """Ask every worker to stop after its unit of work, wait for them, and say how they ended."""
        self.log(logging.INFO, "stopping: each worker finishes the unit of work in hand")
        for worker in self._workers:
            self._signal(worker, signal.SIGTERM)
        statuses = []
        grace = time.monotonic() + _STOP_GRACE_SECONDS + max((r.wait_seconds for r in self.config.routes), default=0)
        while any(w.process is not None for w in self._workers):
            self._read(0.2)
            if time.monotonic() > grace:  # stuck: killing it loses nothing (its unit of work is backed out)
                for worker in self._workers:
                    self._signal(worker, signal.SIGKILL)
            for worker in self._workers:
                if worker.process is not None and worker.process.poll() is not None:
                    statuses.append(worker.process.returncode)
                    self._drain(worker)
                    worker.process = None
        for qm in self._depth_connections.values():
            with contextlib.suppress(AmsError):
                qm.close()
        self.log(logging.INFO, "proxy service stopped")
        return 0 if all(status == 0 for status in statuses) else 1
