"""The auth backend protocol and the chain that routes a token to its issuer's backend."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from backends.auth.compact import UnverifiedToken, parse_compact
from backends.auth.token_cache import VerifiedTokenCache
from backends.errors import BackendUnavailable, ConfigError, InvalidToken
from backends.principal import Principal
from backends.revocation.base import RevocationStore
from backends.revocation.policy import outlives_denylist

log = logging.getLogger("jotguard.auth")


class AuthBackend(Protocol):
    """Verifies the tokens of one issuer.

    The token arrives parsed (size-capped, header policy applied) but unverified.
    """

    issuer: str

    async def authenticate(self, token: UnverifiedToken) -> Principal:
        """The verified Principal.

        :raises InvalidToken: bad signature, claims, key or algorithm.
        :raises BackendUnavailable: the decision needs a source that is down.
        """
        ...

    def keys_usable_until(self) -> float | None:
        """Epoch seconds at which the keys it verifies with stop being usable unless
        refreshed first (a remote key set's max-stale bound); None if they never do.

        The verified-token cache answers for the tokens it verified only until then,
        so a token verified before an outage does not outlast what a new token gets.
        """
        ...


class Authenticator:
    """Picks the backend by the token's unverified ``iss``, never by trying every key,
    then checks the verified token against the revocation denylist.

    :param revocations: the denylist; consulted only after signature and claims passed,
        so garbage never reaches the store.
    :param fail_open: when the denylist cannot answer, let the token through (and log
        it) instead of answering 503.
    :param max_token_lifetime: subject and client revocations expire this long after
        their cutoff, so a token that could live longer is refused: it would come back
        to life once the entry that revoked it is gone.
    :param token_cache: remembers verified tokens so a token's signature is checked
        once; the revocation check still runs on every request.
    """

    def __init__(
        self,
        backends: Iterable[AuthBackend],
        *,
        revocations: RevocationStore | None = None,
        fail_open: bool = False,
        max_token_lifetime: float | None = None,
        clock: Callable[[], float] = time.time,
        token_cache: VerifiedTokenCache | None = None,
    ) -> None:
        self.backends: dict[str, AuthBackend] = {}
        for backend in backends:
            if backend.issuer in self.backends:
                raise ConfigError(f"two auth backends serve the issuer {backend.issuer!r}")
            self.backends[backend.issuer] = backend
        self.revocations = revocations
        self.fail_open = fail_open
        self.max_token_lifetime = max_token_lifetime
        self.clock = clock
        self.token_cache = token_cache

    def verified_before(self, token: str) -> Principal | None:
        """The Principal of ``token`` if its signature and claims were verified before and
        it has not expired since (the token cache); None otherwise. Not a revocation check."""
        return self.token_cache.get(token) if self.token_cache is not None else None

    async def verify(self, token: str) -> Principal:
        """Signature and claims only: the token is genuine, not necessarily still allowed."""
        cache = self.token_cache
        if cache is not None:
            cached = cache.get(token)
            if cached is not None:
                return cached
        parsed = parse_compact(token)
        backend = self.backends.get(parsed.issuer or "")
        if backend is None:
            raise InvalidToken("The token issuer is not trusted", reason="wrong_issuer")
        principal = await backend.authenticate(parsed)
        if cache is not None:
            cache.put(token, principal, until=backend.keys_usable_until())
        return principal

    def forget_verified(self) -> None:
        """Verify every token again: call when a backend's keys changed (one was dropped)."""
        if self.token_cache is not None:
            self.token_cache.clear()

    async def authenticate(self, token: str) -> Principal:
        principal = await self.verify(token)
        await self.check_revocation(principal)
        return principal

    async def check_revocation(
        self, principal: Principal, *, fail_open: bool | None = None
    ) -> None:
        """:raises InvalidToken: revoked. :raises BackendUnavailable: cannot tell (fail-closed).

        ``fail_open`` overrides the authenticator's setting for one call.
        """
        if fail_open is None:
            fail_open = self.fail_open
        if self.revocations is None:
            return
        if self.max_token_lifetime is not None and outlives_denylist(
            principal, self.clock(), self.max_token_lifetime
        ):
            raise InvalidToken(
                "The token lives longer than this service accepts", reason="lifetime_too_long"
            )
        try:
            why = await self.revocations.is_revoked(principal)
        except BackendUnavailable:
            if not fail_open:
                raise
            # %r: the token's issuer chose jti and sub, and a newline in one would forge
            # a log line of its own. (iss is one of the configured issuers.)
            log.warning(
                "revocation store unavailable: letting token jti=%r sub=%r iss=%s through "
                "unchecked (JOTGUARD_REVOCATION_FAIL_OPEN)",
                principal.token_id,
                principal.subject,
                principal.issuer,
            )
            return
        if why is not None:
            raise InvalidToken(why, reason="revoked")
