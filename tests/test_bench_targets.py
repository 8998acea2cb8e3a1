"""The benchmark's targets say what they do per request, and say loudly when a setting
they were given is not honoured: jotguard without extras asks for
``JOTGUARD_RATELIMIT_DEFAULT=off``, and a build that refuses it, or accepts it and still
counts, is flagged rather than measured as if it were off. No server is started here."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from bench.peer_targets import PEER_TYPES
from bench.seed import CUTOFF_EVERY
from bench.targets import UNREACHABLE_LIMITS, Context, Target, Unavailable, claims_of
from bench.variants import VARIANTS, Jotguard

NO_EXTRAS = next(v for v in VARIANTS if v.name == "sqlite+10k+noextras")
REFUSED = (
    "exited at start:\njotguard: JOTGUARD_RATELIMIT_DEFAULT: must be limits such as"
    " 10/minute;100/hour (got 'off')"
)


def token_with(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    context = Context.for_run(
        tmp_path,
        "http://127.0.0.1:1/",
        work=tmp_path / "work",
        redis_url="redis://127.0.0.1:6379/15",
    )
    context.revoked_token = token_with({"jti": "probe-jti", "sub": "bench-revoked"})
    return context


def test_without_extras_asks_for_no_access_log_and_no_rate_limit(ctx: Context) -> None:
    target = Jotguard(NO_EXTRAS, 1)
    target.store_url = "sqlite:///unused"

    _, env, _ = target.command(ctx)

    assert env["JOTGUARD_RATELIMIT_DEFAULT"] == "off"
    assert env["JOTGUARD_LOG_LEVEL"] == "WARNING"
    assert (target.access_log, target.rate_limited, target.revoked) == (False, False, 10_000)
    assert target.caveats == []


def test_a_build_refusing_off_is_rerun_counting_and_flagged(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = Jotguard(NO_EXTRAS, 1)
    target.store_url = "sqlite:///unused"
    starts: list[dict[str, str]] = []
    outcomes = [Unavailable(REFUSED), None]

    def start(ctx: Context) -> None:
        starts.append(target.command(ctx)[1])

    def wait_ready(self: Target, ctx: Context, timeout: float = 60) -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    monkeypatch.setattr(target, "start", start)
    monkeypatch.setattr(Target, "wait_ready", wait_ready)

    target.wait_ready(ctx)

    assert [env["JOTGUARD_RATELIMIT_DEFAULT"] for env in starts] == [
        UNREACHABLE_LIMITS["JOTGUARD_RATELIMIT_DEFAULT"]
    ]
    assert target.rate_limited
    (caveat,) = target.caveats
    assert "JOTGUARD_RATELIMIT_DEFAULT=off NOT HONOURED" in caveat


def test_other_start_failures_are_not_taken_for_a_refused_off(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = Jotguard(NO_EXTRAS, 1)

    def wait_ready(self: Target, ctx: Context, timeout: float = 60) -> None:
        raise Unavailable("exited at start:\nOSError: address already in use")

    monkeypatch.setattr(Target, "wait_ready", wait_ready)

    with pytest.raises(Unavailable, match="address already in use"):
        target.wait_ready(ctx)
    assert target.caveats == []


def test_off_accepted_but_still_counting_is_measured_and_flagged(ctx: Context) -> None:
    target = Jotguard(NO_EXTRAS, 1)
    target.store_url = "sqlite:///unused"
    target.command(ctx)

    target.rate_limit_mismatch(limited=True)

    assert target.rate_limited
    (caveat,) = target.caveats
    assert "NOT HONOURED" in caveat
    assert "still answers with RateLimit headers" in caveat


@pytest.mark.parametrize("name", ["express+extras", "fastapi+extras", "express", "tornado"])
def test_a_peer_not_doing_what_it_declares_is_not_measured(name: str) -> None:
    peer = PEER_TYPES[name](1)

    with pytest.raises(Unavailable, match="RateLimit"):
        peer.rate_limit_mismatch(limited=not peer.rate_limited)


def test_like_for_like_peers_declare_jotguards_protection() -> None:
    defaults = next(v for v in VARIANTS if v.name == "sqlite+10k")
    for name in ("express+extras", "fastapi+extras"):
        peer = PEER_TYPES[name](1)
        assert (peer.access_log, peer.rate_limited, peer.revoked) == (True, True, defaults.revoked)
    for name in ("express", "fastapi", "tornado"):
        peer = PEER_TYPES[name](1)
        assert (peer.access_log, peer.rate_limited, peer.revoked) == (False, False, 0)


def test_the_revoked_set_is_shared_and_holds_the_probe_token(ctx: Context) -> None:
    entries = ctx.revoked(10_000)

    assert len(entries) == 10_000
    assert "probe-jti" in entries.jtis
    assert len(entries.subjects) == len(entries.clients) == 10_000 // CUTOFF_EVERY
    assert ctx.revoked(10_000) is entries
    written = json.loads(ctx.revoked_file(10_000).read_text())
    assert written["issuer"] == ctx.issuer
    assert set(written["jtis"]) == set(entries.jtis)
    assert written["subjects"] == entries.subjects
    assert written["clients"] == entries.clients


def test_claims_of_reads_an_unpadded_payload() -> None:
    assert claims_of(token_with({"jti": "a", "n": 1}))["jti"] == "a"
