"""File descriptors, as a long-running ``jotguard serve`` meets them: under systemd's
1024 open-file limit a flood of idle connections leaves new clients answered and the log
quiet; out of descriptors the accept loop pauses instead of spinning; start-up raises
the soft limit to the hard one. Real processes under ``prlimit``."""

from __future__ import annotations

import contextlib
import http.client
import re
import resource
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import cli_env, wait_until

pytestmark = pytest.mark.slow

IDLE_CONNECTIONS = 1100
ACCEPT_PACE = 64
_LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+/)")


@pytest.fixture(autouse=True)
def _needs_prlimit() -> None:
    if shutil.which("prlimit") is None:
        pytest.skip("prlimit (util-linux) is not installed")


@pytest.fixture
def many_files() -> Iterator[None]:
    """This test process may hold the idle connections itself."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = IDLE_CONNECTIONS + 200
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"the hard open-file limit ({hard}) is below {wanted}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def accept_queue(port: int) -> int:
    """Connections waiting in the accept queue of the socket listening on ``port``.

    A client opening connections faster than the server accepts them fills the queue
    (128), and the kernel drops the next SYNs: each retried a second later. Opening them
    ``ACCEPT_PACE`` at a time, each batch once the queue has room, spares the test those
    seconds; /proc/net/tcp shows a listener's queue length as its rx_queue."""
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        _, local, _, state, queues, *_ = row.split()
        if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
            return int(queues.split(":")[1], 16)
    raise AssertionError(f"nothing listens on port {port}")


def lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines()


def wait_for_line(path: Path, pattern: re.Pattern[str], process: subprocess.Popen) -> re.Match:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in lines(path):
            if match := pattern.search(line):
                return match
        if process.poll() is not None:
            raise AssertionError("the server exited:\n" + path.read_text())
        time.sleep(0.05)
    raise AssertionError("no such line:\n" + path.read_text())


@contextlib.contextmanager
def serving(command: list[str], log: Path, env: dict[str, str] | None = None):
    with log.open("w") as output:
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=output, text=True
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def jotguard_under(limit: str) -> list[str]:
    return ["prlimit", f"--nofile={limit}", sys.executable, "-m", "webapp", "serve"]


def answer_within(url: str, timeout: float) -> str:
    """ "200", "503"..., or "closed" when refused by closing; raises on a timeout."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return str(response.status)
    except urllib.error.HTTPError as exc:
        return str(exc.code)
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError | socket.timeout):
            raise
        return "closed"
    except (ConnectionError, http.client.RemoteDisconnected):
        return "closed"


def test_under_1024_open_files_1100_idle_connections_leave_new_clients_answered(
    data_dir, tmp_path, many_files
):
    log = tmp_path / "serve.log"
    env = cli_env(data_dir, JOTGUARD_PORT="0", JOTGUARD_ISSUER="http://jotguard.test/")
    with serving(jotguard_under("1024:1024"), log, env) as process:
        url = wait_for_line(log, _LISTENING, process).group(1)
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        assert "open-file limit 1024 (hard limit 1024): at most 768 connections" in log.read_text()
        before = len(lines(log))
        idle = []
        try:
            for n in range(IDLE_CONNECTIONS):
                if n % ACCEPT_PACE == 0:  # see accept_queue
                    assert wait_until(lambda: accept_queue(port) < ACCEPT_PACE, timeout=10)
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            started = time.monotonic()
            answer = answer_within(url + "healthz", timeout=3)
            assert time.monotonic() - started < 3
            assert answer in {"200", "503", "closed"}
            time.sleep(1)  # a spinning accept loop would write thousands of lines by now
        finally:
            for sock in idle:
                sock.close()
        grown = len(lines(log)) - before
        assert grown <= 200, "\n".join(lines(log)[before:][:20])
        assert "Too many open files" not in log.read_text()
        # And back to normal once the server has read the closes (they arrive as EOFs).
        assert wait_until(lambda: answer_within(url + "healthz", timeout=3) == "200", timeout=5)


def test_out_of_file_descriptors_the_accept_loop_pauses_and_logs_once(tmp_path):
    log = tmp_path / "server.log"
    command = ["prlimit", "--nofile=64:64", sys.executable, "-m", "tests.emfile_server"]
    with serving(command, log) as process:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        held = []
        try:
            for _ in range(100):  # more than its 64 files
                held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            wait_for_line(log, re.compile("could not accept connections"), process)
            before = len(lines(log))
            time.sleep(1)  # Tornado's own loop wrote ~10,000 tracebacks a second, at 100 % CPU
            during = lines(log)[before:]
        finally:
            for sock in held:
                sock.close()
        assert len(during) <= 1, "\n".join(during[:20])
        assert "Traceback" not in log.read_text()
        # The connections gone, it accepts again by itself.
        assert answer_within(f"http://127.0.0.1:{port}/", timeout=5) == "200"


def test_start_up_raises_the_soft_open_file_limit_to_the_hard_one(data_dir, tmp_path):
    log = tmp_path / "serve.log"
    env = cli_env(data_dir, JOTGUARD_PORT="0", JOTGUARD_ISSUER="http://jotguard.test/")
    with serving(jotguard_under("1024:4096"), log, env) as process:
        wait_for_line(log, _LISTENING, process)
        limits = Path(f"/proc/{process.pid}/limits").read_text()
        assert re.search(r"Max open files\s+4096\s+4096", limits)
    assert (
        "open-file limit 4096, raised from 1024 (hard limit 4096): at most 3072 connections"
        in log.read_text()
    )


def test_a_1_mb_authorization_header_is_answered_431(data_dir, tmp_path):
    log = tmp_path / "serve.log"
    env = cli_env(data_dir, JOTGUARD_PORT="0", JOTGUARD_ISSUER="http://jotguard.test/")
    command = [sys.executable, "-m", "webapp", "serve"]
    with serving(command, log, env) as process:
        url = wait_for_line(log, _LISTENING, process).group(1)
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        head = b"GET /test-auth HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(head + b"a" * 1024 * 1024 + b"\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 431 Request Header Fields Too Large"
    assert rest.endswith(b'"error": "headers_too_large", "error_description": '
                         b'"The request line and headers must be at most 64 KiB"}')  # fmt: skip
