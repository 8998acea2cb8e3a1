"""The auth backend protocol and the chain that routes a token to its issuer's backend."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from backends.compact import UnverifiedToken, parse_compact
from backends.errors import ConfigError, InvalidToken
from backends.principal import Principal


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


class Authenticator:
    """Picks the backend by the token's unverified ``iss``, never by trying every key."""

    def __init__(self, backends: Iterable[AuthBackend]) -> None:
        self.backends: dict[str, AuthBackend] = {}
        for backend in backends:
            if backend.issuer in self.backends:
                raise ConfigError(f"two auth backends serve the issuer {backend.issuer!r}")
            self.backends[backend.issuer] = backend

    async def authenticate(self, token: str) -> Principal:
        parsed = parse_compact(token)
        backend = self.backends.get(parsed.issuer or "")
        if backend is None:
            raise InvalidToken("The token issuer is not trusted", reason="wrong_issuer")
        return await backend.authenticate(parsed)
