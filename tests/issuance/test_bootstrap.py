"""The first ``jotguard serve`` prints admin credentials once; later starts print no secret.

Real subprocesses: what matters is what a terminal (stdout) and a log (stderr) see.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys

import pytest

from tests.cli import CHEAP_ARGON2
from tests.issuance.conftest import basic

pytestmark = pytest.mark.slow

START_TIMEOUT = 30.0


class Pipe:
    """One of the server's output streams, and all it has written so far (``text``)."""

    def __init__(self, name: str, stream: asyncio.StreamReader | None) -> None:
        assert stream is not None
        self.name = name
        self.stream = stream
        self.text = ""

    async def read_until(self, pattern: str) -> re.Match[str]:
        while True:
            line = await asyncio.wait_for(self.stream.readline(), START_TIMEOUT)
            if not line:
                raise AssertionError(f"the server's {self.name} ended; so far:\n{self.text}")
            self.text += line.decode()
            found = re.search(pattern, self.text)
            if found:
                return found


class Server:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.stdout = Pipe("stdout", process.stdout)
        self.stderr = Pipe("stderr", process.stderr)
        self.base_url = ""

    async def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(self.process.communicate(), START_TIMEOUT)
        self.stdout.text += out.decode()
        self.stderr.text += err.decode()
        assert self.process.returncode == 0, self.stderr.text


async def start(data_dir) -> Server:
    environ = {
        **os.environ,
        "JOTGUARD_DATA_DIR": str(data_dir),
        "JOTGUARD_ENV_FILE": str(data_dir / "absent.env"),
        **CHEAP_ARGON2,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "webapp",
        "serve",
        "--port",
        "0",
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    server = Server(process)
    listening = await server.stderr.read_until(r"listening on (http://\S+/)")
    server.base_url = listening.group(1).rstrip("/")
    return server


async def token_status(http_client, base_url: str, client_id: str, secret: str) -> int:
    response = await http_client.fetch(
        base_url + "/oauth/token",
        method="POST",
        body="grant_type=client_credentials",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": basic(client_id, secret),
        },
        raise_error=False,
    )
    return response.code


async def test_first_start_prints_credentials_once(data_dir, http_client):
    first = await start(data_dir)
    try:
        curl = await first.stdout.read_until(
            r"curl -s -u '([^':]+):([^']+)' -d grant_type=client_credentials (\S+)\n"
        )
    finally:
        await first.stop()
    client_id, secret, token_url = curl.groups()
    assert f"client_id:     {client_id}" in first.stdout.text
    assert f"client_secret: {secret}" in first.stdout.text
    assert token_url == first.base_url + "/oauth/token"
    assert secret not in first.stderr.text  # the log never carries it

    second = await start(data_dir)
    try:
        # The printed curl line's credentials work, against the restarted server.
        assert await token_status(http_client, second.base_url, client_id, secret) == 200
    finally:
        await second.stop()
    assert "stopped" in second.stderr.text  # ran to a clean shutdown: bootstrap had its turn
    assert second.stdout.text == ""
    assert secret not in second.stderr.text
    assert "client_secret" not in second.stderr.text
