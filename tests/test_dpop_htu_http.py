"""The URL a proof must name (htu) on a protected route: the request's own, the public URL,
or what a trusted proxy says the client used."""

from __future__ import annotations

import pytest

from backends.dpop import make_proof
from tests.dpop_http import bound_token, dpop_headers, refused_with
from tests.dpop_support import key_for


@pytest.fixture
def key():
    return key_for("ES256")


@pytest.fixture
def token(services, key):
    return bound_token(services, key)


async def send(fetch, key, token, htu: str, **headers: str):
    proof = make_proof(key, "GET", htu, access_token=token)
    return await fetch("/test-auth", headers=dpop_headers(proof, token, **headers))


async def test_without_settings_the_request_names_itself(fetch, base_url, key, token):
    assert (await send(fetch, key, token, base_url + "/test-auth")).code == 200
    # Scheme and host compare as RFC 3986 normalises them.
    upper = base_url.replace("http://", "HTTP://")
    assert (await send(fetch, key, token, upper + "/test-auth")).code == 200


async def test_forwarded_headers_of_an_untrusted_peer_are_ignored(fetch, base_url, key, token):
    forged = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example"}
    response = await send(fetch, key, token, "https://api.example/test-auth", **forged)
    refused_with(response, "invalid_dpop_proof")
    assert (await send(fetch, key, token, base_url + "/test-auth", **forged)).code == 200


@pytest.mark.parametrize(
    "settings_overrides", [{"JOTGUARD_PUBLIC_URL": "https://api.example/auth/"}]
)
async def test_the_public_url_is_what_proofs_name(fetch, base_url, key, token):
    assert (await send(fetch, key, token, "https://api.example/auth/test-auth")).code == 200
    # The request's own address, or a forged Host, no longer fits.
    refused_with(await send(fetch, key, token, base_url + "/test-auth"), "invalid_dpop_proof")
    forged = await send(fetch, key, token, "http://evil.example/test-auth", Host="evil.example")
    refused_with(forged, "invalid_dpop_proof")


BEHIND_PROXY = {"JOTGUARD_TRUSTED_PROXIES": "127.0.0.1"}


@pytest.mark.parametrize("settings_overrides", [BEHIND_PROXY])
async def test_a_trusted_proxy_names_the_scheme_and_host(fetch, base_url, key, token):
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example"}
    assert (await send(fetch, key, token, "https://api.example/test-auth", **forwarded)).code == 200
    refused_with(
        await send(fetch, key, token, base_url + "/test-auth", **forwarded), "invalid_dpop_proof"
    )
    # Each alone; the rightmost value is the one the proxy wrote.
    assert (
        await send(
            fetch,
            key,
            token,
            "https" + base_url[4:] + "/test-auth",
            **{"X-Forwarded-Proto": "https"},
        )
    ).code == 200
    appended = {"X-Forwarded-Host": "evil.example, api.example"}
    assert (await send(fetch, key, token, "http://api.example/test-auth", **appended)).code == 200
    bad = {"X-Forwarded-Proto": "gopher"}
    refused_with(await send(fetch, key, token, "gopher://x/test-auth", **bad), "invalid_dpop_proof")


@pytest.mark.parametrize("settings_overrides", [BEHIND_PROXY])
@pytest.mark.parametrize("host", ["api.example/other?", "api.example#", "user@api.example", "a b"])
async def test_a_forwarded_host_that_would_move_the_path_is_refused(fetch, key, token, host):
    # (Tornado itself answers 400 to such a Host header; a proxy's header is ours to check.)
    response = await send(
        fetch, key, token, "http://api.example/other?/test-auth", **{"X-Forwarded-Host": host}
    )
    refused_with(response, "invalid_dpop_proof")


@pytest.mark.parametrize(
    "settings_overrides", [{**BEHIND_PROXY, "JOTGUARD_CLIENT_IP_HEADER": "forwarded"}]
)
async def test_a_trusted_proxy_writing_forwarded(fetch, base_url, key, token):
    header = {
        "Forwarded": "for=1.2.3.4;proto=http;host=evil.example, "
        'for=5.6.7.8;proto=https;host="api.example:8443"'
    }
    assert (
        await send(fetch, key, token, "https://api.example:8443/test-auth", **header)
    ).code == 200
    # In this mode X-Forwarded-* are anyone's to write.
    other = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example"}
    assert (await send(fetch, key, token, base_url + "/test-auth", **other)).code == 200


@pytest.mark.parametrize("settings_overrides", [{"JOTGUARD_CORS_ORIGINS": "https://app.example"}])
async def test_cors_lets_a_browser_send_proofs_and_read_nonces(fetch):
    origin = {"Origin": "https://app.example"}
    preflight = await fetch(
        "/test-auth",
        method="OPTIONS",
        headers={**origin, "Access-Control-Request-Headers": "authorization, dpop"},
    )
    allowed = {h.strip() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")}
    assert "DPoP" in allowed
    answer = await fetch("/test-auth", headers=origin)
    exposed = {h.strip() for h in answer.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"DPoP-Nonce", "WWW-Authenticate"} <= exposed
