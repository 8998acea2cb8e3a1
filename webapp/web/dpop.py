"""DPoP for handlers: the mode a route runs in, the proof check, and the URL a proof names.

One :class:`DPoPGate` is shared by every handler of an application (the ``dpop``
keyword of ``initialize``, like the authenticator). Without one, a handler knows no
DPoP: ``Authorization: DPoP`` is another scheme, and a token bound to a key
(``cnf.jkt``) is refused.

The URL a proof must name (``htu``) is, in this order: ``public_url`` plus the request
path; behind a trusted proxy, the scheme and host that proxy says the client used
(``X-Forwarded-Proto``/``X-Forwarded-Host``, or ``Forwarded``'s ``proto``/``host``); the
request's own scheme and ``Host``. A client can write any ``Host``, so without
``public_url`` a proof is bound to whatever name the client reached the service by.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from tornado.httputil import HTTPServerRequest

from backends.dpop import DPoPRequired, DPoPVerifier, InvalidDPoPProof, VerifiedProof
from backends.errors import InvalidToken
from backends.principal import Principal
from webapp.web.clientip import ClientAddresses
from webapp.web.errors import BEARER_ONLY, TokenSchemes

DPoPMode = Literal["allowed", "required"]

# host[:port] as RFC 3986 §3.2.2 allows it (reg-name, IPv4, [IPv6]), and nothing that
# would end the authority: a Host of "a/b?" must not move the path a proof is checked on.
_AUTHORITY = re.compile(r"(?:[A-Za-z0-9._~%!$&'()*+,;=-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]*)?")
_SCHEMES = frozenset({"http", "https"})


@dataclass(frozen=True)
class DPoPGate:
    """:param mode: ``allowed``: Bearer tokens as before, bound tokens need proofs;
        ``required``: Bearer tokens are refused.
    :param public_url: the base URL clients reach the service at (behind a proxy);
        a proof's ``htu`` is compared with it plus the request path.
    :param issuer_modes: the mode for tokens of these issuers, instead of ``mode``.
    :param proxies: whose forwarded scheme and host are believed (see the module).
    """

    verifier: DPoPVerifier
    mode: DPoPMode = "allowed"
    public_url: str | None = None
    issuer_modes: Mapping[str, DPoPMode] = field(default_factory=dict)
    proxies: ClientAddresses | None = None

    @property
    def required(self) -> bool:
        return self.mode == "required"

    @functools.cached_property
    def _bearer_refused(self) -> dict[str, bool]:
        return {issuer: mode == "required" for issuer, mode in self.issuer_modes.items()}

    def refuses_bearer(self, issuer: str) -> bool:
        """Are this issuer's tokens refused under ``Bearer``? (One dict lookup: it runs
        on every bearer request.)"""
        return self._bearer_refused.get(issuer, self.mode == "required")

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The proof algorithms taken, as ``algs=`` names them."""
        return self.verifier.policy.advertised

    def schemes(self, *, bearer: bool, presented_dpop: bool) -> TokenSchemes:
        """What a route's challenges offer (``bearer``: it takes Bearer tokens)."""
        return TokenSchemes(bearer, self.algorithms, presented_dpop)

    def request_url(self, request: HTTPServerRequest) -> str:
        """The absolute URI a proof for ``request`` must name in ``htu`` (see the module).

        :raises InvalidDPoPProof: the scheme or host to compare with is not one a URI
            can carry (a malformed ``Host``, say).
        """
        if self.public_url:
            return self.public_url.rstrip("/") + request.path
        scheme, host = request.protocol, request.host
        if self.proxies is not None:
            forwarded_scheme, forwarded_host = self.proxies.forwarded_origin(request)
            scheme = forwarded_scheme.lower() if forwarded_scheme else scheme
            host = forwarded_host or host
        if scheme not in _SCHEMES or not _AUTHORITY.fullmatch(host):
            raise InvalidDPoPProof(
                "The request's scheme or Host cannot be compared with the DPoP proof 'htu'",
                reason="dpop_htu",
            )
        return f"{scheme}://{host}{request.path}"

    def check(
        self,
        request: HTTPServerRequest,
        *,
        access_token: str | None = None,
        expected_jkt: str | None = None,
    ) -> Awaitable[VerifiedProof]:
        """Check and spend the request's ``DPoP`` header (RFC 9449 §4.3): await it.

        (The verifier's own coroutine, not one more around it: this runs on every
        DPoP request. A request URL that cannot be compared raises on the call.)

        :raises InvalidDPoPProof, DPoPKeyMismatch, UseDPoPNonce: refused.
        :raises BackendUnavailable: the replay cache cannot answer (fail-closed).
        """
        return self.verifier.verify(
            request.headers.get_list("DPoP"),
            method=request.method or "",
            url=self.request_url(request),
            access_token=access_token,
            expected_jkt=expected_jkt,
        )

    def check_bound(
        self, request: HTTPServerRequest, token: str, principal: Principal
    ) -> Awaitable[VerifiedProof]:
        """The proof of a verified token sent as ``Authorization: DPoP``: one by the key
        the token is bound to, for this request and this token.

        :raises InvalidToken: the token is bound to no key.
        :raises InvalidDPoPProof, DPoPKeyMismatch, UseDPoPNonce, BackendUnavailable:
            as :meth:`check`.
        """
        if principal.jkt is None:
            raise InvalidToken(
                "The token is not bound to a DPoP key: send it as a Bearer token",
                reason="dpop_unbound",
            )
        return self.check(request, access_token=token, expected_jkt=principal.jkt)

    def fresh_nonce(self, proof: VerifiedProof) -> str | None:
        """A ``DPoP-Nonce`` to send with a success, when nonces are on and this one ages."""
        return self.verifier.fresh_nonce(proof)


def route_schemes(
    gate: DPoPGate | None, *, dpop_required: bool, presented_dpop: bool
) -> TokenSchemes:
    """What the challenges of a route with ``gate`` offer."""
    if gate is None:
        return BEARER_ONLY
    return gate.schemes(bearer=not (dpop_required or gate.required), presented_dpop=presented_dpop)


def bearer_refusal(gate: DPoPGate | None, principal: Principal) -> InvalidToken:
    """Why a verified token sent as ``Bearer`` is refused: it is bound to a key (RFC 9449
    §7.2: a bearer client could be anyone holding a copy), or DPoP is required."""
    if principal.jkt is not None:
        if gate is None:
            return InvalidToken(
                "The token is bound to a DPoP key, and DPoP is off here", reason="dpop_bound"
            )
        return DPoPRequired(
            "The token is bound to a DPoP key: send it as 'Authorization: DPoP' with a proof",
            reason="dpop_bound",
        )
    if gate is None:
        return InvalidToken(
            "This resource requires DPoP, and DPoP is off here", reason="dpop_required"
        )
    return DPoPRequired(
        "This resource requires a DPoP-bound token sent with a DPoP proof", reason="dpop_required"
    )
