"""Run the real ``jotguard`` command as an operator would: ``jotguard()`` calls its
``main`` in this process, as its own process would run it; ``jotguard_process()`` and
``Server`` start ``python -m webapp`` (a process costs a quarter of a second, mostly
imports: keep those for what only a process shows, its start-up, signals and workers)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from email.message import Message
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# argon2id at its cheapest, as for every test (tests/conftest.py): tests check behaviour,
# bench/ checks cost. A serve makes its dummy hash at start-up: with the shipped 64 MiB and
# 3 passes that is a core busy for about 0.3 s, and a SIGTERM meanwhile waits for it.
CHEAP_ARGON2 = {"JOTGUARD_ARGON2_TIME_COST": "1", "JOTGUARD_ARGON2_MEMORY_KIB": "64"}


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOTGUARD_", "AUTH0_"))}
    env.update(JOTGUARD_DATA_DIR=str(data_dir), JOTGUARD_ENV_FILE=str(data_dir / "absent.env"))
    env.update(CHEAP_ARGON2)
    env.update(extra)
    return env


def jotguard_process(
    *args: str,
    env: dict[str, str],
    input: str | None = None,
    timeout: float = 60,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m webapp ARGS`` in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "webapp", *args],
        env=env,
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class WouldServe(Exception):
    """An in-process ``serve`` got past its settings: it needs jotguard_process."""


def _would_serve(*args: Any) -> int:
    raise WouldServe("in-process `jotguard serve` got as far as listening: use jotguard_process")


@contextlib.contextmanager
def _as_a_process(env: dict[str, str], cwd: Path | None, stdin: str) -> Iterator[io.StringIO]:
    """This process as ``main`` would find its own: ``env`` as its whole environment, ``cwd``,
    ``stdin``, and its log lines on its stderr (the StringIO yielded); all restored after."""
    import webapp.cli.main as cli
    import webapp.service.server as server
    import webapp.service.workers as workers

    stderr = io.StringIO()
    saved_environ, saved_cwd = dict(os.environ), os.getcwd()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_switches = (logging._srcfile, logging.logThreads, logging.logProcesses)
    saved_multiprocessing = logging.logMultiprocessing
    configure = cli.configure_logging
    saved_serving = (server.run_service, workers.serve_workers)
    root.handlers = []  # configure_logging's basicConfig(force=True) closes what it finds
    os.environ.clear()
    os.environ.update(env)
    try:
        if cwd is not None:
            os.chdir(cwd)
        cli.configure_logging = lambda level, fmt: configure(level, fmt, stderr)  # type: ignore[assignment]
        server.run_service, workers.serve_workers = _would_serve, _would_serve  # type: ignore[assignment]
        with (
            contextlib.redirect_stdout(io.StringIO()) as stdout,
            contextlib.redirect_stderr(stderr),
        ):
            sys.stdin, saved_stdin = io.StringIO(stdin), sys.stdin
            try:
                yield stdout
            finally:
                sys.stdin = saved_stdin
    finally:
        server.run_service, workers.serve_workers = saved_serving
        cli.configure_logging = configure
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_environ)
        for handler in root.handlers:
            handler.close()
        root.handlers, root.level = saved_handlers, saved_level
        logging._srcfile, logging.logThreads, logging.logProcesses = saved_switches
        logging.logMultiprocessing = saved_multiprocessing


def jotguard(
    *args: str,
    env: dict[str, str],
    input: str | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``jotguard ARGS`` through ``webapp.cli.main.main`` in this process, with what its own
    process would have: ``env`` only, ``cwd``, ``input`` on stdin; its stdout and its stderr
    (log lines included) come back as ``subprocess.run`` gives them. An exception escaping
    ``main`` is a traceback on stderr and exit status 1, as the interpreter makes it. A
    ``serve`` must stop before it listens (bad settings, flags): else WouldServe."""
    from webapp.cli.main import main

    with _as_a_process(env, cwd, input or "") as stdout:
        stderr = sys.stderr
        try:
            code: object = main(list(args))
        except SystemExit as exc:
            code = exc.code
        except WouldServe:
            raise
        except Exception:
            traceback.print_exc()
            code = 1
        if code is not None and not isinstance(code, int):
            print(code, file=stderr)  # as SystemExit("message") does
            code = 1
    return subprocess.CompletedProcess(
        ["jotguard", *args], code or 0, stdout.getvalue(), stderr.getvalue()
    )


def initialised(env: dict[str, str], *args: str) -> dict[str, str]:
    """``env``, once ``jotguard init`` made its data directory (as an operator does first)."""
    done = jotguard("init", *args, env=env)
    assert done.returncode == 0, done.stderr
    return env


def http_get(
    url: str, token: str | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes, Message]:
    """(status, body, headers); the headers look up names case-insensitively. ``token`` is
    sent as a Bearer token; ``headers`` as they are (a DPoP request's)."""
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - loopback URL
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


def accepting(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def in_flight(url: str) -> float:
    """A server's jotguard_http_requests_in_flight, less the /metrics request asking."""
    text = http_get(url + "/metrics")[1].decode()
    (line,) = [ln for ln in text.splitlines() if ln.startswith("jotguard_http_requests_in_flight")]
    return float(line.split()[-1]) - 1


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, step: float = 0.02) -> bool:
    """Poll ``condition`` every ``step`` until it holds or ``timeout`` passes; whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def token(env: dict[str, str], sub: str, scope: str = "") -> str:
    """A token from ``jotguard token issue``, as an operator gets one."""
    done = jotguard("token", "issue", "--sub", sub, "--scope", scope, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def revoke_through(url: str, admin: str, body: dict[str, str]) -> int:
    """``POST /admin/revocations``; the status."""
    request = urllib.request.Request(  # noqa: S310 - loopback URL built by the test
        url + "/admin/revocations",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


class Server:
    """``jotguard serve`` in a subprocess; waits until /healthz answers."""

    def __init__(self, env: dict[str, str], port: int, *args: str, module: str = "webapp") -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, "serve", "--port", str(port), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited early: {self.process.stderr.read()}")
            try:
                if http_get(self.url + "/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.02)
        self.process.kill()
        raise RuntimeError("serve did not become healthy")

    def stop(self, timeout: float = 10) -> tuple[int, float, str]:
        started = time.monotonic()
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        _, err = self.process.communicate()
        return self.process.returncode, time.monotonic() - started, err
