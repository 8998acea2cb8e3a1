"""RFC 7009 token revocation and RFC 7662 token introspection.

Both RFCs require the caller to authenticate as a client. jotguard has no client
registry yet, so :func:`authenticate_client` accepts an admin bearer token instead;
it is the one function to replace with RFC 6749 client authentication.
"""

from __future__ import annotations

from typing import Any

from backends.errors import AuthError, BackendUnavailable, InsufficientScope, MissingCredentials
from backends.principal import Principal
from webapp.errors import ApiError
from webapp.handler import JsonHandler, bearer_token
from webapp.services import Services


async def authenticate_client(handler: OAuthEndpointHandler) -> str:
    """The authenticated caller's id. Stand-in: a bearer token with the admin scope.

    :raises ApiError: 401 without valid credentials, 403 without the admin scope,
        503 when the check needs a store that is down.
    """
    services = handler.services
    try:
        token = bearer_token(handler.request)
        if token is None:
            raise MissingCredentials()
        principal = await services.authenticator.authenticate(token)
        scope = services.settings.admin_scope
        if not principal.has_scopes([scope]):
            raise InsufficientScope((scope,))
    except AuthError as exc:
        raise handler.fail(exc) from None
    return principal.subject


class OAuthEndpointHandler(JsonHandler):
    client_id: str

    @property
    def services(self) -> Services:
        services: Services = self.settings["services"]
        return services

    async def prepare(self) -> None:
        self.client_id = await authenticate_client(self)

    def token_parameter(self) -> str:
        """The single ``token`` form parameter (RFC 7009 §2.1, RFC 7662 §2.1)."""
        values = self.get_body_arguments("token")
        if len(values) != 1 or not values[0]:
            raise ApiError(400, "invalid_request", "Send the 'token' parameter exactly once")
        return values[0]

    async def verified(self, token: str) -> Principal | None:
        """The genuine, unexpired token's Principal; None for anything we cannot verify."""
        try:
            return await self.services.authenticator.verify(token)
        except BackendUnavailable as exc:
            raise self.fail(exc) from None
        except AuthError:
            return None


class RevokeHandler(OAuthEndpointHandler):
    """RFC 7009: 200 whether or not the token was valid; the caller learns nothing."""

    async def post(self) -> None:
        principal = await self.verified(self.token_parameter())
        if principal is not None and principal.token_id is not None:
            try:
                await self.services.revocations.revoke_token(
                    principal.token_id,
                    issuer=principal.issuer,
                    expires_at=principal.expires_at,
                    reason="RFC 7009 revocation request",
                    actor=self.client_id,
                )
            except BackendUnavailable as exc:
                raise self.fail(exc) from None
        self.set_status(200)
        self.finish()


class IntrospectHandler(OAuthEndpointHandler):
    """RFC 7662: ``{"active": false}`` for revoked, expired, foreign or garbled tokens."""

    async def post(self) -> None:
        principal = await self.verified(self.token_parameter())
        if principal is None:
            self.finish({"active": False})
            return
        try:
            # Always fail closed here: an unchecked "active" would be a false statement.
            await self.services.authenticator.check_revocation(principal, fail_open=False)
        except BackendUnavailable as exc:
            raise self.fail(exc) from None
        except AuthError:
            self.finish({"active": False})
            return
        self.finish(introspection(principal))


def introspection(principal: Principal) -> dict[str, Any]:
    claims = principal.claims
    response: dict[str, Any] = {
        "active": True,
        "token_type": "Bearer",
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
    return response
