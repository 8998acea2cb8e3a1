"""Hashing jobs wait in order of their request's arrival, not one job at a time."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator

import pytest

from backends.issuance.passwords import PasswordHasher
from backends.issuance.queueing import PriorityGate, SourceSlots, mark_request_started


def jobs_run(hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The secrets ``hasher`` checks, in the order its pool runs them."""
    ran: list[str] = []
    original = hasher._verify

    def recording(encoded: str, secret: str) -> bool:
        ran.append(secret)
        return original(encoded, secret)

    monkeypatch.setattr(hasher, "_verify", recording)
    return ran


@contextlib.asynccontextmanager
async def pool_held(hasher: PasswordHasher) -> AsyncIterator[None]:
    """The whole pool taken until the block ends, so whatever is sent meanwhile queues."""
    release = asyncio.Event()

    async def blocker() -> None:
        await hasher._gate.acquire(-1)
        await release.wait()
        hasher._gate.release()

    hold = asyncio.create_task(blocker())
    await asyncio.sleep(0)
    try:
        yield
    finally:
        release.set()
        await hold


async def test_gate_admits_the_lowest_key_next():
    gate = PriorityGate(1)
    await gate.acquire(0)
    order: list[float] = []

    async def wait(key: float) -> None:
        await gate.acquire(key)
        order.append(key)
        gate.release()

    waiters = [asyncio.create_task(wait(key)) for key in (5, 1, 3)]
    await asyncio.sleep(0)
    gate.release()
    await asyncio.gather(*waiters)
    assert order == [1, 3, 5]


async def test_a_cancelled_waiter_does_not_lose_the_slot():
    gate = PriorityGate(1)
    await gate.acquire(0)
    cancelled = asyncio.create_task(gate.acquire(1))
    later = asyncio.create_task(gate.acquire(2))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    gate.release()
    await asyncio.wait_for(later, 1)
    gate.release()
    await asyncio.wait_for(gate.acquire(3), 1)  # the slot came back


async def test_second_job_of_an_earlier_request_overtakes_later_requests(monkeypatch):
    """Two checks per login: an earlier login's password check runs before later
    logins' client checks, so logins finish one after another instead of all
    waiting for every client check of the burst."""
    hasher = PasswordHasher(time_cost=1, memory_kib=64, workers=1)
    ran = jobs_run(hasher, monkeypatch)
    encoded = await hasher.hash("x")
    names = "abcde"

    async def login(name: str, arrived: float) -> None:
        mark_request_started(arrived)
        await hasher.verify(encoded, f"{name}-client")
        await hasher.verify(encoded, f"{name}-password")

    try:
        async with pool_held(hasher):
            logins = [asyncio.create_task(login(n, t)) for t, n in enumerate(names)]
            await asyncio.sleep(0.01)
        await asyncio.gather(*logins)
    finally:
        hasher.close()
    passwords = [job for job in ran if job.endswith("-password")]
    assert passwords == [f"{n}-password" for n in names]  # logins finish in arrival order
    assert ran.index("a-password") < ran.index("c-client")  # not after every client check
    # (plain first-in first-out would run all five client checks first)
    assert ran.index("e-client") > ran.index("b-password")


@pytest.mark.parametrize("workers", [1, 3])
async def test_hasher_runs_at_most_workers_jobs_at_once(workers, monkeypatch):
    hasher = PasswordHasher(time_cost=1, memory_kib=64, workers=workers)
    running, peak = 0, 0
    original = hasher._verify
    lock = threading.Lock()

    def tracking(encoded: str, secret: str) -> bool:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            return original(encoded, secret)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(hasher, "_verify", tracking)
    try:
        encoded = await hasher.hash("x")
        results = await asyncio.gather(*(hasher.verify(encoded, "x") for _ in range(12)))
    finally:
        hasher.close()
    assert all(results)
    assert 1 <= peak <= workers


async def test_a_login_from_elsewhere_is_not_queued_behind_another_addresses_burst(monkeypatch):
    hasher = PasswordHasher(time_cost=1, memory_kib=64, workers=1, per_source=1)
    ran = jobs_run(hasher, monkeypatch)
    encoded = await hasher.hash("x")

    async def check(name: str, source: str, arrived: float) -> None:
        mark_request_started(arrived, source=source)
        await hasher.verify(encoded, name)

    try:
        async with pool_held(hasher):
            burst = [asyncio.create_task(check(f"burst-{n}", "ip:192.0.2.1", n)) for n in range(10)]
            await asyncio.sleep(0)
            later = asyncio.create_task(check("elsewhere", "ip:198.51.100.7", 100.0))
            await asyncio.sleep(0.01)
        await asyncio.gather(*burst, later)
    finally:
        hasher.close()
    # The burst's first job was in line before it; the other nine waited in the burst's
    # own line, so the pool's next thread went to the login from elsewhere.
    assert ran.index("elsewhere") == 1
    assert [job for job in ran if job.startswith("burst-")] == [f"burst-{n}" for n in range(10)]
    assert len(hasher._sources) == 0  # nothing kept once the jobs are done


async def test_source_slots_hand_over_in_order_and_survive_cancellation():
    slots = SourceSlots(1)
    await slots.acquire("a")
    cancelled = asyncio.create_task(slots.acquire("a"))
    waiting = asyncio.create_task(slots.acquire("a"))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    await slots.acquire("b")  # another source is not held up
    slots.release("a")
    await asyncio.wait_for(waiting, 1)
    slots.release("a")
    slots.release("b")
    assert len(slots) == 0


def test_the_default_share_of_one_address_is_half_the_pool():
    for workers, share in ((1, 1), (2, 1), (3, 1), (8, 4)):
        hasher = PasswordHasher(time_cost=1, memory_kib=64, workers=workers)
        try:
            assert hasher.per_source == share
        finally:
            hasher.close()
