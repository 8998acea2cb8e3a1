"""The replay cache in Redis, shared by every instance and worker that uses it.

One ``SET key 1 NX EX ttl`` per proof: atomic, so of two requests carrying the
same proof to two instances exactly one wins. An outage is
:class:`BackendUnavailable` (503), never an accept: a cache that cannot answer
cannot tell a replay from a first use. Each proof has a budget of half a second.
"""

from __future__ import annotations

import math

from redis.asyncio import Redis

from backends.dpop.encoding import b64url_encode
from backends.dpop.replay import replay_key
from backends.storage.redis import answered, redis_client, url_timeout

DEFAULT_PREFIX = "jotguard:dpop:"
DEFAULT_TIMEOUT = 0.5


class RedisReplayCache:
    """:class:`~backends.dpop.replay.ReplayCache` on a ``redis.asyncio`` client."""

    def __init__(
        self, client: Redis, *, prefix: str = DEFAULT_PREFIX, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.redis = client
        self.prefix = prefix
        self.timeout = timeout
        """Seconds a proof may wait for Redis before the request gets 503."""

    @classmethod
    def from_url(cls, url: str, *, prefix: str = DEFAULT_PREFIX) -> RedisReplayCache:
        """A client on the pool shared by every user of ``url``
        (:mod:`backends.storage.redis`). Query parameters go to redis-py; a
        ``socket_timeout`` there is also the budget."""
        return cls(redis_client(url), prefix=prefix, timeout=url_timeout(url, DEFAULT_TIMEOUT))

    async def first_use(self, jkt: str, jti: str, *, expires_at: float, now: float) -> bool:
        # Relative expiry: Redis's clock need not agree with ours. One second more
        # covers the rounding of both.
        ttl = max(1, math.ceil(expires_at - now) + 1)
        key = self.prefix + b64url_encode(replay_key(jkt, jti))
        stored = await answered(
            self.redis.set(key, b"1", nx=True, ex=ttl), self.timeout, "DPoP replay cache"
        )
        return bool(stored)

    async def aclose(self) -> None:
        await self.redis.aclose()
