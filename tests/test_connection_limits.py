"""What one connection may make the server hold: body size and time (Tornado's defaults
are 100 MB, buffered before any handler runs, and an hour)."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from tests.live import live_jotguard
from tests.raw_http import read_head
from webapp.config.fields import SettingsError
from webapp.config.settings import Settings

LIMIT = 2048


@pytest.fixture
def settings_overrides() -> dict[str, str]:
    return {"JOTGUARD_MAX_BODY_BYTES": str(LIMIT)}


async def exchange(base_url: str, head: str, body: bytes = b"") -> tuple[int, dict, bytes]:
    """Send raw ``head`` (and ``body``); the status, the JSON answer, and whatever the
    server sent after the answer before it closed the connection."""
    host, port = base_url.rstrip("/").rsplit("/", 1)[-1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.encode() + body)
        await writer.drain()
        # A server that waits for the body never answers: fail in seconds, not at the timeout.
        return await asyncio.wait_for(read_answer(reader), timeout=10)
    finally:
        writer.close()


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict, bytes]:
    status, headers = await read_head(reader)
    answer = await reader.readexactly(int(headers["content-length"]))
    try:
        rest = await reader.read()  # b"" once the server has closed the connection
    except ConnectionResetError:
        rest = b""  # closed with some of our body unread: the answer had arrived
    return status, json.loads(answer), rest


def post_head(path: str, length: int) -> str:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )


@pytest.mark.parametrize("path", ["/oauth/token", "/test", "/nowhere", "/admin/revocations"])
async def test_a_body_declared_over_the_limit_is_refused_413_unread_and_the_connection_closed(
    base_url, path
):
    # Only the headers are sent: the answer must not wait for a body it will not read.
    status, answer, rest = await exchange(base_url, post_head(path, LIMIT + 1))

    assert status == 413
    assert answer["error"] == "request_too_large"
    assert str(LIMIT) in answer["error_description"]
    assert rest == b""  # closed after the answer, nothing else written (no bare 400)


async def test_a_body_at_the_limit_reaches_the_handler(fetch):
    response = await fetch("/oauth/token", method="POST", body="a" * LIMIT)
    assert response.code == 400
    assert json.loads(response.body)["error"] == "invalid_request"


async def test_an_oversized_body_is_counted_by_the_rate_limit(fetch, base_url):
    before = (await fetch("/test")).headers["RateLimit"]
    await exchange(base_url, post_head("/test", LIMIT + 1))
    after = (await fetch("/test")).headers["RateLimit"]
    remaining = [int(h.split(";r=")[1].split(";")[0]) for h in (before, after)]
    assert remaining[0] - remaining[1] == 2  # the refused request and the second /test


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("JOTGUARD_MAX_BODY_BYTES", "0"),
        ("JOTGUARD_MAX_BODY_BYTES", "lots"),
        ("JOTGUARD_IDLE_TIMEOUT", "0"),
        ("JOTGUARD_BODY_TIMEOUT", "-1"),
    ],
)
def test_limits_out_of_range_are_a_settings_error_naming_the_variable(tmp_path, name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.load(
            environ={
                "JOTGUARD_DATA_DIR": str(tmp_path),
                "JOTGUARD_ENV_FILE": str(tmp_path / "absent.env"),
                name: value,
            }
        )


def test_serve_refuses_big_bodies_and_lets_go_of_idle_slow_and_chunked_clients(tmp_path):
    env = {
        "JOTGUARD_IDLE_TIMEOUT": "0.5",
        "JOTGUARD_BODY_TIMEOUT": "0.5",
        "JOTGUARD_MAX_BODY_BYTES": str(LIMIT),
    }
    with live_jotguard(tmp_path / "data", env) as server:
        # The server's own limit is the same number: the 413 must still come first, alone,
        # and reach a client that sends its body without waiting (no Expect: 100-continue)
        # before the connection is closed under it.
        for body in (b"", b"a" * 100_000):
            head = post_head("/test", LIMIT + 1)
            status, answer, rest = asyncio.run(exchange(server.url, head, body))
            assert (status, answer["error"], rest) == (413, "request_too_large", b"")
        host, port = server.url.rstrip("/").rsplit("/", 1)[-1].split(":")
        # A client that connects and sends nothing (or its headers too slowly) is let go.
        with socket.create_connection((host, int(port)), timeout=10) as idle:
            started = time.monotonic()
            assert idle.recv(1) == b""
            assert time.monotonic() - started < 5
        # A body that stops coming is given up on, connection and all.
        with socket.create_connection((host, int(port)), timeout=10) as slow:
            slow.sendall(post_head("/oauth/token", 100).encode() + b"grant_type=")
            started = time.monotonic()
            assert slow.recv(1) == b""
            assert time.monotonic() - started < 5
        # A chunked body has no Content-Length to refuse up front: it is cut at the limit.
        with socket.create_connection((host, int(port)), timeout=10) as chunked:
            chunk = b"a" * 1024
            chunked.sendall(
                b"POST /oauth/token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                + (b"400\r\n" + chunk + b"\r\n") * 3
            )
            answer = chunked.recv(1024)
            assert answer.startswith(b"HTTP/1.1 400 ")
    # Declared sizes never reach Tornado's own refusal (a bare 400, logged as malformed).
    assert [line for line in server.lines if "Content-Length too long" in line] == []
