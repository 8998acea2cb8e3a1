"""Redis access shared by the stores: one connection pool per server and database, its
timeouts and retries in one place, each user's own time budget on top.

Every Redis client (the revocation store, the rate-limit storage, the DPoP replay
cache) comes from :func:`redis_client`. Clients of one URL in one event loop share one
pool; the pool is closed when the last of them is (reference counted), so closing the
services releases every connection while closing one store leaves the others working.

Why budgets and not per-pool timeouts: redis-py keeps socket timeouts on the pool's
connections (``Redis(connection_pool=...)`` takes the pool's timeouts and retry policy,
not its own) and its commands take no timeout of their own. So the pool's timeouts are
only a backstop, :data:`BACKSTOP_TIMEOUT`, no shorter than any budget jotguard accepts,
and each user bounds its own operations with :func:`deadline`: the revocation store by
:data:`STORE_BUDGET` per operation, the replay cache by 0.5 s per proof, the rate limiter
by ``JOTGUARD_RATELIMIT_TIMEOUT`` per decision. Interrupting a command is safe: redis-py
drops a connection cut off mid-command instead of handing it back to the pool.

Every pool retries once at once (a pooled connection the server dropped) and never with
backoff: redis-py's default client would sleep for seconds between three retries.
Query parameters of the URL go to redis-py and win over these defaults, as with
``Redis.from_url``; a ``socket_timeout`` there is also the budget of the users without a
setting of their own (:func:`url_timeout`).
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import weakref
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from backends.errors import BackendUnavailable

if sys.version_info >= (3, 11):
    from asyncio import timeout as deadline
else:  # redis-py itself depends on async-timeout before Python 3.11.3
    from async_timeout import timeout as deadline

T = TypeVar("T")

__all__ = ["deadline"]

# Socket and connect timeout of every pool: a call no budget covers (a pub/sub
# subscription, a readiness ping) still ends. The longest budget jotguard accepts,
# JOTGUARD_RATELIMIT_TIMEOUT's ceiling, so no budget is cut short by it.
BACKSTOP_TIMEOUT = 10.0
# The revocation store's budget per operation: an outage is a 503 within a second.
STORE_BUDGET = 1.0
# Query parameters jotguard reads itself (the revocation store's key prefix): never
# given to redis-py, and no part of which pool a URL names.
OWN_PARAMETERS = frozenset({"prefix"})
# What a Redis call raises when the server cannot answer. OSError: a socket error
# redis-py lets through. asyncio.TimeoutError: a budget spent (an OSError only on 3.11+).
REDIS_ERRORS = (RedisError, OSError, asyncio.TimeoutError)

PoolKey = tuple[tuple[str, str], ...]


class SharedRedis(Redis):
    """A client on a shared pool: :meth:`aclose` hands the pool back, and the pool is
    closed with the last client on it (whatever ``close_connection_pool`` says)."""

    _share: _Share | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool=False)
        share, self._share = self._share, None
        if share is not None:  # twice closed is once released
            await share.release()


class _Share:
    """One pool and how many clients hold it."""

    def __init__(self, pool: ConnectionPool, key: PoolKey, pools: dict[PoolKey, _Share]) -> None:
        self.pool = pool
        self.users = 0
        self._key = key
        self._pools = pools

    async def release(self) -> None:
        self.users -= 1
        if self.users > 0:
            return
        # Out of the table before the await: a client asked for meanwhile gets a new pool.
        if self._pools.get(self._key) is self:
            del self._pools[self._key]
        await self.pool.aclose()


# Per event loop: a pool's connections belong to the loop that opened them.
_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[PoolKey, _Share]] = (
    weakref.WeakKeyDictionary()
)


def _redis_py_url(url: str) -> str:
    """``url`` without the query parameters jotguard reads itself."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in OWN_PARAMETERS]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _connection_options(url: str) -> dict[str, Any]:
    """The options redis-py reads from ``url``, with the port and database it implies."""
    options: dict[str, Any] = dict(parse_url(_redis_py_url(url)))
    implied: dict[str, Any] = {"db": 0} if "path" in options else {"port": 6379, "db": 0}
    return {**implied, **options}


def pool_key(url: str) -> PoolKey:
    """Which pool ``url`` names: equal for URLs redis-py reads alike
    (``redis://h`` and ``redis://h:6379/0``), different for another server, database,
    user, password or option. Holds no password, only its digest."""
    options = _connection_options(url)
    if "password" in options:
        options["password"] = hashlib.sha256(options["password"].encode()).hexdigest()
    return tuple(sorted((name, repr(value)) for name, value in options.items()))


def _new_pool(url: str) -> ConnectionPool:
    options: dict[str, Any] = {
        "socket_timeout": BACKSTOP_TIMEOUT,
        "socket_connect_timeout": BACKSTOP_TIMEOUT,
        "retry": Retry(NoBackoff(), 1),
    }
    options.update(_connection_options(url))  # the URL's own settings win
    return ConnectionPool(**options)


def redis_client(url: str) -> SharedRedis:
    """A client on the pool every user of ``url`` in this event loop shares; connects
    lazily. ``aclose`` it. Outside a running loop the pool is the client's own."""
    key = pool_key(url)
    try:
        pools = _POOLS.setdefault(asyncio.get_running_loop(), {})
    except RuntimeError:
        pools = {}
    share = pools.get(key)
    if share is None:
        share = pools[key] = _Share(_new_pool(url), key, pools)
    share.users += 1
    client = SharedRedis(connection_pool=share.pool)
    client._share = share
    return client


def open_pools() -> dict[PoolKey, ConnectionPool]:
    """The pools this event loop's clients share now (for tests and diagnostics)."""
    pools = _POOLS.get(asyncio.get_running_loop(), {})
    return {key: share.pool for key, share in pools.items()}


def url_timeout(url: str, default: float) -> float:
    """The ``socket_timeout`` ``url`` gives (the operator's word for that server), else
    ``default``: the budget of a user with no setting of its own."""
    value = _connection_options(url).get("socket_timeout")
    return float(value) if value is not None else default


async def answered(operation: Awaitable[T], budget: float, what: str) -> T:
    """``operation``'s result within ``budget`` seconds, else ``BackendUnavailable``
    naming ``what`` (an outage is a 503, never an answer)."""
    try:
        async with deadline(budget):
            return await operation
    except REDIS_ERRORS as exc:
        raise BackendUnavailable(f"The {what} cannot answer ({type(exc).__name__})") from exc
