"""What one rate-limit check costs in process: jotguard's memory:// counters against limits'.

A check is what a counted request asks: a hit on a one-limit policy with its quota
report (the RateLimit headers), awaited. Three ways, interleaved round by round so
load drift on a shared machine hits them alike:

- ``memory://``: :class:`~backends.ratelimit.memory.MemoryRateLimit`, what jotguard runs;
- ``limits adapter``: :class:`~backends.ratelimit.limits.LimitsRateLimit` over
  ``limits.aio``'s ``MemoryStorage``, what memory:// would cost on ``limits``;
- ``limits alone``: that strategy's ``hit`` then ``get_window_stats``, no jotguard code.

Prints the per-check time of each round's mean, minimum and median over the rounds,
for the sliding-window counter and the moving window.

    .venv/bin/python bench/ratelimit_check.py [rounds] [checks-per-round]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter
from limits.util import granularity_from_string

from backends.ratelimit import Policy
from backends.ratelimit.limits import LimitsRateLimit
from backends.ratelimit.memory import MemoryRateLimit

# Many keys, as many users: no key nears its limit, and no moving window grows long.
KEYS = [f"sub:user-{n}" for n in range(2_000)]
Check = Callable[[str], Awaitable[object]]


def checks(strategy: str) -> dict[str, Check]:
    policy = Policy("bench", "600/minute", strategy)
    memory = MemoryRateLimit()
    adapter = LimitsRateLimit(MemoryStorage())
    item = granularity_from_string("minute")(600, 1)
    kind = SlidingWindowCounterRateLimiter
    if strategy == "moving-window":
        kind = MovingWindowRateLimiter
    alone = kind(MemoryStorage())

    async def limits_alone(key: str) -> object:
        await alone.hit(item, "bench", key)
        return await alone.get_window_stats(item, "bench", key)

    return {
        "memory://": lambda key: memory.hit(policy, key, report=True),
        "limits adapter": lambda key: adapter.hit(policy, key, report=True),
        "limits alone": limits_alone,
    }


async def per_check_us(check: Check, count: int) -> float:
    keys = KEYS
    start = time.perf_counter()
    for n in range(count):
        await check(keys[n % len(keys)])
    return (time.perf_counter() - start) / count * 1e6


async def main(rounds: int, count: int) -> None:
    print(f"{rounds} interleaved rounds of {count} checks (hit + report, one limit, awaited)")
    print("per check: min / median of the rounds' means, microseconds")
    for strategy in ("sliding-window-counter", "moving-window"):
        variants = checks(strategy)
        times: dict[str, list[float]] = {name: [] for name in variants}
        for check in variants.values():
            await per_check_us(check, count)  # warm up
        for _ in range(rounds):
            for name, check in variants.items():
                times[name].append(await per_check_us(check, count))
        cells = [
            f"{name} {min(values):5.1f} / {statistics.median(values):5.1f}"
            for name, values in times.items()
        ]
        print(f"{strategy:23}  " + "   ".join(cells))


if __name__ == "__main__":
    arguments = [int(a) for a in sys.argv[1:3]]
    asyncio.run(main(*(arguments + [15, 5000][len(arguments) :])))
