"""Drive HTTP load at one URL: wrk when installed, a Python load generator otherwise.

Both report the same thing: requests per second, p50 and p99 latency, and how many
answers were not 2xx (a run with any is void: a 401 is cheaper than a 200).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

CONNECTIONS = 50


@dataclass(frozen=True)
class LoadResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    bad_responses: int
    errors: int

    @property
    def valid(self) -> bool:
        return self.requests > 0 and self.bad_responses == 0 and self.errors == 0


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))


def pinned(command: list[str], cpu: int | None) -> list[str]:
    """``command`` run on one CPU with taskset, when there is a CPU to spare and taskset."""
    if cpu is None or shutil.which("taskset") is None:
        return command
    return ["taskset", "-c", str(cpu), *command]


def ensure_wrk() -> str | None:
    """wrk's path; installs it with apt when missing and we may (root, apt present)."""
    found = shutil.which("wrk")
    if found or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return found
    print("wrk is missing: installing it with apt-get ...", flush=True)
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "check": False}
    if subprocess.run(install, **quiet).returncode != 0:  # type: ignore[call-overload]
        subprocess.run(["apt-get", "update", "-q"], **quiet)  # type: ignore[call-overload]
        subprocess.run(install, **quiet)  # type: ignore[call-overload]
    return shutil.which("wrk")


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _latency_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match[1]) * _UNIT_MS[match[2]]


def parse_wrk(output: str) -> LoadResult:
    def percentile(p: str) -> float:
        match = re.search(rf"^\s+{p}%\s+(\S+)\s*$", output, re.MULTILINE)
        if match is None:
            raise ValueError(f"wrk printed no {p}% latency:\n{output}")
        return _latency_ms(match[1])

    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s+(\d+) requests in", output, re.MULTILINE)
    if rate is None or total is None:
        raise ValueError(f"unexpected wrk output:\n{output}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return LoadResult(
        requests_per_second=float(rate[1]),
        p50_ms=percentile("50"),
        p99_ms=percentile("99"),
        requests=int(total[1]),
        bad_responses=int(bad[1]) if bad else 0,
        errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


def run_wrk(
    wrk: str, url: str, headers: dict[str, str], seconds: float, cpu: int | None
) -> LoadResult:
    command = [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    done = subprocess.run(
        [*pinned(command, cpu), url], capture_output=True, text=True, check=True, timeout=600
    )
    return parse_wrk(done.stdout)


# -- the fallback: asyncio, one keep-alive connection per worker ----------------------------


async def _worker(
    host: str,
    port: int,
    request: bytes,
    deadline: float,
    latencies: list[float],
    counts: list[int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not status_line.split(b" ", 2)[1].startswith(b"2"):
                counts[0] += 1
    except (OSError, asyncio.IncompleteReadError, IndexError, ValueError):
        counts[1] += 1
    finally:
        writer.close()


async def _python_load(url: str, headers: dict[str, str], seconds: float) -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lines = [f"GET {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    latencies: list[float] = []
    counts = [0, 0]  # bad responses, connection errors
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(_worker(host, port, request, deadline, latencies, counts) for _ in range(CONNECTIONS))
    )
    elapsed = time.perf_counter() - started
    latencies.sort()

    def percentile(p: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return LoadResult(
        requests_per_second=len(latencies) / elapsed,
        p50_ms=percentile(0.50),
        p99_ms=percentile(0.99),
        requests=len(latencies),
        bad_responses=counts[0],
        errors=counts[1],
    )


def run_python_load(url: str, headers: dict[str, str], seconds: float) -> LoadResult:
    return asyncio.run(_python_load(url, headers, seconds))


class LoadGenerator:
    """wrk pinned to ``cpu`` when available; else the Python generator on this process's CPU."""

    def __init__(self, cpu: int | None, *, force_python: bool = False) -> None:
        self.cpu = cpu
        self.wrk = None if force_python else ensure_wrk()
        if self.wrk is None and cpu is not None:
            os.sched_setaffinity(0, {cpu})

    @property
    def name(self) -> str:
        if self.wrk is None:
            return "python load generator (asyncio)"
        version = subprocess.run([self.wrk, "-v"], capture_output=True, text=True, check=False)
        first = (version.stdout or version.stderr).split("\n", 1)[0]
        return " ".join(first.split()[:2]) or "wrk"

    def run(self, url: str, headers: dict[str, str], seconds: float) -> LoadResult:
        if self.wrk is not None:
            return run_wrk(self.wrk, url, headers, seconds, self.cpu)
        return run_python_load(url, headers, seconds)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
