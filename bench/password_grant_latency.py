"""Does argon2 block the IOLoop? ``GET /test-auth`` p99, idle vs during password grants.

Starts a real ``jotguard serve`` (production argon2id defaults unless overridden),
bootstraps its admin client, adds a user with the CLI, then measures, in one run
and side by side:

1. idle: ``GET /test-auth`` every ``--interval`` (one at a time) for ``--seconds``;
2. loaded: the same, while ``--concurrency`` password grants are kept in flight
   (each one verifies the client secret, a keyed hash, and the password: one argon2id
   check), all from one address, which is let use the whole hashing pool and whose
   token and preauth budgets are off: this measures the loop under hashing, not limits;

alternating for ``--rounds`` (the grants drain before each idle window).

It prints both p99 figures and their ratio (target: at most 3x). Not a test: run it
by hand, on a quiet machine, ``python bench/password_grant_latency.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

USERNAME = "bench-user"
PASSWORD = "bench password 1234"
TARGET_RATIO = 3.0


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def start_server(environ: dict[str, str]) -> tuple[asyncio.subprocess.Process, str, str]:
    """The server process, its base URL and the bootstrap curl line's ``id:secret``."""
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
    assert process.stdout is not None
    assert process.stderr is not None
    base_url = ""
    while not base_url:
        line = (await asyncio.wait_for(process.stderr.readline(), 60)).decode()
        if not line:
            raise SystemExit("the server exited before listening")
        found = re.search(r"listening on (http://\S+)/", line)
        base_url = found.group(1) if found else ""
    credentials = ""
    while not credentials:
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        found = re.search(r"curl -s -u '([^']+)'", line)
        credentials = found.group(1) if found else ""
    # Keep draining the log so the server never blocks on a full pipe.
    asyncio.get_running_loop().create_task(_drain(process.stderr))
    return process, base_url, credentials


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass


async def probe(
    client: AsyncHTTPClient, url: str, token: str, seconds: float, interval: float
) -> list[float]:
    """One call every ``interval`` seconds (paced, so the prober itself does not
    compete for the CPU) for ``seconds``; each call's latency in milliseconds."""
    latencies = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        response = await client.fetch(url, headers={"Authorization": f"Bearer {token}"})
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.code == 200
        await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))
    return latencies


async def grant_loop(
    client: AsyncHTTPClient, url: str, credentials: str, stop: asyncio.Event, done: list[int]
) -> None:
    client_id, secret = credentials.split(":", 1)
    body = urlencode(
        {
            "grant_type": "password",
            "username": USERNAME,
            "password": PASSWORD,
            "client_id": client_id,
            "client_secret": secret,
        }
    )
    while not stop.is_set():
        request = HTTPRequest(
            url,
            method="POST",
            body=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            request_timeout=120,
        )
        response = await client.fetch(request, raise_error=False)
        if response.code != 200:
            raise SystemExit(f"password grant failed: {response.code} {response.body!r}")
        done.append(1)


async def run(args: argparse.Namespace) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="jotguard-bench-"))
    environ = {
        **os.environ,
        "JOTGUARD_DATA_DIR": str(data_dir),
        "JOTGUARD_ENV_FILE": str(data_dir / "absent.env"),
        "JOTGUARD_RATELIMIT_TOKEN": "off",
        "JOTGUARD_RATELIMIT_PREAUTH": "off",
        "JOTGUARD_PASSWORD_HASH_PER_ADDRESS": "64",
    }
    if args.workers is not None:
        environ["JOTGUARD_PASSWORD_HASH_WORKERS"] = str(args.workers)
    process, base_url, credentials = await start_server(environ)
    try:
        subprocess.run(  # noqa: ASYNC221 - set-up, before anything is measured
            [sys.executable, "-m", "webapp", "users", "add", USERNAME, "--password-stdin"],
            input=PASSWORD + "\n",
            env=environ,
            check=True,
            capture_output=True,
            text=True,
        )
        probe_client = AsyncHTTPClient(force_instance=True)
        load_client = AsyncHTTPClient(force_instance=True, max_clients=args.concurrency + 4)
        client_id, secret = credentials.split(":", 1)
        token_response = await probe_client.fetch(
            base_url + "/oauth/token",
            method="POST",
            body=urlencode(
                {
                    "grant_type": "client_credentials",
                    "client_id": client_id,
                    "client_secret": secret,
                }
            ),
        )
        token = token_response.body.decode().split('"access_token": "')[1].split('"')[0]
        url = base_url + "/test-auth"
        await probe(probe_client, url, token, 1.0, args.interval)  # warm up connections and caches

        idle: list[float] = []
        loaded: list[float] = []
        granted, loaded_time = 0, 0.0
        # Alternate idle and loaded windows, so that whatever else the machine does
        # weighs on both sides alike.
        for _ in range(args.rounds):
            idle += await probe(probe_client, url, token, args.seconds, args.interval)
            stop, done = asyncio.Event(), []
            grants = [
                asyncio.create_task(
                    grant_loop(load_client, base_url + "/oauth/token", credentials, stop, done)
                )
                for _ in range(args.concurrency)
            ]
            await asyncio.sleep(1.0)  # let all of them reach the hashing pool
            started = time.perf_counter()
            loaded += await probe(probe_client, url, token, args.seconds, args.interval)
            loaded_time += time.perf_counter() - started
            granted += len(done)
            stop.set()
            await asyncio.gather(*grants)  # drained: the next idle window is idle
    finally:
        process.send_signal(signal.SIGTERM)
        await process.wait()
        shutil.rmtree(data_dir, ignore_errors=True)

    idle_p99, loaded_p99 = percentile(idle, 0.99), percentile(loaded, 0.99)
    ratio = loaded_p99 / idle_p99
    print(
        f"cpus={os.cpu_count()} rounds={args.rounds} x (idle {args.seconds:.0f}s, "
        f"loaded {args.seconds:.0f}s) concurrency={args.concurrency} "
        f"samples idle={len(idle)} loaded={len(loaded)}"
    )
    print(f"idle    GET /test-auth  p50={statistics.median(idle):7.2f} ms  p99={idle_p99:7.2f} ms")
    print(
        f"loaded  GET /test-auth  p50={statistics.median(loaded):7.2f} ms  "
        f"p99={loaded_p99:7.2f} ms  ({granted} password grants done while probing, "
        f"{granted / loaded_time:.1f}/s)"
    )
    verdict = "OK" if ratio <= TARGET_RATIO else "ABOVE TARGET"
    print(f"p99 ratio loaded/idle = {ratio:.2f}x (target <= {TARGET_RATIO:.0f}x): {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="idle/loaded window pairs")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each window")
    parser.add_argument(
        "--interval", type=float, default=0.005, help="seconds between probe starts"
    )
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--workers", type=int, help="JOTGUARD_PASSWORD_HASH_WORKERS for the server")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
