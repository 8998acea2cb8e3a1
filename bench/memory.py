"""The revocation mirror's memory per revoked entry, with 1,000,000 revoked jtis.

An SQLite store is filled in bulk (one transaction through the store's own schema:
a million acknowledged writes would take hours of fsyncs), then a mirror loads it
through the real change feed, exactly as ``jotguard serve`` does at start. Two
measurements, each in a fresh process: tracemalloc (Python objects the mirror keeps,
precise) and the resident set size (what the operating system sees, including the
allocator's slack).

    python -m bench.memory [--entries 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from backends.revocation.base import RevocationStore
from backends.revocation.factory import open_store
from backends.revocation.mirror import RevocationMirror

ISSUER = "http://127.0.0.1:8888/"


def fill(path: Path, entries: int) -> None:
    """``entries`` live jti revocations, as ``revoke_token`` would have stored them."""
    store = open_store(f"sqlite:///{path}")
    asyncio.run(_ping_and_close(store))  # creates the schema
    now = time.time()
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO revocation_entries (kind, issuer, value, id, cutoff, expires_at,"
            " created_at, reason, actor, seq, removed) VALUES"
            " ('jti', ?, ?, ?, NULL, ?, ?, NULL, NULL, ?, 0)",
            (
                (ISSUER, secrets.token_urlsafe(16), secrets.token_urlsafe(12), now + 7200, now, n)
                for n in range(1, entries + 1)
            ),
        )
        conn.execute("UPDATE revocation_meta SET value = ? WHERE name = 'seq'", (entries,))


async def _ping_and_close(store: RevocationStore) -> None:
    await store.ping()
    await store.close()


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def _load(url: str) -> tuple[RevocationMirror, float]:
    mirror = RevocationMirror(open_store(url))
    started = time.perf_counter()
    await mirror.sync()
    seconds = time.perf_counter() - started
    await mirror.store.close()
    return mirror, seconds


def measure(path: Path, method: str) -> dict[str, float]:
    """Run in a fresh process: the mirror's retained memory by ``method``."""
    gc.collect()
    if method == "tracemalloc":
        tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0] if method == "tracemalloc" else rss_bytes()
    mirror, seconds = asyncio.run(_load(f"sqlite:///{path}"))
    gc.collect()
    result: dict[str, float] = {}
    if method == "tracemalloc":
        current, peak = tracemalloc.get_traced_memory()
        result.update(retained=current - base, peak=peak - base)
    else:
        result.update(retained=rss_bytes() - base)
    result.update(entries=len(mirror.replica.denylist), load_seconds=seconds)
    return result


def run(entries: int) -> list[str]:
    """Fill a store, measure both ways in child processes; the lines to print."""
    with tempfile.TemporaryDirectory(prefix="jotguard-memory-") as tmp:
        path = Path(tmp) / "revocations.sqlite3"
        started = time.perf_counter()
        fill(path, entries)
        filled = time.perf_counter() - started
        lines = [f"filled an SQLite store with {entries:,} revoked jtis in {filled:.1f} s"]
        for method in ("tracemalloc", "rss"):
            done = subprocess.run(
                [sys.executable, "-m", "bench.memory", "--measure", method, str(path)],
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(done.stdout)
            per_entry = result["retained"] / result["entries"]
            line = (
                f"mirror memory by {method:<11}: {result['retained'] / 2**20:7.1f} MiB for"
                f" {int(result['entries']):,} entries = {per_entry:5.0f} bytes per entry"
            )
            if "peak" in result:
                line += f" (peak while loading {result['peak'] / 2**20:.0f} MiB)"
            lines.append(line + f"; loaded in {result['load_seconds']:.1f} s")
        return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--measure", choices=["tracemalloc", "rss"], help=argparse.SUPPRESS)
    parser.add_argument("path", nargs="?", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.path, args.measure)))
        return
    for line in run(args.entries):
        print(line)


if __name__ == "__main__":
    main()
