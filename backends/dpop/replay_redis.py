"""The replay cache in Redis, shared by every instance and worker that uses it.

One ``SET key 1 NX EX ttl`` per proof: atomic, so of two requests carrying the
same proof to two instances exactly one wins. An outage is
:class:`BackendUnavailable` (503), never an accept: a cache that cannot answer
cannot tell a replay from a first use.
"""

from __future__ import annotations

import math
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from backends.dpop.encoding import b64url_encode
from backends.dpop.replay import replay_key
from backends.errors import BackendUnavailable

DEFAULT_PREFIX = "jotguard:dpop:"
DEFAULT_TIMEOUT = 0.5


class RedisReplayCache:
    """:class:`~backends.dpop.replay.ReplayCache` on a ``redis.asyncio`` client."""

    def __init__(self, client: Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.redis = client
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, *, prefix: str = DEFAULT_PREFIX) -> RedisReplayCache:
        """A client of its own: short timeouts and one immediate retry, so an outage
        costs a request milliseconds. Query parameters go to redis-py, except
        ``prefix`` (the revocation store's own, when its URL is the one shared)."""
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        query.pop("prefix", None)
        query.setdefault("socket_timeout", str(DEFAULT_TIMEOUT))
        query.setdefault("socket_connect_timeout", str(DEFAULT_TIMEOUT))
        client = Redis.from_url(
            urlunsplit(parts._replace(query=urlencode(query))), retry=Retry(NoBackoff(), 1)
        )
        return cls(client, prefix=prefix)

    async def first_use(self, jkt: str, jti: str, *, expires_at: float, now: float) -> bool:
        # Relative expiry: Redis's clock need not agree with ours. One second more
        # covers the rounding of both.
        ttl = max(1, math.ceil(expires_at - now) + 1)
        key = self.prefix + b64url_encode(replay_key(jkt, jti))
        try:
            stored = await self.redis.set(key, b"1", nx=True, ex=ttl)
        except (RedisError, OSError) as exc:
            raise BackendUnavailable(
                f"The DPoP replay cache cannot answer ({type(exc).__name__})"
            ) from exc
        return bool(stored)

    async def aclose(self) -> None:
        await self.redis.aclose()
