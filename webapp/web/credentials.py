"""The access token a request presents in ``Authorization``, and under which scheme.

``Bearer`` (RFC 6750 §2.1) always; ``DPoP`` (RFC 9449 §7.1) only where the route takes
DPoP: elsewhere it is another scheme, like ``Basic``, and offers no token. Both carry
the token in the same syntax (b64token, which RFC 9110 calls token68).
"""

from __future__ import annotations

import re
import string
from typing import NamedTuple

from tornado.httputil import HTTPServerRequest

from backends.errors import MalformedRequest

# RFC 6750 §2.1 b64token.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_B64TOKEN_CHARS = (string.ascii_letters + string.digits + "-._~+/").encode()
# RFC 9110 §11.1 auth-scheme (a token).
_AUTH_SCHEME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def is_b64token(value: str) -> bool:
    """``_B64TOKEN.fullmatch(value)``, at a quarter of the cost on a 1 KiB token (the
    regex steps through every character on each protected request)."""
    stem = value.rstrip("=")
    return bool(stem) and stem.isascii() and not stem.encode().translate(None, _B64TOKEN_CHARS)


class PresentedToken(NamedTuple):
    token: str
    dpop: bool
    """Sent as ``Authorization: DPoP``: it needs a proof, and its refusals a DPoP challenge."""


def presented_token(request: HTTPServerRequest, *, dpop: bool = False) -> PresentedToken | None:
    """The token of ``request``, or None when it offers none (no header, another scheme).

    :param dpop: the ``DPoP`` scheme is taken (else it is another scheme).
    :raises MalformedRequest: two Authorization headers, an empty token or extra parts.
    """
    values = request.headers.get_list("Authorization")
    if not values:
        return None
    if len(values) > 1:
        raise MalformedRequest("Send exactly one Authorization header")
    # Only SP separates the scheme from the token: str.split() would also take CR, TAB,
    # NBSP and other Unicode spaces for a separator.
    scheme, _, credentials = values[0].strip(" \t").partition(" ")
    # The usual spellings pass the checks below: they skip them.
    if scheme == "Bearer":
        is_dpop = False
    elif scheme == "DPoP" and dpop:
        is_dpop = True
    else:
        if not scheme:
            raise MalformedRequest("The Authorization header is empty")
        if not _AUTH_SCHEME.fullmatch(scheme):
            raise MalformedRequest("The Authorization header must be '<scheme> <credentials>'")
        # Auth schemes are case-insensitive (RFC 9110 §11.1).
        lowered = scheme.lower()
        is_dpop = dpop and lowered == "dpop"
        if not is_dpop and lowered != "bearer":
            return None  # another scheme (Basic, ...) offers no token
    token = credentials.lstrip(" ")
    if not is_b64token(token):
        name = "DPoP" if is_dpop else "Bearer"
        raise MalformedRequest(f"The Authorization header must be '{name} <token>'")
    # tuple.__new__: the NamedTuple's own __new__ is Python code, on every protected request.
    return tuple.__new__(PresentedToken, (token, is_dpop))


def bearer_token(request: HTTPServerRequest) -> str | None:
    """The bearer token of ``request``, or None when it offers no bearer credentials.

    :raises MalformedRequest: as :func:`presented_token`.
    """
    presented = presented_token(request)
    return None if presented is None else presented.token
