"""jotguard's benchmark: ``python -m bench`` (see README, "Performance").

Starts every target (jotguard variants and the peers present, bare and with the same
protection as jotguard's), then measures them side by side in one run: in each round,
every target gets its unprotected route then its protected route, the starting target
moving by one each round, the servers pinned to one CPU and the load to another. Prints
req/s, p50 and p99 for each, protected/unprotected, jotguard over each peer and over
Tornado's hello world, every ratio as the median and interquartile range of per-round
ratios; the like-for-like pairs first.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import memory
from bench.lag import LAG_CASES, measure_lag
from bench.load import CONNECTIONS, LoadGenerator, LoadResult, cpu_count
from bench.peer_targets import PEER_TYPES
from bench.stats import MIN_ROUNDS, banner, describe, paired, unreliable_reasons
from bench.targets import (
    JOTGUARD,
    REPO,
    VARIANTS,
    Context,
    Jotguard,
    Target,
    Unavailable,
    clean_env,
    cleanup_redis,
    issue_token,
    new_port,
)

ROUTES = ("/test", "/test-auth")
W = 30  # the target-name column: "jotguard sqlite+10k+noextras" fits
# Per-request header lists (a DPoP target's) are prepared for this many times the
# requests the warm-up rate predicts: a run that outgrows them is void, not slower.
HEADER_MARGIN = 2.0
WARM_UP_RATE_GUESS = 20_000  # req/s: the warm-up's own per-request lists, before any rate


@dataclass(frozen=True)
class Pair:
    """A headline comparison: jotguard's protected req/s over a peer's, per round."""

    ours: str  # a jotguard variant name
    theirs: str  # a peer name
    theirs_route: str  # "/test-auth", or "/test" for the Tornado hello-world ceiling
    label: str
    target: str


HEADLINE = [
    Pair(
        "sqlite+10k",
        "express+extras",
        "/test-auth",
        "defaults over Express + morgan + express-rate-limit + isRevoked set",
        ">= 1.5x",
    ),
    Pair(
        "sqlite+10k",
        "fastapi+extras",
        "/test-auth",
        "defaults over FastAPI + PyJWT + access log + counter + denylist",
        ">= 1.5x",
    ),
    Pair(
        "sqlite+10k+noextras",
        "express",
        "/test-auth",
        "without extras over the bare tutorial stack (Express)",
        ">= 1.5x",
    ),
    Pair(
        "sqlite+10k+noextras",
        "fastapi",
        "/test-auth",
        "without extras over bare FastAPI + PyJWT",
        ">= 1.5x",
    ),
    Pair("sqlite+10k", "tornado", "/test", "defaults over Tornado's hello world", ">= 0.80"),
]


@dataclass
class Measured:
    target: Target
    runs: dict[str, list[LoadResult]] = field(default_factory=lambda: {r: [] for r in ROUTES})
    requests_sent: int = 0  # every request of the warm-up and the rounds

    def median(self, route: str, attr: str) -> float:
        values = [getattr(r, attr) for r in self.runs[route] if r.valid]
        return statistics.median(values) if values else float("nan")

    def invalid(self) -> list[str]:
        return [
            f"{route}: {r.problems()}"
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5, help="length of one load run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=MIN_ROUNDS,
        help=f"rounds, one ratio per pair each (default, and the least for a figure: {MIN_ROUNDS})",
    )
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
    if not wanted:
        raise SystemExit("at least one jotguard variant: the first is the peers' issuer")
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
            print(f"  {target.name:<{W}} skipped: {exc}")
            target.stop()
            if target is targets[0]:
                raise SystemExit("the first jotguard target is the issuer: cannot go on") from None
            continue
        print(
            f"  {target.name:<{W}} ready on {target.url} ({time.perf_counter() - started:.1f} s):"
            f" {target.protection()}"
        )
        for caveat in target.caveats:
            print(f"  {'':<{W}} !! {caveat}")
        running.append(target)
    return running


def measure(
    targets: list[Target], ctx: Context, load: LoadGenerator, seconds: float, rounds: int
) -> list[Measured]:
    results = [Measured(t) for t in targets]
    print(f"warming up ({len(targets)} targets) ...", flush=True)
    expected: dict[tuple[int, str], int] = {}
    warm = min(2.0, seconds)
    for n, measured in enumerate(results):
        for route in ROUTES:
            headers = measured.target.request_headers(
                route, ctx, int(WARM_UP_RATE_GUESS * (warm + 1))
            )
            result = load.run(measured.target.url + route, headers, warm)
            measured.requests_sent += result.requests
            expected[n, route] = int(result.requests_per_second * seconds * HEADER_MARGIN) + 100
    for r in range(rounds):
        print(f"round {r + 1}/{rounds} (load avg {load_average()}) ...", flush=True)
        # Each round starts one target further on, so no target always runs first.
        for n in (*range(r % len(results), len(results)), *range(r % len(results))):
            measured = results[n]
            for route in ROUTES:
                headers = measured.target.request_headers(route, ctx, expected[n, route])
                result = load.run(measured.target.url + route, headers, seconds)
                measured.runs[route].append(result)
                measured.requests_sent += result.requests
    return results


def report_targets(results: list[Measured], ctx: Context) -> None:
    print()
    print(f"{'target':<{W}} {'route':<11} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}   per round")
    for m in results:
        for route in ROUTES:
            per_round = " ".join(f"{r.requests_per_second:,.0f}" for r in m.runs[route])
            print(
                f"{m.target.name if route == ROUTES[0] else '':<{W}} {route:<11}"
                f" {m.median(route, 'requests_per_second'):>9,.0f}"
                f" {m.median(route, 'p50_ms'):>8.2f} {m.median(route, 'p99_ms'):>8.2f}"
                f"   {per_round}"
            )
        print(f"{'':<{W}} protected/unprotected {describe(m.ratios)}")
        print(f"{'':<{W}} {m.target.protection()}; {access_log_use(m, ctx)}")
        for caveat in m.target.caveats:
            print(f"{'':<{W}} !! {caveat}")
        for problem in m.invalid():
            print(f"{'':<{W}} VOID RUN {problem}")


def access_log_use(m: Measured, ctx: Context) -> str:
    """What its log file took per request: proof that the access log was (or was not) on."""
    path = m.target.log_path(ctx)
    if not path.exists() or not m.requests_sent:
        return "log file: none"
    lines = m.target.log_lines(ctx) / m.requests_sent
    size = path.stat().st_size / m.requests_sent
    return f"log file: {lines:.2f} lines and {size:.0f} bytes per request"


def report_headline(results: list[Measured]) -> None:
    by_name = {m.target.name: m for m in results}
    rows = []
    for pair in HEADLINE:
        ours, theirs = by_name.get(f"jotguard {pair.ours}"), by_name.get(pair.theirs)
        if ours is None or theirs is None:
            continue
        ratios = paired(ours.rates("/test-auth"), theirs.rates(pair.theirs_route))
        unit = "x" if pair.theirs_route == "/test-auth" else ""
        caveats = "".join(f"  !! {c}" for c in ours.target.caveats + theirs.target.caveats)
        rows.append(
            f"  {pair.label} [jotguard {pair.ours} / {pair.theirs}{pair.theirs_route}]:\n"
            f"      {describe(ratios, unit)}   target {pair.target}{caveats}"
        )
    if rows:
        print()
        print("LIKE FOR LIKE: jotguard's protected req/s over ... (median of per-round ratios):")
        for row in rows:
            print(row)


def report_ratios(results: list[Measured]) -> None:
    ours = [m for m in results if m.target.kind == "jotguard"]
    peers = [m for m in results if m.target.kind == "peer"]
    if peers:
        print()
        print("every jotguard variant's protected req/s over each peer's (per-round ratios):")
        for peer in peers:
            theirs = peer.rates("/test-auth")
            for m in ours:
                name = m.target.name.removeprefix("jotguard ")
                ratios = paired(m.rates("/test-auth"), theirs)
                print(f"  {name} over {peer.target.name}: {describe(ratios, 'x')}")
    tornado = next((p for p in peers if p.target.name == "tornado"), None)
    if tornado is not None:
        print()
        print("protected req/s over plain Tornado's hello world (its /test: the ceiling):")
        for m in [*ours, *(p for p in peers if p is not tornado)]:
            ratios = paired(m.rates("/test-auth"), tornado.rates("/test"))
            print(f"  {m.target.name}: {describe(ratios)}")


def prepare_data_dir(ctx: Context) -> None:
    """Create jotguard's data directory explicitly where the build has ``jotguard init``
    (the CLI then refuses to run on a directory that does not exist)."""
    env = clean_env(
        JOTGUARD_DATA_DIR=str(ctx.data_dir),
        JOTGUARD_ENV_FILE=str(ctx.data_dir / "absent.env"),
        JOTGUARD_ISSUER=ctx.issuer,
    )
    probe = [*JOTGUARD, "init", "--help"]
    if subprocess.run(probe, env=env, cwd=REPO, capture_output=True, check=False).returncode:
        return
    subprocess.run([*JOTGUARD, "init"], env=env, cwd=REPO, capture_output=True, check=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cpus = cpu_count()
    server_cpu, load_cpu = (0, 1) if cpus >= 2 else (None, None)
    start_load = os.getloadavg()[0]
    warnings = banner(unreliable_reasons(start_load, args.rounds))
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
    for line in warnings:
        print(line)
    budget = (len(targets) * len(ROUTES) * (args.rounds * args.seconds + 2)) + 600
    prepare_data_dir(ctx)
    ttl = int(min(86400, max(3600, budget * 2)))
    ctx.token = issue_token(ctx, ttl=ttl)
    ctx.revoked_token = issue_token(ctx, ttl=ttl, sub="bench-revoked")
    try:
        print("starting targets ...")
        try:
            running = start_all(targets, ctx)
            results = measure(running, ctx, load, args.seconds, args.rounds)
        finally:
            for target in targets:
                target.stop()
        report_targets(results, ctx)
        report_headline(results)
        report_ratios(results)
        if args.lag_trials > 0:
            print()
            print("revocation lag, from instance A's 201 until instance B answers 401:")
            for case in LAG_CASES:
                print("  " + measure_lag(ctx, case, args.lag_trials).line(), flush=True)
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
    for line in warnings:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
