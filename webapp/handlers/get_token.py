"""``GET /get-token``: the tutorial's route that hands out a client-credentials token.

Auth0 mode (``AUTH0_CLIENT_ID`` and ``AUTH0_CLIENT_SECRET`` set) performs the
tutorial's exchange with the issuer's ``/oauth/token``; local mode
(``JOTGUARD_GET_TOKEN_CLIENT_ID``) has our own issuer answer it. Settings refuse
both at once; unconfigured, the route does not exist (404).
"""

from __future__ import annotations

from collections.abc import Awaitable

from backends.errors import NotFound
from backends.issuance.exchange import LocalTokenExchange
from backends.outbound.token_exchange import ClientCredentialsExchange
from webapp.handlers.basic import NotFoundHandler
from webapp.handlers.get_token_local import local_get_token
from webapp.service.openapi import ERROR_SCHEMA, json_response, operation
from webapp.web.collaborators import collaborator
from webapp.web.handler import JsonHandler
from webapp.web.ratelimit import PolicyRef

_TOKEN_SCHEMA = {
    "type": "object",
    "required": ["access_token", "token_type"],
    "properties": {
        "access_token": {"type": "string"},
        "token_type": {"type": "string"},
        "expires_in": {"type": "integer"},
        "scope": {"type": "string"},
    },
}
# An upstream OAuth error passed through: RFC 6749 §5.2 makes only "error" mandatory.
_UPSTREAM_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "error_description": {"type": "string"},
        "error_uri": {"type": "string"},
    },
}


class GetTokenHandler(JsonHandler):
    """Counted per client address under the token policy: the route takes no credentials,
    so nothing in the request (a ``client_id`` in the query, say) names a budget."""

    rate_limit: PolicyRef = "token"

    token_exchange: ClientCredentialsExchange | None = collaborator()
    get_token_local: LocalTokenExchange | None = collaborator()

    def prepare(self) -> Awaitable[None] | None:
        if self.token_exchange is None and self.get_token_local is None:
            # Off, the route is an unknown path: counted as those are, not as token issuance.
            self.rate_limit = NotFoundHandler.rate_limit
        return super().prepare()

    @operation(
        "The tutorial's route: a client-credentials token for the configured client",
        description="Auth0 mode exchanges AUTH0_CLIENT_ID/AUTH0_CLIENT_SECRET at the issuer's "
        "/oauth/token; the upstream's OAuth errors pass through without the secret.",
        responses={
            200: json_response("The issuer's token response.", _TOKEN_SCHEMA),
            400: json_response("The issuer refused the exchange.", _UPSTREAM_ERROR),
            401: json_response("The issuer refused the client.", _UPSTREAM_ERROR),
            403: json_response("The issuer refused the client.", _UPSTREAM_ERROR),
            429: json_response("The issuer rate-limited the exchange.", _UPSTREAM_ERROR),
            502: json_response("The issuer is unreachable or answered nonsense.", ERROR_SCHEMA),
            504: json_response("The issuer did not answer in time.", ERROR_SCHEMA),
        },
        errors=[404],
        tags=["tokens"],
    )
    async def get(self) -> None:
        exchange = self.token_exchange
        if exchange is not None:
            await self._auth0_exchange(exchange)
            return
        local = self.get_token_local
        if local is None:
            raise NotFound("GET /get-token is not enabled on this server")
        self.set_header("Pragma", "no-cache")
        self.finish(await local_get_token(local))

    async def _auth0_exchange(self, exchange: ClientCredentialsExchange) -> None:
        """Upstream token → 200 as is; upstream 4xx → its scrubbed OAuth error, same
        status; unreachable or broken upstream → 502; upstream timeout → 504."""
        result = await exchange.request_token()
        if result.retry_after is not None:
            self.set_header("Retry-After", result.retry_after)
        self.set_header("Pragma", "no-cache")  # RFC 6749 §5.1, beside Cache-Control: no-store
        self.set_status(result.status)
        self.finish(result.body)
