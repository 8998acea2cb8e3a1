"""DPoP for handlers: the mode a route runs in, the proof check, and the URL a proof names.

One :class:`DPoPGate` is shared by every handler of an application (an ``initialize``
keyword, like the authenticator). Without one, a handler knows no DPoP: ``Authorization:
DPoP`` is another scheme, and a token bound to a key (``cnf.jkt``) is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tornado.httputil import HTTPServerRequest

from backends.dpop import DPoPVerifier, VerifiedProof
from backends.errors import AuthError

DPoPMode = Literal["allowed", "required"]


@dataclass(frozen=True)
class DPoPGate:
    """:param mode: ``allowed``: Bearer tokens as before, bound tokens need proofs;
        ``required``: Bearer tokens are refused.
    :param public_url: the base URL clients reach the service at (behind a proxy);
        a proof's ``htu`` is compared with it plus the request path. Without it, the
        request's own scheme and ``Host``.
    """

    verifier: DPoPVerifier
    mode: DPoPMode = "allowed"
    public_url: str | None = None

    @property
    def required(self) -> bool:
        return self.mode == "required"

    def request_url(self, request: HTTPServerRequest) -> str:
        """The absolute URI a proof for ``request`` must name in ``htu`` (query kept:
        the comparison drops it)."""
        if self.public_url:
            return self.public_url.rstrip("/") + request.uri
        return f"{request.protocol}://{request.host}{request.uri}"

    async def check(
        self,
        request: HTTPServerRequest,
        *,
        access_token: str | None = None,
        expected_jkt: str | None = None,
    ) -> VerifiedProof:
        """Check and spend the request's ``DPoP`` header (RFC 9449 §4.3).

        :raises InvalidDPoPProof, DPoPKeyMismatch, UseDPoPNonce: refused.
        :raises BackendUnavailable: the replay cache cannot answer (fail-closed).
        """
        return await self.verifier.verify(
            request.headers.get_list("DPoP"),
            method=request.method or "",
            url=self.request_url(request),
            access_token=access_token,
            expected_jkt=expected_jkt,
        )

    def challenge(self, exc: AuthError | None = None) -> str:
        """``WWW-Authenticate: DPoP ...`` with this gate's ``algs``."""
        return self.verifier.challenge(exc)

    def fresh_nonce(self, proof: VerifiedProof) -> str | None:
        """A ``DPoP-Nonce`` to send with a success, when nonces are on and this one ages."""
        return self.verifier.fresh_nonce(proof)
