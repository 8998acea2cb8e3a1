"""Rate limiting of HTTP requests: which policy a handler has, whom a request is counted against.

A handler names its policy with the class attribute ``rate_limit``: the name of
a configured policy (``"default"``, ``"token"``, ``"introspect"``, ``"admin"``,
``"api"``), a :class:`~backends.ratelimit.Policy` of its own, or None (never
limited, guards included). A configured policy set to ``off`` counts nothing and
sends no headers; the brute-force guards stay on unless turned off by name. The
policy is resolved after routing, so ``/x``, ``/x/`` and ``/x/anything`` of one
handler share one budget: keys name the policy, never the path.

Nothing a caller says about itself is a key until it is verified: requests are
counted per client address, verified principal or verified client. The one
exception, the failed-password budget per (client, username), is keyed by what was
typed, because it must hold for accounts that do not exist exactly as for those
that do; like every policy it keeps a bounded number of keys
(:mod:`backends.ratelimit.keys`).

1. **Before authentication**, per address, in order, and the first refusal stops it
   (a refused request charges nothing further): a request that presents
   credentials (a bearer token, or any request to an endpoint that authenticates an
   OAuth client) is refused if its address has spent its failed-authentication
   budget, then charged to the ``preauth`` guard; any other request is charged to
   its route's policy. A token this process has verified before skips this stage:
   the guards protect verification work, and it needs none. Its DPoP proof needs
   some: it is charged to ``preauth`` alone (:meth:`RequestLimits.before_proof`).
2. **After authentication**: the route's policy per verified principal (issuer +
   ``sub``), or, on the OAuth endpoints, per verified client
   (:meth:`RequestLimits.for_verified`, with the key the endpoint chooses).

Failures are counted in budgets a success never consumes: bad or forged tokens and
failed client checks per address (``failed-auth``), failed passwords per account
and, coarsely, per address (``password``, ``password-ip``). A client-secret or
password check **holds a slot** of its budgets while it runs
(:meth:`RequestLimits.reserve`): a check starts only if the recorded failures plus
the checks in flight leave room, and gives the slot back when it succeeds, so a
burst is never checked beyond the budget. (Bearer tokens are cheap to check and
not reserved: 50 honest clients behind one address must not hold each other off.)
In-flight slots are this process's: with several processes sharing Redis, a burst
split between them can have up to the budget in flight in each.
"""

from __future__ import annotations

import functools
import hashlib
from collections import Counter
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from urllib.parse import quote

from tornado.httputil import HTTPServerRequest

from backends.dpop import InvalidDPoPProof
from backends.errors import AuthError, InvalidToken, RateLimited
from backends.principal import Principal
from backends.ratelimit import (
    Decision,
    Policy,
    Quota,
    RateLimitBackend,
)
from webapp.web.clientip import ClientAddresses, Network
from webapp.web.errors import ApiError

PolicyRef = str | Policy | None
Slot = tuple[Policy, str]

# A validly signed token that has expired or been revoked is not a guess at a
# secret: counting it would lock out a NAT full of clients that merely refresh late.
# Nor is a genuine token sent under the wrong scheme (DPoP-bound as Bearer, Bearer
# where DPoP is required, unbound as DPoP): no repetition of it can succeed.
_NOT_GUESSES = frozenset({"expired", "revoked", "dpop_bound", "dpop_required", "dpop_unbound"})

_MAX_KEY_PART = 128
_FAIL_CLOSED_RETRY_AFTER = 5


@dataclass(frozen=True, slots=True)
class Admission:
    """A request let through stage 1."""

    headers: dict[str, str] = field(default_factory=dict)
    """Rate-limit headers for the response (empty when stage 2 will report)."""


def is_failed_guess(exc: AuthError) -> bool:
    """Does this refusal count against the caller's failed-authentication budget?

    A bad token does, and so does a bad DPoP proof (forged, replayed, by another key);
    a proof that lacks only the server's nonce does not: that is how a client learns it.
    """
    if isinstance(exc, InvalidDPoPProof):
        return True
    return isinstance(exc, InvalidToken) and exc.reason not in _NOT_GUESSES


def client_key(client_id: str, *, address: str | None = None, subject: str | None = None) -> str:
    """The key of a verified client, alone or with an address (``ip:...``) or a subject."""
    key = f"client:{_key_part(client_id)}"
    if subject is not None:
        return f"{key}|sub:{_key_part(subject)}"
    if address is not None:
        return f"{key}|{address}"
    return key


def account_key(client_id: str, username: str) -> str:
    """The key of a login name as typed, through one client (existing or not)."""
    return f"client:{_key_part(client_id)}|user:{_key_part(username)}"


class CredentialCheck:
    """The slots one credential check holds; :meth:`failed` or :meth:`release` it, once."""

    __slots__ = ("_limits", "_open", "_slots")

    def __init__(self, limits: RequestLimits | None, slots: tuple[Slot, ...]) -> None:
        self._limits = limits
        self._slots = slots
        self._open = True

    async def failed(self) -> None:
        """The check failed: each slot becomes a recorded failure, then is let go."""
        if not self._open or self._limits is None:
            self._open = False
            return
        try:
            # Recorded before the slot is let go, so no check in between sees neither.
            for policy, key in self._slots:
                await self._limits.limiter.hit(policy, key)
        finally:
            self.release()

    def release(self) -> None:
        """The check passed, or never ran: the slots are free again."""
        if self._open:
            self._open = False
            if self._limits is not None:
                self._limits._let_go(self._slots)


class RequestLimits:
    """The policies of an application, the limiter that counts them, and how keys are made.

    Give it to each route as its ``rate_limits`` keyword; without it, nothing is
    limited. ``off`` names configured policies that count nothing.
    """

    def __init__(
        self,
        limiter: RateLimitBackend,
        policies: Iterable[Policy],
        *,
        off: Iterable[str] = (),
        failed_auth: Policy | None = None,
        preauth: Policy | None = None,
        password: Policy | None = None,
        password_ip: Policy | None = None,
        trusted_proxies: Iterable[str | Network] = (),
        ipv6_prefix: int = 56,
        client_ip_header: str = "x-forwarded-for",
    ) -> None:
        self.limiter = limiter
        self.policies: dict[str, Policy | None] = dict.fromkeys(off)
        self.policies.update((policy.name, policy) for policy in policies)
        self.failed_auth = failed_auth
        self.preauth = preauth
        self.password = password
        self.password_ip = password_ip
        self.addresses = ClientAddresses(trusted_proxies, ipv6_prefix, client_ip_header)
        # Checks in flight per slot: entries live only while a check runs.
        self._in_flight: Counter[Slot] = Counter()

    def policy(self, ref: PolicyRef) -> Policy | None:
        """The policy a handler's ``rate_limit`` attribute names (None: never, or off).

        :raises LookupError: a name no configured policy has (a programming error).
        """
        if ref is None or isinstance(ref, Policy):
            return ref
        try:
            return self.policies[ref]
        except KeyError:
            raise LookupError(f"no rate-limit policy named {ref!r} is configured") from None

    def address_key(self, request: HTTPServerRequest) -> str:
        """``ip:<address or network>``: what per-address budgets are keyed by."""
        return f"ip:{self.addresses.key(request)}"

    async def before_auth(
        self, request: HTTPServerRequest, ref: PolicyRef, *, authenticating: bool
    ) -> Admission:
        """Stage 1; ``authenticating``: credentials will be checked next (a bearer token,
        or an OAuth client's), so the guards apply and the route counts after the check.

        :raises RateLimited: over a limit (429).
        :raises ApiError: 503 when the storage is down and limiting fails closed.
        """
        if ref is None:
            return Admission()
        ip_key = self.address_key(request)
        limiter = self.limiter
        if authenticating:
            # Only recorded failures count here; slots of checks in flight are taken
            # by the checks that need them (reserve).
            if self.failed_auth is not None:
                await self._require(
                    limiter.peek(self.failed_auth, ip_key), self.failed_auth, ip_key
                )
            if self.preauth is not None:
                await self._require(limiter.hit(self.preauth, ip_key), self.preauth, ip_key)
            return Admission()
        policy = self.policy(ref)
        if policy is None:
            return Admission()
        decision = await limiter.hit(policy, ip_key, report=True)
        if not decision.allowed:
            raise await self._refusal(policy, ip_key, decision)
        return Admission(_headers(decision.quotas))

    async def before_proof(self, request: HTTPServerRequest, ref: PolicyRef) -> None:
        """A DPoP proof (RFC 9449) of a token verified before is about to be checked: one
        charge to the ``preauth`` guard, as any check. The failed-auth lockout is left
        out, as for the token itself: a guesser must not lock out the clients behind its
        address whose tokens and keys are good.

        :raises RateLimited, ApiError: as :meth:`before_auth`.
        """
        if ref is not None and self.preauth is not None:
            ip_key = self.address_key(request)
            await self._require(self.limiter.hit(self.preauth, ip_key), self.preauth, ip_key)

    async def _require(self, call: Awaitable[Decision], policy: Policy, key: str) -> None:
        decision = await call
        if not decision.allowed:
            raise await self._refusal(policy, key, decision)

    async def for_principal(self, ref: PolicyRef, principal: Principal) -> dict[str, str]:
        """Stage 2: the handler's policy for the authenticated ``principal``.

        :returns: the rate-limit headers for the response.
        :raises RateLimited, ApiError: as :meth:`before_auth`.
        """
        return await self.for_verified(ref, _principal_key(principal.issuer, principal.subject))

    async def for_verified(self, ref: PolicyRef, key: str) -> dict[str, str]:
        """The handler's policy for a verified ``key`` (see :func:`client_key`).

        :returns: the rate-limit headers for the response.
        :raises RateLimited, ApiError: as :meth:`before_auth`.
        """
        policy = self.policy(ref)
        if policy is None:
            return {}
        decision = await self.limiter.hit(policy, key, report=True)
        if not decision.allowed:
            raise await self._refusal(policy, key, decision)
        return _headers(decision.quotas)

    async def record_failed_auth(self, request: HTTPServerRequest) -> None:
        """Count one failed authentication (a bad token) for the address."""
        if self.failed_auth is not None:
            await self.limiter.hit(self.failed_auth, self.address_key(request))

    async def client_check(self, request: HTTPServerRequest) -> CredentialCheck:
        """A slot of the address's failed-auth budget for one client-secret check."""
        return await self.reserve([(self.failed_auth, self.address_key(request))])

    async def password_check(
        self, request: HTTPServerRequest, client_id: str, username: str
    ) -> CredentialCheck:
        """Slots for one password check: the account's budget and the address's flood guard."""
        return await self.reserve(
            [
                (self.password, account_key(client_id, username)),
                (self.password_ip, self.address_key(request)),
            ]
        )

    async def reserve(self, slots: Iterable[tuple[Policy | None, str]]) -> CredentialCheck:
        """Hold a slot of each budget (None: turned off) for a check about to run.

        Each budget must have room for its recorded failures plus every check in
        flight, this one included; otherwise nothing is held or charged.

        :raises RateLimited: a budget has no room.
        :raises ApiError: 503 as :meth:`before_auth`.
        """
        held = tuple((policy, key) for policy, key in slots if policy is not None)
        for slot in held:
            self._in_flight[slot] += 1  # before any await: concurrent checks see each other
        check = CredentialCheck(self, held)
        try:
            for policy, key in held:
                cost = self._in_flight[(policy, key)]
                await self._require(self.limiter.peek(policy, key, cost=cost), policy, key)
        except BaseException:
            check.release()
            raise
        return check

    def _let_go(self, slots: tuple[Slot, ...]) -> None:
        in_flight = self._in_flight
        for slot in slots:
            in_flight[slot] -= 1
            if in_flight[slot] <= 0:
                del in_flight[slot]

    @property
    def checks_in_flight(self) -> int:
        """Credential-check slots held now (for tests and metrics)."""
        return sum(self._in_flight.values())

    async def _refusal(
        self, policy: Policy, key: str, decision: Decision
    ) -> ApiError | RateLimited:
        if decision.storage_failed:
            return ApiError(
                503,
                "temporarily_unavailable",
                "Rate limiting is unavailable; retry later",
                headers={"Retry-After": str(_FAIL_CLOSED_RETRY_AFTER)},
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
            retry_after = policy.items[index].window
        retry_after = max(1, retry_after)
        return RateLimited(
            f"Too many requests; retry in {retry_after} seconds",
            retry_after=retry_after,
            headers=_headers(quotas),
        )


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
