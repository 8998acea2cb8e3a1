"""``serve --workers N`` when things die: workers die with their parent (a ``kill -9``
of it frees the port at once), a worker that ran for a while is simply replaced, and
only a crash loop (deaths soon after start) stops the service, with one line saying so."""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.cli import Server, accepting, cli_env, free_port, wait_until
from webapp.service import workers
from webapp.service.server import SHUTDOWN_GRACE_SECONDS
from webapp.service.workers import MAX_EARLY_DEATHS, Supervisor

ISSUER = "http://jotguard.test/"


def children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def gone(pid: int) -> bool:
    """Exited (a zombie until whoever adopted it reaps it counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in {"Z", "X"}


@pytest.fixture
def env(data_dir: Path) -> dict[str, str]:
    return cli_env(data_dir, JOTGUARD_ISSUER=ISSUER)


@pytest.mark.slow
@pytest.mark.parametrize(
    "module", ["webapp", "tests.workers_without_prctl"], ids=["prctl", "watching the parent"]
)
def test_kill_9_of_the_parent_stops_its_workers_and_frees_the_port(env, module):
    port = free_port()
    server = Server(env, port, "--workers", "2", module=module)
    spawned = children(server.process.pid)
    assert len(spawned) == 2
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    killed = time.monotonic()
    try:
        # No worker serves 3 s later: they stopped listening at once, and then exit.
        assert wait_until(lambda: not accepting(port), timeout=3)
        assert time.monotonic() - killed < 3
        assert wait_until(lambda: all(gone(pid) for pid in spawned), SHUTDOWN_GRACE_SECONDS + 2)
        again = Server(env, port)  # the port is free for a new serve...
        assert again.process.poll() is None  # ...serving it, not one that found it busy
        assert again.stop()[0] == 0
    finally:
        for pid in spawned:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)


# -- the restart policy, on a supervisor forking stand-in workers ------------------------


class _StopOnceReplaced(logging.Handler):
    """Calls ``stop`` once the supervisor has logged ``enough`` replacement workers."""

    def __init__(self, enough: int, stop) -> None:
        super().__init__()
        self.enough, self.stop, self.seen = enough, stop, 0

    def emit(self, record: logging.LogRecord) -> None:
        if "starting another" in record.getMessage():
            self.seen += 1
            if self.seen == self.enough:
                self.stop()


def supervise(worker, *, stop_after: float = 30.0, stop_once_replaced: int = 0) -> int:
    supervisor = Supervisor(None, [], 2, worker=worker)  # type: ignore[arg-type]

    def stop() -> None:  # as SIGTERM would, without sending this test process a signal
        supervisor.stop_requested = signal.SIGTERM

    stopper = threading.Timer(stop_after, stop)
    replaced = _StopOnceReplaced(stop_once_replaced, stop)
    if stop_once_replaced:
        logging.getLogger("jotguard").addHandler(replaced)
    stopper.start()
    try:
        return supervisor.run()
    finally:
        stopper.cancel()
        logging.getLogger("jotguard").removeHandler(replaced)


def test_workers_that_die_after_running_a_while_are_replaced_however_often(monkeypatch, caplog):
    monkeypatch.setattr(workers, "EARLY_DEATH", 0.2)

    def ran_a_while(settings, sockets, number):
        time.sleep(0.3)
        return 1

    with caplog.at_level(logging.INFO, logger="jotguard"):
        status = supervise(ran_a_while, stop_once_replaced=MAX_EARLY_DEATHS + 3)

    assert status == 0
    replaced = [r.getMessage() for r in caplog.records if "starting another" in r.getMessage()]
    assert len(replaced) > MAX_EARLY_DEATHS + 1  # more deaths than a crash loop allows
    # "after Ns" is a worker that ran a while ("N.Ns after it started" an early death); a
    # worker slow to fork on a busy machine may have lived past 0.5 s: "after 1s".
    assert all(re.search(r" after \d+s; starting another$", line) for line in replaced)
    assert not [r for r in caplog.records if r.getMessage().startswith("stopping:")]


def test_a_crash_loop_stops_the_service_with_one_line_saying_why(caplog):
    def dies_at_start(settings, sockets, number):
        return 3

    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="jotguard"):
        status = supervise(dies_at_start)

    assert status == 1
    assert time.monotonic() - started < 10
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == MAX_EARLY_DEATHS + 1
    *restarts, why = errors
    assert all("after it started; starting another" in line for line in restarts)
    assert why.startswith("stopping: worker ")
    assert f"and {MAX_EARLY_DEATHS + 1} workers died within 10s of their start in 60s" in why
