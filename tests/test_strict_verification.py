"""The local issuer's tokens held to the RFCs, through HTTP: validly signed tokens, each
breaking one rule (RFC 9068 profile, UTF-8-only JSON, NumericDate, an absent kid)."""

from __future__ import annotations

import json
import time

import pytest

from backends import strict_json
from backends.auth.compact import UnverifiedToken
from backends.auth.verifier import JWTVerifier
from backends.errors import InvalidToken
from tests.conftest import TEST_ISSUER
from tests.forge import good_claims, sign, sign_raw


@pytest.fixture
def key(services):
    return services.keyring.current


def assert_invalid_token(response, mentions: str = "") -> None:
    assert response.code == 401, response.body
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="jotguard", error="invalid_token"'), challenge
    body = json.loads(response.body)
    assert body["error"] == "invalid_token"
    assert mentions in body["error_description"], body


async def test_a_control_token_passes(fetch, key):
    assert (await fetch("/test-auth", token=sign(key, good_claims()))).code == 200


# -- RFC 9068 for jotguard's own tokens ---------------------------------------------------


@pytest.mark.parametrize("typ", ["JWT", "jwt", "application/jwt", None])
async def test_a_local_token_must_be_typed_at_jwt(fetch, key, typ):
    response = await fetch("/test-auth", token=sign(key, good_claims(), typ=typ))
    assert_invalid_token(response, "at+jwt")


@pytest.mark.parametrize("claim", ["iat", "client_id"])
async def test_a_local_token_without_a_required_claim_is_refused(fetch, key, claim):
    response = await fetch("/test-auth", token=sign(key, good_claims(**{claim: None})))
    assert_invalid_token(response, claim)


# -- JSON that is not UTF-8 (RFC 7519 §7.2, RFC 8259 §8.1) --------------------------------

ENCODINGS = ["utf-16-le", "utf-16-be", "utf-16", "utf-32-le", "utf-32-be", "utf-32", "utf-8-sig"]


def header_json(key) -> str:
    return json.dumps({"alg": key.alg, "kid": key.kid, "typ": "at+jwt"})


async def test_a_raw_signed_utf8_control_passes(fetch, key):
    token = sign_raw(key, header_json(key).encode(), json.dumps(good_claims()).encode())
    assert (await fetch("/test-auth", token=token)).code == 200


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_a_payload_not_in_utf8_is_refused(fetch, key, encoding):
    payload = json.dumps(good_claims()).encode(encoding)
    token = sign_raw(key, header_json(key).encode(), payload)
    assert_invalid_token(await fetch("/test-auth", token=token), "UTF-8")


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_a_header_not_in_utf8_is_refused(fetch, key, encoding):
    token = sign_raw(key, header_json(key).encode(encoding), json.dumps(good_claims()).encode())
    assert_invalid_token(await fetch("/test-auth", token=token), "UTF-8")


@pytest.mark.parametrize(
    "payload",
    [
        '{{"sub": "alice", "sub": "mallory", {rest}}}',  # a repeated member
        '{{"sub": "\\ud800", {rest}}}',  # a lone surrogate
        '{{"sub": "alice", "nbf": NaN, {rest}}}',  # not JSON
        '{{"sub": "alice", "nbf": -Infinity, {rest}}}',
        '{{"sub": "alice", "nbf": 1e400, {rest}}}',  # infinity once parsed
    ],
    ids=["repeated-member", "lone-surrogate", "NaN", "Infinity", "1e400"],
)
async def test_json_other_parsers_read_differently_is_refused(fetch, key, payload):
    claims = good_claims()
    del claims["sub"]
    rest = json.dumps(claims)[1:-1]
    token = sign_raw(key, header_json(key).encode(), payload.format(rest=rest).encode())
    assert_invalid_token(await fetch("/test-auth", token=token), "UTF-8 JSON")


async def test_a_repeated_header_parameter_is_refused(fetch, key):
    header = f'{{"alg": "{key.alg}", "alg": "{key.alg}", "kid": "{key.kid}", "typ": "at+jwt"}}'
    token = sign_raw(key, header.encode(), json.dumps(good_claims()).encode())
    assert_invalid_token(await fetch("/test-auth", token=token), "header")


def test_strict_json_keeps_what_is_json():
    assert strict_json.loads(b' {"a": [1, 2.5, "\\u00e9\\ud83d\\ude00", "\\\\ud800"]} ') == {
        "a": [1, 2.5, "\u00e9\U0001f600", "\\ud800"]
    }
    refused = {
        b"\xff": "utf-8",
        b'\xef\xbb\xbf{"a": 1}': "byte-order mark",
        b'{"a": 1, "a": 1}': "repeats a member name",
        b'["\\udc00"]': "surrogate",
        b"[NaN]": "not a JSON value",
        b"[1e999]": "out of range",
    }
    for bad, why in refused.items():
        with pytest.raises(ValueError, match=why):
            strict_json.loads(bad)


# -- NumericDate (RFC 7519 §2) --------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": True},
        {"nbf": True},
        {"iat": True},
        {"iat": False},
        {"exp": "4000000000"},
        {"nbf": [0]},
        {"iat": {"t": 0}},
    ],
    ids=repr,
)
async def test_a_time_claim_that_is_not_a_numericdate_is_refused(fetch, key, overrides):
    (claim,) = overrides
    response = await fetch("/test-auth", token=sign(key, good_claims(**overrides)))
    assert_invalid_token(response, claim)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=repr)
@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
async def test_non_finite_times_are_refused_by_the_verifier_too(services, key, claim, value):
    # Past the JSON layer, which refuses NaN/Infinity already: the verifier on its own.
    claims = good_claims(**{claim: value})
    raw = sign(key, good_claims())
    token = UnverifiedToken(raw, {"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}, claims)
    verifier = JWTVerifier(
        issuer=TEST_ISSUER,
        audiences=["jotguard"],
        keys=services.keyring,
        algorithms=[key.alg],
    )
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token)
    assert claim in caught.value.description


async def test_fractional_numericdates_are_accepted(fetch, key):
    now = time.time()
    claims = good_claims(iat=now - 0.5, nbf=now - 0.25, exp=now + 299.75)
    assert (await fetch("/test-auth", token=sign(key, claims))).code == 200


# -- a token without kid (RFC 7515 §4.1.4) ---------------------------------------------------


async def test_without_kid_the_only_key_verifies(fetch, services, key):
    token = sign(key, good_claims(), kid=None)
    assert (await fetch("/test-auth", token=token)).code == 200
    services.keyring.rotate()  # two keys are live now: which one is not for us to guess
    response = await fetch("/test-auth", token=sign(key, good_claims(), kid=None))
    assert_invalid_token(response, "must name one")


@pytest.mark.parametrize("kid", ["", 5, ["k"]])
async def test_a_kid_that_is_not_a_string_is_refused(fetch, key, kid):
    assert_invalid_token(await fetch("/test-auth", token=sign(key, good_claims(), kid=kid)))
