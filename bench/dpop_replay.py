"""What remembering one DPoP proof costs in each replay cache, side by side in one run.

Rows, in microseconds per proof (``ReplayCache.first_use`` of a fresh proof id; the
proof's signature is not part of it: ``bench.dpop_proof`` measures that):

- one at a time: each awaited before the next, as a lone client's requests;
- N at once: N awaited together, the cost per proof when many requests are in flight
  (SQLite's runner serialises them on its thread; Redis pipelines them on its pool);
- ``--contend``: the same while another process spends proofs in the same cache as
  fast as it can (a second worker under load).

Caches: memory (one process), SQLite (a file in ``--dir``, default a temporary
directory: put it on the disk the data directory is on) and Redis at
JOTGUARD_TEST_REDIS_URL (default redis://127.0.0.1:6379/15; left out if it does not
answer; its keys under a prefix of the run's own, deleted afterwards). Rounds are
interleaved, best of several; the load average is printed because figures compare only
within a run. On uvloop, as the server runs.

    .venv/bin/python -m bench.dpop_replay [--proofs 2000] [--repeats 5] [--at-once 64]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import uvloop

from backends.dpop import MemoryReplayCache, ReplayCache
from backends.dpop.replay_redis import RedisReplayCache
from backends.dpop.replay_sqlite import FILE_NAME, SQLiteReplayCache
from backends.errors import BackendUnavailable

REDIS_URL = os.environ.get("JOTGUARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
JKT = "b" * 43
LIFETIME = 120.0

Opener = Callable[[], ReplayCache]


def openers(directory: Path, prefix: str) -> dict[str, Opener]:
    return {
        "memory": lambda: MemoryReplayCache(LIFETIME),
        "sqlite": lambda: SQLiteReplayCache(directory / FILE_NAME),
        "redis": lambda: RedisReplayCache.from_url(REDIS_URL, prefix=prefix),
    }


async def spend(cache: ReplayCache, ids: itertools.count[int], count: int, at_once: int) -> float:
    """Seconds per proof for ``count`` fresh proofs, ``at_once`` in flight together."""
    start = time.perf_counter()
    for _ in range(count // at_once):
        now = time.time()
        batch = [
            cache.first_use(JKT, f"{next(ids)}", expires_at=now + LIFETIME / 2, now=now)
            for _ in range(at_once)
        ]
        if not all(await asyncio.gather(*batch)):
            raise SystemExit("a fresh proof was taken for a replay")
    return (time.perf_counter() - start) / (count // at_once * at_once)


@contextlib.asynccontextmanager
async def contender(name: str, directory: Path, prefix: str) -> AsyncIterator[None]:
    """Another process spending proofs in cache ``name`` until the block ends."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    args = [sys.executable, "-m", "bench.dpop_replay", "--spin", name, "--dir", str(directory)]
    process = await asyncio.create_subprocess_exec(
        *args, "--prefix", prefix, env=env, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    await process.stdout.readline()  # "ready": its cache answered once
    try:
        yield
    finally:
        process.terminate()
        await process.wait()


async def spin(name: str, directory: Path, prefix: str) -> None:
    cache = openers(directory, prefix)[name]()
    ids = itertools.count(10**12)  # never an id the measuring process uses
    await spend(cache, ids, 1, 1)
    print("ready", flush=True)
    while True:
        await spend(cache, ids, 64, 16)


async def measure(
    caches: dict[str, ReplayCache], ids: itertools.count[int], count: int, args: argparse.Namespace
) -> dict[tuple[str, str], float]:
    at_once, repeats = args.at_once, args.repeats
    modes = {"one at a time": 1, f"{at_once} at once": at_once}
    best: dict[tuple[str, str], float] = {}
    for _ in range(repeats):
        for (mode, width), (name, cache) in itertools.product(modes.items(), caches.items()):
            seconds = await spend(cache, ids, count, width)
            best[name, mode] = min(best.get((name, mode), float("inf")), seconds)
    return best


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(args.dir or tmp)
        prefix = f"jotguard-bench:{uuid.uuid4().hex}:"
        caches = {name: open_() for name, open_ in openers(directory, prefix).items()}
        try:
            ids = itertools.count()
            for name, cache in list(caches.items()):  # connect, create the file: not measured
                try:
                    await spend(cache, ids, 1, 1)
                except BackendUnavailable as exc:
                    print(f"{name} left out: {exc}")
                    await caches.pop(name).aclose()
            rows = await measure(caches, ids, args.proofs, args)
            shared = {n: c for n, c in caches.items() if n != "memory"} if args.contend else {}
            for name, cache in shared.items():
                async with contender(name, directory, prefix):
                    contended = await measure({name: cache}, ids, args.proofs, args)
                rows.update({(name, f"{mode}, contended"): s for (_, mode), s in contended.items()})
        finally:
            await cleanup(caches, prefix)
    report(rows, args)


async def cleanup(caches: dict[str, ReplayCache], prefix: str) -> None:
    redis = getattr(caches.get("redis"), "redis", None)
    if redis is not None:
        async for key in redis.scan_iter(match=prefix + "*", count=1000):
            await redis.delete(key)
    for cache in caches.values():
        await cache.aclose()


def report(rows: dict[tuple[str, str], float], args: argparse.Namespace) -> None:
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    print(f"{args.proofs} proofs a row, best of {args.repeats} interleaved rounds")
    names = sorted({name for name, _ in rows}, key=["memory", "sqlite", "redis"].index)
    modes = list(dict.fromkeys(mode for _, mode in rows))
    print(f"{'us/proof':30}" + "".join(f"{name:>10}" for name in names))
    for mode in modes:
        cells = (rows.get((name, mode)) for name in names)
        print(
            f"{mode:30}"
            + "".join("{:>10}".format("-" if s is None else f"{s * 1e6:.1f}") for s in cells)
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proofs", type=int, default=2000, help="proofs per row and round")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--at-once", type=int, default=64, help="proofs in flight together")
    parser.add_argument("--contend", action="store_true", help="also with another process")
    parser.add_argument("--dir", help="where the SQLite file goes (default: a temporary one)")
    parser.add_argument("--spin", help=argparse.SUPPRESS)  # the contending process
    parser.add_argument("--prefix", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    # On uvloop, as `jotguard serve` runs: the thread hop to SQLite's runner and the
    # Redis round trip both cost less there than on asyncio's own loop.
    if args.spin:
        with contextlib.suppress(KeyboardInterrupt):
            uvloop.run(spin(args.spin, Path(args.dir), args.prefix))
    else:
        uvloop.run(main(args))
