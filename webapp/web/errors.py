"""How every error is answered over HTTP: the one error→HTTP table and ``ApiError``.

:data:`ERRORS` gives each :class:`~backends.errors.JotguardError` family its status,
its ``WWW-Authenticate`` challenge and whether it carries ``Retry-After``; the JSON
``error`` code and description come from the exception. ``JsonHandler.write_error``
answers with :func:`error_answer`, so a handler just raises.

Tornado's ``send_error`` clears headers before ``write_error``: that is why the
headers are made here from the exception, never set before raising it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from http import HTTPStatus

from tornado.web import HTTPError

from backends.dpop.errors import DPoPError, DPoPRequired, UseDPoPNonce, dpop_challenge
from backends.errors import (
    AuthError,
    BackendUnavailable,
    ExchangeFailed,
    ExchangeTimedOut,
    InsufficientScope,
    InvalidInput,
    JotguardError,
    MalformedRequest,
    NotFound,
    RateLimited,
    quoted,
)
from backends.issuance.errors import InvalidClient, OAuthError

REALM = "jotguard"


class RequestTooLarge(JotguardError):
    error = "request_too_large"


class UnsupportedMediaType(JotguardError):
    error = "unsupported_media_type"


class Challenge(Enum):
    """The ``WWW-Authenticate`` scheme an answer carries."""

    # A resource server's: in the scheme the token came under, Bearer (RFC 6750 §3) or
    # DPoP (RFC 9449 §7.1); with no token, every scheme the route takes (TokenSchemes).
    RESOURCE = "resource"
    DPOP = "DPoP"  # RFC 9449 §7.1: the proof was refused, or the token needs one
    BASIC = "Basic"  # RFC 7617; the one client authentication scheme of RFC 6749 §2.3.1


@dataclass(frozen=True, slots=True)
class TokenSchemes:
    """What a route's ``RESOURCE`` and ``DPOP`` challenges say: the schemes it takes tokens
    under, and the one this request used. The default is Bearer alone.

    :param bearer: Bearer tokens are taken (not when the route requires DPoP).
    :param dpop_algs: DPoP is taken, with proofs of these algorithms (``algs``);
        empty: DPoP is not taken.
    :param presented_dpop: the request sent ``Authorization: DPoP``.
    """

    bearer: bool = True
    dpop_algs: tuple[str, ...] = ()
    presented_dpop: bool = False


BEARER_ONLY = TokenSchemes()


@dataclass(frozen=True, slots=True)
class ErrorRow:
    status: int
    challenge: Challenge | None = None
    retry_after: bool = False  # the exception's ``retry_after`` seconds


# Looked up along the exception's MRO: the nearest class with a row answers for it.
ERRORS: Mapping[type[JotguardError], ErrorRow] = {
    # The token is bad (RFC 6750 §3.1, RFC 9449 §7.1). InvalidToken falls under
    # AuthError; MissingCredentials too, with a bare challenge.
    AuthError: ErrorRow(401, Challenge.RESOURCE),
    MalformedRequest: ErrorRow(400, Challenge.RESOURCE),
    InsufficientScope: ErrorRow(403, Challenge.RESOURCE),
    # The DPoP proof is bad, or a genuine token came without the proof it needs (RFC
    # 9449 §7.1-7.2); UseDPoPNonce adds the DPoP-Nonce to use (§9).
    DPoPError: ErrorRow(401, Challenge.DPOP),
    DPoPRequired: ErrorRow(401, Challenge.DPOP),
    # jotguard cannot decide now: never a 401, which clients take for "token dead".
    BackendUnavailable: ErrorRow(503, retry_after=True),
    # Over a rate limit: the quota's RateLimit fields ride on the exception.
    RateLimited: ErrorRow(429, retry_after=True),
    # The OAuth endpoints (RFC 6749 §5.2; RFC 7009 §2.2.1 and RFC 7662 §2.3 use the same).
    OAuthError: ErrorRow(400),
    # RFC 6749 §5.2: 401 with the challenge of the scheme the client used; sent also when
    # it used the body, as RFC 9110 §15.5.2 wants a challenge on every 401.
    InvalidClient: ErrorRow(401, Challenge.BASIC),
    # The request itself.
    InvalidInput: ErrorRow(400),
    NotFound: ErrorRow(404),
    RequestTooLarge: ErrorRow(413),
    UnsupportedMediaType: ErrorRow(415),
    # GET /get-token's upstream gave no usable answer (RFC 9110 §15.6.3, §15.6.5).
    ExchangeFailed: ErrorRow(502),
    ExchangeTimedOut: ErrorRow(504),
}

# The ``error`` of a bare Tornado HTTPError (an unknown path, a wrong method, ...).
_GENERIC_ERRORS = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
}


class ApiError(HTTPError):
    """An answer whose status, ``error`` and headers the raiser chooses itself.

    For answers outside the table (a library user's own, the rate limiter's fail-closed 503).
    """

    def __init__(
        self,
        status: int,
        error: str,
        description: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        # log_message never carries the token: descriptions are client-safe by contract.
        super().__init__(status, "%s: %s", error, description)
        self.error = error
        self.description = description
        self.headers = dict(headers or {})


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    status: int
    error: str
    description: str
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def row_for(cls: type[JotguardError]) -> ErrorRow | None:
    """The row that answers for ``cls``: its own, else its nearest ancestor's."""
    for base in cls.__mro__:
        row = ERRORS.get(base)
        if row is not None:
            return row
    return None


def is_answer(exc: BaseException | None) -> bool:
    """Is ``exc`` an answer (an HTTPError, a JotguardError with a row), not a fault?"""
    if isinstance(exc, JotguardError):
        return row_for(type(exc)) is not None
    return isinstance(exc, HTTPError)


def error_answer(
    exc: BaseException | None, status: int = 500, schemes: TokenSchemes = BEARER_ONLY
) -> ErrorAnswer:
    """The answer to ``exc``; ``status`` is what Tornado's ``send_error`` was given,
    ``schemes`` what the route's challenges offer."""
    if isinstance(exc, ApiError):
        return ErrorAnswer(exc.status_code, exc.error, exc.description, dict(exc.headers))
    if isinstance(exc, JotguardError):
        row = row_for(type(exc))
        if row is not None:
            return _table_answer(exc, row, schemes)
    elif status < 500:
        reason = exc.reason if isinstance(exc, HTTPError) else None
        return ErrorAnswer(
            status,
            _GENERIC_ERRORS.get(status, "invalid_request"),
            reason or HTTPStatus(status).phrase,
        )
    return ErrorAnswer(500, "server_error", "Internal server error")


def _table_answer(exc: JotguardError, row: ErrorRow, schemes: TokenSchemes) -> ErrorAnswer:
    headers: dict[str, str] = {}
    if isinstance(exc, AuthError) and row.challenge in (Challenge.RESOURCE, Challenge.DPOP):
        headers["WWW-Authenticate"] = token_challenge(
            exc, schemes, dpop=row.challenge is Challenge.DPOP
        )
        if isinstance(exc, UseDPoPNonce):
            headers["DPoP-Nonce"] = exc.nonce
    elif row.challenge is Challenge.BASIC:
        headers["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8"'
    if row.retry_after and isinstance(exc, BackendUnavailable | RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, RateLimited):
        headers.update(exc.headers)
    # A bare challenge has no RFC 6750 code; the JSON body still needs one.
    return ErrorAnswer(row.status, exc.error or "unauthorized", exc.description, headers)


def token_challenge(
    exc: AuthError, schemes: TokenSchemes = BEARER_ONLY, *, dpop: bool = False
) -> str:
    """The ``WWW-Authenticate`` value for ``exc`` on a route taking ``schemes``.

    A refusal is told in the scheme the token came under: DPoP when the request used it,
    when the route takes DPoP alone, or when ``dpop`` says the refusal is DPoP's own.
    A bare challenge (no credentials came) offers every scheme the route takes.
    """
    algs = schemes.dpop_algs
    if algs and (dpop or schemes.presented_dpop or not schemes.bearer):
        return dpop_challenge(algs, exc)
    if dpop:
        return dpop_challenge((), exc)  # raised outside a DPoP route: no algs to name
    if exc.error is None and algs:
        return f"{bearer_challenge(exc)}, {dpop_challenge(algs)}"
    return bearer_challenge(exc)


def bearer_challenge(exc: AuthError) -> str:
    """The RFC 6750 ``WWW-Authenticate`` value for ``exc``."""
    params = [f'realm="{REALM}"']
    if exc.error is not None:
        params.append(f'error="{exc.error}"')
        params.append(f'error_description="{quoted(exc.description)}"')
    if isinstance(exc, InsufficientScope):
        params.append(f'scope="{quoted(" ".join(exc.required))}"')
    return "Bearer " + ", ".join(params)
