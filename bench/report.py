"""What ``python -m bench`` prints after the rounds: each target's figures, the
like-for-like pairs, and every ratio, each as the median and IQR of per-round ratios."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from bench.load import LoadResult
from bench.stats import describe, paired
from bench.targets import Context, Target

ROUTES = ("/test", "/test-auth")
W = 30  # the target-name column: "jotguard sqlite+10k+noextras" fits


@dataclass(frozen=True)
class Pair:
    """A headline comparison: jotguard's protected req/s over another target's, per round."""

    ours: str  # a jotguard variant name
    theirs: str  # a target's name: a peer's, or "jotguard <variant>"
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

# Each DPoP variant over its Bearer twin (same settings, same run), and over Express
# verifying the same kind of proofs (bench/peers/express/dpop.js).
DPOP_PAIRS = [
    Pair("dpop", "jotguard sqlite", "/test-auth", "DPoP over Bearer, defaults", ">= 0.8x"),
    Pair(
        "dpop+10k+noextras",
        "jotguard sqlite+10k+noextras",
        "/test-auth",
        "DPoP over Bearer, without extras",
        ">= 0.8x",
    ),
    Pair(
        "dpop",
        "express-dpop",
        "/test-auth",
        "DPoP on defaults (access log, rate limit) over bare Express + express-oauth2-jwt-bearer",
        ">= 1.5x",
    ),
    Pair(
        "dpop+10k+noextras",
        "express-dpop",
        "/test-auth",
        "DPoP without extras over Express + express-oauth2-jwt-bearer (DPoP) + jti cache",
        ">= 1.5x",
    ),
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


def pair_rows(results: list[Measured], pairs: list[Pair]) -> list[str]:
    """One row per pair whose two targets both ran: the per-round ratios, the target."""
    by_name = {m.target.name: m for m in results}
    rows = []
    for pair in pairs:
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
    return rows


def report_pairs(results: list[Measured], pairs: list[Pair], title: str) -> None:
    rows = pair_rows(results, pairs)
    if rows:
        print()
        print(title)
        for row in rows:
            print(row)


def report_headline(results: list[Measured]) -> None:
    title = "LIKE FOR LIKE: jotguard's protected req/s over ... (median of per-round ratios):"
    report_pairs(results, HEADLINE, title)


def report_dpop(results: list[Measured]) -> None:
    title = "DPoP (RFC 9449), a fresh proof per request: protected req/s over ..."
    report_pairs(results, DPOP_PAIRS, title)


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
