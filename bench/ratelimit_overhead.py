"""What rate limiting costs a request, measured side by side in one run.

Serves the same jotguard app three ways (limits off, memory://, Redis) and
sends sequential keep-alive requests to an anonymous route (/test: one counted
hit) and a protected one (/test-auth with a valid token: failed-auth peek and
preauth guard, then the per-user hit). Chunks of requests alternate between
the three so load drift on a shared machine hits them alike; prints the median
requests/second and its ratio to the unlimited app. Redis is skipped if
JOTGUARD_TEST_REDIS_URL (default redis://127.0.0.1:6379/15) does not answer;
its keys use a unique prefix and are deleted afterwards.

    .venv/bin/python bench/ratelimit_overhead.py [requests-per-case-and-variant]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis.asyncio
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from webapp.config.settings import Settings
from webapp.service.app import make_app
from webapp.service.services import Services

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


class Instance:
    """One served app and the requests the cases send to it."""

    def __init__(self, services: Services, limited: bool) -> None:
        self.services = services
        app = make_app(services)
        if not limited:
            # Each route as a library user wires it who passes no rate limits.
            for rule in app.wildcard_router.rules:
                rule.target_kwargs.pop("rate_limits", None)
        self.server = HTTPServer(app)
        sock, self.port = bind_unused_port()
        self.server.add_sockets([sock])
        token = services.issuer.sign(services.issuer.claims_for("bench-user")).token
        self.cases = {
            "/test": ("/test", ""),
            "/test-auth": ("/test-auth", f"Authorization: Bearer {token}\r\n"),
        }

    async def rate(self, case: str, count: int) -> float:
        path, headers = self.cases[case]
        return count / await keep_alive_requests(self.port, path, headers, count)

    async def close(self) -> None:
        self.server.stop()
        await self.services.close()


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

    instances = {
        name: Instance(await Services.start(settings), limited)
        for name, (settings, limited) in variants.items()
    }
    # Chunks alternate between the variants, so load drifting on a shared machine
    # hits them alike; the median chunk rate is reported.
    chunk, rounds = 200, max(1, count // 200)
    rates: dict[str, dict[str, list[float]]] = {
        n: {"/test": [], "/test-auth": []} for n in instances
    }
    for case in ("/test", "/test-auth"):
        for instance in instances.values():
            await instance.rate(case, chunk)  # warm up
        for _ in range(rounds):
            for name, instance in instances.items():
                rates[name][case].append(await instance.rate(case, chunk))
    for instance in instances.values():
        await instance.close()

    print(f"{rounds} alternating rounds of {chunk} keep-alive requests; median requests/second")
    print("(ratio to limits off)")
    for case in ("/test", "/test-auth"):
        off = statistics.median(rates["off"][case])
        cells = []
        for name in instances:
            median = statistics.median(rates[name][case])
            cells.append(f"{name} {median:7.0f} ({median / off:.2f})")
        print(f"{case:10}  " + "   ".join(cells))

    if "redis" in variants:
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        async for key in client.scan_iter(match=f"{prefix}:*"):
            await client.delete(key)
        await client.aclose()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
