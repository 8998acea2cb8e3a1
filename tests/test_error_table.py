"""The error->HTTP table: every JotguardError has one row, and each row is what the RFCs say."""

from __future__ import annotations

import importlib
import pkgutil
from typing import NamedTuple

import pytest

import backends
import webapp
from backends.catchphrases.base import InvalidCatchphrase
from backends.dpop import (
    DPoPError,
    DPoPKeyMismatch,
    DPoPRequired,
    InvalidDPoPProof,
    UseDPoPNonce,
)
from backends.errors import (
    AuthError,
    BackendUnavailable,
    ExchangeFailed,
    ExchangeTimedOut,
    ExchangeUnreachable,
    InsufficientScope,
    InvalidInput,
    InvalidToken,
    JotguardError,
    MalformedRequest,
    MissingCredentials,
    NotFound,
    RateLimited,
)
from backends.issuance.errors import (
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    OAuthError,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from backends.issuance.grants import InvalidUserCredentials, KeyNotProven
from webapp.service.revoking import RevocationInputError
from webapp.web.errors import (
    ERRORS,
    ApiError,
    RequestTooLarge,
    TokenSchemes,
    UnsupportedMediaType,
    error_answer,
    is_answer,
    row_for,
)


class Expected(NamedTuple):
    status: int
    error: str
    challenge: str | None  # the WWW-Authenticate value's scheme, or None for no header
    retry_after: bool


BEARER_401 = Expected(401, "invalid_token", "Bearer", False)

# Written from the RFCs, not from the table: (an instance, what it must be answered with).
EXPECTED: list[tuple[JotguardError, Expected]] = [
    # RFC 6750 §3.1: the resource server's refusals, each with a Bearer challenge.
    (MissingCredentials(), Expected(401, "unauthorized", "Bearer", False)),
    (MalformedRequest("two headers"), Expected(400, "invalid_request", "Bearer", False)),
    (AuthError("bad"), BEARER_401),
    (InvalidToken("expired", reason="expired"), BEARER_401),
    (InsufficientScope(("read",)), Expected(403, "insufficient_scope", "Bearer", False)),
    # RFC 9449 §7.1: 401 at a resource server, with the DPoP challenge; §7.2: a bound
    # token sent as a bearer token is refused, told to use DPoP.
    (DPoPError("bad proof"), Expected(401, "invalid_dpop_proof", "DPoP", False)),
    (InvalidDPoPProof("bad proof"), Expected(401, "invalid_dpop_proof", "DPoP", False)),
    (UseDPoPNonce("nonce", nonce="n"), Expected(401, "use_dpop_nonce", "DPoP", False)),
    (DPoPKeyMismatch(), Expected(401, "invalid_dpop_proof", "DPoP", False)),
    (DPoPRequired("bound", reason="dpop_bound"), Expected(401, "invalid_token", "DPoP", False)),
    # RFC 9110 §15.6.4 + §10.2.3 (and DESIGN): jotguard cannot decide, never 401.
    (
        BackendUnavailable("down", retry_after=7),
        Expected(503, "temporarily_unavailable", None, True),
    ),
    # RFC 6585 §4 + RFC 9110 §10.2.3.
    (RateLimited("slow", retry_after=3), Expected(429, "rate_limited", None, True)),
    # RFC 6749 §5.2, also for RFC 7009 §2.2.1 and RFC 7662 §2.3: 400, except
    # invalid_client: 401 with the Basic challenge (RFC 9110 §15.5.2, RFC 7617).
    (OAuthError("x"), Expected(400, "invalid_request", None, False)),
    (InvalidRequest("x"), Expected(400, "invalid_request", None, False)),
    (InvalidClient(), Expected(401, "invalid_client", "Basic", False)),
    (InvalidGrant("x"), Expected(400, "invalid_grant", None, False)),
    (InvalidUserCredentials(), Expected(400, "invalid_grant", None, False)),
    # RFC 9449 §5 leaves the refusal of a bound refresh token's key open: oidc-provider's.
    (KeyNotProven(), Expected(400, "invalid_grant", None, False)),
    (UnauthorizedClient("x"), Expected(400, "unauthorized_client", None, False)),
    (UnsupportedGrantType("x"), Expected(400, "unsupported_grant_type", None, False)),
    (InvalidScope("x"), Expected(400, "invalid_scope", None, False)),
    # RFC 9110 §15.5.1, §15.5.5, §15.5.14, §15.5.16.
    (InvalidInput("x"), Expected(400, "invalid_request", None, False)),
    (InvalidCatchphrase("x"), Expected(400, "invalid_request", None, False)),
    (RevocationInputError("x"), Expected(400, "invalid_request", None, False)),
    (NotFound("x"), Expected(404, "not_found", None, False)),
    (RequestTooLarge("x"), Expected(413, "request_too_large", None, False)),
    (UnsupportedMediaType("x"), Expected(415, "unsupported_media_type", None, False)),
    # RFC 9110 §15.6.3 and §15.6.5: the upstream of GET /get-token failed.
    (ExchangeFailed("x"), Expected(502, "upstream_error", None, False)),
    (ExchangeUnreachable("x"), Expected(502, "upstream_unavailable", None, False)),
    (ExchangeTimedOut("x"), Expected(504, "upstream_timeout", None, False)),
]


def _jotguard_error_classes() -> set[type[JotguardError]]:
    """Every JotguardError subclass the product defines (its modules imported first)."""
    for package in (backends, webapp):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not module.name.endswith("__main__"):
                importlib.import_module(module.name)
    found: set[type[JotguardError]] = set()
    todo = [JotguardError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.split(".")[0] in {"backends", "webapp"}:
                found.add(sub)
            todo.append(sub)
    return found


def test_every_error_class_is_expected_here():
    assert {type(exc) for exc, _ in EXPECTED} == _jotguard_error_classes()


def test_every_error_class_maps_to_exactly_one_row():
    for cls in _jotguard_error_classes():
        rows = [key for key in ERRORS if issubclass(cls, key)]
        nearest = [
            key for key in rows if not any(o is not key and issubclass(o, key) for o in rows)
        ]
        assert len(nearest) == 1, (cls, nearest)
        assert row_for(cls) is ERRORS[nearest[0]]
    assert all(issubclass(key, JotguardError) for key in ERRORS)


@pytest.mark.parametrize(
    ("exc", "expected"), EXPECTED, ids=[type(exc).__name__ for exc, _ in EXPECTED]
)
def test_each_error_is_answered_as_the_rfcs_say(exc, expected):
    answer = error_answer(exc)
    challenge = answer.headers.get("WWW-Authenticate")
    assert answer.status == expected.status
    assert answer.body() == {"error": expected.error, "error_description": exc.description}
    if expected.challenge is not None:
        assert challenge is not None
        assert challenge.split(" ", 1)[0] == expected.challenge
        if expected.challenge != "DPoP":  # RFC 9449's examples name no realm
            assert 'realm="jotguard"' in challenge
    else:
        assert challenge is None
    assert ("Retry-After" in answer.headers) is expected.retry_after


def test_the_bearer_challenge_carries_what_rfc_6750_asks():
    # §3: no error code without credentials; otherwise the code, and the scope when short.
    assert error_answer(MissingCredentials()).headers == {
        "WWW-Authenticate": 'Bearer realm="jotguard"'
    }
    scope = error_answer(InsufficientScope(("read", "write"), description='need "both"'))
    assert scope.headers["WWW-Authenticate"] == (
        'Bearer realm="jotguard", error="insufficient_scope", '
        'error_description="need \\"both\\"", scope="read write"'
    )


def test_retry_after_is_the_outages_own():
    assert error_answer(BackendUnavailable("down", retry_after=42)).headers == {"Retry-After": "42"}


def test_a_rate_limit_refusal_reports_its_quota_after_retry_after():
    quota = {"RateLimit-Policy": '"token";q=5;w=60', "RateLimit": '"token";r=0;t=42'}
    answer = error_answer(RateLimited("slow", retry_after=42, headers=quota))
    assert list(answer.headers.items()) == [("Retry-After", "42"), *quota.items()]


def test_every_401_row_has_a_challenge():
    # RFC 9110 §15.5.2: a 401 MUST carry WWW-Authenticate.
    for cls, row in ERRORS.items():
        if row.status == 401:
            assert row.challenge is not None, cls


def test_answers_outside_the_table():
    # A JotguardError without a row is a bug: a 500, logged with its traceback.
    assert error_answer(JotguardError("a root with no row")).status == 500
    assert not is_answer(JotguardError("a root with no row"))
    assert all(is_answer(exc) for exc, _ in EXPECTED)
    assert error_answer(ValueError("a bug")).body() == {
        "error": "server_error",
        "error_description": "Internal server error",
    }
    limited = error_answer(ApiError(429, "rate_limited", "slow", headers={"Retry-After": "3"}))
    assert (limited.status, limited.error, limited.headers) == (
        429,
        "rate_limited",
        {"Retry-After": "3"},
    )


ES = TokenSchemes(dpop_algs=("ES256",))


@pytest.mark.parametrize(
    ("exc", "schemes", "challenge"),
    [
        # No credentials: every scheme the route takes (RFC 9110 §11.6.1, RFC 9449 §7.1).
        (MissingCredentials(), ES, 'Bearer realm="jotguard", DPoP algs="ES256"'),
        (
            MissingCredentials(),
            TokenSchemes(bearer=False, dpop_algs=("ES256",)),
            'DPoP algs="ES256"',
        ),
        (MissingCredentials(), TokenSchemes(), 'Bearer realm="jotguard"'),
        # A refusal in the scheme the token came under.
        (
            InvalidToken("bad"),
            ES,
            'Bearer realm="jotguard", error="invalid_token", error_description="bad"',
        ),
        (
            InvalidToken("bad"),
            TokenSchemes(dpop_algs=("ES256",), presented_dpop=True),
            'DPoP error="invalid_token", error_description="bad", algs="ES256"',
        ),
        (
            InvalidToken("bad"),
            TokenSchemes(bearer=False, dpop_algs=("ES256",)),
            'DPoP error="invalid_token", error_description="bad", algs="ES256"',
        ),
        (
            InsufficientScope(("a", "b"), description="short"),
            TokenSchemes(dpop_algs=("ES256",), presented_dpop=True),
            'DPoP error="insufficient_scope", error_description="short", scope="a b", algs="ES256"',
        ),
        # DPoP's own refusals, whatever scheme came; without a DPoP route, no algs.
        (
            InvalidDPoPProof('a "quoted" reason'),
            ES,
            (
                'DPoP error="invalid_dpop_proof", error_description="a \\"quoted\\" reason",'
                ' algs="ES256"'
            ),
        ),
        (
            DPoPRequired("bound", reason="dpop_bound"),
            ES,
            'DPoP error="invalid_token", error_description="bound", algs="ES256"',
        ),
        (
            InvalidDPoPProof("bad"),
            TokenSchemes(),
            'DPoP error="invalid_dpop_proof", error_description="bad"',
        ),
    ],
)
def test_the_challenge_follows_the_schemes_of_the_route(exc, schemes, challenge):
    assert error_answer(exc, schemes=schemes).headers["WWW-Authenticate"] == challenge


def test_use_dpop_nonce_carries_the_nonce():
    answer = error_answer(UseDPoPNonce("need one", nonce="n0nce"), schemes=ES)
    assert answer.status == 401
    assert answer.headers == {
        "WWW-Authenticate": (
            'DPoP error="use_dpop_nonce", error_description="need one", algs="ES256"'
        ),
        "DPoP-Nonce": "n0nce",
    }
