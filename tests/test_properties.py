"""Property tests: whatever arrives, parsers answer with the typed auth error or a value."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import shutil
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jwt
from tornado.httputil import HTTPHeaders, HTTPInputError, HTTPServerRequest, RequestStartLine

from backends.auth import Authenticator
from backends.auth.compact import parse_compact
from backends.auth.local import LocalIssuer, LocalKeyBackend
from backends.errors import AuthError, MalformedRequest
from backends.keys.keyring import Keyring
from backends.principal import Principal
from tests.conftest import TEST_ISSUER
from webapp.web.credentials import _B64TOKEN, bearer_token, is_b64token

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


segments = st.one_of(
    st.text(max_size=40),
    st.binary(max_size=60).map(b64),
    json_values.map(lambda v: b64(json.dumps(v).encode())),
    st.dictionaries(
        st.sampled_from(["alg", "kid", "typ", "jku", "crit", "iss"]), json_values, max_size=4
    ).map(lambda d: b64(json.dumps(d).encode())),
)


@given(st.text() | st.binary().map(lambda b: b.decode("latin-1")))
def test_parse_compact_on_any_text(token):
    with contextlib.suppress(AuthError):
        parse_compact(token)


@given(st.lists(segments, min_size=1, max_size=5).map(".".join))
def test_parse_compact_on_token_shaped_input(token):
    try:
        parsed = parse_compact(token)
    except AuthError:
        return
    assert isinstance(parsed.header, dict)
    assert isinstance(parsed.claims, dict)
    assert isinstance(parsed.header["alg"], str)
    assert parsed.header["alg"].lower() != "none"
    assert parsed.issuer is None or isinstance(parsed.issuer, str)


class _Headers:
    def __init__(self, values: list[str]) -> None:
        self.values = values

    def get_list(self, name: str) -> list[str]:
        assert name == "Authorization"
        return self.values


class _Request:
    def __init__(self, values: list[str]) -> None:
        self.headers = _Headers(values)


def _check_bearer(request, values: list[str]) -> None:
    """RFC 6750 §2.1: ``credentials = "Bearer" 1*SP b64token``, the scheme case-insensitive."""
    try:
        token = bearer_token(request)
    except MalformedRequest:
        assert values
        return
    if token is None:
        # no header, or another scheme: the caller offered no bearer credentials
        assert not values or values[0].strip(" \t").split(" ", 1)[0].lower() != "bearer"
        return
    [value] = values
    assert _B64TOKEN.fullmatch(token)
    assert re.fullmatch(r"(?i)bearer +" + re.escape(token), value.strip(" \t"))


b64tokens = st.from_regex(r"[A-Za-z0-9\-._~+/]+=*", fullmatch=True)
authorization_values = st.text(max_size=60) | st.tuples(
    st.sampled_from(["Bearer", "bearer", "BEARER", "Basic", "DPoP", "Bearer,", " Bearer", ""]),
    st.sampled_from([" ", "  ", "\t", "\xa0", "\x85", "\u2003", ""]),
    b64tokens | st.text(max_size=20),
    st.sampled_from(["", " ", " extra", "\xa0", ","]),
).map("".join)


@given(b64tokens | st.text(max_size=40) | st.from_regex(r"[A-Za-z0-9=._~+/-]{0,30}"))
def test_the_fast_b64token_check_agrees_with_the_rfc_6750_pattern(value):
    assert is_b64token(value) == bool(_B64TOKEN.fullmatch(value))


@given(st.lists(authorization_values, max_size=3))
def test_bearer_token_on_any_header_values(values):
    _check_bearer(_Request(values), values)


@given(st.lists(st.binary(max_size=60).map(lambda b: b.decode("latin-1")), max_size=3))
def test_bearer_token_on_whatever_tornado_lets_through(values):
    headers = HTTPHeaders({"Host": "jotguard.test"})
    try:
        for value in values:
            headers.add("Authorization", value)
    except HTTPInputError:
        return  # Tornado refuses the request before any handler runs
    request = HTTPServerRequest(
        start_line=RequestStartLine("GET", "/", "HTTP/1.1"), headers=headers
    )
    _check_bearer(request, headers.get_list("Authorization"))


@pytest.fixture(scope="module")
def authenticator(tmp_path_factory, keyring_template):
    path = tmp_path_factory.mktemp("props") / "keyring.json"
    shutil.copy2(keyring_template, path)
    keyring = Keyring(path, "RS256", retention=86400)
    keyring.load()
    issuer = LocalIssuer(keyring, issuer=TEST_ISSUER, audience="jotguard", ttl=900)
    backend = LocalKeyBackend(keyring, issuer=TEST_ISSUER, audience="jotguard", leeway=30)
    return issuer, Authenticator([backend])


claim_values = st.dictionaries(
    st.sampled_from(
        ["sub", "aud", "exp", "iat", "nbf", "jti", "scope", "permissions", "client_id", "azp"]
    ),
    json_values,
    max_size=4,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(claim_values, st.booleans())
def test_signed_tokens_with_any_claims(authenticator, overrides, drop):
    """A validly signed token with odd claims: an AuthError, or a well-typed Principal."""
    issuer, chain = authenticator
    claims = issuer.claims_for("alice")
    if drop:
        for name in overrides:
            claims.pop(name, None)
    else:
        claims.update(overrides)
    key = issuer.keyring.current
    token = jwt.encode({"alg": key.alg, "kid": key.kid}, claims, key.key, algorithms=[key.alg])
    try:
        principal = asyncio.run(chain.authenticate(token))
    except AuthError:
        return
    assert isinstance(principal, Principal)
    assert isinstance(principal.subject, str)
    assert isinstance(principal.token_id, str)
    assert principal.token_id
    assert isinstance(principal.expires_at, int)
    assert principal.expires_at >= time.time() - 60
    assert principal.issued_at is None or isinstance(principal.issued_at, int)
    assert principal.client_id is None or isinstance(principal.client_id, str)
    assert all(isinstance(scope, str) and scope for scope in principal.scopes)
