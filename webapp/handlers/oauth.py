"""RFC 7009 token revocation and RFC 7662 token introspection.

Both authenticate the caller as an OAuth client (RFC 6749 §2.3.1: HTTP Basic or
the body), like ``/oauth/token``. A client revokes and introspects the tokens
issued to it; a client registered with the admin scope (a resource server, an
operator's tool) may introspect any token.

Introspection reports a DPoP binding as RFC 9449 §6.2 says: ``cnf: {"jkt": ...}`` at
the top level, and ``token_type: DPoP`` for a bound access token. It checks no proof:
the resource server compares the key itself.
"""

from __future__ import annotations

from typing import Any

from backends.auth import Authenticator
from backends.errors import AuthError
from backends.issuance.base import Client
from backends.issuance.errors import InvalidRequest, UnauthorizedClient
from backends.principal import Principal
from backends.revocation.base import RevocationStore
from webapp.handlers.oauth_endpoint import (
    CLIENT_AUTH_DESCRIPTION,
    OAUTH_ERROR_RESPONSES,
    OAuthEndpointHandler,
    parse_form,
)
from webapp.service.openapi import form_body, json_response, operation
from webapp.web.collaborators import collaborator
from webapp.web.ratelimit import client_key

_TOKEN_FORM = form_body(
    {
        "type": "object",
        "required": ["token"],
        "properties": {
            "token": {"type": "string", "minLength": 1},
            "token_type_hint": {"type": "string"},
        },
    }
)
_INTROSPECTION = {
    "type": "object",
    "required": ["active"],
    "properties": {
        "active": {"type": "boolean"},
        "token_type": {"type": "string"},
        "scope": {"type": "string"},
        "sub": {"type": "string"},
        "client_id": {"type": "string"},
        "iss": {"type": "string"},
        "exp": {"type": "integer"},
        "iat": {"type": "integer"},
        "nbf": {"type": "integer"},
        "jti": {"type": "string"},
        "aud": {"type": ["string", "array"]},
        "cnf": {
            "type": "object",
            "required": ["jkt"],
            "properties": {"jkt": {"type": "string"}},
        },
    },
}


class TokenEndpointHandler(OAuthEndpointHandler):
    """Parses the form, authenticates the client, then :meth:`answer` s for the ``token``.

    Counted per verified client (``JOTGUARD_RATELIMIT_INTROSPECT``): a resource server
    introspects on every request it serves, so the budget is its own and generous.
    """

    rate_limit = "introspect"

    authenticator: Authenticator = collaborator()
    revocations: RevocationStore = collaborator()

    async def post(self) -> None:
        form = parse_form(self.request)
        token = form.get("token")
        if token is None:
            raise InvalidRequest("Send the 'token' parameter exactly once")
        client = await self.authenticate_client(form)
        await self.limit_verified(client_key(client.client_id))
        self.finish(await self.answer(client, token, form.get("token_type_hint")))

    async def answer(self, client: Client, token: str, hint: str | None) -> dict[str, Any] | None:
        """The JSON body (None for an empty 200); each endpoint overrides this."""
        raise NotImplementedError

    async def verified(self, token: str) -> Principal | None:
        """The genuine, unexpired token's Principal; None for anything we cannot verify.

        :raises BackendUnavailable: a key source needed to tell is down.
        """
        try:
            return await self.authenticator.verify(token)
        except AuthError:
            return None


class RevokeHandler(TokenEndpointHandler):
    """RFC 7009: ``200`` for tokens that are invalid already; the caller learns nothing."""

    @operation(
        "RFC 7009: revoke an access or refresh token the calling client holds",
        description=CLIENT_AUTH_DESCRIPTION,
        request_body=_TOKEN_FORM,
        responses={200: {"description": "Revoked, or was never valid."}, **OAUTH_ERROR_RESPONSES},
        tags=["oauth"],
    )
    async def post(self) -> None:
        await super().post()

    async def answer(self, client: Client, token: str, hint: str | None) -> None:
        # RFC 7009 §2.1: the hint only orders the search; a token of the other type is
        # found and revoked all the same (an unknown hint is ignored).
        lookups = [self.tokens.revoke_refresh_token, self._revoke_access_token]
        if hint == "access_token":
            lookups.reverse()
        for revoke in lookups:
            if await revoke(client, token):
                return

    async def _revoke_access_token(self, client: Client, token: str) -> bool:
        """Revoke one of our access tokens by its jti; False if it is none (or has none)."""
        principal = await self.verified(token)
        if principal is None or principal.token_id is None:
            return False
        if principal.client_id != client.client_id:
            raise UnauthorizedClient("The token was not issued to this client")
        await self.revocations.revoke_token(
            principal.token_id,
            issuer=principal.issuer,
            expires_at=principal.expires_at,
            reason="RFC 7009 revocation request",
            actor=f"client:{client.client_id}",
        )
        return True


_INACTIVE = {"active": False}


class IntrospectHandler(TokenEndpointHandler):
    """RFC 7662: ``{"active": false}`` for revoked, expired, foreign or garbled tokens,
    and for tokens of another client unless the caller holds the admin scope."""

    admin_scope: str = collaborator()

    @operation(
        "RFC 7662: is this token active, and what does it carry",
        description=CLIENT_AUTH_DESCRIPTION,
        request_body=_TOKEN_FORM,
        responses={
            200: json_response("The introspection answer.", _INTROSPECTION),
            **OAUTH_ERROR_RESPONSES,
        },
        tags=["oauth"],
    )
    async def post(self) -> None:
        await super().post()

    async def answer(self, client: Client, token: str, hint: str | None) -> dict[str, Any]:
        # As for revocation, the hint only orders the search (RFC 7662 §2.1).
        lookups = [self._access_token, self._refresh_token]
        if hint == "refresh_token":
            lookups.reverse()
        for lookup in lookups:
            answer = await lookup(client, token)
            if answer is not None:
                return answer
        return _INACTIVE

    async def _access_token(self, client: Client, token: str) -> dict[str, Any] | None:
        """The answer for one of our access tokens; None when ``token`` is not one."""
        principal = await self.verified(token)
        if principal is None:
            return None
        if not self._may_inspect(client, principal.client_id):
            return _INACTIVE
        try:
            # Always fail closed here: an unchecked "active" would be a false statement.
            await self.authenticator.check_revocation(principal, fail_open=False)
        except AuthError:
            return _INACTIVE
        return introspection(principal)

    async def _refresh_token(self, client: Client, token: str) -> dict[str, Any] | None:
        """The answer for one of our refresh tokens; None when ``token`` is not one."""
        status = await self.tokens.refresh_token_status(token)
        if status is None:
            return None
        found, active = status
        if not active or not self._may_inspect(client, found.client_id):
            return _INACTIVE
        answer = {
            "active": True,
            "token_type": "refresh_token",
            "scope": " ".join(sorted(found.scopes)),
            "client_id": found.client_id,
            "sub": found.subject,
            "iss": self.tokens.issuer.issuer,
            "exp": int(found.expires_at),
            "iat": int(found.issued_at),
        }
        if found.jkt is not None:
            answer["cnf"] = {"jkt": found.jkt}
        return answer

    def _may_inspect(self, client: Client, token_client_id: str | None) -> bool:
        return token_client_id == client.client_id or self.admin_scope in client.scopes


def introspection(principal: Principal) -> dict[str, Any]:
    claims = principal.claims
    jkt = principal.jkt
    response: dict[str, Any] = {
        "active": True,
        "token_type": "Bearer" if jkt is None else "DPoP",
        "scope": " ".join(sorted(principal.scopes)),
        "sub": principal.subject,
        "iss": principal.issuer,
        "exp": principal.expires_at,
    }
    optional = {
        "client_id": principal.client_id,
        "iat": principal.issued_at,
        "jti": principal.token_id,
        "aud": claims.get("aud"),
        "nbf": claims.get("nbf"),
    }
    response.update({k: v for k, v in optional.items() if v is not None})
    if jkt is not None:
        response["cnf"] = {"jkt": jkt}
    return response
