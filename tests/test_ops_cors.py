"""CORS through HTTP: preflights without authentication, headers only for allowed origins."""

from __future__ import annotations

import os

import pytest

from webapp.config.fields import SettingsError
from webapp.config.settings import Settings

NO_ENV_FILE = {"JOTGUARD_ENV_FILE": os.devnull}

ALLOWED = "https://app.example.com"
PREFLIGHT = {
    "Access-Control-Request-Method": "GET",
    "Access-Control-Request-Headers": "authorization",
}

with_cors = pytest.mark.parametrize(
    "settings_overrides",
    [{"JOTGUARD_CORS_ORIGINS": f"{ALLOWED}, http://localhost:3000"}],
)


@with_cors
async def test_a_preflight_from_an_allowed_origin_needs_no_token(fetch):
    response = await fetch("/test-auth", method="OPTIONS", headers={"Origin": ALLOWED, **PREFLIGHT})

    assert response.code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert response.headers["Access-Control-Allow-Methods"] == "GET, OPTIONS"
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert response.headers["Access-Control-Max-Age"] == "600"
    assert response.headers["Vary"] == "Origin"
    assert "Access-Control-Allow-Credentials" not in response.headers


@with_cors
async def test_an_error_response_lets_the_browser_read_why(fetch):
    response = await fetch("/test-auth", headers={"Origin": "http://localhost:3000"})

    assert response.code == 401
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert response.headers["Vary"] == "Origin"
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"WWW-Authenticate", "Retry-After", "X-Request-ID", "RateLimit-Policy"} <= exposed
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@with_cors
async def test_a_success_carries_the_headers_too(fetch, issue_token):
    response = await fetch("/test-auth", token=issue_token(), headers={"Origin": ALLOWED})
    assert response.code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED


@with_cors
@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "https://app.example.com.evil.example",
        "null",
        "http://app.example.com",
    ],
)
async def test_a_disallowed_origin_gets_no_cors_headers(fetch, origin):
    preflight = await fetch("/test-auth", method="OPTIONS", headers={"Origin": origin, **PREFLIGHT})
    actual = await fetch("/test-auth", headers={"Origin": origin})

    for response in (preflight, actual):
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]
        assert response.headers["Vary"] == "Origin"  # caches must not reuse another origin's
    assert preflight.code == 204


@pytest.mark.parametrize("settings_overrides", [{"JOTGUARD_CORS_ORIGINS": "*"}])
async def test_any_origin(fetch):
    response = await fetch(
        "/test-auth", method="OPTIONS", headers={"Origin": "https://x", **PREFLIGHT}
    )
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Vary" not in response.headers


async def test_without_the_setting_no_cors_headers_at_all(fetch):
    preflight = await fetch(
        "/test-auth", method="OPTIONS", headers={"Origin": ALLOWED, **PREFLIGHT}
    )
    actual = await fetch("/test-auth", headers={"Origin": ALLOWED})
    for response in (preflight, actual):
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]
        assert "Vary" not in response.headers
    assert preflight.code == 204
    assert preflight.headers["Allow"] == "GET, OPTIONS"


async def test_options_on_an_unknown_path_is_404(fetch):
    assert (await fetch("/nowhere", method="OPTIONS")).code == 404


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("https://App.Example.com", ("https://app.example.com",)),
        ("https://app.example.com:443/", ("https://app.example.com",)),
        ("http://localhost:3000,http://localhost:3000", ("http://localhost:3000",)),
        ("https://a.example http://[::1]:8080", ("https://a.example", "http://[::1]:8080")),
        ("", ()),
    ],
)
def test_origins_are_normalised_as_browsers_send_them(raw, parsed):
    assert (
        Settings.load(environ={**NO_ENV_FILE, "JOTGUARD_CORS_ORIGINS": raw}).cors_origins == parsed
    )


@pytest.mark.parametrize(
    "raw",
    [
        "app.example.com",
        "ftp://x",
        "https://x/path",
        "https://u:p@x",
        "null",
        "*, https://x",
        "https://x:99999",
    ],
)
def test_a_bad_origin_stops_start_up(raw):
    with pytest.raises(SettingsError, match="JOTGUARD_CORS_ORIGINS"):
        Settings.load(environ={**NO_ENV_FILE, "JOTGUARD_CORS_ORIGINS": raw})
