"""What ``jotguard serve``'s server does that Tornado's does not: a cap on open
connections (an immediate 503 above it), and a 431 for a request head over 64 KiB."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import pytest
from tornado.netutil import bind_sockets
from tornado.web import Application

from tests.raw_http import read_head
from tests.settings_support import refusal
from webapp.service.connections import MAX_HEADER_BYTES, ConnectionServer, connection_cap

CAP = 3


@pytest.fixture
async def served(app: Application) -> AsyncIterator[tuple[ConnectionServer, int]]:
    server = ConnectionServer(app, max_connections=CAP, idle_connection_timeout=30)
    sockets = bind_sockets(0, "127.0.0.1")
    server.add_sockets(sockets)
    yield server, sockets[0].getsockname()[1]
    server.stop()
    await server.close_all_connections()


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], dict]:
    status, headers = await read_head(reader)
    body = await reader.readexactly(int(headers["content-length"]))
    return status, headers, json.loads(body)


async def exchange(port: int, request: bytes) -> tuple[int, dict[str, str], dict]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(read_answer(reader), timeout=10)
    finally:
        writer.close()


def get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: x", *headers, "", ""]
    return "\r\n".join(lines).encode()


async def until(condition, timeout: float = 5.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.01)
    return False


# -- 431 --------------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["Authorization: Bearer ", "X-Padding: "])
async def test_a_request_head_over_64_kib_is_answered_431_in_json(served, header):
    server, port = served
    status, headers, body = await exchange(port, get("/test-auth", header + "a" * 1024 * 1024))

    assert status == 431
    assert body["error"] == "headers_too_large"
    assert "64 KiB" in body["error_description"]
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert headers["x-request-id"]
    assert await until(lambda: server.open_connections == 0 and server.draining == 0)


async def test_a_head_under_the_limit_reaches_the_application(served):
    _, port = served
    status, _, body = await exchange(port, get("/healthz", "X-Padding: " + "a" * 60_000))
    assert status == 200
    assert body == {"status": "ok"}


async def test_on_a_kept_alive_connection_the_oversized_second_head_gets_its_431(served):
    _, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(get("/healthz"))
        first = await asyncio.wait_for(read_answer(reader), 10)
        writer.write(get("/healthz", "X-Padding: " + "a" * (MAX_HEADER_BYTES + 1)))
        second = await asyncio.wait_for(read_answer(reader), 10)
    finally:
        writer.close()
    assert first[0] == 200
    assert second[0] == 431


# -- the connection cap -------------------------------------------------------------------


async def test_connections_over_the_cap_get_an_immediate_503_and_are_closed(served, caplog):
    server, port = served
    idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(CAP)]
    assert await until(lambda: server.open_connections == CAP)
    try:
        with caplog.at_level(logging.WARNING, logger="jotguard"):
            answers = [await exchange(port, get("/healthz")) for _ in range(10)]
        for status, headers, body in answers:
            assert status == 503
            assert headers["retry-after"] == "1"
            assert body["error"] == "temporarily_unavailable"
        # One line for the ten, not one each.
        [line] = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert "3 are open" in line
    finally:
        for _, writer in idle:
            writer.close()
    assert await until(lambda: server.open_connections == 0)
    status, _, _ = await exchange(port, get("/healthz"))
    assert status == 200


async def test_stop_closes_the_listening_socket_at_once(app):
    # A worker told to stop finishes its requests in flight; the port must be free meanwhile.
    server = ConnectionServer(app, max_connections=CAP)
    sockets = bind_sockets(0, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    server.add_sockets(sockets)
    server.stop()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    await server.close_all_connections()


@pytest.mark.parametrize("value", ["0", "-5", "many"])
def test_a_bad_connection_cap_names_the_variable(value):
    assert str(refusal("JOTGUARD_MAX_CONNECTIONS", value)).startswith("JOTGUARD_MAX_CONNECTIONS:")


def test_the_cap_is_three_quarters_of_the_open_file_limit_when_that_is_lower():
    assert connection_cap(10_000, 1024) == 768
    assert connection_cap(10_000, 1_048_576) == 10_000
    assert connection_cap(500, 1024) == 500
