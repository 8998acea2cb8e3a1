"""DPoP refusals (RFC 9449 §7.1), in the shape of the ``AuthError`` family.

Every refusal carries its RFC 9449 ``error`` code, a client-safe description and a
low-cardinality ``reason`` label for logs and metrics. A resource server answers them
401, the token endpoint 400 (RFC 9449 §5). The challenge uses the ``DPoP`` scheme,
built by :func:`dpop_challenge`.
"""

from __future__ import annotations

from collections.abc import Iterable

from backends.errors import AuthError, InsufficientScope, InvalidToken, quoted


class DPoPError(AuthError):
    """A DPoP proof, or the proof's binding to the token, was refused."""

    error: str | None = "invalid_dpop_proof"


class InvalidDPoPProof(DPoPError):
    """The proof is missing, malformed, badly signed, stale, replayed or for another request."""

    def __init__(self, description: str, *, reason: str = "dpop_invalid") -> None:
        super().__init__(description, reason=reason)


class UseDPoPNonce(DPoPError):
    """The proof lacks a nonce this server issued recently (RFC 9449 §8-9).

    ``nonce`` is a fresh one for the ``DPoP-Nonce`` response header.
    """

    error = "use_dpop_nonce"

    def __init__(self, description: str, *, nonce: str) -> None:
        super().__init__(description, reason="dpop_nonce")
        self.nonce = nonce


class DPoPKeyMismatch(InvalidDPoPProof):
    """A valid proof by a key other than the one the token is bound to (``cnf.jkt``).

    ``invalid_dpop_proof``: the token is genuine, the proof is what fails, and a
    client told ``invalid_token`` would throw away a token its own key still fits.
    """

    def __init__(
        self, description: str = "The DPoP proof key is not the one the token is bound to"
    ) -> None:
        super().__init__(description, reason="dpop_key_mismatch")


class DPoPRequired(InvalidToken):
    """A genuine token refused for how it came: bound to a key (``cnf.jkt``) but sent
    without DPoP (RFC 9449 §7.2), or sent as a bearer token where DPoP is required.

    ``invalid_token`` under the ``DPoP`` challenge, which tells the client the
    scheme to use. Not a guess at a secret: the rate limits do not count it.
    """


def dpop_challenge(algorithms: Iterable[str], exc: AuthError | None = None) -> str:
    """The ``WWW-Authenticate`` value of the DPoP scheme (RFC 9449 §7.1).

    Without ``exc`` (or for one without an error code) it is the bare challenge
    offered when no credentials came. ``algs`` is left out when ``algorithms`` is empty.
    """
    params = []
    if exc is not None and exc.error is not None:
        params.append(f'error="{exc.error}"')
        params.append(f'error_description="{quoted(exc.description)}"')
        if isinstance(exc, InsufficientScope):
            params.append(f'scope="{quoted(" ".join(exc.required))}"')
    algs = " ".join(algorithms)
    if algs:
        params.append(f'algs="{algs}"')
    return "DPoP " + ", ".join(params) if params else "DPoP"
