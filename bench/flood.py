"""What a flood costs a live ``jotguard serve``: memory per made-up key, CPU per refused credential.

Starts the server on its shipped defaults (production argon2id, default limits) behind
``JOTGUARD_TRUSTED_PROXIES=127.0.0.1``, every request naming its client address in
``X-Forwarded-For``, and measures the server process from outside (``/proc``):

1. **made-up client ids**, one address: resident memory (RSS) before and after
   ``--requests`` requests, half ``GET /get-token?client_id=<random>``, half
   ``POST /oauth/token`` with HTTP Basic ``<random>:<random>``;
2. **made-up addresses**: RSS before and after one bad bearer token from each of
   ``--requests`` different addresses (every one a new key of the ``preauth`` and
   ``failed-auth`` policies), on the defaults and again with
   ``JOTGUARD_RATELIMIT_MAX_KEYS`` at ``--bound``: past it, nothing more is kept;
3. **CPU per credential**: server CPU seconds per request for bad client secrets refused
   (429, after the budget), bad client secrets checked (401), wrong passwords checked
   (400: one argon2id each) and ``GET /healthz`` (nothing to check), side by side;
4. **bursts**: 60 concurrent bad client credentials, and 60 concurrent wrong passwords
   for one account, from one address, each with an honest request from another address
   sent into it: how many were checked, and how long the honest one took.

The machine may be shared: the load average is printed with the figures, and the CPU
figures are best read as ratios to ``/healthz``. Run ``python -m bench.flood``. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from bench.password_grant_latency import start_server

PASSWORD = "bench password 1234"
FLOODER = "203.0.113.66"
SPRAYER = "203.0.113.99"
HONEST = "198.51.100.7"
CONNECTIONS = 8


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float


class Connection:
    """One keep-alive HTTP/1.1 connection: raw requests, raw answers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, base_url: str) -> Connection:
        parts = urlsplit(base_url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        return cls(reader, writer)

    async def send(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> Answer:
        lines = [f"{method} {path} HTTP/1.1", "Host: bench", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        started = time.perf_counter()
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        answer_headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            if name:
                answer_headers[name.strip().lower()] = value.strip()
        answer = await self.reader.readexactly(int(answer_headers.get("content-length", "0")))
        return Answer(
            int(status_line.split()[1]), answer_headers, answer, time.perf_counter() - started
        )

    def close(self) -> None:
        self.writer.close()


class Server:
    """A ``jotguard serve`` process and what it costs."""

    def __init__(self, process: asyncio.subprocess.Process, url: str, admin: str, data: Path):
        self.process, self.url, self.data_dir = process, url, data
        self.admin_id, self.admin_secret = admin.split(":", 1)
        self.environ: dict[str, str] = {}

    @classmethod
    async def start(cls, **settings: str) -> Server:
        data_dir = Path(tempfile.mkdtemp(prefix="jotguard-flood-"))
        environ = {
            **os.environ,
            "JOTGUARD_DATA_DIR": str(data_dir),
            "JOTGUARD_ENV_FILE": str(data_dir / "absent.env"),
            "JOTGUARD_TRUSTED_PROXIES": "127.0.0.1",
            **settings,
        }
        process, url, admin = await start_server(environ)
        server = cls(process, url, admin, data_dir)
        server.environ = environ
        return server

    def add_user(self, username: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "webapp", "users", "add", username, "--password-stdin"],
            input=PASSWORD + "\n",
            env=self.environ,
            check=True,
            capture_output=True,
            text=True,
        )

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    async def settled_rss_mb(self) -> float:
        """RSS once it holds still (start-up's argon2 warm-up takes and gives back 64 MiB)."""
        previous = self.rss_mb()
        for _ in range(50):
            await asyncio.sleep(0.5)
            current = self.rss_mb()
            if abs(current - previous) < 0.25:
                return current
            previous = current
        return previous

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime + stime, all threads
        return ticks / os.sysconf("SC_CLK_TCK")

    async def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        await self.process.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def form(fields: dict[str, str]) -> bytes:
    return urlencode(fields).encode()


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def run_requests(
    base_url: str, requests: Iterable[tuple[str, str, dict[str, str], bytes]]
) -> Counter[int]:
    """Send ``requests`` over ``CONNECTIONS`` keep-alive connections; count the statuses."""
    queue = list(requests)
    statuses: Counter[int] = Counter()

    async def worker(start: int) -> None:
        connection = await Connection.open(base_url)
        try:
            for method, path, headers, body in queue[start::CONNECTIONS]:
                statuses[(await connection.send(method, path, headers, body)).status] += 1
        finally:
            connection.close()

    await asyncio.gather(*(worker(n) for n in range(CONNECTIONS)))
    return statuses


async def one(
    base_url: str, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> Answer:
    connection = await Connection.open(base_url)
    try:
        return await connection.send(method, path, headers, body)
    finally:
        connection.close()


def made_up_client_ids(count: int) -> Iterable[tuple[str, str, dict[str, str], bytes]]:
    for n in range(count):
        made_up = secrets.token_hex(16)
        if n % 2:
            yield "GET", f"/get-token?client_id={made_up}", {"X-Forwarded-For": FLOODER}, b""
        else:
            headers = {**FORM, "X-Forwarded-For": FLOODER, "Authorization": basic(made_up, "x")}
            yield "POST", "/oauth/token", headers, form({"grant_type": "client_credentials"})


def made_up_addresses(count: int, token: str) -> Iterable[tuple[str, str, dict[str, str], bytes]]:
    for n in range(count):
        address = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
        headers = {"X-Forwarded-For": address, "Authorization": f"Bearer {token}"}
        yield "GET", "/test-auth", headers, b""


def garbage_token() -> str:
    # Parses and names an issuer, so it reaches a signature check (which fails).
    header = base64.urlsafe_b64encode(b'{"alg":"RS256","kid":"x"}').rstrip(b"=").decode()
    payload = base64.urlsafe_b64encode(b'{"sub":"x"}').rstrip(b"=").decode()
    return f"{header}.{payload}.{secrets.token_urlsafe(256)}"


@dataclass
class Grown:
    before_mb: float
    after_mb: float
    statuses: Counter[int]

    def line(self, what: str, count: int, unit: str) -> str:
        grown = self.after_mb - self.before_mb
        return (
            f"{what}: statuses {dict(self.statuses)}\n"
            f"  RSS {self.before_mb:.1f} MB -> {self.after_mb:.1f} MB: {grown:+.1f} MB"
            f" ({grown * 1024 * 1024 / count:.0f} bytes {unit})"
        )


async def memory_client_ids(requests: int) -> Grown:
    server = await Server.start()
    try:
        await run_requests(server.url, made_up_client_ids(200))  # warm-up
        before = await server.settled_rss_mb()
        statuses = await run_requests(server.url, made_up_client_ids(requests))
        after = await server.settled_rss_mb()
    finally:
        await server.stop()
    return Grown(before, after, statuses)


async def memory_addresses(requests: int, bound: int) -> list[str]:
    lines = []
    for label, settings in (
        ("defaults (bound 100000)", {}),
        (f"JOTGUARD_RATELIMIT_MAX_KEYS={bound}", {"JOTGUARD_RATELIMIT_MAX_KEYS": str(bound)}),
    ):
        server = await Server.start(**settings)
        token = garbage_token()
        try:
            warm = [("GET", "/test-auth", {"X-Forwarded-For": "192.0.2.1"}, b"")] * 200
            await run_requests(server.url, warm)
            before = await server.settled_rss_mb()
            statuses = await run_requests(server.url, made_up_addresses(requests, token))
            after = await server.settled_rss_mb()
        finally:
            await server.stop()
        what = f"made-up addresses, {label}: {requests} addresses x 1 bad token"
        lines.append(Grown(before, after, statuses).line(what, requests, "an address"))
    return lines


async def cpu_per_credential(count: int) -> list[str]:
    server = await Server.start()
    try:
        server.add_user("alice")
        wrong_secret = {**FORM, "Authorization": basic(server.admin_id, "wrong")}
        client_form = form({"grant_type": "client_credentials"})

        async def measure(
            requests: list[tuple[str, str, dict[str, str], bytes]],
        ) -> tuple[float, Counter[int]]:
            started = server.cpu_seconds()
            statuses = await run_requests(server.url, requests)
            return (server.cpu_seconds() - started) / len(requests), statuses

        # Checked (401): ten bad secrets from each of many addresses, every one checked.
        checked = [
            (
                "POST",
                "/oauth/token",
                {**wrong_secret, "X-Forwarded-For": f"10.1.{n // 10}.1"},
                client_form,
            )
            for n in range(min(count, 2000))
        ]
        checked_cpu, checked_statuses = await measure(checked)
        # Refused (429): the flooder's budget spent, everything after refused unchecked.
        spend = [
            ("POST", "/oauth/token", {**wrong_secret, "X-Forwarded-For": FLOODER}, client_form)
        ] * 10
        await run_requests(server.url, spend)
        refused = [
            ("POST", "/oauth/token", {**wrong_secret, "X-Forwarded-For": FLOODER}, client_form)
        ] * count
        refused_cpu, refused_statuses = await measure(refused)
        # A wrong password, checked: one argon2id each (an account and an address each).
        passwords = [
            (
                "POST",
                "/oauth/token",
                {
                    **FORM,
                    "Authorization": basic(server.admin_id, server.admin_secret),
                    "X-Forwarded-For": f"10.2.{n}.1",
                },
                form({"grant_type": "password", "username": f"user{n}", "password": "wrong"}),
            )
            for n in range(20)
        ]
        password_cpu, password_statuses = await measure(passwords)
        healthz = [("GET", "/healthz", {"X-Forwarded-For": FLOODER}, b"")] * count
        healthz_cpu, _ = await measure(healthz)
    finally:
        await server.stop()
    rows = [
        ("GET /healthz (nothing to check)", healthz_cpu, {200: count}),
        ("bad client secret, refused (429)", refused_cpu, refused_statuses),
        ("bad client secret, checked (401)", checked_cpu, checked_statuses),
        ("wrong password, checked (400)", password_cpu, password_statuses),
    ]
    lines = ["server CPU per request (all threads):"]
    for label, cpu, statuses in rows:
        lines.append(
            f"  {label:34s} {cpu * 1e6:9.0f} us  {cpu / healthz_cpu:7.1f}x /healthz"
            f"  statuses {dict(statuses)}"
        )
    return lines


@dataclass
class Burst:
    what: str
    statuses: Counter[int]
    honest: Answer

    def line(self) -> str:
        return (
            f"{self.what}: {dict(self.statuses)}; an honest request from another address"
            f" sent 0.3 s in: {self.honest.status} in {self.honest.seconds * 1000:.0f} ms"
        )


async def bursts() -> list[Burst]:
    """60 concurrent bad client secrets, then 60 concurrent wrong passwords for one account,
    each from one address, with an honest request from another address sent into it."""
    server = await Server.start()
    try:
        server.add_user("alice")
        server.add_user("carol")
        admin = basic(server.admin_id, server.admin_secret)

        async def burst(
            what: str,
            flood: list[tuple[dict[str, str], bytes]],
            honest: tuple[dict[str, str], bytes],
        ) -> Burst:
            async def send(headers: dict[str, str], body: bytes, delay: float = 0.0) -> Answer:
                await asyncio.sleep(delay)
                return await one(server.url, "POST", "/oauth/token", headers, body)

            tasks = [asyncio.create_task(send(h, b)) for h, b in flood]
            honest_task = asyncio.create_task(send(*honest, delay=0.3))
            answers = await asyncio.gather(*tasks)
            return Burst(what, Counter(a.status for a in answers), await honest_task)

        client_credentials = form({"grant_type": "client_credentials"})
        secrets_burst = await burst(
            "60 concurrent bad client credentials from one address",
            [
                (
                    {
                        **FORM,
                        "X-Forwarded-For": FLOODER,
                        "Authorization": basic(server.admin_id, f"g{n}"),
                    },
                    client_credentials,
                )
                for n in range(60)
            ],
            ({**FORM, "X-Forwarded-For": HONEST, "Authorization": admin}, client_credentials),
        )

        def login(username: str, password: str) -> bytes:
            return form({"grant_type": "password", "username": username, "password": password})

        # Another address: the first burst spent FLOODER's failed-auth budget.
        passwords_burst = await burst(
            "60 concurrent wrong passwords for one account from one address",
            [
                (
                    {**FORM, "X-Forwarded-For": SPRAYER, "Authorization": admin},
                    login("alice", f"g{n}"),
                )
                for n in range(60)
            ],
            ({**FORM, "X-Forwarded-For": HONEST, "Authorization": admin}, login("carol", PASSWORD)),
        )
    finally:
        await server.stop()
    return [secrets_burst, passwords_burst]


def load_average() -> str:
    one_min, five, fifteen = os.getloadavg()
    return f"load average {one_min:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


async def main(args: argparse.Namespace) -> None:
    print(f"jotguard flood benchmark; {load_average()}")
    grown = await memory_client_ids(args.requests)
    print(
        grown.line(
            f"made-up client ids, one address: {args.requests} requests", args.requests, "a request"
        ),
        flush=True,
    )
    for line in await memory_addresses(args.requests, args.bound):
        print(line, flush=True)
    for line in await cpu_per_credential(args.cpu_requests):
        print(line, flush=True)
    for burst in await bursts():
        print(burst.line(), flush=True)
    print(f"done; {load_average()}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=30_000, help="made-up keys per phase")
    parser.add_argument("--bound", type=int, default=5_000, help="JOTGUARD_RATELIMIT_MAX_KEYS")
    parser.add_argument("--cpu-requests", type=int, default=3_000, help="requests per CPU row")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
