"""A MongoDB wire-protocol server for tests (``MONGODB_URI``), and a fault proxy in front of it.

The proxy reads the wire protocol's framing (every message starts with ``int32 length,
requestID, responseTo, opCode``), so it can act on one command: forward it and drop its
reply (the write applied, its acknowledgement lost), hold replies (a server that stops
answering, or a slow one), or cut every connection. Clients connect to it with
``directConnection=true``: a replica-set member would otherwise advertise its own
address and the driver would go around the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tests.conftest import require_service

HEADER = 16


def mongo_uri() -> str:
    """The server the Mongo suites run against: skipped on a laptop, required in CI."""
    uri = os.environ.get("MONGODB_URI", "")
    require_service("A MongoDB wire-protocol server (MONGODB_URI)", bool(uri))
    return uri


@dataclass
class _Rule:
    needles: tuple[bytes, ...]
    times: int
    hits: int = 0

    def matches(self, message: bytes) -> bool:
        return self.hits < self.times and all(n in message for n in self.needles)


@dataclass
class WireProxy:
    upstream: tuple[str, int]
    delay: float = 0.0
    """Seconds every reply is held back (a slow server)."""
    dropped: int = 0
    _drops: list[_Rule] = field(default_factory=list)
    _stalls: list[tuple[bytes, ...]] = field(default_factory=list)
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        self._released.set()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def url(self, database: str, **options: int) -> str:
        query = "&".join(["directConnection=true", *(f"{k}={v}" for k, v in options.items())])
        return f"mongodb://127.0.0.1:{self.port}/{database}?{query}"

    def drop_reply(self, *needles: bytes, times: int = 1) -> None:
        """The next ``times`` messages holding every needle reach the server; their
        replies are dropped and the connection closed."""
        self._drops.append(_Rule(needles, times))

    def stall(self, *needles: bytes) -> None:
        """Hold the replies to messages holding every needle (all, with none) until
        :meth:`release`."""
        self._stalls.append(needles)
        self._released.clear()

    def release(self) -> None:
        self._stalls.clear()
        self._released.set()

    def cut(self) -> None:
        for writer in list(self._writers):
            writer.close()

    async def close(self) -> None:
        self.release()
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        doomed: set[int] = set()  # requestIDs whose replies are dropped
        held: set[int] = set()  # requestIDs whose replies wait for release()
        pumps = [
            asyncio.create_task(self._requests(reader, up_writer, doomed, held)),
            asyncio.create_task(self._replies(up_reader, writer, doomed, held)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.close()

    async def _requests(
        self,
        reader: asyncio.StreamReader,
        up: asyncio.StreamWriter,
        doomed: set[int],
        held: set[int],
    ) -> None:
        while message := await _read_message(reader):
            request_id = int.from_bytes(message[4:8], "little", signed=True)
            for rule in self._drops:
                if rule.matches(message):
                    rule.hits += 1
                    doomed.add(request_id)
                    break
            if any(all(n in message for n in needles) for needles in self._stalls):
                held.add(request_id)
            up.write(message)
            await up.drain()

    async def _replies(
        self,
        up: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        doomed: set[int],
        held: set[int],
    ) -> None:
        while message := await _read_message(up):
            response_to = int.from_bytes(message[8:12], "little", signed=True)
            if response_to in doomed:
                self.dropped += 1
                return  # applied, acknowledgement lost: both sides are closed
            if response_to in held:
                await self._released.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
            writer.write(message)
            await writer.drain()


async def _read_message(reader: asyncio.StreamReader) -> bytes:
    try:
        header = await reader.readexactly(HEADER)
        length = int.from_bytes(header[:4], "little")
        return header + await reader.readexactly(length - HEADER)
    except (asyncio.IncompleteReadError, ConnectionError):
        return b""


@contextlib.asynccontextmanager
async def wire_proxy(**options: float) -> AsyncIterator[WireProxy]:
    """A proxy in front of ``MONGODB_URI``'s server."""
    parts = urlsplit(mongo_uri())
    proxy = WireProxy((parts.hostname or "127.0.0.1", parts.port or 27017), **options)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
