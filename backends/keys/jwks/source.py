"""A remote issuer's JSON Web Key Set: fetched, cached, refreshed ahead, outage-tolerant.

How a key is found for ``(kid, alg)``:

- the cached set is used while it is younger than ``max_age``; past 80 % of that
  age a refresh starts in the background, so valid tokens never wait on a fetch;
- an unknown ``kid`` triggers one refresh; concurrent misses share it, and the
  refreshes a miss may start are limited to ``requests_per_minute`` per process;
- a token without ``kid`` is verified with the set's only key for its algorithm,
  and refused when there are several (or none): never tried against each;
- when the endpoint fails (down, slow, non-200, not JSON, no ``keys``, too big)
  the cached set keeps serving for up to ``max_stale`` past its max age, and the
  failure is logged once per interval, not once per request.

The decisions the README documents: a kid still unknown after a successful refresh
is :class:`InvalidToken` (401); an unknown kid while no refresh can run now (budget
spent, endpoint failing) and no usable key set at all (never fetched, or staler than
max-stale, and the endpoint failing) are :class:`BackendUnavailable` (503 with
Retry-After): a new key cannot be told from a bad one, and 401 would make a client
throw a good token away.

Parsing the set is :mod:`backends.keys.jwks.keyset`; fetching it (and discovering where it
lives) is :mod:`backends.keys.jwks.fetch`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass

from tornado.httpclient import AsyncHTTPClient

from backends.errors import BackendUnavailable, ConfigError, InvalidToken
from backends.keys import VerificationKey, only_key
from backends.keys.jwks.fetch import discover, get_json
from backends.keys.jwks.keyset import SUPPORTED_ALGORITHMS, JWKSFetchError, RemoteKey, parse_key_set
from backends.outbound import secure_url
from backends.tasks import cancel_all

log = logging.getLogger("jotguard.jwks")

REFRESH_AHEAD = 0.8  # refresh once the set is this fraction of max_age old
FAILURE_LOG_INTERVAL = 60.0
RETRY_MIN, RETRY_MAX = 2.0, 60.0  # back-off between failed fetches, doubling
KID_BUDGET_WINDOW = 60.0
MAX_REMEMBERED_MISSING = 1024


@dataclass(frozen=True, slots=True)
class JWKSPolicy:
    """Caching and fetch limits shared by every remote issuer (seconds, per process)."""

    max_age: float = 600.0
    max_stale: float = 86400.0
    timeout: float = 5.0
    requests_per_minute: int = 5


@dataclass(frozen=True, slots=True)
class JWKSStatus:
    """What readiness checks and metrics read. Times are epoch seconds."""

    issuer: str
    jwks_uri: str | None
    has_keys: bool
    fresh: bool
    key_ids: tuple[str, ...]
    last_success_at: float | None
    last_failure_at: float | None
    last_error: str | None
    fetches: int
    failures: int
    unknown_kid_refreshes: int
    unknown_kid_throttled: int


class JWKSKeySource:
    """The :class:`~backends.keys.KeySource` of one remote issuer.

    :param issuer: the exact ``iss`` the issuer puts in its tokens.
    :param jwks_uri: where the key set lives; ``None`` discovers it from the issuer.
    :param algorithms: the algorithms tokens of this issuer may use.
    :param http_client: injectable; the loop's shared client by default.
    :param clock: epoch seconds; injectable so tests move time instead of sleeping.
    """

    def __init__(
        self,
        *,
        issuer: str,
        jwks_uri: str | None = None,
        algorithms: Collection[str] = ("RS256",),
        policy: JWKSPolicy | None = None,
        http_client: AsyncHTTPClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        unsupported = set(algorithms) - SUPPORTED_ALGORITHMS
        if not algorithms or unsupported:
            raise ConfigError(f"unsupported remote algorithm(s): {sorted(unsupported)}")
        try:
            secure_url(issuer)
            if jwks_uri is not None:
                secure_url(jwks_uri)
        except ValueError as exc:
            raise ConfigError(f"remote issuer {issuer!r}: URL {exc}") from None
        self.issuer = issuer
        self.algorithms = frozenset(algorithms)
        self.policy = policy or JWKSPolicy()
        self.clock = clock
        self._http = http_client
        self._jwks_uri = jwks_uri
        self._keys: dict[str, RemoteKey] = {}
        self._fetched_at: float | None = None
        self._missing: set[str] = set()  # kids looked for and absent in the latest fetch
        self._pending: set[str] = set()  # kids looked for since then
        self._kid_refreshes: deque[float] = deque()
        self._inflight: asyncio.Task[bool] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._retry_at = 0.0
        self._failures_in_row = 0
        self._last_success_at: float | None = None
        self._last_failure_at: float | None = None
        self._last_error: str | None = None
        self._logged_at: float | None = None
        self._unlogged_failures = 0
        self._fetches = 0
        self._failures = 0
        self._unknown_kid_refreshes = 0
        self._unknown_kid_throttled = 0

    # -- KeySource --------------------------------------------------------------------

    async def get_key(self, kid: str | None, alg: str) -> VerificationKey:
        now = self.clock()
        if self._usable(now):
            self._refresh_ahead(now)
        else:
            await self._refresh_or_fail(now)
        if kid is None:
            # No refresh for it: without a kid there is no new key to look for.
            return only_key([e.by_alg[alg] for e in self._keys.values() if alg in e.by_alg], alg)
        entry = self._keys.get(kid)
        if entry is None:
            entry = await self._refresh_for_unknown(kid)
        key = entry.by_alg.get(alg)
        if key is None:
            raise InvalidToken(
                "The token algorithm does not match its key", reason="invalid_signature"
            )
        return key

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Fetch now and keep the set fresh in the background until :meth:`aclose`."""
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name=f"jwks {self.issuer}")

    async def aclose(self) -> None:
        await cancel_all([t for t in (self._runner, self._inflight) if t is not None])
        self._runner = self._inflight = None

    async def _run(self) -> None:
        while True:
            await self.refresh_if_due()
            # Bounded, so a wall-clock jump delays a refresh by a minute at most.
            await asyncio.sleep(min(max(self.seconds_until_due(), 0.5), 60.0))

    async def refresh_if_due(self) -> None:
        """Refresh when the set is due (first fetch, refresh-ahead, or retry after failure)."""
        if self.seconds_until_due() <= 0 or self._inflight is not None:
            await self._refresh()

    def usable_until(self) -> float | None:
        """When the cached set stops being usable (max age plus max stale past its
        fetch) unless a refresh succeeds first; None before the first fetch."""
        if self._fetched_at is None:
            return None
        return self._fetched_at + self.policy.max_age + self.policy.max_stale

    def seconds_until_due(self) -> float:
        if self._fetched_at is None:
            due = self._retry_at
        else:
            due = max(self._fetched_at + REFRESH_AHEAD * self.policy.max_age, self._retry_at)
        return due - self.clock()

    def status(self) -> JWKSStatus:
        now = self.clock()
        return JWKSStatus(
            issuer=self.issuer,
            jwks_uri=self._jwks_uri,
            has_keys=self._usable(now),
            fresh=self._fetched_at is not None and now - self._fetched_at <= self.policy.max_age,
            key_ids=tuple(sorted(self._keys)),
            last_success_at=self._last_success_at,
            last_failure_at=self._last_failure_at,
            last_error=self._last_error,
            fetches=self._fetches,
            failures=self._failures,
            unknown_kid_refreshes=self._unknown_kid_refreshes,
            unknown_kid_throttled=self._unknown_kid_throttled,
        )

    # -- decisions ----------------------------------------------------------------------

    def _usable(self, now: float) -> bool:
        if self._fetched_at is None:
            return False
        return now - self._fetched_at <= self.policy.max_age + self.policy.max_stale

    def _unavailable(self, now: float) -> BackendUnavailable:
        return BackendUnavailable(
            "The token issuer's signing keys cannot be fetched right now",
            retry_after=max(1, math.ceil(self._retry_at - now)),
            reason="jwks_unavailable",
        )

    def _refresh_ahead(self, now: float) -> None:
        if self._inflight is None and self.seconds_until_due() <= 0:
            self._start_refresh()

    async def _refresh_or_fail(self, now: float) -> None:
        if self._inflight is None and now < self._retry_at:
            raise self._unavailable(now)  # still backing off after a failure
        await self._refresh()
        now = self.clock()
        if not self._usable(now):
            raise self._unavailable(now)

    async def _refresh_for_unknown(self, kid: str) -> RemoteKey:
        unknown = InvalidToken("The token was signed by an unknown key", reason="unknown_key")
        if self._inflight is None:
            now = self.clock()
            if kid in self._missing:
                raise unknown  # looked for in the latest successful fetch: not there
            self._look_for(kid)
            if now < self._retry_at:
                raise self._unavailable(now)  # cannot tell whether the key is new
            if not self._take_kid_budget(now):
                self._unknown_kid_throttled += 1
                raise self._no_refresh_yet(now)
            self._unknown_kid_refreshes += 1
        else:
            self._look_for(kid)
        refreshed = await self._refresh()
        entry = self._keys.get(kid)
        if entry is not None:
            return entry
        if not refreshed:
            raise self._unavailable(self.clock())
        raise unknown

    def _look_for(self, kid: str) -> None:
        # The next successful fetch settles it: absent then, the kid is refused (401).
        if len(self._pending) < MAX_REMEMBERED_MISSING:
            self._pending.add(kid)

    def _no_refresh_yet(self, now: float) -> BackendUnavailable:
        """The kid may belong to a key published since the last fetch, and the refresh
        budget is spent: 503 until a refresh can run (a budget slot frees, or the
        scheduled refresh is due)."""
        next_at = now + self.seconds_until_due()
        if self._kid_refreshes and self.policy.requests_per_minute > 0:
            next_at = min(next_at, self._kid_refreshes[0] + KID_BUDGET_WINDOW)
        return BackendUnavailable(
            "The token's signing key is not in the issuer's key set as last fetched,"
            " and the set cannot be fetched again yet",
            retry_after=max(1, math.ceil(next_at - now)),
            reason="jwks_unavailable",
        )

    def _take_kid_budget(self, now: float) -> bool:
        window = self._kid_refreshes
        while window and window[0] <= now - KID_BUDGET_WINDOW:
            window.popleft()
        if len(window) >= self.policy.requests_per_minute:
            return False
        window.append(now)
        return True

    # -- fetching -----------------------------------------------------------------------

    def _start_refresh(self) -> asyncio.Task[bool]:
        if self._inflight is None:
            task = asyncio.create_task(self._fetch_and_store())
            task.add_done_callback(self._forget_inflight)
            self._inflight = task
        return self._inflight

    def _forget_inflight(self, task: asyncio.Task[bool]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _refresh(self) -> bool:
        """Join the refresh in flight or start one; True if it replaced the key set.

        Shielded: a caller that goes away does not cancel the fetch others wait on.
        """
        return await asyncio.shield(self._start_refresh())

    async def _fetch_and_store(self) -> bool:
        self._fetches += 1
        try:
            url = await self._jwks_url()
            document = await get_json(self._client(), url, timeout=self.policy.timeout)
            keys = parse_key_set(document, self.algorithms)
        except JWKSFetchError as exc:
            self._record_failure(str(exc))
            return False
        except Exception:
            log.exception("JWKS refresh for %s failed unexpectedly", self.issuer)
            self._record_failure("unexpected error")
            return False
        self._record_success(keys)
        return True

    def _record_success(self, keys: dict[str, RemoteKey]) -> None:
        now = self.clock()
        if set(keys) != set(self._keys):
            log.info("JWKS for %s: key ids %s", self.issuer, ", ".join(sorted(keys)))
        if self._failures_in_row:
            log.info(
                "JWKS for %s fetched again after %d failed attempts",
                self.issuer,
                self._failures_in_row,
            )
        self._keys = keys
        self._missing = {kid for kid in self._pending if kid not in keys}
        self._pending = set()
        self._fetched_at = now
        self._last_success_at = now
        self._retry_at = 0.0
        self._failures_in_row = 0
        self._logged_at = None
        self._unlogged_failures = 0

    def _record_failure(self, reason: str) -> None:
        now = self.clock()
        self._failures += 1
        self._failures_in_row += 1
        self._last_failure_at = now
        self._last_error = reason
        backoff = min(RETRY_MAX, RETRY_MIN * 2 ** (self._failures_in_row - 1))
        self._retry_at = now + backoff
        self._unlogged_failures += 1
        if self._logged_at is not None and now - self._logged_at < FAILURE_LOG_INTERVAL:
            return
        if self._usable(now):
            assert self._fetched_at is not None
            serving = f"serving keys fetched {now - self._fetched_at:.0f}s ago"
        else:
            serving = "no usable keys: tokens of this issuer get 503"
        log.warning(
            "JWKS for %s failed: %s; %s (%d failure(s) since the last report)",
            self.issuer,
            reason,
            serving,
            self._unlogged_failures,
        )
        self._logged_at = now
        self._unlogged_failures = 0

    def _client(self) -> AsyncHTTPClient:
        return self._http or AsyncHTTPClient()

    async def _jwks_url(self) -> str:
        if self._jwks_uri is None:
            self._jwks_uri = await discover(
                self._client(), self.issuer, timeout=self.policy.timeout
            )
        return self._jwks_uri
