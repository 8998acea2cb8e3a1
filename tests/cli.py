"""Run the real ``jotguard`` command in a subprocess, as an operator would."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from email.message import Message
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOTGUARD_", "AUTH0_"))}
    env.update(JOTGUARD_DATA_DIR=str(data_dir), JOTGUARD_ENV_FILE=str(data_dir / "absent.env"))
    env.update(extra)
    return env


def jotguard(
    *args: str,
    env: dict[str, str],
    input: str | None = None,
    timeout: float = 60,
    cwd: Path | None = None,
):
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


def initialised(env: dict[str, str], *args: str) -> dict[str, str]:
    """``env``, once ``jotguard init`` made its data directory (as an operator does first)."""
    done = jotguard("init", *args, env=env)
    assert done.returncode == 0, done.stderr
    return env


def http_get(url: str, token: str | None = None) -> tuple[int, bytes, Message]:
    """(status, body, headers); the headers look up names case-insensitively."""
    request = urllib.request.Request(url)  # noqa: S310 - loopback URL built by the test
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


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
            time.sleep(0.1)
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
