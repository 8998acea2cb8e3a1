"""``jotguard serve --workers N``: N processes accepting on one listening socket.

The parent binds the port, makes sure the keyring exists, then forks N workers before
any event loop or thread exists; each worker runs the whole service (its own revocation
mirror, token cache and store connections) on the inherited socket, and the kernel
hands each connection to one of them. The parent only supervises: a worker that dies
is replaced; SIGTERM or SIGINT is passed on to every worker, and the parent returns once
all of them have finished their requests in flight and exited.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType

from backends.errors import ConfigError
from webapp.logs import tag_worker
from webapp.server import SHUTDOWN_GRACE_SECONDS, listen, run_service
from webapp.settings import Settings

log = logging.getLogger("jotguard")

# A worker that keeps dying right after it starts points at a fault no restart will fix.
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
# Beyond each worker's own grace period, before the parent kills what is left.
STOP_MARGIN = 6.0
WAIT_STEP = 0.1


def _run_worker(settings: Settings, sockets: list[socket.socket], number: int) -> int:
    """The body of a forked worker: the whole service on the inherited sockets."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)  # serve() installs its own on its loop
    tag_worker(number)
    try:
        run_service(settings, sockets=sockets)
    except Exception:
        log.exception("worker %d failed", number)
        return 1
    return 0


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        sockets: list[socket.socket],
        count: int,
        *,
        worker: Callable[[Settings, list[socket.socket], int], int] = _run_worker,
    ) -> None:
        self.settings = settings
        self.sockets = sockets
        self.count = count
        self.worker = worker
        self.children: dict[int, int] = {}  # pid -> worker number
        self.stop_requested: int | None = None  # set by the signal handler, acted on in run()
        self.stopping_since: float | None = None
        self.restarts: list[float] = []
        self.status = 0

    def _spawn(self, number: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker: never return into the parent's code
            code = 1
            try:
                code = self.worker(self.settings, self.sockets, number)
            finally:
                logging.shutdown()
                os._exit(code)
        self.children[pid] = number

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested = signum

    def _stop(self, reason: str) -> None:
        if self.stopping_since is None:
            log.info("stopping %d workers (%s)", len(self.children), reason)
            self.stopping_since = time.monotonic()
        self._signal_all(signal.SIGTERM)

    def _signal_all(self, signum: int) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def _reap(self) -> bool:
        """Collect one exited worker, restarting it unless stopping; False if none exited."""
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            return False
        number = self.children.pop(pid, None)
        if number is None:
            return True
        if self.stopping_since is not None:
            return True
        code = os.waitstatus_to_exitcode(status)
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW] + [now]
        if len(self.restarts) > MAX_RESTARTS:
            log.error(
                "worker %d (pid %d) exited with %d; %d restarts within %.0fs: stopping",
                number,
                pid,
                code,
                len(self.restarts) - 1,
                RESTART_WINDOW,
            )
            self.status = 1
            self._stop("a worker keeps failing")
            return True
        log.error("worker %d (pid %d) exited with %d; starting another", number, pid, code)
        self._spawn(number)
        return True

    def run(self) -> int:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for number in range(self.count):
                self._spawn(number)
            log.info("jotguard supervising %d workers (pid %d)", self.count, os.getpid())
            while self.children:
                if self.stop_requested is not None:
                    self._stop(signal.Signals(self.stop_requested).name)
                    self.stop_requested = None
                if self._reap():
                    continue
                stopping = self.stopping_since
                if stopping is not None and time.monotonic() - stopping > (
                    SHUTDOWN_GRACE_SECONDS + STOP_MARGIN
                ):
                    log.warning("killing %d workers that did not stop", len(self.children))
                    self._signal_all(signal.SIGKILL)
                    self.stopping_since = time.monotonic()
                time.sleep(WAIT_STEP)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            for sock in self.sockets:
                sock.close()
        log.info("stopped")
        return self.status


def check_workers(settings: Settings) -> None:
    """:raises ConfigError: settings several workers cannot share."""
    if settings.revocation_store_url.startswith("memory:"):
        raise ConfigError(
            "--workers: each worker would keep its own memory:// revocation list, so a"
            " revocation through one would not reach the others; use sqlite:///, redis://"
            " or mongodb://"
        )
    if settings.metrics_port is not None:
        raise ConfigError(
            "--workers: every worker would bind the separate metrics port"
            f" {settings.metrics_port}; use JOTGUARD_METRICS=same (each scrape then reports"
            " the worker that answered it) or off"
        )


def serve_workers(settings: Settings) -> int:
    """Run ``settings.workers`` worker processes until SIGTERM/SIGINT; the exit status."""
    check_workers(settings)
    # The keyring exists already (webapp.datadir.prepared, before forking).
    sockets = listen(settings.host, settings.port)
    return Supervisor(settings, sockets, settings.workers).run()
