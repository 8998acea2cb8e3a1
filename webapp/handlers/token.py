"""``POST /oauth/token`` (RFC 6749): client_credentials, password and refresh_token.

With a ``DPoP`` header (RFC 9449 §5) the proof is checked once the client has
authenticated (so no unauthenticated caller takes room in the replay cache), for
``htm`` POST and ``htu`` this endpoint's URL, without ``ath``: every grant then binds
its access token to the proof key (``cnf.jkt``, ``token_type: DPoP``). Without one,
tokens are Bearer tokens, unless ``JOTGUARD_DPOP=required``; with DPoP off the header is
not looked at (the ``Bearer`` answer tells the client its token is unbound).

A refused proof is a 400 (RFC 6749 §5.2), ``invalid_dpop_proof``, a missing one in
required mode included (the header does not hold a valid proof, which is what the
code says); a proof without a recent server nonce, when nonces are on, is a 400
``use_dpop_nonce`` with a fresh ``DPoP-Nonce`` (RFC 9449 §8), and successes carry a
newer one when it changes. A bad proof does not count against the address's
failed-authentication budget: the client has just proved its secret, and a proof
guesses at nothing (anyone can sign a valid one with a key of their own); the
request was charged to the ``preauth`` guard like every token request.
"""

from __future__ import annotations

from backends.dpop import DPoPError, UseDPoPNonce, VerifiedProof
from backends.issuance.base import GRANT_TYPES, Client, parse_scopes
from backends.issuance.errors import InvalidRequest, InvalidScope, UnsupportedGrantType
from backends.issuance.grants import InvalidUserCredentials
from backends.issuance.tokens import TokenGrant
from webapp.handlers.oauth_endpoint import (
    CLIENT_AUTH_DESCRIPTION,
    OAUTH_ERROR_RESPONSES,
    OAuthEndpointHandler,
    parse_form,
)
from webapp.service.metrics import Metrics
from webapp.service.openapi import form_body, json_response, operation
from webapp.web.collaborators import collaborator
from webapp.web.dpop import DPoPGate
from webapp.web.errors import ApiError
from webapp.web.ratelimit import client_key

_TOKEN_REQUEST = {
    "type": "object",
    "required": ["grant_type"],
    "properties": {
        "grant_type": {"enum": list(GRANT_TYPES)},
        "scope": {"type": "string"},
        "username": {"type": "string", "description": "password grant"},
        "password": {"type": "string", "description": "password grant"},
        "refresh_token": {"type": "string", "description": "refresh_token grant"},
        "client_id": {"type": "string", "description": "client_secret_post"},
        "client_secret": {"type": "string", "description": "client_secret_post"},
    },
}
_TOKEN_RESPONSE = {
    "type": "object",
    "required": ["access_token", "token_type", "expires_in", "scope"],
    "properties": {
        "access_token": {"type": "string"},
        "token_type": {"enum": ["Bearer", "DPoP"]},
        "expires_in": {"type": "integer"},
        "scope": {"type": "string"},
        "refresh_token": {"type": "string"},
    },
}

# What each grant needs besides client authentication; checked before any hashing.
_REQUIRED = {
    "client_credentials": (),
    "password": ("username", "password"),
    "refresh_token": ("refresh_token",),
}


def requested_scopes(form: dict[str, str]) -> frozenset[str] | None:
    raw = form.get("scope")
    if raw is None:
        return None
    try:
        return parse_scopes(raw)
    except ValueError as exc:
        raise InvalidScope(f"The scope parameter is malformed: {exc}") from None


def _grant_type(form: dict[str, str]) -> str:
    grant_type = form.get("grant_type")
    if grant_type is None:
        raise InvalidRequest("The grant_type parameter is required")
    if grant_type not in GRANT_TYPES:
        raise UnsupportedGrantType(f"Supported grant types: {', '.join(GRANT_TYPES)}")
    missing = [name for name in _REQUIRED[grant_type] if name not in form]
    if missing:
        raise InvalidRequest(f"The {grant_type} grant needs the {missing[0]} parameter")
    return grant_type


def proof_refusal(exc: DPoPError) -> ApiError:
    """The token endpoint's answer to a refused proof: 400, not a resource route's 401."""
    if isinstance(exc, UseDPoPNonce):
        return ApiError(400, "use_dpop_nonce", exc.description, headers={"DPoP-Nonce": exc.nonce})
    return ApiError(400, "invalid_dpop_proof", exc.description)


class TokenHandler(OAuthEndpointHandler):
    metrics: Metrics = collaborator()
    dpop: DPoPGate | None = collaborator(None)

    @operation(
        "RFC 6749 token endpoint: client_credentials, password, refresh_token",
        description=CLIENT_AUTH_DESCRIPTION + " Every refresh returns a new refresh token; "
        "presenting a used one revokes its whole family. With a DPoP header (RFC 9449) the "
        "tokens are bound to the proof key (token_type DPoP, cnf.jkt); a bad proof is 400 "
        "invalid_dpop_proof, a missing server nonce 400 use_dpop_nonce with DPoP-Nonce.",
        request_body=form_body(_TOKEN_REQUEST),
        responses={200: json_response("Tokens.", _TOKEN_RESPONSE), **OAUTH_ERROR_RESPONSES},
        tags=["oauth"],
    )
    async def post(self) -> None:
        form = parse_form(self.request)
        grant_type = _grant_type(form)
        scopes = requested_scopes(form)
        client = await self.authenticate_client(form)
        proof = await self._proof()
        jkt = proof.jkt if proof is not None else None
        grant = await self._grant(grant_type, client, form, scopes, jkt)
        self.metrics.token_issued(grant_type)
        if proof is not None and self.dpop is not None:
            nonce = self.dpop.fresh_nonce(proof)
            if nonce is not None:
                self.set_header("DPoP-Nonce", nonce)
        self.write(grant.response())

    async def _proof(self) -> VerifiedProof | None:
        """The request's verified (and now spent) proof; None when it sends none and
        DPoP is not required, or when DPoP is off.

        :raises ApiError: 400 ``invalid_dpop_proof`` or ``use_dpop_nonce``.
        :raises BackendUnavailable: the replay cache cannot answer (503).
        """
        gate = self.dpop
        if gate is None or not (gate.required or "DPoP" in self.request.headers):
            return None
        try:
            return await gate.check(self.request)
        except DPoPError as exc:
            raise proof_refusal(exc) from None

    async def _grant(
        self,
        grant_type: str,
        client: Client,
        form: dict[str, str],
        scopes: frozenset[str] | None,
        jkt: str | None,
    ) -> TokenGrant:
        # The token budget counts what each grant issues to: a client for itself per
        # address, a user through a client (a backend logs in all its users from one
        # address: each has a budget of its own). Charged once the grant is verified,
        # before anything is signed or spent.
        client_id = client.client_id

        async def per_client(_: str) -> None:
            await self.limit_verified(client_key(client_id, address=self.address_key))

        async def per_user(subject: str) -> None:
            await self.limit_verified(client_key(client_id, subject=subject))

        if grant_type == "client_credentials":
            return await self.tokens.client_credentials(client, scopes, admit=per_client, jkt=jkt)
        if grant_type == "refresh_token":
            return await self.tokens.refresh(
                client, form["refresh_token"], scopes, admit=per_user, jkt=jkt
            )
        username = form["username"]
        check = await self.password_check(client_id, username)
        try:
            return await self.tokens.password(
                client, username, form["password"], scopes, admit=per_user, jkt=jkt
            )
        except InvalidUserCredentials:
            self.credentials_rejected("user")
            await check.failed()
            raise
        finally:
            check.release()
