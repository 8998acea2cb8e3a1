"""What the OAuth endpoints (token, revoke, introspect) share: the form body and
client authentication (RFC 6749 §2.3.1). Their RFC 6749 §5.2 errors are answered as
the table in :mod:`webapp.web.errors` says.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from tornado.httputil import HTTPServerRequest

from backends.issuance.base import Client
from backends.issuance.errors import InvalidClient, InvalidRequest
from backends.issuance.grants import TokenService
from backends.issuance.queueing import mark_request_started
from webapp.service.openapi import ERROR_SCHEMA, json_response
from webapp.web.collaborators import collaborator
from webapp.web.handler import JsonHandler

log = logging.getLogger("jotguard.oauth")

MAX_FORM_BYTES = 16 * 1024
MAX_FORM_FIELDS = 32
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")


def parse_form(request: HTTPServerRequest) -> dict[str, str]:
    """The ``application/x-www-form-urlencoded`` body as a dict.

    Empty values count as absent (RFC 6749 §3.1); a repeated parameter, a query
    string (secrets do not belong in URLs), bad percent-encoding or non-UTF-8 text
    is an ``invalid_request``.
    """
    media_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if media_type != FORM_MEDIA_TYPE:
        raise InvalidRequest(f"The request body must be {FORM_MEDIA_TYPE}")
    if request.query:
        raise InvalidRequest("Send the parameters in the request body, not in the URL")
    if len(request.body) > MAX_FORM_BYTES:
        raise InvalidRequest("The request body is too large")
    try:
        text = request.body.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidRequest("The request body is not form-encoded (raw non-ASCII)") from None
    parts = [p for p in text.split("&") if p]
    if len(parts) > MAX_FORM_FIELDS:
        raise InvalidRequest("The request body has too many parameters")
    form: dict[str, str] = {}
    seen: set[str] = set()
    for part in parts:
        raw_name, sep, raw_value = part.partition("=")
        try:
            name = unquote_plus(raw_name, errors="strict")
            value = unquote_plus(raw_value, errors="strict")
        except UnicodeDecodeError:
            raise InvalidRequest("The request body is not valid UTF-8 once decoded") from None
        if not sep or not name:
            raise InvalidRequest("The request body is not form-encoded (name=value&...)")
        if name in seen:
            raise InvalidRequest(f"The parameter '{name[:40]}' is repeated")
        seen.add(name)
        if value:
            form[name] = value
    return form


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    client_id: str
    secret: str
    method: str  # client_secret_basic or client_secret_post


def basic_credentials(header: str) -> ClientCredentials:
    """HTTP Basic client credentials (RFC 7617, RFC 6749 §2.3.1): the one parser of them.

    :raises InvalidClient: another scheme, or credentials that are not base64 of
        ``id:secret`` in UTF-8 with both halves form-encoded and non-empty; never
        anything else, whatever bytes the header carries.
    """
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClient("Authenticate the client with HTTP Basic or in the request body")
    encoded = encoded.strip()
    # Tornado hands header bytes over as Latin-1 text: anything past ASCII is not base64.
    if not encoded.isascii():
        raise InvalidClient("The Basic credentials are not valid base64")
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise InvalidClient("The Basic credentials are not valid base64 of UTF-8 text") from None
    raw_id, sep, raw_secret = decoded.partition(":")
    if not sep:
        raise InvalidClient("The Basic credentials must be client_id:client_secret")
    # RFC 6749 §2.3.1: both halves are form-urlencoded before base64.
    try:
        client_id = unquote_plus(raw_id, errors="strict")
        secret = unquote_plus(raw_secret, errors="strict")
    except UnicodeDecodeError:
        raise InvalidClient("The Basic credentials are not valid UTF-8") from None
    if not client_id or not secret:
        raise InvalidClient("The Basic credentials lack a client_id or a secret")
    return ClientCredentials(client_id, secret, "client_secret_basic")


def read_client_credentials(request: HTTPServerRequest, form: dict[str, str]) -> ClientCredentials:
    """The client's credentials, from the Authorization header or from the body, not both.

    :raises InvalidRequest: both methods at once, or two Authorization headers.
    :raises InvalidClient: none, or malformed.
    """
    headers = request.headers.get_list("Authorization")
    if len(headers) > 1:
        raise InvalidRequest("Send exactly one Authorization header")
    body_id, body_secret = form.get("client_id"), form.get("client_secret")
    if headers:
        if body_secret is not None:
            raise InvalidRequest(
                "Use one client authentication method: the Authorization header or the body"
            )
        basic = basic_credentials(headers[0])
        if body_id is not None and body_id != basic.client_id:
            raise InvalidRequest("client_id in the body differs from the Authorization header")
        return basic
    if body_id is None or body_secret is None:
        raise InvalidClient("Client authentication is required")
    return ClientCredentials(body_id, body_secret, "client_secret_post")


class OAuthEndpointHandler(JsonHandler):
    """Base of the token, revocation and introspection endpoints."""

    rate_limit = "token"

    tokens: TokenService = collaborator()

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Pragma", "no-cache")

    async def prepare(self) -> None:
        # All argon2 checks of this request queue by its arrival, not one by one, and
        # take their address's share of the hashing pool.
        mark_request_started(source=self.address_key)
        # Refused once the address spent its failed-auth budget, and charged to the
        # preauth guard; the route's own policy counts once the client is verified.
        await self.limit_request(authenticating=True)
        self.refuse_unsupported_method()

    async def authenticate_client(self, form: dict[str, str]) -> Client:
        """The client the request authenticates as, its check holding a failed-auth slot.

        :raises InvalidClient: missing, malformed or wrong credentials (a failure).
        :raises RateLimited: the address has no failed-auth budget left.
        """
        check = await self.client_check()
        try:
            credentials = read_client_credentials(self.request, form)
            client = await self.tokens.authenticate_client(
                credentials.client_id, credentials.secret
            )
        except InvalidClient:
            self.credentials_rejected("client")
            await check.failed()
            raise
        finally:
            check.release()
        return client

    def credentials_rejected(self, kind: str) -> None:
        """The one place a failed client or user credential check is logged.

        ``kind`` is ``client`` or ``user``. The log names neither the username nor any
        secret: people type passwords into the username field.
        """
        log.warning("rejected %s credentials from %s", kind, self.request.remote_ip)


# -- OpenAPI fragments shared by the token, revocation and introspection endpoints ----
OAUTH_ERROR_RESPONSES: dict[int, dict[str, Any]] = {
    400: json_response(
        "RFC 6749 §5.2: invalid_request, invalid_grant, invalid_scope, "
        "unsupported_grant_type or unauthorized_client.",
        ERROR_SCHEMA,
    ),
    401: {
        **json_response("invalid_client: client authentication failed.", ERROR_SCHEMA),
        "headers": {
            "WWW-Authenticate": {"schema": {"type": "string", "pattern": "^Basic "}},
        },
    },
    503: json_response("A store needed for the answer is down; retry later.", ERROR_SCHEMA),
}
CLIENT_AUTH_DESCRIPTION = (
    "The client authenticates with HTTP Basic (client_secret_basic) or with client_id "
    "and client_secret in the form (client_secret_post), never both."
)
