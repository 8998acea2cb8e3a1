"""Each policy counts a bounded number of keys, in memory and in Redis, and a full
policy evicts nobody: a flood of new keys cannot reset the budget it is spending."""

from __future__ import annotations

import secrets
import tracemalloc

import pytest
import redis.asyncio

from backends.ratelimit import Policy
from backends.ratelimit.keys import OVERFLOW_KEY, KeyBound
from backends.ratelimit.limits import LimitsRateLimit
from backends.ratelimit.memory import MemoryRateLimit
from tests.clock import FakeClock
from tests.conftest import redis_url, require_service
from tests.redis_keys import delete_prefix

START = 3600.0 * 500_000


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


def memory_limiter(clock: FakeClock, max_keys: int) -> MemoryRateLimit:
    return MemoryRateLimit(clock=clock, max_keys=max_keys)


async def test_a_full_policy_keeps_every_count_and_newcomers_share_one(clock):
    limiter = memory_limiter(clock, max_keys=100)
    policy = Policy("guess", "5/minute;20/hour", "moving-window")
    for _ in range(5):
        assert (await limiter.hit(policy, "user:alice")).allowed
    assert not (await limiter.hit(policy, "user:alice")).allowed

    # A flood of made-up keys fills the policy ...
    for n in range(10_000):
        await limiter.hit(policy, f"user:made-up-{n}")
    assert limiter.keys.live(policy) == 100
    assert len(limiter) <= 2 * 101  # two limits, the bound plus the overflow key
    # ... and alice's spent budget is still spent: the flood evicted nothing.
    assert not (await limiter.hit(policy, "user:alice")).allowed
    # Newcomers past the bound share one budget, which the flood has spent.
    assert not (await limiter.hit(policy, "user:bob")).allowed
    assert limiter.keys.overflowed["guess"] > 0
    samples = {s.name: s.value for s in limiter.telemetry()}
    assert samples["ratelimit_key_overflows_total"] == limiter.keys.overflowed["guess"]


async def test_keys_make_room_as_their_windows_pass(clock):
    limiter = memory_limiter(clock, max_keys=3)
    policy = Policy("p", "2/minute", "moving-window")
    for key in ("a", "b", "c"):
        assert (await limiter.hit(policy, key)).allowed
    assert (await limiter.hit(policy, "d")).allowed  # the overflow key's first hit
    assert (await limiter.hit(policy, "e")).allowed
    assert not (await limiter.hit(policy, "f")).allowed  # overflow spent
    clock.advance(61)  # every charge is out of its window: the keys are gone
    assert (await limiter.hit(policy, "f")).allowed
    assert limiter.keys.live(policy) == 1


async def test_a_sliding_window_key_lives_through_the_window_after_its_last_charge(clock):
    bound = KeyBound(1, clock)
    policy = Policy("p", "10/minute")
    assert bound.charge(policy, "a") == "a"
    clock.advance(119)  # its count still weighs on the next window
    assert bound.charge(policy, "b") == OVERFLOW_KEY
    clock.advance(2)
    assert bound.charge(policy, "b") == "b"


async def test_looking_registers_nothing(clock):
    limiter = memory_limiter(clock, max_keys=2)
    policy = Policy("p", "1/minute")
    for n in range(50):
        assert (await limiter.peek(policy, f"k{n}")).allowed
        assert await limiter.usage(policy, f"k{n}") is not None
    assert limiter.keys.live(policy) == 0
    assert len(limiter) == 0


async def test_memory_per_key_is_bounded_by_the_policy_bound(clock):
    limiter = memory_limiter(clock, max_keys=1000)
    policy = Policy("failed", "10/minute;100/hour", "moving-window")
    tracemalloc.start()
    try:
        for n in range(1000):
            await limiter.hit(policy, f"ip:2001:db8:{n:x}::/56")
        full, _ = tracemalloc.get_traced_memory()
        for n in range(1000, 21_000):
            await limiter.hit(policy, f"ip:2001:db8:{n:x}::/56")
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Twenty thousand more made-up keys past the bound keep nothing of their own.
    assert after - full < 50_000


@pytest.mark.redis
async def test_redis_keys_are_bounded_the_same_way():
    url = redis_url()
    client = redis.asyncio.from_url(url)
    try:
        await client.ping()
        reachable = True
    except OSError:
        reachable = False
    require_service("Redis", reachable)
    prefix = f"jotguard-test:keys:{secrets.token_hex(4)}"
    limiter = LimitsRateLimit.redis(url, key_prefix=prefix, max_keys=20)
    policy = Policy("p", "3/minute", "moving-window")
    try:
        for _ in range(3):
            assert (await limiter.hit(policy, "victim")).allowed
        for n in range(300):
            await limiter.hit(policy, f"made-up-{n}")
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        assert len(keys) == 21  # the bound, and the overflow key
        assert not (await limiter.hit(policy, "victim")).allowed
    finally:
        await delete_prefix(client, prefix)
        await client.aclose()
        await limiter.aclose()
