"""jotguard's benchmark: ``python -m bench`` (see README, "Performance").

Starts every target (jotguard variants and the peers present), then measures them
side by side in one run: for each round, each target gets its unprotected route then
its protected route (A B A B), the server pinned to one CPU and the load to another.
Prints req/s, p50 and p99 for each, protected/unprotected, and jotguard over each peer.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import memory
from bench.lag import measure_lag
from bench.load import CONNECTIONS, LoadGenerator, LoadResult, cpu_count
from bench.targets import (
    PEER_TYPES,
    VARIANTS,
    Context,
    Jotguard,
    Target,
    Unavailable,
    Variant,
    cleanup_redis,
    issue_token,
    new_port,
)

ROUTES = ("/test", "/test-auth")
# (variant, random wait before each revocation: one poll interval where B polls)
LAG_VARIANTS = [
    (Variant("redis (pub/sub)", "redis"), 0.0),
    (Variant("sqlite (polls every 1 s)", "sqlite"), 1.0),
]


@dataclass
class Measured:
    target: Target
    runs: dict[str, list[LoadResult]] = field(default_factory=lambda: {r: [] for r in ROUTES})

    def median(self, route: str, attr: str) -> float:
        values = [getattr(r, attr) for r in self.runs[route] if r.valid]
        return statistics.median(values) if values else float("nan")

    def invalid(self) -> list[str]:
        return [
            f"{route}: {r.bad_responses} non-2xx, {r.errors} socket errors"
            for route, results in self.runs.items()
            for r in results
            if not r.valid
        ]

    def rates(self, route: str) -> list[float | None]:
        """req/s per round, None for a void run."""
        return [r.requests_per_second if r.valid else None for r in self.runs[route]]

    @property
    def ratios(self) -> list[float]:
        """protected/unprotected per round: each pair ran back to back, so drift in the
        machine's load (other processes) mostly cancels out."""
        return paired(self.rates("/test-auth"), self.rates("/test"))


def paired(top: list[float | None], bottom: list[float | None]) -> list[float]:
    return [t / b for t, b in zip(top, bottom, strict=True) if t is not None and b]


def spread(ratios: list[float]) -> str:
    if not ratios:
        return "n/a (every run void)"
    text = f"{statistics.median(ratios):.2f}"
    if len(ratios) > 1:
        text += f" (rounds {min(ratios):.2f}-{max(ratios):.2f})"
    return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5, help="length of one load run")
    parser.add_argument("--rounds", type=int, default=3, help="A B rounds per target")
    parser.add_argument(
        "--variants",
        default=",".join(v.name for v in VARIANTS),
        help=f"jotguard variants, comma-separated (of: {', '.join(v.name for v in VARIANTS)})",
    )
    parser.add_argument(
        "--peers", default=",".join(PEER_TYPES), help="peers to run if present; '' for none"
    )
    parser.add_argument("--python-load", action="store_true", help="use the Python generator")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "jotguard-bench",
        help="where peers' dependencies are installed (reused between runs)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("JOTGUARD_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"),
        help="Redis for the redis variants (a fresh key prefix per run)",
    )
    parser.add_argument(
        "--lag-trials",
        type=int,
        default=100,
        help="revocation lag trials between two instances, per store; 0 skips",
    )
    parser.add_argument(
        "--memory-entries",
        type=int,
        default=1_000_000,
        help="revoked jtis for the mirror's memory measurement; 0 skips",
    )
    parser.add_argument("--keep", action="store_true", help="keep this run's temp directory")
    return parser.parse_args(argv)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def build_targets(args: argparse.Namespace) -> list[Target]:
    wanted = [name for name in args.variants.split(",") if name]
    known = {v.name: v for v in VARIANTS}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise SystemExit(f"unknown variant(s): {', '.join(unknown)}")
    targets: list[Target] = [Jotguard(known[name], new_port()) for name in wanted]
    for name in (p for p in args.peers.split(",") if p):
        if name not in PEER_TYPES:
            raise SystemExit(f"unknown peer {name!r} (of: {', '.join(PEER_TYPES)})")
        targets.append(PEER_TYPES[name](new_port()))
    return targets


def start_all(targets: list[Target], ctx: Context) -> list[Target]:
    """Start every target that can run here; print why the others cannot."""
    running: list[Target] = []
    for target in targets:
        try:
            started = time.perf_counter()
            target.prepare(ctx)
            target.start(ctx)
            target.wait_ready(ctx)
            target.check(ctx)
        except Unavailable as exc:
            print(f"  {target.name:<20} skipped: {exc}")
            target.stop()
            if target is targets[0]:
                raise SystemExit("the first jotguard target is the issuer: cannot go on") from None
            continue
        print(f"  {target.name:<20} ready on {target.url} ({time.perf_counter() - started:.1f} s)")
        running.append(target)
    return running


def headers_for(route: str, ctx: Context) -> dict[str, str]:
    # The unprotected route gets no token, as the tutorial calls it: the ratio then
    # includes the cost of receiving the header, which is the user's real cost.
    return {"Authorization": f"Bearer {ctx.token}"} if route == "/test-auth" else {}


def measure(
    targets: list[Target], ctx: Context, load: LoadGenerator, seconds: float, rounds: int
) -> list[Measured]:
    results = [Measured(t) for t in targets]
    print(f"warming up ({len(targets)} targets) ...", flush=True)
    for target in targets:
        for route in ROUTES:
            load.run(target.url + route, headers_for(route, ctx), min(2.0, seconds))
    for n in range(rounds):
        print(f"round {n + 1}/{rounds} (load avg {load_average()}) ...", flush=True)
        for measured in results:
            for route in ROUTES:
                url = measured.target.url + route
                measured.runs[route].append(load.run(url, headers_for(route, ctx), seconds))
    return results


def report(results: list[Measured]) -> None:
    print()
    print(f"{'target':<20} {'route':<11} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}   per round")
    for m in results:
        for route in ROUTES:
            per_round = " ".join(f"{r.requests_per_second:,.0f}" for r in m.runs[route])
            print(
                f"{m.target.name if route == ROUTES[0] else '':<20} {route:<11}"
                f" {m.median(route, 'requests_per_second'):>9,.0f}"
                f" {m.median(route, 'p50_ms'):>8.2f} {m.median(route, 'p99_ms'):>8.2f}"
                f"   {per_round}"
            )
        print(f"{'':<20} protected/unprotected {spread(m.ratios)}")
        for problem in m.invalid():
            print(f"{'':<20} VOID RUN {problem}")
    ours = [m for m in results if m.target.kind == "jotguard"]
    peers = [m for m in results if m.target.kind == "peer"]
    if peers:
        print()
        print("jotguard protected req/s over each peer's protected req/s (median of rounds):")
        for peer in peers:
            theirs = peer.rates("/test-auth")
            for m in ours:
                name = m.target.name.removeprefix("jotguard ")
                ratios = paired(m.rates("/test-auth"), theirs)
                print(f"  {name} over {peer.target.name}: {spread(ratios)}x")
    tornado = next((p for p in peers if p.target.name == "tornado"), None)
    if tornado is not None:
        print()
        print("protected req/s over plain Tornado's hello world (its /test: the ceiling):")
        for m in [*ours, *(p for p in peers if p is not tornado)]:
            ratios = paired(m.rates("/test-auth"), tornado.rates("/test"))
            print(f"  {m.target.name}: {spread(ratios)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cpus = cpu_count()
    server_cpu, load_cpu = (0, 1) if cpus >= 2 else (None, None)
    run_dir = Path(tempfile.mkdtemp(prefix="jotguard-bench-"))
    load = LoadGenerator(load_cpu, force_python=args.python_load)
    targets = build_targets(args)
    issuer = f"http://127.0.0.1:{targets[0].port}/"
    ctx = Context(
        work=args.work_dir,
        run=run_dir,
        data_dir=run_dir / "data",
        issuer=issuer,
        jwks_uri=issuer + ".well-known/jwks.json",
        redis_url=args.redis_url,
        server_cpu=server_cpu,
    )
    print(
        f"jotguard bench: {load.name}, {CONNECTIONS} connections, {args.seconds:g} s per run,"
        f" {args.rounds} rounds; {cpus} CPUs, "
        + (
            f"servers on CPU {server_cpu}, load on CPU {load_cpu}"
            if server_cpu is not None
            else "not pinned (one CPU)"
        )
    )
    print(f"load average at start: {load_average()}   python {sys.version.split()[0]}")
    budget = (len(targets) * len(ROUTES) * (args.rounds * args.seconds + 2)) + 600
    ctx.token = issue_token(ctx, ttl=int(min(86400, max(3600, budget * 2))))
    try:
        print("starting targets ...")
        try:
            running = start_all(targets, ctx)
            results = measure(running, ctx, load, args.seconds, args.rounds)
        finally:
            for target in targets:
                target.stop()
        report(results)
        if args.lag_trials > 0:
            print()
            print("revocation lag, from instance A's 201 until instance B answers 401:")
            for variant, jitter in LAG_VARIANTS:
                lag = measure_lag(ctx, variant, args.lag_trials, jitter=jitter)
                print("  " + lag.line(), flush=True)
        if args.memory_entries > 0:
            print()
            for line in memory.run(args.memory_entries):
                print(line, flush=True)
    finally:
        cleanup_redis(ctx)
        if args.keep:
            print(f"kept {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
    print(f"load average at end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
