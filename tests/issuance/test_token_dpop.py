"""POST /oauth/token with DPoP proofs (RFC 9449 §5, §8): bound tokens for every grant,
each refusal of a proof (400), required mode, server nonces, discovery."""

from __future__ import annotations

import pytest
from joserfc.jwk import OctKey

from backends.auth.compact import parse_compact
from backends.dpop import generate_key, jwk_thumbprint, make_proof
from tests.dpop_support import claims_for, header_for, key_for, sign_raw
from tests.issuance.conftest import READ_WRITE, body
from tests.issuance.test_token_endpoint import assert_oauth_error

CLIENT_CREDENTIALS = {"grant_type": "client_credentials"}


def cnf_of(answer: dict) -> object:
    return parse_compact(answer["access_token"]).claims.get("cnf")


def assert_bound(response, key) -> dict:
    """The 200 answer of a token request, bound to ``key`` as RFC 9449 §5 and §6.1 say."""
    assert response.code == 200, response.body
    answer = body(response)
    assert answer["token_type"] == "DPoP"
    assert cnf_of(answer) == {"jkt": jwk_thumbprint(key)}
    return answer


def assert_bearer(response) -> dict:
    assert response.code == 200, response.body
    answer = body(response)
    assert answer["token_type"] == "Bearer"
    assert cnf_of(answer) is None
    return answer


def assert_proof_refused(response) -> None:
    """400 ``invalid_dpop_proof`` (RFC 9449 §5), no token, no challenge (RFC 6749 §5.2)."""
    answer = assert_oauth_error(response, 400, "invalid_dpop_proof")
    assert "access_token" not in answer
    assert "WWW-Authenticate" not in response.headers


@pytest.fixture
async def client(make_client):
    return await make_client(scopes=READ_WRITE)


# -- binding, every grant ----------------------------------------------------------------


async def test_client_credentials_with_an_es256_proof_gets_a_dpop_token(client, dpop_request):
    key = key_for("ES256")
    response = await dpop_request(CLIENT_CREDENTIALS, client=client, key=key)
    assert_bound(response, key)
    assert "DPoP-Nonce" not in response.headers  # nonces are off by default


@pytest.mark.parametrize("alg", ["EdDSA", "PS256", "RS256"])
async def test_every_default_algorithm_binds(alg, client, dpop_request):
    key = key_for(alg)
    assert_bound(await dpop_request(CLIENT_CREDENTIALS, client=client, key=key), key)


async def test_password_and_refresh_grants_bind_their_access_tokens(
    client, make_user, password_grant, dpop_request
):
    await make_user()
    key = key_for("ES256")
    form = {"grant_type": "password", "username": "alice", "password": "correct horse battery"}
    login = assert_bound(await dpop_request(form, client=client, key=key), key)
    refresh = {"grant_type": "refresh_token", "refresh_token": login["refresh_token"]}
    assert_bound(await dpop_request(refresh, client=client, key=key), key)


async def test_without_a_proof_tokens_are_bearer_tokens(client, dpop_request):
    assert_bearer(await dpop_request(CLIENT_CREDENTIALS, client=client))


async def test_a_proof_is_checked_only_once_the_client_authenticated(
    client, dpop_request, token_url
):
    # A caller without the secret takes no room in the replay cache: the same proof,
    # sent next by the client itself, is no replay.
    key = key_for("ES256")
    proof = make_proof(key, "POST", token_url)
    stranger = (client[0], "not-the-secret")
    refused = await dpop_request(CLIENT_CREDENTIALS, client=stranger, proof=proof)
    assert_oauth_error(refused, 401, "invalid_client")
    assert_bound(await dpop_request(CLIENT_CREDENTIALS, client=client, proof=proof), key)


# -- refusals --------------------------------------------------------------------------------


def private_jwk_proof(url: str) -> str:
    key = key_for("ES256")
    header = header_for(key, "ES256", jwk=key.as_dict(private=True))
    return sign_raw(header, claims_for("POST", url), key, "ES256")


def hs256_proof(url: str) -> str:
    secret = OctKey.import_key(b"a shared secret proves nothing about a key pair")
    header = header_for(key_for("ES256"), "HS256")
    return sign_raw(header, claims_for("POST", url), secret, "HS256")


BAD_PROOFS = {
    "wrong htu": lambda url: make_proof(key_for("ES256"), "POST", url + "/elsewhere"),
    "wrong htm": lambda url: make_proof(key_for("ES256"), "GET", url),
    "HS256": hs256_proof,
    "private jwk": private_jwk_proof,
    "typ JWT": lambda url: sign_raw(
        header_for(key_for("ES256"), "ES256", typ="JWT"),
        claims_for("POST", url),
        key_for("ES256"),
        "ES256",
    ),
    "iat 10 minutes old": lambda url: make_proof(
        key_for("ES256"), "POST", url, iat=claims_for()["iat"] - 600
    ),
    "not a JWS": lambda url: "not.a-proof",
}


@pytest.mark.parametrize("case", BAD_PROOFS)
async def test_a_bad_proof_is_400_invalid_dpop_proof(case, client, dpop_request, token_url):
    proof = BAD_PROOFS[case](token_url)
    assert_proof_refused(await dpop_request(CLIENT_CREDENTIALS, client=client, proof=proof))


async def test_a_replayed_proof_is_refused(client, dpop_request, token_url):
    proof = make_proof(key_for("ES256"), "POST", token_url)
    first = await dpop_request(CLIENT_CREDENTIALS, client=client, proof=proof)
    assert_bound(first, key_for("ES256"))
    assert_proof_refused(await dpop_request(CLIENT_CREDENTIALS, client=client, proof=proof))


@pytest.mark.parametrize("settings_overrides", [{"JOTGUARD_RATELIMIT_FAILED_AUTH": "3/minute"}])
async def test_bad_proofs_do_not_spend_the_failed_authentication_budget(
    client, dpop_request, token_url
):
    # JOTGUARD_RATELIMIT_FAILED_AUTH is 3/minute here: a client whose proofs are buggy
    # has proved its secret, and a proof guesses at nothing.
    wrong_htu = BAD_PROOFS["wrong htu"](token_url)
    for _ in range(5):
        refused = await dpop_request(CLIENT_CREDENTIALS, client=client, proof=wrong_htu)
        assert_proof_refused(refused)
    key = key_for("ES256")
    assert_bound(await dpop_request(CLIENT_CREDENTIALS, client=client, key=key), key)


# -- modes -----------------------------------------------------------------------------------

REQUIRED = {"JOTGUARD_DPOP": "required"}
OFF = {"JOTGUARD_DPOP": "off"}
NONCES = {"JOTGUARD_DPOP_NONCE": "on"}


@pytest.mark.parametrize("settings_overrides", [REQUIRED])
async def test_required_mode_refuses_a_request_without_a_proof(client, dpop_request):
    answer = assert_oauth_error(
        await dpop_request(CLIENT_CREDENTIALS, client=client), 400, "invalid_dpop_proof"
    )
    assert "required" in answer["error_description"]
    key = key_for("ES256")
    assert_bound(await dpop_request(CLIENT_CREDENTIALS, client=client, key=key), key)


@pytest.mark.parametrize("settings_overrides", [OFF])
async def test_with_dpop_off_a_proof_is_not_looked_at(client, dpop_request):
    # Even a bad one: the Bearer answer tells the client its token is unbound.
    assert_bearer(await dpop_request(CLIENT_CREDENTIALS, client=client, proof="garbage"))


@pytest.mark.parametrize("settings_overrides", [NONCES])
async def test_nonce_mode_asks_for_a_nonce_then_accepts_it(client, dpop_request):
    key = key_for("ES256")
    asked = await dpop_request(CLIENT_CREDENTIALS, client=client, key=key)
    assert_oauth_error(asked, 400, "use_dpop_nonce")
    nonce = asked.headers["DPoP-Nonce"]
    assert nonce

    granted = await dpop_request(CLIENT_CREDENTIALS, client=client, key=key, nonce=nonce)
    assert_bound(granted, key)
    assert "DPoP-Nonce" not in granted.headers  # still the current one

    wrong = await dpop_request(CLIENT_CREDENTIALS, client=client, key=key, nonce="x" * 43)
    assert_oauth_error(wrong, 400, "use_dpop_nonce")


@pytest.mark.parametrize("settings_overrides", [NONCES])
async def test_a_success_with_an_aging_nonce_carries_the_current_one(
    client, dpop_request, services
):
    nonces = services.dpop.verifier.nonces
    now = services.dpop.verifier.clock()
    previous = nonces.issue(now - nonces.step)
    key = key_for("ES256")
    granted = await dpop_request(CLIENT_CREDENTIALS, client=client, key=key, nonce=previous)
    assert_bound(granted, key)
    assert granted.headers["DPoP-Nonce"] == nonces.issue(now)


async def test_another_key_binds_to_itself(client, dpop_request):
    other = generate_key("ES256")
    answer = assert_bound(await dpop_request(CLIENT_CREDENTIALS, client=client, key=other), other)
    assert cnf_of(answer) != {"jkt": jwk_thumbprint(key_for("ES256"))}


# -- discovery ---------------------------------------------------------------------------------


async def test_discovery_lists_the_proof_algorithms(fetch):
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        document = body(await fetch(path))
        assert document["dpop_signing_alg_values_supported"][:4] == [
            "ES256",
            "EdDSA",
            "PS256",
            "RS256",
        ]


@pytest.mark.parametrize("settings_overrides", [{"JOTGUARD_DPOP_ALGS": "ES384"}])
async def test_discovery_lists_the_configured_algorithms(fetch):
    document = body(await fetch("/.well-known/oauth-authorization-server"))
    assert document["dpop_signing_alg_values_supported"] == ["ES384"]


@pytest.mark.parametrize("settings_overrides", [OFF])
async def test_discovery_lists_no_proof_algorithms_with_dpop_off(fetch):
    document = body(await fetch("/.well-known/oauth-authorization-server"))
    assert "dpop_signing_alg_values_supported" not in document
