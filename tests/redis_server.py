"""A ``redis-server`` of the test's own, without persistence: the one Redis a test may
flush, restart or kill (the shared one on 6379 serves every colleague's test run)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from tests.cli import free_port
from tests.conftest import require_service

START_TIMEOUT = 10.0


class RedisServer:
    """``redis-server --save "" --appendonly no`` in ``directory``, on 127.0.0.1."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (again, on the same port once it has one): an empty Redis."""
        # The port is chosen by binding port 0 and released for redis-server to take,
        # which another process could take first: then choose again.
        restarting = bool(self.port)
        for _ in range(5):
            self.port = self.port or free_port()
            self.process = subprocess.Popen(
                ["redis-server", *self._options()],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._wait_ready():
                return
            self.process.kill()
            self.process.wait()
            if restarting:
                break  # its clients are pointed at this port: no other will do
            self.port = 0
        raise RuntimeError("redis-server did not start")

    def _options(self) -> list[str]:
        return [
            *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)),
            *("--save", "", "--appendonly", "no"),  # nothing survives a restart
        ]

    def _wait_ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if self.command(b"PING") == b"+PONG":
                return True
            time.sleep(0.02)
        return False

    def command(self, *words: bytes) -> bytes | None:
        """One command in RESP; the first line of the answer, or None if nobody answers."""
        request = b"*%d\r\n" % len(words) + b"".join(
            b"$%d\r\n%s\r\n" % (len(word), word) for word in words
        )
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(request)
                return sock.recv(4096).split(b"\r\n", 1)[0]
        except OSError:
            return None

    def flushall(self) -> None:
        assert self.command(b"FLUSHALL") == b"+OK"

    def stop(self) -> None:
        """SIGKILL: without persistence everything in it is gone."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@contextlib.contextmanager
def own_redis(directory: Path) -> Iterator[RedisServer]:
    require_service("redis-server (the binary)", shutil.which("redis-server") is not None)
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def silent_redis() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A Redis URL whose server accepts connections and never answers (a hung or
    black-holed Redis), and an event set once a client has connected to it."""
    accepted = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await reader.read()  # never answers; returns when the client hangs up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0", accepted
    finally:
        server.close()
        await server.wait_closed()
