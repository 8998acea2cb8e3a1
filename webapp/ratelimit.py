"""Rate limiting of HTTP requests: which policy a handler has, whom a request is counted against.

A handler names its policy with the class attribute ``rate_limit``: the name of
a configured policy (``"default"``, ``"token"``, ``"admin"``, ``"api"``), a
:class:`~backends.ratelimit.Policy` of its own, or None (never limited). The
policy is resolved after routing, so ``/x``, ``/x/`` and ``/x/anything`` of one
handler share one budget: keys name the policy, never the path.

Counting happens in two stages, both before the handler runs:

1. **Before authentication** (nothing verified yet, so nothing the client says
   about itself is believed):

   - a request that presents credentials (a bearer token, or any request to a
     ``per_client`` token endpoint) is refused at once if its IP has spent its
     budget of failed authentications;
   - a request with a bearer token is charged to the ``preauth`` guard of its
     IP: a flood of garbage tokens is cut off before any signature check;
   - every other request is charged to the handler's policy, keyed by the
     client IP (or by ``client_id`` + IP on ``per_client`` endpoints, which are
     also charged to the ``preauth`` guard, since the client picks the id).

   A token this process has verified before skips stage 1: the guards exist to
   protect verification work, and it needs none (``AuthenticatedHandler.prepare``).

2. **After authentication**: the handler's policy, keyed by the verified
   principal (issuer + ``sub``), so users behind one NAT do not share a budget
   and a user on several networks does not get several.

Failed authentications are counted per IP in a separate budget that a success
never consumes: bad or forged tokens here, failed client or password checks
wherever a token endpoint calls :meth:`RequestLimits.record_failed_auth`.
Only recorded failures count: a request that presents credentials is refused
unchecked once its IP has spent that budget, while checks still in progress
hold nothing, so honest clients behind one NAT address never lock each other
out. The price is that a burst sent at once is checked until its first
failures are recorded: at most the budget plus the requests in flight.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote, unquote_plus

from tornado.httputil import HTTPServerRequest

from backends.errors import AuthError, InvalidToken
from backends.principal import Principal
from backends.ratelimit import Decision, Policy, Quota, RateLimiter
from webapp.clientip import ClientAddresses, Network
from webapp.errors import ApiError
from webapp.settings import Settings

PolicyRef = str | Policy | None

# A validly signed token that has expired or been revoked is not a guess at a
# secret: counting it would lock out a NAT full of clients that merely refresh late.
_NOT_GUESSES = frozenset({"expired", "revoked"})

_MAX_KEY_PART = 128
_FAIL_CLOSED_RETRY_AFTER = 5


@dataclass(frozen=True, slots=True)
class Admission:
    """A request let through stage 1."""

    headers: dict[str, str] = field(default_factory=dict)
    """Rate-limit headers for the response (empty when stage 2 will report)."""


def is_failed_guess(exc: AuthError) -> bool:
    """Does this refusal count against the caller's failed-authentication budget?"""
    return isinstance(exc, InvalidToken) and exc.reason not in _NOT_GUESSES


class RequestLimits:
    """The policies of an application, the limiter that counts them, and how keys are made.

    Put it in the Tornado application settings as ``rate_limits``; without it,
    nothing is limited.
    """

    def __init__(
        self,
        limiter: RateLimiter,
        policies: Iterable[Policy],
        *,
        failed_auth: Policy | None = None,
        preauth: Policy | None = None,
        trusted_proxies: Iterable[str | Network] = (),
        ipv6_prefix: int = 64,
    ) -> None:
        self.limiter = limiter
        self.policies = {policy.name: policy for policy in policies}
        self.failed_auth = failed_auth
        self.preauth = preauth
        self.addresses = ClientAddresses(trusted_proxies, ipv6_prefix)

    @classmethod
    def from_settings(cls, settings: Settings) -> RequestLimits:
        limiter = RateLimiter(
            settings.ratelimit_storage,
            key_prefix=settings.ratelimit_key_prefix,
            timeout=settings.ratelimit_timeout,
            fail_closed=settings.ratelimit_fail_closed,
        )
        return cls(
            limiter,
            [
                Policy("default", settings.ratelimit_default),
                Policy("token", settings.ratelimit_token, "moving-window", per_client=True),
                Policy("admin", settings.ratelimit_admin),
                Policy("api", settings.ratelimit_api),
            ],
            failed_auth=Policy("failed-auth", settings.ratelimit_failed_auth, "moving-window"),
            preauth=Policy("preauth", settings.ratelimit_preauth),
            trusted_proxies=settings.trusted_proxies,
            ipv6_prefix=settings.ratelimit_ipv6_prefix,
        )

    def policy(self, ref: PolicyRef) -> Policy | None:
        """The policy a handler's ``rate_limit`` attribute names.

        :raises LookupError: a name no configured policy has (a programming error).
        """
        if ref is None or isinstance(ref, Policy):
            return ref
        try:
            return self.policies[ref]
        except KeyError:
            raise LookupError(f"no rate-limit policy named {ref!r} is configured") from None

    async def before_auth(
        self, request: HTTPServerRequest, ref: PolicyRef, *, authenticating: bool
    ) -> Admission:
        """Stage 1; ``authenticating``: a bearer token will be verified next.

        :raises ApiError: 429 over a limit, 503 when the storage is down and
            limiting fails closed.
        """
        policy = self.policy(ref)
        if policy is None:
            return Admission()
        ip_key = f"ip:{self.addresses.key(request)}"
        checks: list[tuple[Policy, str]] = []
        if self.failed_auth is not None and (authenticating or policy.per_client):
            # Only recorded failures count: checks in flight do not, or 50 honest
            # clients behind one NAT address would lock each other out.
            checks.append((self.failed_auth, ip_key))
        route_key = None if authenticating else _route_key(request, policy, ip_key)
        if self.preauth is not None and route_key != ip_key:
            checks.append((self.preauth, ip_key))
        if route_key is not None:
            checks.append((policy, route_key))
        calls = [
            self.limiter.peek(p, key)
            if p is self.failed_auth
            # The route's own check brings the quotas for the response headers.
            else self.limiter.hit(p, key, report=key == route_key)
            for p, key in checks
        ]
        if len(calls) == 1 or self.limiter.in_process:
            # Nothing to overlap: tasks would cost more than the calls.
            decisions = [await call for call in calls]
        else:
            decisions = await asyncio.gather(*calls)
        for (checked, key), decision in zip(checks, decisions, strict=True):
            if not decision.allowed:
                raise await self._refusal(checked, key, decision)
        if route_key is None:
            return Admission()
        return Admission(_headers(decisions[-1].quotas))

    async def for_principal(self, ref: PolicyRef, principal: Principal) -> dict[str, str]:
        """Stage 2: the handler's policy for the authenticated ``principal``.

        :returns: the rate-limit headers for the response.
        :raises ApiError: as :meth:`before_auth`.
        """
        policy = self.policy(ref)
        if policy is None:
            return {}
        key = _principal_key(principal.issuer, principal.subject)
        decision = await self.limiter.hit(policy, key, report=True)
        if not decision.allowed:
            raise await self._refusal(policy, key, decision)
        return _headers(decision.quotas)

    async def record_failed_auth(self, request: HTTPServerRequest) -> None:
        """Count one failed authentication (bad token, client secret or password) for the IP."""
        if self.failed_auth is not None:
            await self.limiter.hit(self.failed_auth, f"ip:{self.addresses.key(request)}")

    async def _refusal(self, policy: Policy, key: str, decision: Decision) -> ApiError:
        if decision.storage_failed:
            return ApiError(
                503,
                "temporarily_unavailable",
                "Rate limiting is unavailable; retry later",
                headers={"Retry-After": str(_FAIL_CLOSED_RETRY_AFTER)},
                reason="ratelimit_unavailable",
            )
        quotas = decision.quotas
        if quotas is None:
            # Only the route's own check reports. If the storage failed to report,
            # asking again costs nothing: it rests, and usage() answers None at once.
            quotas = await self.limiter.usage(policy, key, exceeded=decision.exceeded)
        index = decision.exceeded or 0
        if quotas is not None:
            retry_after = quotas[index].reset_after
        else:
            retry_after = policy.items[index].get_expiry()
        retry_after = max(1, retry_after)
        return ApiError(
            429,
            "rate_limited",
            f"Too many requests; retry in {retry_after} seconds",
            headers={"Retry-After": str(retry_after), **_headers(quotas)},
            reason="rate_limited",
        )


def _route_key(request: HTTPServerRequest, policy: Policy, ip_key: str) -> str:
    if policy.per_client:
        client_id = offered_client_id(request)
        if client_id:
            return f"client:{_key_part(client_id)}|{ip_key}"
    return ip_key


def offered_client_id(request: HTTPServerRequest) -> str | None:
    """The ``client_id`` a token request names (RFC 6749 §2.3.1), unverified.

    From HTTP Basic credentials (form-encoded id) or the ``client_id`` parameter.
    """
    scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return unquote_plus(decoded.partition(":")[0]) or None
    values = request.body_arguments.get("client_id") or request.query_arguments.get("client_id")
    if not values:
        return None
    try:
        return values[0].decode("utf-8") or None
    except UnicodeDecodeError:
        return None


@functools.lru_cache(maxsize=4096)
def _principal_key(issuer: str, subject: str) -> str:
    # Cached: the same few users send most requests, and quoting is dear per request.
    return f"sub:{_key_part(issuer)}|{_key_part(subject)}"


def _key_part(value: str) -> str:
    # Client-chosen text: escaped so it cannot forge a separator, and hashed when
    # long so a megabyte of client_id cannot become a megabyte key.
    escaped = quote(value, safe="@.-_~")
    if len(escaped) > _MAX_KEY_PART:
        return "sha256:" + hashlib.sha256(value.encode()).hexdigest()
    return escaped


def _headers(quotas: tuple[Quota, ...] | None) -> dict[str, str]:
    """The ``RateLimit-Policy`` and ``RateLimit`` fields of draft-ietf-httpapi-ratelimit-headers."""
    if not quotas:
        return {}
    if len(quotas) == 1:  # the usual policy: one limit, no joins
        (q,) = quotas
        return {
            "RateLimit-Policy": _policy_item(q.name, q.limit, q.window),
            "RateLimit": f'"{q.name}";r={q.remaining};t={q.reset_after}',
        }
    return {
        "RateLimit-Policy": ", ".join(_policy_item(q.name, q.limit, q.window) for q in quotas),
        "RateLimit": ", ".join(f'"{q.name}";r={q.remaining};t={q.reset_after}' for q in quotas),
    }


@functools.lru_cache(maxsize=256)
def _policy_item(name: str, limit: int, window: int) -> str:
    # The same few policies on every response.
    return f'"{name}";q={limit};w={window}'
