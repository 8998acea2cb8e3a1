"""jotguard as a benchmark target: its variants (store, revocations present, settings) and
the token the run is measured with. Adding a variant is one entry in :data:`VARIANTS`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from backends.errors import BackendUnavailable
from bench.dpop_targets import DEFAULT_PROOF_LIFETIME, DPoPTarget
from bench.targets import (
    AUDIENCE,
    JOTGUARD,
    REPO,
    UNREACHABLE_LIMITS,
    Context,
    Target,
    Unavailable,
    clean_env,
    cli_env,
)


@dataclass(frozen=True)
class Variant:
    """One way to run jotguard: its revocation store, entries present, extra settings."""

    name: str
    store: str  # "sqlite" or "redis"
    revoked: int = 0
    env: Callable[[Context], dict[str, str]] = field(default=lambda ctx: {})
    note: str = ""
    dpop: bool = False  # measured with a DPoP-bound token and a proof per request


def _remote_issuer(ctx: Context) -> dict[str, str]:
    # The token's issuer becomes a remote issuer whose keys come from its JWKS over HTTP,
    # as an Auth0 tenant's would; this instance's own local issuer is another name.
    remote = [{"issuer": ctx.issuer, "audience": AUDIENCE, "jwks_uri": ctx.jwks_uri}]
    return {
        "JOTGUARD_ISSUER": "http://127.0.0.1:9/jwks-variant-local/",
        "JOTGUARD_REMOTE_ISSUERS": json.dumps(remote),
    }


# jotguard's per-request extras off (the revocation check stays on): the peer to compare
# it with is the bare tutorial stack. "off" for a policy comes with issue 16; a build that
# refuses it is run with the default policy out of reach instead, and said so loudly.
NO_EXTRAS = {"JOTGUARD_LOG_LEVEL": "WARNING", "JOTGUARD_RATELIMIT_DEFAULT": "off"}

VARIANTS: list[Variant] = [
    Variant("sqlite", "sqlite", note="embedded defaults"),
    Variant("sqlite+10k", "sqlite", revoked=10_000),
    Variant("redis", "redis"),
    Variant("redis+10k", "redis", revoked=10_000),
    Variant("jwks+sqlite+10k", "sqlite", revoked=10_000, env=_remote_issuer),
    # What the access log (one INFO line per request, on by default) costs.
    Variant("sqlite+nolog", "sqlite", env=lambda ctx: {"JOTGUARD_LOG_LEVEL": "WARNING"}),
    Variant("sqlite+10k+noextras", "sqlite", revoked=10_000, env=lambda ctx: dict(NO_EXTRAS)),
    # RFC 9449: each the twin of a Bearer variant above (its settings, same run), with a
    # DPoP-bound token and a fresh proof on every request (bench.dpop_targets).
    Variant("dpop", "sqlite", dpop=True, note="sqlite's settings, DPoP"),
    Variant(
        "dpop+10k+noextras", "sqlite", revoked=10_000, env=lambda ctx: dict(NO_EXTRAS), dpop=True
    ),
]


class Jotguard(Target):
    kind = "jotguard"

    def __init__(self, variant: Variant, port: int) -> None:
        super().__init__(port)
        self.variant = variant
        self.name = f"jotguard {variant.name}"
        self.store_url = ""
        self.off_refused = False  # this build refused JOTGUARD_RATELIMIT_DEFAULT=off
        self.revoked = variant.revoked

    def prepare(self, ctx: Context) -> None:
        from bench.seed import seed_store, store_url

        self.store_url = store_url(self.variant, ctx)
        entries = ctx.revoked(self.variant.revoked) if self.variant.revoked else None
        try:
            seconds = seed_store(self.store_url, entries)
        except BackendUnavailable as exc:
            raise Unavailable(f"the store is down: {exc}") from None
        if entries is not None:
            print(f"  {self.name:<30} seeded {len(entries):,} revocations in {seconds:.1f} s")

    def settings(self, ctx: Context) -> dict[str, str]:
        env = {
            "JOTGUARD_DATA_DIR": str(ctx.data_dir),
            "JOTGUARD_ENV_FILE": str(ctx.data_dir / "absent.env"),
            "JOTGUARD_ISSUER": ctx.issuer,
            "JOTGUARD_REVOCATION_STORE": self.store_url,
            **UNREACHABLE_LIMITS,
            **self.variant.env(ctx),
        }
        if self.off_refused:
            env["JOTGUARD_RATELIMIT_DEFAULT"] = UNREACHABLE_LIMITS["JOTGUARD_RATELIMIT_DEFAULT"]
        return env

    def command(self, ctx: Context) -> tuple[list[str], dict[str, str], Path]:
        env = self.settings(ctx)
        self.access_log = env.get("JOTGUARD_LOG_LEVEL", "INFO").upper() in ("DEBUG", "INFO")
        self.rate_limited = env["JOTGUARD_RATELIMIT_DEFAULT"] != "off"
        command = [*JOTGUARD, "serve", "--port", str(self.port)]
        return command, clean_env(**env), REPO

    def wait_ready(self, ctx: Context, timeout: float = 60) -> None:
        try:
            super().wait_ready(ctx, timeout)
        except Unavailable as exc:
            wanted_off = self.variant.env(ctx).get("JOTGUARD_RATELIMIT_DEFAULT") == "off"
            if not (wanted_off and "JOTGUARD_RATELIMIT_DEFAULT" in str(exc)):
                raise
            self.off_refused = True
            self.caveats.append(
                "JOTGUARD_RATELIMIT_DEFAULT=off NOT HONOURED: this build refused it at start;"
                " run with the default policy counting, out of reach"
            )
            self.start(ctx)
            super().wait_ready(ctx, timeout)

    def rate_limit_mismatch(self, limited: bool) -> None:
        if limited and not self.rate_limited:
            # The setting was accepted but the policy still counts: report, still measure.
            self.rate_limited = True
            self.caveats.append(
                "JOTGUARD_RATELIMIT_DEFAULT=off NOT HONOURED: accepted, but /test-auth still"
                " answers with RateLimit headers"
            )
            return
        super().rate_limit_mismatch(limited)


class JotguardDPoP(DPoPTarget, Jotguard):
    """A DPoP variant: its public URL is the one its proofs' ``htu`` names."""

    def settings(self, ctx: Context) -> dict[str, str]:
        env = super().settings(ctx)
        env["JOTGUARD_PUBLIC_URL"] = self.url
        lifetime = self.client(ctx).proof_lifetime
        if lifetime != DEFAULT_PROOF_LIFETIME:
            env["JOTGUARD_DPOP_PROOF_LIFETIME"] = str(lifetime)
        return env


def jotguard_target(variant: Variant, port: int) -> Jotguard:
    return (JotguardDPoP if variant.dpop else Jotguard)(variant, port)


def issue_token(
    ctx: Context, ttl: int, *, sub: str = "bench-user", scope: str = "read:bench"
) -> str:
    """A token from jotguard's own CLI (by default the one every target is measured with)."""
    env = cli_env(ctx)
    if not ctx.data_dir.exists():  # the CLI acts only on a data directory made for it
        subprocess.run([*JOTGUARD, "init"], env=env, cwd=REPO, capture_output=True, check=True)
    issue = ["token", "issue", "--sub", sub, "--scope", scope, "--ttl", str(ttl)]
    done = subprocess.run(
        [*JOTGUARD, *issue],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()
