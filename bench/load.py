"""Drive HTTP load at one URL: wrk when installed, a Python load generator otherwise.

Both report the same thing: requests per second, p50 and p99 latency, and how many
answers were not 2xx (a run with any is void: a 401 is cheaper than a 200).

Headers are either the same on every request (a bearer token) or, for a target that
needs something fresh per request (a DPoP proof, RFC 9449), a :class:`PerRequest` list
prepared before the run, so the generator only reads the next entry and never becomes
the bottleneck by signing. Each entry is used once; a run that needs more requests than
the list holds is void (a replayed proof would be refused anyway).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

CONNECTIONS = 50


@dataclass(frozen=True)
class PerRequest:
    """One set of headers per request, in order, each used once (prepared ahead)."""

    entries: Sequence[Mapping[str, str]]

    def __post_init__(self) -> None:
        for entry in self.entries:
            for name, value in entry.items():
                if any(c in name + value for c in "\t\r\n"):
                    raise ValueError(f"header {name!r} holds a tab or a line break")


Headers = Mapping[str, str] | PerRequest


@dataclass(frozen=True)
class LoadResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    bad_responses: int
    errors: int
    reused: int = 0  # requests sent with an entry of a PerRequest list already used

    @property
    def valid(self) -> bool:
        return (
            self.requests > 0 and self.bad_responses == 0 and self.errors == 0 and not self.reused
        )

    def problems(self) -> str:
        text = f"{self.bad_responses} non-2xx, {self.errors} socket errors"
        if self.reused:
            text += f", {self.reused} requests beyond the prepared headers"
        return text


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
    reused = re.search(r"^reused (\d+)$", output, re.MULTILINE)
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
        reused=int(reused[1]) if reused else 0,
    )


# wrk's Lua hooks for a PerRequest list: every request takes the next line of the file
# (name TAB value TAB name TAB value ...), pre-split in ``init``; ``done`` prints how many
# requests had to go round again. One thread (-t1), so no entry is sent twice by design.
WRK_PER_REQUEST_LUA = r"""
entries, i, reused = {}, 0, 0  -- globals: thread:get() reads them in done()
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    local headers, name = {}, nil
    for field in string.gmatch(line, "[^\t]+") do
      if name == nil then name = field else headers[name] = field; name = nil end
    end
    entries[#entries + 1] = wrk.format(nil, nil, headers)
  end
end

function request()
  i = i + 1
  if i > #entries then
    reused = reused + 1
    return entries[(i - 1) % #entries + 1]
  end
  return entries[i]
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("reused")
  end
  io.write("reused " .. total .. "\n")
end
"""


def write_per_request(entries: PerRequest, directory: Path) -> Path:
    """The list as wrk's Lua script reads it: one line per request."""
    path = directory / "headers.tsv"
    with path.open("w") as out:
        for entry in entries.entries:
            out.write("\t".join(f"{name}\t{value}" for name, value in entry.items()) + "\n")
    return path


def run_wrk(wrk: str, url: str, headers: Headers, seconds: float, cpu: int | None) -> LoadResult:
    command = [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency"]
    with tempfile.TemporaryDirectory(prefix="jotguard-wrk-") as scratch:
        if isinstance(headers, PerRequest):
            script = Path(scratch) / "per_request.lua"
            script.write_text(WRK_PER_REQUEST_LUA)
            table = write_per_request(headers, Path(scratch))
            command += ["-s", str(script), url, "--", str(table)]
        else:
            for name, value in headers.items():
                command += ["-H", f"{name}: {value}"]
            command.append(url)
        done = subprocess.run(
            pinned(command, cpu), capture_output=True, text=True, check=True, timeout=600
        )
    return parse_wrk(done.stdout)


# -- the fallback: asyncio, one keep-alive connection per worker ----------------------------


class _Requests:
    """The request bytes each worker sends next: one fixed request, or a prepared list."""

    def __init__(self, url: str, headers: Headers) -> None:
        parts = urlsplit(url)
        head = [f"GET {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}"]
        entries = headers.entries if isinstance(headers, PerRequest) else [headers]
        self.encoded = [
            ("\r\n".join([*head, *(f"{n}: {v}" for n, v in e.items())]) + "\r\n\r\n").encode()
            for e in entries
        ]
        self.cycle = not isinstance(headers, PerRequest)
        self.sent = 0
        self.reused = 0

    def next(self) -> bytes:
        if self.cycle:
            return self.encoded[0]
        index = self.sent
        self.sent += 1
        if index >= len(self.encoded):
            self.reused += 1
            index %= len(self.encoded)
        return self.encoded[index]


async def _worker(
    host: str,
    port: int,
    requests: _Requests,
    deadline: float,
    latencies: list[float],
    counts: list[int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(requests.next())
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


async def _python_load(url: str, headers: Headers, seconds: float) -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests = _Requests(url, headers)
    latencies: list[float] = []
    counts = [0, 0]  # bad responses, connection errors
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(_worker(host, port, requests, deadline, latencies, counts) for _ in range(CONNECTIONS))
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
        reused=requests.reused,
    )


def run_python_load(url: str, headers: Headers, seconds: float) -> LoadResult:
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

    def run(self, url: str, headers: Headers, seconds: float) -> LoadResult:
        if self.wrk is not None:
            return run_wrk(self.wrk, url, headers, seconds, self.cpu)
        return run_python_load(url, headers, seconds)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
