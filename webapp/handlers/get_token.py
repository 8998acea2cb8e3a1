"""``GET /get-token``: the tutorial's route that hands out a client-credentials token.

Auth0 mode (``AUTH0_CLIENT_ID`` and ``AUTH0_CLIENT_SECRET`` set) performs the
tutorial's exchange with the issuer's ``/oauth/token``; unconfigured, the route
does not exist (404).
"""

from __future__ import annotations

from tornado.web import HTTPError

from backends.token_exchange import ClientCredentialsExchange, ExchangeFailed
from webapp.errors import ApiError
from webapp.handler import JsonHandler
from webapp.services import Services


class GetTokenHandler(JsonHandler):
    @property
    def services(self) -> Services:
        services: Services = self.settings["services"]
        return services

    async def get(self) -> None:
        exchange = self.services.token_exchange
        if exchange is None:
            raise HTTPError(404)
        await self._auth0_exchange(exchange)

    async def _auth0_exchange(self, exchange: ClientCredentialsExchange) -> None:
        """Upstream token → 200 as is; upstream 4xx → its scrubbed OAuth error, same
        status; unreachable or broken upstream → 502; upstream timeout → 504."""
        try:
            result = await exchange.request_token()
        except ExchangeFailed as exc:
            raise ApiError(exc.status, exc.error, exc.description) from None
        if result.retry_after is not None:
            self.set_header("Retry-After", result.retry_after)
        self.set_header("Pragma", "no-cache")  # RFC 6749 §5.1, beside Cache-Control: no-store
        self.set_status(result.status)
        self.finish(result.body)
