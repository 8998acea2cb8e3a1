"""The in-flight gauge and the shutdown that waits on it: a request whose connection is
lost before its body arrived (no handler ever runs for it) is no longer in flight."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
import urllib.request

from tests.live import live_jotguard
from webapp.service.server import SHUTDOWN_GRACE_SECONDS

HEAD = (
    "POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    "Content-Length: 1000\r\n\r\n"
)


async def started_uploads(base_url: str, count: int) -> list[asyncio.StreamWriter]:
    host, port = base_url.rsplit("/", 1)[-1].split(":")
    writers = []
    for _ in range(count):
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(HEAD.encode() + b"grant_type=")  # and the other 989 bytes never come
        await writer.drain()
        writers.append(writer)
    return writers


async def until(predicate, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def in_flight_gauge(services) -> float:
    text = services.metrics.exposition("text/plain")[0].decode()
    (line,) = [ln for ln in text.splitlines() if ln.startswith("jotguard_http_requests_in_flight")]
    return float(line.split()[-1])


async def test_aborted_uploads_leave_the_in_flight_gauge(app, base_url, services):
    writers = await started_uploads(base_url, 20)
    assert await until(lambda: app.in_flight == 20)
    assert in_flight_gauge(services) == 20
    for writer in writers:
        writer.close()
    # Nothing is in flight once the connections are gone, so a shutdown need not wait.
    assert await app.wait_idle(timeout=5)
    assert app.in_flight == 0
    assert in_flight_gauge(services) == 0


async def test_a_request_answered_before_its_body_counts_once(app, base_url, fetch):
    # A 413 goes out as soon as the headers are read, and the connection is lost after
    # it: the request must leave the count once, not twice (which would take another
    # request's place).
    ongoing = await started_uploads(base_url, 1)
    assert await until(lambda: app.in_flight == 1)
    host, port = base_url.rsplit("/", 1)[-1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    big = HEAD.replace("Content-Length: 1000", "Content-Length: 99999999")
    writer.write(big.encode())
    await writer.drain()
    assert (await reader.readline()).startswith(b"HTTP/1.1 413 ")
    writer.close()
    await writer.wait_closed()
    assert await until(lambda: app.in_flight == 1)
    # Requests answered after the lost connection: the server has seen it go by then.
    for _ in range(3):
        assert (await fetch("/healthz")).code == 200
    assert app.in_flight == 1
    ongoing[0].close()
    assert await app.wait_idle(timeout=5)


def scraped_in_flight(url: str) -> float:
    with urllib.request.urlopen(url + "metrics", timeout=10) as answer:  # noqa: S310
        text = answer.read().decode()
    (line,) = [ln for ln in text.splitlines() if ln.startswith("jotguard_http_requests_in_flight")]
    return float(line.split()[-1])


def test_serve_shuts_down_without_waiting_for_aborted_uploads(tmp_path):
    with live_jotguard(tmp_path / "data") as server:
        host, port = server.url.rstrip("/").rsplit("/", 1)[-1].split(":")
        uploads = [socket.create_connection((host, int(port)), timeout=10) for _ in range(20)]
        for upload in uploads:
            upload.sendall(HEAD.encode() + b"grant_type=")
        deadline = time.monotonic() + 10
        while scraped_in_flight(server.url) < 21:  # the uploads and this scrape
            assert time.monotonic() < deadline, "the uploads never reached the server"
            time.sleep(0.02)
        for upload in uploads:
            upload.close()
        deadline = time.monotonic() + 10
        while scraped_in_flight(server.url) > 1:
            assert time.monotonic() < deadline, "aborted uploads stayed in flight"
            time.sleep(0.02)
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=SHUTDOWN_GRACE_SECONDS + 20)
    log = "".join(server.lines)
    assert "stopped" in log
    assert "still in flight" not in log
    assert "client addresses: the connection's peer" in log
