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

A discovered ``jwks_uri`` must be on the issuer's own origin: a discovery document
cannot send jotguard to fetch from another host (configure ``jwks_uri`` for that).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import import_key
from tornado.httpclient import AsyncHTTPClient

from backends.errors import BackendUnavailable, ConfigError, InvalidToken
from backends.keys import ALGORITHM_KEY_TYPES, JoseKey, VerificationKey, only_key
from backends.outbound import UpstreamError, fetch_bounded, same_origin, secure_url

log = logging.getLogger("jotguard.jwks")

MIN_RSA_BITS = 2048
REFRESH_AHEAD = 0.8  # refresh once the set is this fraction of max_age old
FAILURE_LOG_INTERVAL = 60.0
RETRY_MIN, RETRY_MAX = 2.0, 60.0  # back-off between failed fetches, doubling
KID_BUDGET_WINDOW = 60.0
MAX_REMEMBERED_MISSING = 1024

# Signature algorithms a remote key may serve, with the curve each demands.
# Symmetric (oct) keys never come from a published key set.
_REMOTE_ALGORITHMS: dict[str, str | None] = {
    "RS256": None,
    "RS384": None,
    "RS512": None,
    "PS256": None,
    "ES256": "P-256",
    "ES384": "P-384",
    "EdDSA": None,
}
_OKP_SIGNATURE_CURVES = frozenset({"Ed25519", "Ed448"})
SUPPORTED_ALGORITHMS = frozenset(_REMOTE_ALGORITHMS)


class JWKSFetchError(Exception):
    """A refresh failed; ``str()`` is a one-line reason, safe to log and to expose."""


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


@dataclass(frozen=True, slots=True)
class RemoteKey:
    kid: str
    key: JoseKey
    by_alg: Mapping[str, VerificationKey]


def _rsa_bits(jwk: Mapping[str, Any]) -> int:
    n = jwk.get("n")
    if not isinstance(n, str) or not n:
        raise ValueError("has no modulus")
    try:
        raw = base64.b64decode(n + "=" * (-len(n) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("has a malformed modulus") from None
    return int.from_bytes(raw, "big").bit_length()


def _key_algorithms(jwk: Mapping[str, Any], allowed: frozenset[str]) -> frozenset[str]:
    """The algorithms ``jwk`` may verify: its declared ``alg``, else all of its type."""
    kty = jwk.get("kty")
    declared = jwk.get("alg")
    if declared is not None:
        if not isinstance(declared, str) or declared not in allowed:
            raise ValueError(f"declares algorithm {declared!r}, which is not accepted")
        candidates = {declared}
    else:
        candidates = set(allowed)
    fitting = {
        alg
        for alg in candidates
        if ALGORITHM_KEY_TYPES.get(alg) == kty and _REMOTE_ALGORITHMS[alg] in (None, jwk.get("crv"))
    }
    if not fitting:
        raise ValueError(f"of type {kty!r} fits none of the accepted algorithms")
    return frozenset(fitting)


def parse_key(jwk: Any, allowed: frozenset[str]) -> RemoteKey:
    """One published JWK as a verification key.

    :raises ValueError: the key is not a usable public signature key for ``allowed``.
    """
    if not isinstance(jwk, dict):
        raise ValueError("is not a JSON object")
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ValueError("has no kid")
    if jwk.get("use", "sig") != "sig":
        raise ValueError("is not a signature key")
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        raise ValueError("is not for verification")
    kty = jwk.get("kty")
    if not isinstance(kty, str) or kty not in {"RSA", "EC", "OKP"}:
        raise ValueError(f"has unsupported type {kty!r}")
    if not isinstance(jwk.get("crv", ""), str):
        raise ValueError("has a malformed curve name")
    if "d" in jwk:
        raise ValueError("carries private key material")  # a leaked private key: never use it
    if kty == "RSA" and _rsa_bits(jwk) < MIN_RSA_BITS:
        raise ValueError(f"is an RSA key under {MIN_RSA_BITS} bits")
    if kty == "OKP" and jwk.get("crv") not in _OKP_SIGNATURE_CURVES:
        raise ValueError("is not an Ed25519/Ed448 key")
    algorithms = _key_algorithms(jwk, allowed)
    try:
        key = import_key({k: v for k, v in jwk.items() if k != "key_ops"})
    except (JoseError, ValueError, TypeError, KeyError):
        raise ValueError("could not be imported") from None
    by_alg = {alg: VerificationKey(kid, alg, key) for alg in algorithms}
    return RemoteKey(kid, key, by_alg)


def parse_key_set(document: Any, allowed: frozenset[str]) -> dict[str, RemoteKey]:
    """The usable keys of a JWKS document, by kid.

    :raises JWKSFetchError: not a key set, or not one usable key in it.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JWKSFetchError("the response has no 'keys' array")
    keys: dict[str, RemoteKey] = {}
    for index, jwk in enumerate(document["keys"]):
        try:
            parsed = parse_key(jwk, allowed)
        except ValueError as exc:
            log.debug("JWKS key #%d skipped: it %s", index, exc)
            continue
        if parsed.kid in keys:
            log.warning("JWKS key id %r is published twice; the first one is used", parsed.kid)
            continue
        keys[parsed.kid] = parsed
    if not keys:
        raise JWKSFetchError("the key set has no usable signature key")
    return keys


def discovery_urls(issuer: str) -> list[str]:
    """OpenID discovery first (path appended), then RFC 8414 (well-known inserted)."""
    base = issuer.rstrip("/")
    scheme, _, rest = base.partition("://")
    host, slash, path = rest.partition("/")
    urls = [
        f"{base}/.well-known/openid-configuration",
        f"{scheme}://{host}/.well-known/oauth-authorization-server{slash}{path}",
        f"{base}/.well-known/oauth-authorization-server",
    ]
    return list(dict.fromkeys(urls))


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
        tasks = [t for t in (self._runner, self._inflight) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
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
        exc = BackendUnavailable(
            "The token issuer's signing keys cannot be fetched right now",
            retry_after=max(1, math.ceil(self._retry_at - now)),
        )
        exc.reason = "jwks_unavailable"
        return exc

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
        exc = BackendUnavailable(
            "The token's signing key is not in the issuer's key set as last fetched,"
            " and the set cannot be fetched again yet",
            retry_after=max(1, math.ceil(next_at - now)),
        )
        exc.reason = "jwks_unavailable"
        return exc

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
            keys = parse_key_set(await self._get_json(await self._jwks_url()), self.algorithms)
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

    async def _get_json(self, url: str) -> Any:
        client = self._http or AsyncHTTPClient()
        try:
            response = await fetch_bounded(client, url, timeout=self.policy.timeout)
        except UpstreamError as exc:
            raise JWKSFetchError(f"{url}: {exc}") from None
        if response.code != 200:
            raise JWKSFetchError(f"{url}: answered HTTP {response.code}")
        try:
            return json.loads(response.body)
        except (ValueError, RecursionError):
            kind = response.headers.get("Content-Type", "no content type").split(";")[0]
            raise JWKSFetchError(f"{url}: the response is not JSON ({kind})") from None

    async def _jwks_url(self) -> str:
        if self._jwks_uri is None:
            self._jwks_uri = await self._discover()
        return self._jwks_uri

    async def _discover(self) -> str:
        errors = []
        for url in discovery_urls(self.issuer):
            try:
                document = await self._get_json(url)
            except JWKSFetchError as exc:
                errors.append(str(exc))
                continue
            if not isinstance(document, dict):
                errors.append(f"{url}: not a JSON object")
                continue
            # RFC 8414 §3.3 / OIDC Discovery §4.3: a document for another issuer is refused.
            if document.get("issuer") != self.issuer:
                errors.append(f"{url}: names issuer {document.get('issuer')!r}")
                continue
            jwks_uri = document.get("jwks_uri")
            try:
                found = secure_url(jwks_uri) if isinstance(jwks_uri, str) else secure_url("")
            except ValueError as exc:
                errors.append(f"{url}: jwks_uri {exc}")
                continue
            if not same_origin(found, self.issuer):
                # Else whoever controls the document picks the host jotguard GETs (and
                # retries): a discovered key set stays on the issuer's origin.
                errors.append(
                    f"{url}: jwks_uri {found!r} is not on the issuer's origin"
                    " (configure jwks_uri explicitly to trust it)"
                )
                continue
            return found
        raise JWKSFetchError("discovery failed: " + "; ".join(errors))
