"""``GET /get-token`` in local mode (used by ``webapp.handlers.get_token``).

Off unless ``JOTGUARD_GET_TOKEN_CLIENT_ID`` is set. Anyone who can reach the route
gets a token with every scope of the configured client: a development aid, not
something to expose in production (see the README).
"""

from __future__ import annotations

import logging

from backends.errors import BackendUnavailable
from backends.issuance.exchange import ExchangeMisconfigured, LocalTokenExchange

log = logging.getLogger("jotguard.get_token")


async def local_get_token(exchange: LocalTokenExchange) -> dict[str, object]:
    """The token response for the configured client.

    :raises BackendUnavailable: a store is down, or the configured client cannot get a
        token (logged: the operator must fix it; the client can only retry).
    """
    try:
        grant = await exchange.exchange()
    except ExchangeMisconfigured as exc:
        log.error("GET /get-token is misconfigured: %s", exc)
        raise BackendUnavailable(
            "The token exchange is misconfigured on the server", retry_after=60
        ) from None
    return grant.response()
