"""Helpers for the revocation HTTP tests: store URLs per store, JSON requests, a TCP
proxy that stands in for a store going down and coming back."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from tests.conftest import redis_url
from tests.redis_keys import own_prefix


@contextlib.asynccontextmanager
async def store_url(kind: str, tmp_path: Any) -> AsyncIterator[str]:
    """A JOTGUARD_REVOCATION_STORE value for ``kind``; Redis keys are removed afterwards."""
    if kind == "memory":
        yield "memory://"
    elif kind == "sqlite":
        yield f"sqlite:///{tmp_path}/revocations.sqlite3"
    elif kind == "redis":
        async with own_prefix() as prefix:
            yield f"{redis_url()}?prefix={prefix}"
    else:
        raise AssertionError(kind)


def body_json(response: Any) -> Any:
    return json.loads(response.body)


class Proxy:
    """Forwards 127.0.0.1:<port> to a target; ``down()`` refuses and cuts connections."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.server: asyncio.Server | None = None
        self.port = 0
        self.pipes: set[asyncio.Task[None]] = set()

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.close()
        # Cut the open connections before waiting: since Python 3.12, wait_closed()
        # waits for every connection to end, and these would never end by themselves.
        for task in list(self.pipes):
            task.cancel()
        await asyncio.gather(*self.pipes, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def reserve(self) -> int:
        """Pick the port while down, so a client can be pointed at it first."""
        await self.up()
        await self.down()
        return self.port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.pipes.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            self.pipes.discard(task)
            return
        try:
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        except asyncio.CancelledError:
            pass
        finally:
            writer.close()
            up_writer.close()
            self.pipes.discard(task)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` on a free port; its base URL."""
    from tornado.httpserver import HTTPServer
    from tornado.testing import bind_unused_port

    server = HTTPServer(app)
    sock, port = bind_unused_port()
    server.add_sockets([sock])
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        await server.close_all_connections()
