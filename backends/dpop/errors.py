"""DPoP refusals (RFC 9449 §7.1), in the shape of the ``AuthError`` family.

Every refusal carries its RFC 9449 ``error`` code, a client-safe description and a
low-cardinality ``reason`` label for logs and metrics. A resource server answers them
401, the token endpoint 400 (RFC 9449 §5). The challenge uses the ``DPoP`` scheme,
built by :func:`dpop_challenge`.
"""

from __future__ import annotations

from collections.abc import Iterable

from backends.errors import AuthError


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


class DPoPKeyMismatch(DPoPError):
    """A valid proof by a key other than the one the token is bound to (``cnf.jkt``).

    ``invalid_token``, as RFC 9449 §7.1's example answers it: this token is not
    usable by this client, however fresh its proofs.
    """

    error = "invalid_token"

    def __init__(self, description: str = "Invalid DPoP key binding") -> None:
        super().__init__(description, reason="dpop_key_mismatch")


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def dpop_challenge(algorithms: Iterable[str], exc: AuthError | None = None) -> str:
    """The ``WWW-Authenticate`` value of the DPoP scheme (RFC 9449 §7.1).

    Without ``exc`` it is the bare challenge offered when no credentials came.
    """
    params = []
    if exc is not None and exc.error is not None:
        params.append(f'error="{exc.error}"')
        params.append(f'error_description="{_quote(exc.description)}"')
    params.append(f'algs="{" ".join(algorithms)}"')
    return "DPoP " + ", ".join(params)
