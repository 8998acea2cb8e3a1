"""Each proof is accepted once: what only the memory and Redis caches do, and DPoPVerifier.
(What every replay cache does is in test_dpop_replay_contract.py.)"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

from backends.dpop import (
    DPoPKeyMismatch,
    DPoPPolicy,
    DPoPVerifier,
    InvalidDPoPProof,
    MemoryReplayCache,
    StatelessNonces,
    UseDPoPNonce,
    jwk_thumbprint,
    make_proof,
)
from backends.dpop.replay_redis import RedisReplayCache
from backends.errors import BackendUnavailable
from tests.cli import free_port
from tests.clock import FakeClock
from tests.conftest import redis_url
from tests.dpop_support import TOKEN, URL, key_for
from tests.redis_keys import own_prefix

NOW = 1_700_000_000.0
JKT = "j" * 43


# -- in memory --------------------------------------------------------------------------


async def test_memory_cache_remembers_for_at_least_its_window_and_then_forgets():
    cache = MemoryReplayCache(120)
    start = 120 * (NOW // 120) + 119  # the last second of a generation: the worst case
    assert await cache.first_use(JKT, "a", expires_at=start + 120, now=start)
    assert not await cache.first_use(JKT, "a", expires_at=start + 120, now=start + 120)
    # Two generations on (121 s after the worst-case insert) it is gone.
    assert await cache.first_use(JKT, "a", expires_at=start + 241, now=start + 121)


async def test_memory_cache_refuses_entries_that_outlive_its_window():
    cache = MemoryReplayCache(120)
    with pytest.raises(ValueError, match="outlives"):
        await cache.first_use(JKT, "a", expires_at=NOW + 121, now=NOW)


# -- in Redis ---------------------------------------------------------------------------


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    async with own_prefix("dpop:") as prefix:
        yield prefix


@pytest.fixture
async def two_instances(redis_prefix: str) -> AsyncIterator[tuple[RedisReplayCache, ...]]:
    caches = tuple(RedisReplayCache.from_url(redis_url(), prefix=redis_prefix) for _ in range(2))
    yield caches
    for cache in caches:
        await cache.aclose()


@pytest.mark.redis
async def test_redis_entries_expire_with_the_proof(two_instances, redis_prefix):
    cache = two_instances[0]
    assert await cache.first_use(JKT, "a", expires_at=NOW + 90, now=NOW)
    keys = [key async for key in cache.redis.scan_iter(match=f"{redis_prefix}*")]
    assert len(keys) == 1
    assert len(keys[0]) == len(redis_prefix) + 22  # fixed size, whatever the jti
    assert 89 <= await cache.redis.ttl(keys[0]) <= 91


# -- DPoPVerifier: the proof checks, then the cache -------------------------------------


def _proof(clock: FakeClock, **kwargs) -> str:
    return make_proof(key_for("ES256"), "GET", URL, iat=int(clock.now), **kwargs)


async def test_the_verifier_refuses_a_replayed_proof():
    clock = FakeClock(NOW)
    verifier = DPoPVerifier(clock=clock)
    proof = _proof(clock, access_token=TOKEN)
    jkt = jwk_thumbprint(key_for("ES256"))
    verified = await verifier.verify([proof], method="GET", url=URL, access_token=TOKEN)
    assert verified.jkt == jkt
    clock.advance(30)
    with pytest.raises(InvalidDPoPProof) as replayed:
        await verifier.verify([proof], method="GET", url=URL, access_token=TOKEN)
    assert (replayed.value.error, replayed.value.reason) == ("invalid_dpop_proof", "dpop_replay")


async def test_a_refused_proof_is_not_spent():
    clock = FakeClock(NOW)
    verifier = DPoPVerifier(clock=clock)
    proof = _proof(clock, access_token=TOKEN)
    with pytest.raises(InvalidDPoPProof) as wrong_token:
        await verifier.verify([proof], method="GET", url=URL, access_token="another")
    assert wrong_token.value.reason == "dpop_ath"
    await verifier.verify([proof], method="GET", url=URL, access_token=TOKEN)


async def test_the_memory_cache_outlasts_every_acceptable_proof():
    # The oldest acceptable proof is checked, then replayed as late as it stays acceptable.
    policy = DPoPPolicy(proof_lifetime=60, leeway=30)
    for age in (-policy.leeway, 0, policy.proof_lifetime + policy.leeway):
        clock = FakeClock(NOW + 7)
        verifier = DPoPVerifier(policy, clock=clock)
        proof = make_proof(key_for("ES256"), "GET", URL, iat=clock.now - age)
        await verifier.verify([proof], method="GET", url=URL)
        remaining = (clock.now - age) + policy.proof_lifetime + policy.leeway - clock.now
        clock.advance(remaining)
        with pytest.raises(InvalidDPoPProof) as replayed:
            await verifier.verify([proof], method="GET", url=URL)
        assert replayed.value.reason == "dpop_replay"


@pytest.mark.redis
async def test_two_instances_sharing_redis_accept_a_proof_once(two_instances):
    clock = FakeClock(NOW)
    first, second = (DPoPVerifier(replay=cache, clock=clock) for cache in two_instances)
    proof = _proof(clock)
    await first.verify([proof], method="GET", url=URL)
    with pytest.raises(InvalidDPoPProof) as replayed:
        await second.verify([proof], method="GET", url=URL)
    assert replayed.value.reason == "dpop_replay"


async def test_a_verifier_whose_redis_is_down_fails_closed():
    clock = FakeClock(NOW)
    cache = RedisReplayCache.from_url(f"redis://127.0.0.1:{free_port()}/0")
    verifier = DPoPVerifier(replay=cache, clock=clock)
    try:
        with pytest.raises(BackendUnavailable):
            await verifier.verify([_proof(clock)], method="GET", url=URL)
    finally:
        await cache.aclose()


async def test_the_verifier_asks_for_nonces_and_hands_out_fresh_ones():
    clock = FakeClock(NOW)
    nonces = StatelessNonces(b"n" * 32)
    verifier = DPoPVerifier(nonces=nonces, clock=clock)
    with pytest.raises(UseDPoPNonce) as asked:
        await verifier.verify([_proof(clock)], method="GET", url=URL)
    nonce = asked.value.nonce
    verified = await verifier.verify([_proof(clock, nonce=nonce)], method="GET", url=URL)
    assert verifier.fresh_nonce(verified) is None
    clock.advance(nonces.step)
    verified = await verifier.verify([_proof(clock, nonce=nonce)], method="GET", url=URL)
    assert verifier.fresh_nonce(verified) == nonces.issue(clock.now) != nonce
    assert DPoPVerifier().fresh_nonce(verified) is None


async def test_the_verifier_wants_exactly_one_proof_and_states_its_algorithms():
    verifier = DPoPVerifier(DPoPPolicy(algorithms=("ES256", "PS256")))
    with pytest.raises(InvalidDPoPProof) as none:
        await verifier.verify([], method="GET", url=URL)
    assert none.value.reason == "dpop_missing"
    assert verifier.challenge(none.value) == (
        'DPoP error="invalid_dpop_proof", error_description="A DPoP proof is required", '
        'algs="ES256 PS256"'
    )
    assert verifier.challenge() == 'DPoP algs="ES256 PS256"'


async def test_the_binding_is_checked_before_the_proof_is_spent():
    clock = FakeClock(NOW)
    verifier = DPoPVerifier(clock=clock)
    proof = _proof(clock, access_token=TOKEN)
    other = jwk_thumbprint(key_for("EdDSA"))
    with pytest.raises(DPoPKeyMismatch) as mismatch:
        await verifier.verify(
            [proof], method="GET", url=URL, access_token=TOKEN, expected_jkt=other
        )
    assert mismatch.value.error == "invalid_dpop_proof"
    mine = jwk_thumbprint(key_for("ES256"))
    await verifier.verify([proof], method="GET", url=URL, access_token=TOKEN, expected_jkt=mine)


def test_importing_the_dpop_package_loads_no_store_driver():
    code = (
        "import sys, backends.dpop\n"
        "print(sorted(m for m in ('redis', 'pymongo') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
