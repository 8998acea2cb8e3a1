"""The tutorial's ``/get-token`` in local mode: a configured client's credentials
exchanged for a client-credentials token, by the same code as ``/oauth/token``.

The secret is verified once, on first use, and not again per request: the route
takes no credentials from its caller, so hashing on each call would only let
anyone burn the server's CPU. It is verified again once the client's secret was
rotated, so the old one stops working here too.
"""

from __future__ import annotations

import asyncio

from backends.issuance.errors import InvalidClient, OAuthError
from backends.issuance.grants import TokenService
from backends.issuance.tokens import TokenGrant


class ExchangeMisconfigured(Exception):
    """The configured client does not exist, has another secret or may not use the grant."""


class LocalTokenExchange:
    def __init__(self, tokens: TokenService, client_id: str, client_secret: str) -> None:
        self.tokens = tokens
        self.client_id = client_id
        self._secret = client_secret
        self._verified: str | None = None  # the stored hash the secret was checked against
        self._lock = asyncio.Lock()

    async def _verify_once(self, secret_hash: str) -> None:
        if self._verified == secret_hash:
            return
        async with self._lock:  # concurrent first calls share one argon2 check
            if self._verified == secret_hash:
                return
            try:
                client = await self.tokens.authenticate_client(self.client_id, self._secret)
            except InvalidClient:
                raise ExchangeMisconfigured(
                    "JOTGUARD_GET_TOKEN_CLIENT_ID/SECRET do not authenticate a client"
                ) from None
            self._verified = client.secret_hash

    async def exchange(self) -> TokenGrant:
        """A token for the configured client, with all its scopes.

        :raises ExchangeMisconfigured: see the class.
        :raises BackendUnavailable: the client registry cannot answer.
        """
        client = await self.tokens.store.get_client(self.client_id)
        if client is None:
            self._verified = None
            raise ExchangeMisconfigured("the /get-token client no longer exists")
        await self._verify_once(client.secret_hash)
        try:
            return await self.tokens.client_credentials(client, None)
        except OAuthError as exc:
            raise ExchangeMisconfigured(f"the /get-token client is refused: {exc}") from None
