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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import memory
from bench.dpop_targets import DEFAULT_PROOF_LIFETIME, dpop_client, proof_lifetime_for
from bench.lag import LAG_CASES, measure_lag
from bench.load import CONNECTIONS, LoadGenerator, cpu_count
from bench.peer_targets import PEER_TYPES
from bench.report import (
    ROUTES,
    Measured,
    W,
    report_dpop,
    report_headline,
    report_ratios,
    report_targets,
)
from bench.stats import MIN_ROUNDS, banner, unreliable_reasons
from bench.targets import (
    JOTGUARD,
    REPO,
    Context,
    Target,
    Unavailable,
    cleanup_redis,
    cli_env,
    new_port,
)
from bench.variants import VARIANTS, issue_token, jotguard_target

# Per-request header lists (a DPoP target's) are prepared for this many times the
# requests the warm-up rate predicts: a run that outgrows them is void, not slower.
HEADER_MARGIN = 2.0
WARM_UP_RATE_GUESS = 20_000  # req/s: the warm-up's own per-request lists, before any rate


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
    targets: list[Target] = [jotguard_target(known[name], new_port()) for name in wanted]
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


def prepare_data_dir(ctx: Context) -> None:
    """Create jotguard's data directory explicitly where the build has ``jotguard init``
    (the CLI then refuses to run on a directory that does not exist)."""
    env = cli_env(ctx)
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
    ctx = Context.for_run(
        run_dir, issuer, work=args.work_dir, redis_url=args.redis_url, server_cpu=server_cpu
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
    ctx.dpop = dpop_client(ctx, ttl, proof_lifetime_for(args.seconds))
    if ctx.dpop.proof_lifetime != DEFAULT_PROOF_LIFETIME:
        print(
            f"DPoP targets accept proofs for {ctx.dpop.proof_lifetime} s"
            f" (JOTGUARD_DPOP_PROOF_LIFETIME; default {DEFAULT_PROOF_LIFETIME} s):"
            f" a batch signed before a {args.seconds:g} s run must outlast it"
        )
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
        report_dpop(results)
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
