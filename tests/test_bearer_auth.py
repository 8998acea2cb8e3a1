"""Every row of the RFC 6750 error table and every token rejection rule, through HTTP."""

from __future__ import annotations

import base64
import json

import pytest

from backends.keys.keyring import generate_key
from tests.forge import b64, b64json, good_claims, hmac_with, sign, unsigned
from tests.helpers import BARE_CHALLENGE


def challenge(response) -> str:
    return response.headers.get("WWW-Authenticate", "")


def assert_invalid_token(response) -> None:
    assert response.code == 401, response.body
    assert challenge(response).startswith('Bearer realm="jotguard", error="invalid_token"')
    body = json.loads(response.body)
    assert body["error"] == "invalid_token"
    assert body["error_description"]


@pytest.fixture
def key(services):
    return services.keyring.current


# -- credentials missing or malformed ---------------------------------------------------


async def test_no_header_gets_bare_challenge(fetch):
    response = await fetch("/test-auth")
    assert response.code == 401
    assert challenge(response) == BARE_CHALLENGE
    assert json.loads(response.body)["error"] == "unauthorized"


@pytest.mark.parametrize("value", ["Basic x", "Basic dXNlcjpwYXNz", "Digest abc", "Token"])
async def test_other_scheme_counts_as_no_bearer_credentials(fetch, value):
    response = await fetch("/test-auth", headers={"Authorization": value})
    assert response.code == 401
    assert challenge(response) == BARE_CHALLENGE


@pytest.mark.parametrize(
    "value",
    [
        "Bearer",
        "Bearer ",
        "bearer a b",
        "Bearer a,b",
        "Bearer tok!en",
        "Bearer \u00e9t\u00e9",
        "Bearer e30=.e30=.c2ln",
        "",
    ],
)
async def test_malformed_header_is_invalid_request(fetch, value):
    response = await fetch("/test-auth", headers={"Authorization": value})
    assert response.code == 400
    assert 'error="invalid_request"' in challenge(response)
    assert json.loads(response.body)["error"] == "invalid_request"


async def test_two_authorization_headers_are_malformed(http_client, base_url, issue_token):
    from tornado.httputil import HTTPHeaders

    headers = HTTPHeaders()
    token = issue_token()
    headers.add("Authorization", f"Bearer {token}")
    headers.add("Authorization", f"Bearer {token}")
    response = await http_client.fetch(base_url + "/test-auth", headers=headers, raise_error=False)
    assert response.code == 400
    assert 'error="invalid_request"' in challenge(response)


async def test_scheme_is_case_insensitive(fetch, issue_token):
    token = issue_token()
    for scheme in ("bearer", "BEARER", "BeArEr"):
        response = await fetch("/test-auth", headers={"Authorization": f"{scheme} {token}"})
        assert response.code == 200


# -- tampering ----------------------------------------------------------------------------


async def test_flipped_signature_byte(fetch, issue_token):
    header, payload, signature = issue_token().split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[10] ^= 0x01
    assert_invalid_token(await fetch("/test-auth", token=f"{header}.{payload}.{b64(bytes(raw))}"))


async def test_tampered_payload(fetch, issue_token):
    header, _, signature = issue_token("alice").split(".")
    forged = b64json(good_claims(sub="mallory"))
    assert_invalid_token(await fetch("/test-auth", token=f"{header}.{forged}.{signature}"))


async def test_tampered_header(fetch, issue_token, key):
    _, payload, signature = issue_token().split(".")
    forged = b64json({"alg": "RS256", "kid": key.kid, "typ": "JWT", "x": 1})
    assert_invalid_token(await fetch("/test-auth", token=f"{forged}.{payload}.{signature}"))


async def test_truncated_signature(fetch, issue_token):
    token = issue_token()
    assert_invalid_token(await fetch("/test-auth", token=token[:-8]))


# -- algorithms ---------------------------------------------------------------------------


async def test_alg_none_is_refused(fetch, key):
    assert_invalid_token(await fetch("/test-auth", token=unsigned(good_claims(), kid=key.kid)))
    token = unsigned(good_claims(), kid=key.kid) + b64(b"sig")
    assert_invalid_token(await fetch("/test-auth", token=token))


async def test_hs256_signed_with_the_public_key_is_refused(fetch, key):
    # The classic confusion attack: HMAC keyed with the RSA public key's bytes.
    public_pem = key.key.as_pem(private=False)
    token = hmac_with(public_pem, good_claims(), kid=key.kid)
    assert_invalid_token(await fetch("/test-auth", token=token))


async def test_header_alg_other_than_the_keys_is_refused(fetch, key):
    assert_invalid_token(await fetch("/test-auth", token=sign(key, good_claims(), alg="RS512")))
    assert_invalid_token(await fetch("/test-auth", token=sign(key, good_claims(), alg="PS256")))


async def test_token_signed_by_a_foreign_key_with_our_kid(fetch, key):
    foreign = generate_key("RS256")
    forged = sign(foreign, good_claims(), kid=key.kid)
    assert_invalid_token(await fetch("/test-auth", token=forged))


async def test_unknown_kid(fetch, key):
    assert_invalid_token(await fetch("/test-auth", token=sign(key, good_claims(), kid="nope")))
    # (A token without kid: tests/test_strict_verification.py.)


@pytest.mark.parametrize(
    "header",
    [
        {"jku": "http://127.0.0.1:1/jwks.json"},
        {"x5u": "http://127.0.0.1:1/cert.pem"},
        {"jwk": {"kty": "oct", "k": "AAAA"}},
        {"x5c": ["MIIB"]},
        {"crit": ["exp"]},
    ],
    ids=["jku", "x5u", "jwk", "x5c", "crit"],
)
async def test_key_carrying_and_crit_headers_are_refused(fetch, key, header):
    assert_invalid_token(await fetch("/test-auth", token=sign(key, good_claims(), **header)))


# The local issuer holds its tokens to RFC 9068: JWT and no typ are refused there
# (tests/test_strict_verification.py); remote issuers accept JWT (test_remote_issuers.py).
@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "AT+JWT"])
async def test_accepted_types(fetch, key, typ):
    response = await fetch("/test-auth", token=sign(key, good_claims(), typ=typ))
    assert response.code == 200


@pytest.mark.parametrize("typ", ["id+jwt", "JWE", 5])
async def test_other_types_are_refused(fetch, key, typ):
    assert_invalid_token(await fetch("/test-auth", token=sign(key, good_claims(), typ=typ)))


# -- claims -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "description"),
    [
        ({"exp": 1_000_000}, "expired"),
        ({"aud": "someone-else"}, "aud"),
        ({"aud": ["a", "b"]}, "aud"),
        ({"iss": "http://evil.test/"}, "issuer"),
        ({"nbf": 4_000_000_000}, "nbf"),
        ({"iat": 4_000_000_000}, "iat"),
        ({"exp": None}, "exp"),
        ({"sub": None}, "sub"),
        ({"jti": None}, "jti"),
        ({"jti": ""}, "jti"),
        ({"exp": "soon"}, "exp"),
        ({"sub": 42}, "sub"),
        ({"iss": None}, "issuer"),
    ],
)
async def test_bad_claims_are_refused(fetch, key, overrides, description):
    response = await fetch("/test-auth", token=sign(key, good_claims(**overrides)))
    assert_invalid_token(response)
    assert description in json.loads(response.body)["error_description"]


async def test_audience_list_containing_ours_is_accepted(fetch, key):
    response = await fetch("/test-auth", token=sign(key, good_claims(aud=["x", "jotguard"])))
    assert response.code == 200


async def test_leeway_is_honoured(fetch, key):
    import time

    now = int(time.time())
    within = good_claims(exp=now - 10, nbf=now + 10, iat=now + 10)
    assert (await fetch("/test-auth", token=sign(key, within))).code == 200
    beyond = good_claims(exp=now - 60)
    assert_invalid_token(await fetch("/test-auth", token=sign(key, beyond)))


# -- size and garbage ---------------------------------------------------------------------


async def test_token_over_8_kib_is_refused_before_parsing(fetch, key):
    padding = "x" * (9 * 1024)
    response = await fetch("/test-auth", token=sign(key, good_claims(pad=padding)))
    assert_invalid_token(response)
    assert "too large" in json.loads(response.body)["error_description"]


@pytest.mark.parametrize(
    "token",
    [
        "abc",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "..",
        b64json([1, 2]) + "." + b64json({}) + ".c2ln",
        b64json({"alg": "RS256"}) + "." + b64(b"not json") + ".c2ln",
        b64(b"\xff\xfe") + "." + b64json({}) + ".c2ln",
        b64json({"alg": 5}) + "." + b64json({}) + ".c2ln",
    ],
)
async def test_garbage_tokens(fetch, token):
    assert_invalid_token(await fetch("/test-auth", token=token))


async def test_deeply_nested_json_is_refused_not_crashed(fetch):
    nested = "[" * 5000 + "]" * 5000
    token = b64(b'{"alg":"RS256","kid":"k"}') + "." + b64(nested.encode()) + ".c2ln"
    response = await fetch("/test-auth", token=token)
    assert response.code in (400, 401)


# -- rotation -----------------------------------------------------------------------------


async def test_rotation_keeps_old_tokens_valid_and_publishes_both(fetch, services, issue_token):
    old_token = issue_token("alice")
    old_kid = services.keyring.current.kid
    new = services.keyring.rotate()
    assert new.kid != old_kid
    new_token = issue_token("bob")
    assert json.loads(base64.urlsafe_b64decode(new_token.split(".")[0] + "=="))["kid"] == new.kid
    assert (await fetch("/test-auth", token=old_token)).code == 200
    assert (await fetch("/test-auth", token=new_token)).code == 200
    jwks = json.loads((await fetch("/.well-known/jwks.json")).body)
    assert {k["kid"] for k in jwks["keys"]} == {old_kid, new.kid}
    assert all("d" not in k and "p" not in k for k in jwks["keys"])


async def test_rotation_by_another_process_is_picked_up(fetch, services, settings):
    from backends.keys.keyring import Keyring
    from webapp.service.services import local_issuer

    # A second Keyring object on the same file stands in for the CLI process.
    cli = Keyring(settings.keyring_path, "RS256", retention=settings.key_retention)
    cli.rotate()
    token = local_issuer(settings, cli).sign(local_issuer(settings, cli).claims_for("carol")).token
    assert (await fetch("/test-auth", token=token)).code == 200


async def test_keys_past_retention_are_no_longer_accepted(fetch, services, issue_token, key):
    import dataclasses

    token = sign(key, good_claims())
    services.keyring.rotate()
    # Pretend the old key was retired long ago.
    services.keyring._keys = [
        dataclasses.replace(k, retired_at=1) if k.kid == key.kid else k
        for k in services.keyring._keys
    ]
    assert_invalid_token(await fetch("/test-auth", token=token))
    jwks = json.loads((await fetch("/.well-known/jwks.json")).body)
    assert key.kid not in {k["kid"] for k in jwks["keys"]}


# -- error bodies never leak ------------------------------------------------------------


async def test_unknown_route_is_json_404(fetch):
    response = await fetch("/nope")
    assert response.code == 404
    assert json.loads(response.body)["error"] == "not_found"


async def test_wrong_method_is_json_405(fetch):
    response = await fetch("/test", method="DELETE")
    assert response.code == 405
    assert json.loads(response.body)["error"] == "method_not_allowed"
