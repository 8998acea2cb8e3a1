"""``jotguard serve --workers N``: N processes accepting on one listening socket.

The parent binds the port, makes sure the keyring exists, then forks N workers before
any event loop or thread exists; each worker runs the whole service (its own revocation
mirror, token cache and store connections) on the inherited socket, and the kernel
hands each connection to one of them. The parent only supervises: SIGTERM or SIGINT is
passed on to every worker, and the parent returns once all of them have finished their
requests in flight and exited.

Workers die with their parent: each asks the kernel for SIGTERM when its parent goes
(Linux ``PR_SET_PDEATHSIG``) and watches its parent's pid besides (other systems, and
the moment before the request), so a ``kill -9`` of the parent frees the port at once
instead of leaving orphans serving unsupervised.

Restarts: a worker that dies after running a while is replaced, however often that
happens. A worker that dies soon after it started (``EARLY_DEATH``) points at a fault no
restart fixes: when that happens more than ``MAX_EARLY_DEATHS`` times within
``RESTART_WINDOW``, the parent stops every worker and exits 1, with one line saying so.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

from webapp.config.checks import check_workers
from webapp.config.settings import Settings
from webapp.service.logs import tag_worker
from webapp.service.server import SHUTDOWN_GRACE_SECONDS, listen, run_service

log = logging.getLogger("jotguard")

# A worker dead within EARLY_DEATH seconds of its start died of a fault no restart fixes
# once this happens more than MAX_EARLY_DEATHS times in RESTART_WINDOW seconds.
EARLY_DEATH = 10.0
MAX_EARLY_DEATHS = 5
RESTART_WINDOW = 60.0
# Beyond each worker's own grace period, before the parent kills what is left.
STOP_MARGIN = 6.0
WAIT_STEP = 0.1
PARENT_CHECK = 0.25
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int) -> None:
    """Stop this process (SIGTERM: a graceful stop) when ``parent`` is gone, however it
    went; if it has not stopped within the grace period then, end it."""
    _parent_death_signal(signal.SIGTERM)
    watcher = threading.Thread(
        target=_watch_parent, args=(parent,), name="jotguard-parent", daemon=True
    )
    watcher.start()


def _parent_death_signal(signum: int) -> bool:
    """Linux: the kernel sends ``signum`` when the parent dies. False where unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int) -> None:
    # Covers systems without prctl and a parent that died before the prctl call; then
    # makes sure a worker that does not stop gracefully stops all the same.
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK)
    with contextlib.suppress(ProcessLookupError):
        os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(SHUTDOWN_GRACE_SECONDS + STOP_MARGIN)
    log.warning("worker did not stop after its supervisor died; exiting now")
    logging.shutdown()
    os._exit(1)


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
        self.started: dict[int, float] = {}  # pid -> when
        self.stop_requested: int | None = None  # set by the signal handler, acted on in run()
        self.stopping_since: float | None = None
        self.early_deaths: list[float] = []
        self.status = 0

    def _spawn(self, number: int) -> None:
        parent = os.getpid()
        # A worker must not inherit the supervisor's handlers, which only set a flag in
        # the worker's copy of this object: a SIGTERM during its start would be lost and
        # the stop would wait for the kill. Blocked across the fork, so none slips in
        # before the worker is back on the default action (stop at once: it serves
        # nothing yet) until its server installs the graceful one.
        stops = {signal.SIGTERM, signal.SIGINT}
        signal.pthread_sigmask(signal.SIG_BLOCK, stops)
        try:
            pid = os.fork()
            if pid == 0:  # the worker: never return into the parent's code
                code = 1
                try:
                    for signum in stops:
                        signal.signal(signum, signal.SIG_DFL)
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
                    die_with_parent(parent)
                    code = self.worker(self.settings, self.sockets, number)
                finally:
                    logging.shutdown()
                    os._exit(code)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
        self.children[pid] = number
        self.started[pid] = time.monotonic()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested = signum

    def _stop(self, reason: str | None) -> None:
        """Stop every worker; ``reason`` is logged, unless the caller said why already."""
        if self.stopping_since is None:
            if reason is not None:
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
        now = time.monotonic()
        lived = now - self.started.pop(pid, now)
        if number is None or self.stopping_since is not None:
            return True
        code = os.waitstatus_to_exitcode(status)
        if lived >= EARLY_DEATH:
            how = f"after {lived:.0f}s"
        else:
            self.early_deaths = [t for t in self.early_deaths if now - t < RESTART_WINDOW]
            self.early_deaths.append(now)
            if len(self.early_deaths) > MAX_EARLY_DEATHS:
                log.error(
                    "stopping: worker %d (pid %d) exited with %d %.1fs after it started, and"
                    " %d workers died within %.0fs of their start in %.0fs: restarting will"
                    " not fix what stops them (see the workers' lines above)",
                    number,
                    pid,
                    code,
                    lived,
                    len(self.early_deaths),
                    EARLY_DEATH,
                    RESTART_WINDOW,
                )
                self.status = 1
                self._stop(None)
                return True
            how = f"{lived:.1f}s after it started"
        log.error("worker %d (pid %d) exited with %d %s; starting another", number, pid, code, how)
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


def serve_workers(settings: Settings) -> int:
    """Run ``settings.workers`` worker processes until SIGTERM/SIGINT; the exit status."""
    check_workers(settings)
    # The keyring exists already (webapp.service.datadir.prepared, before forking).
    sockets = listen(settings.host, settings.port)
    return Supervisor(settings, sockets, settings.workers).run()
