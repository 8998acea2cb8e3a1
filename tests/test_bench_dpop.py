"""The benchmark's DPoP targets: the tokens bound to the run's key, the proofs prepared for
a run (one per request, each valid once for exactly the URL it is sent to), the probes a
DPoP target must pass before it is measured, and the DPoP lines of the report. Each
proof is checked with jotguard's own verifier; no server is started here."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from backends.auth.compact import parse_compact
from backends.auth.local import LocalKeyBackend
from backends.dpop import DPoPPolicy, DPoPVerifier, ReplayCache, jwk_thumbprint, verify_proof
from backends.dpop.proof import access_token_hash
from backends.errors import AuthError
from bench import targets
from bench.__main__ import build_targets, parse_args
from bench.dpop_targets import (
    DEFAULT_PROOF_LIFETIME,
    LEEWAY,
    DPoPClient,
    DPoPTarget,
    dpop_client,
    proof_lifetime_for,
)
from bench.load import LoadResult, PerRequest
from bench.peer_targets import PEER_TYPES, ExpressDPoPPeer
from bench.report import DPOP_PAIRS, Measured, pair_rows
from bench.targets import Context, Target, Unavailable, claims_of, cli_env
from bench.variants import VARIANTS, JotguardDPoP, jotguard_target
from webapp.config.settings import Settings
from webapp.service.services import local_issuer, local_keyring

URL = "http://127.0.0.1:4321/test-auth"
TTL = 3600


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Context, LocalKeyBackend]:
    """A run's context with a keyring, its Bearer tokens and its DPoP client, made once:
    key generation is the slow part, and nothing here changes them."""
    tmp = tmp_path_factory.mktemp("bench-dpop")
    ctx = Context.for_run(
        tmp, "http://127.0.0.1:4321/", work=tmp / "work", redis_url="redis://unused"
    )
    ctx.data_dir.mkdir()
    settings = Settings.load(environ=cli_env(ctx))
    keyring = local_keyring(settings)
    keyring.ensure()
    issuer = local_issuer(settings, keyring)
    ctx.token = issuer.sign(issuer.claims_for("bench-user", ttl=TTL)).token
    ctx.revoked_token = issuer.sign(issuer.claims_for("bench-revoked", ttl=TTL)).token
    ctx.dpop = dpop_client(ctx, TTL, DEFAULT_PROOF_LIFETIME)
    backend = LocalKeyBackend(
        keyring, issuer=ctx.issuer, audience=settings.audience, leeway=settings.leeway
    )
    return ctx, backend


def client_of(ctx: Context) -> DPoPClient:
    assert ctx.dpop is not None
    return ctx.dpop


class ResourceServer:
    """What a DPoP resource server accepts, from jotguard's own token and proof checks:
    the DPoP scheme, a valid token bound by ``cnf.jkt``, one valid proof spent once, and
    a token that is not the run's revoked one."""

    def __init__(
        self, ctx: Context, backend: LocalKeyBackend, url: str, replay: ReplayCache | None = None
    ) -> None:
        self.backend = backend
        self.url = url
        policy = DPoPPolicy(proof_lifetime=client_of(ctx).proof_lifetime)
        self.verifier = DPoPVerifier(policy, replay=replay)
        self.revoked_jti: str = claims_of(ctx.revoked_token)["jti"]

    async def accepts(self, headers: dict[str, str]) -> bool:
        scheme, _, token = headers.get("Authorization", "").partition(" ")
        if scheme != "DPoP" or "DPoP" not in headers:
            return False
        try:
            principal = await self.backend.authenticate(parse_compact(token))
            await self.verifier.verify(
                [headers["DPoP"]],
                method="GET",
                url=self.url,
                access_token=token,
                expected_jkt=principal.claims["cnf"]["jkt"],
            )
        except AuthError:
            return False
        return principal.token_id != self.revoked_jti


def test_the_default_lifetime_is_kept_unless_a_run_would_outlast_it() -> None:
    assert proof_lifetime_for(3) == DEFAULT_PROOF_LIFETIME
    assert proof_lifetime_for(5) == DEFAULT_PROOF_LIFETIME
    for seconds in (45, 120.5, 600):
        lifetime = proof_lifetime_for(seconds)
        assert lifetime > DEFAULT_PROOF_LIFETIME
        assert lifetime >= math.ceil(seconds) + 10  # a batch signed before the run lasts it


def test_the_tokens_are_bound_to_the_run_key_and_the_revoked_one_shares_its_jti(
    run: tuple[Context, LocalKeyBackend],
) -> None:
    ctx, backend = run
    client = client_of(ctx)
    jkt = jwk_thumbprint(client.key)

    for token in (client.token, client.revoked_token):
        principal = asyncio.run(backend.authenticate(parse_compact(token)))
        assert principal.claims["cnf"] == {"jkt": jkt}
        assert principal.issuer == ctx.issuer
    assert claims_of(client.token)["sub"] == "bench-user"
    assert claims_of(client.revoked_token)["jti"] == claims_of(ctx.revoked_token)["jti"]
    assert claims_of(client.token)["jti"] != claims_of(ctx.revoked_token)["jti"]


def test_each_prepared_proof_is_valid_once_for_its_url_method_and_token(
    run: tuple[Context, LocalKeyBackend],
) -> None:
    ctx, _ = run
    client = client_of(ctx)
    entries = client.per_request(URL, 50)
    policy = DPoPPolicy(proof_lifetime=client.proof_lifetime)
    jkt = jwk_thumbprint(client.key)

    assert isinstance(entries, PerRequest)
    assert len(entries.entries) == 50
    jtis = set()
    for entry in entries.entries:
        assert entry["Authorization"] == f"DPoP {client.token}"
        proof = verify_proof(
            entry["DPoP"],
            method="GET",
            url=URL,
            policy=policy,
            now=time.time(),
            access_token=client.token,
            expected_jkt=jkt,
        )
        jtis.add(proof.jti)
        payload = claims_of(entry["DPoP"])
        assert (payload["htm"], payload["htu"]) == ("GET", URL)
        assert payload["ath"] == access_token_hash(client.token)
    assert len(jtis) == 50, "two requests would carry the same proof"
    assert claims_of(entries.entries[0]["DPoP"])["iat"] == pytest.approx(time.time(), abs=5)


class Answers(DPoPTarget):
    """A DPoP target with nothing to start: its answers are a :class:`ResourceServer`'s."""

    name = "dpop under test"
    kind = "jotguard"


class Forgetful:
    """A replay cache that remembers nothing: a server that accepts a proof twice."""

    async def first_use(self, jkt: str, jti: str, *, expires_at: float, now: float) -> bool:
        return True

    async def aclose(self) -> None:
        pass


class NoHeaders:
    headers: dict[str, str] = {}


def answered_by(server: ResourceServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """``Target.check``'s requests go to ``server`` instead of a process."""

    def get(url: str, headers: dict[str, str] | None = None, timeout: float = 5) -> int:
        if url.endswith("/test"):
            return 200
        return 200 if asyncio.run(server.accepts(dict(headers or {}))) else 401

    monkeypatch.setattr(targets, "get", get)
    monkeypatch.setattr(targets, "fetch", lambda url, headers=None, timeout=5: NoHeaders())


def test_every_refusal_probe_is_refused_by_jotguards_checks(
    run: tuple[Context, LocalKeyBackend],
) -> None:
    ctx, backend = run
    target = Answers(4321)
    target.revoked = 10_000
    server = ResourceServer(ctx, backend, target.url + "/test-auth")

    probes = target.probes(ctx)

    whats = [p.what for p in probes]
    needed = ["the same proof again", "a stale proof", "a proof by another key"]
    needed += ["a proof for another URL", "a proof for another token", "a revoked bound token"]
    assert set(needed) <= set(whats)
    for probe in probes:
        if probe.path == "/test":
            continue
        accepted = asyncio.run(server.accepts(dict(probe.headers)))
        assert accepted == probe.accepted, probe.what


def test_a_target_passing_every_probe_is_measured(
    run: tuple[Context, LocalKeyBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, backend = run
    target = Answers(4321)
    answered_by(ResourceServer(ctx, backend, target.url + "/test-auth"), monkeypatch)

    target.check(ctx)


def test_a_target_that_accepts_a_replayed_proof_is_not_measured(
    run: tuple[Context, LocalKeyBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, backend = run
    target = Answers(4321)
    server = ResourceServer(ctx, backend, target.url + "/test-auth", replay=Forgetful())
    answered_by(server, monkeypatch)

    with pytest.raises(Unavailable, match=r"the same proof again\) answered 200, expected 401"):
        target.check(ctx)


def test_express_dpop_may_refuse_with_400_as_its_library_does(
    run: tuple[Context, LocalKeyBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, _ = run
    peer = PEER_TYPES["express-dpop"](4321)
    assert isinstance(peer, ExpressDPoPPeer)
    answers = iter([200, 200, 400, 401, 400, 400, 400, 400, 400, 401, 400, 401])
    monkeypatch.setattr(targets, "get", lambda url, headers=None, timeout=5: next(answers))
    monkeypatch.setattr(targets, "fetch", lambda url, headers=None, timeout=5: NoHeaders())

    peer.check(ctx)  # 400 and 401 are both refusals here; a 200 would not be

    answers = iter([200, 200, 200])
    with pytest.raises(Unavailable, match="expected 400 or 401"):
        peer.check(ctx)


def test_dpop_targets_name_their_url_and_lifetime_in_their_settings(
    run: tuple[Context, LocalKeyBackend],
) -> None:
    ctx, _ = run
    variant = next(v for v in VARIANTS if v.name == "dpop")
    target = jotguard_target(variant, 4321)
    assert isinstance(target, JotguardDPoP)
    target.store_url = "sqlite:///unused"

    env = target.settings(ctx)
    assert env["JOTGUARD_PUBLIC_URL"] == "http://127.0.0.1:4321"
    assert "JOTGUARD_DPOP_PROOF_LIFETIME" not in env

    saved, lifetime = ctx.dpop, proof_lifetime_for(300)
    ctx.dpop = DPoPClient(client_of(ctx).key, "t", "r", lifetime)
    try:
        assert target.settings(ctx)["JOTGUARD_DPOP_PROOF_LIFETIME"] == str(lifetime)
        peer_env = ExpressDPoPPeer(4321).env(ctx)
        assert (peer_env["DPOP_PROOF_LIFETIME"], peer_env["DPOP_LEEWAY"]) == (
            str(lifetime),
            str(LEEWAY),
        )
    finally:
        ctx.dpop = saved


def test_dpop_variants_are_built_as_dpop_targets_and_their_twins_exist() -> None:
    names = [v.name for v in VARIANTS]
    built = build_targets(parse_args(["--variants", "sqlite,dpop", "--peers", "express-dpop"]))
    assert [type(t).__name__ for t in built] == ["Jotguard", "JotguardDPoP", "ExpressDPoPPeer"]
    for pair in DPOP_PAIRS:
        assert pair.ours in names
        twin = pair.theirs.removeprefix("jotguard ")
        assert twin in names or pair.theirs in PEER_TYPES


def measured(target: Target, rates: list[float]) -> Measured:
    m = Measured(target)
    m.runs["/test-auth"] = [LoadResult(rate, 1.0, 2.0, int(rate), 0, 0) for rate in rates]
    return m


def test_the_report_prints_dpop_over_bearer_and_over_express_dpop() -> None:
    by_name = {v.name: v for v in VARIANTS}
    dpop = measured(jotguard_target(by_name["dpop+10k+noextras"], 1), [900, 800, 850])
    bearer = measured(jotguard_target(by_name["sqlite+10k+noextras"], 2), [1000, 1000, 1000])
    express = measured(PEER_TYPES["express-dpop"](3), [450, 400, 500])

    rows = pair_rows([dpop, bearer, express], DPOP_PAIRS)

    assert len(rows) == 2  # "dpop" and "jotguard sqlite" did not run: no rows of theirs
    assert "jotguard dpop+10k+noextras / jotguard sqlite+10k+noextras/test-auth" in rows[0]
    assert "0.85x (IQR 0.82-0.88, 3 rounds)   target >= 0.8x" in rows[0]
    assert "jotguard dpop+10k+noextras / express-dpop/test-auth" in rows[1]
    assert "2.00x (IQR 1.85-2.00, 3 rounds)   target >= 1.5x" in rows[1]
