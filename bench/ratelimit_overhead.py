"""What rate limiting costs a request, measured side by side in one run.

Serves the same jotguard app three ways (limits off, memory://, Redis) and
sends sequential keep-alive requests to an anonymous route (/test: one counted
hit) and a protected one (/test-auth with a valid token: failed-auth peek and
preauth guard, then the per-user hit). Prints requests/second and the ratio to
the unlimited app. Redis is skipped if JOTGUARD_TEST_REDIS_URL (default
redis://127.0.0.1:6379/15) does not answer; its keys use a unique prefix and
are deleted afterwards.

    .venv/bin/python bench/ratelimit_overhead.py [requests-per-case]
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis.asyncio
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from webapp.app import make_app
from webapp.services import Services
from webapp.settings import Settings

REDIS_URL = os.environ.get("JOTGUARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
GENEROUS = "1000000/minute"


async def keep_alive_requests(port: int, path: str, headers: str, count: int) -> float:
    """Seconds for ``count`` sequential GETs on one keep-alive connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n{headers}\r\n".encode()
    start = time.perf_counter()
    for _ in range(count):
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"unexpected answer: {head.splitlines()[0]!r}")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
    elapsed = time.perf_counter() - start
    writer.close()
    await writer.wait_closed()
    return elapsed


async def measure(settings: Settings, limited: bool, count: int) -> dict[str, float]:
    services = await Services.start(settings)
    app = make_app(services)
    if not limited:
        del app.settings["rate_limits"]
    server = HTTPServer(app)
    sock, port = bind_unused_port()
    server.add_sockets([sock])
    claims = services.issuer.claims_for("bench-user")
    token = services.issuer.sign(claims).token
    try:
        cases = {
            "/test": ("/test", ""),
            "/test-auth": ("/test-auth", f"Authorization: Bearer {token}\r\n"),
        }
        results = {}
        for name, (path, headers) in cases.items():
            await keep_alive_requests(port, path, headers, min(200, count))  # warm up
            results[name] = count / await keep_alive_requests(port, path, headers, count)
        return results
    finally:
        server.stop()
        await services.close()


async def redis_answers() -> bool:
    client = redis.asyncio.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        return bool(await client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        await client.aclose()


async def main(count: int) -> None:
    data = Path(tempfile.mkdtemp(prefix="jotguard-bench-"))
    base = {
        "JOTGUARD_DATA_DIR": str(data),
        "JOTGUARD_ENV_FILE": str(data / "absent.env"),
        "JOTGUARD_RATELIMIT_DEFAULT": GENEROUS,
        "JOTGUARD_RATELIMIT_PREAUTH": GENEROUS,
        "JOTGUARD_LOG_LEVEL": "WARNING",
    }
    prefix = f"jotguard-bench:{uuid.uuid4().hex}"
    variants = {
        "off": (Settings.load(environ=base), False),
        "memory://": (Settings.load(environ=base), True),
    }
    if await redis_answers():
        redis_env = {
            **base,
            "JOTGUARD_RATELIMIT_STORAGE": REDIS_URL,
            "JOTGUARD_RATELIMIT_KEY_PREFIX": prefix,
        }
        variants["redis"] = (Settings.load(environ=redis_env), True)
    else:
        print(f"(Redis at {REDIS_URL} does not answer: skipped)")

    results = {name: await measure(s, limited, count) for name, (s, limited) in variants.items()}
    print(f"{count} sequential keep-alive requests per case; requests/second (ratio to off)")
    for route in ("/test", "/test-auth"):
        off = results["off"][route]
        cells = [
            f"{name} {rates[route]:7.0f} ({rates[route] / off:.2f})"
            for name, rates in results.items()
        ]
        print(f"{route:10}  " + "   ".join(cells))

    if "redis" in variants:
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        async for key in client.scan_iter(match=f"{prefix}:*"):
            await client.delete(key)
        await client.aclose()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
