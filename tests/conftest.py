"""pytest-tornado's fixture names (``app``, ``http_server``, ``http_client``,
``base_url``) on pytest-asyncio: pytest-tornado 0.8.1 imports ``pkg_resources``,
which setuptools 82+ removed, so it no longer loads.

A test module provides ``app``; the fixtures here serve it on a free port.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import RSAKey
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from tornado.web import Application

from backends.keys.keyring import Keyring
from tests.cli import CHEAP_ARGON2
from tests.clock import mid_minute_clock
from tests.dpop_http import DPoPClient
from tests.dpop_support import key_for
from tests.fake_issuer import FakeIssuer
from webapp.config.settings import Settings
from webapp.service.app import make_app
from webapp.service.services import Services

TEST_ISSUER = "http://jotguard.test/"
GENEROUS_LIMITS = dict.fromkeys(
    (
        "JOTGUARD_RATELIMIT_DEFAULT",
        "JOTGUARD_RATELIMIT_TOKEN",
        "JOTGUARD_RATELIMIT_INTROSPECT",
        "JOTGUARD_RATELIMIT_ADMIN",
        "JOTGUARD_RATELIMIT_API",
        "JOTGUARD_RATELIMIT_PREAUTH",
        "JOTGUARD_RATELIMIT_FAILED_AUTH",
        "JOTGUARD_RATELIMIT_PASSWORD",
        "JOTGUARD_RATELIMIT_PASSWORD_IP",
    ),
    "100000/minute",
)


@pytest.fixture(scope="session")
def keyring_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One RSA keyring per session: generating RSA keys per test is slow."""
    path = tmp_path_factory.mktemp("keyring") / "keyring.json"
    Keyring(path, "RS256", retention=86400 + 30).ensure()
    return path


@pytest.fixture
def data_dir(tmp_path: Path, keyring_template: Path) -> Path:
    directory = tmp_path / "data"
    directory.mkdir(mode=0o700)
    shutil.copy2(keyring_template, directory / "keyring.json")
    return directory


@pytest.fixture
def settings_overrides() -> dict[str, str]:
    """Override in a module (or parametrise) to change JOTGUARD_* settings for ``settings``."""
    return {}


@pytest.fixture
def settings_environ(data_dir: Path, settings_overrides: dict[str, str]) -> dict[str, str]:
    """The JOTGUARD_* variables ``settings`` is loaded from (the CLI tests set them)."""
    return {
        "JOTGUARD_DATA_DIR": str(data_dir),
        "JOTGUARD_ISSUER": TEST_ISSUER,
        "JOTGUARD_ENV_FILE": str(data_dir / "absent.env"),
        # Tests that are not about rate limits send bursts of bad tokens and token
        # requests; the rate-limit tests set their own, tight limits.
        **GENEROUS_LIMITS,
        **CHEAP_ARGON2,
        **settings_overrides,
    }


@pytest.fixture
def settings(settings_environ: dict[str, str]) -> Settings:
    return Settings.load(environ=settings_environ)


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    # Rate-limit windows on a clock that starts mid-minute: see mid_minute_clock.
    services = await Services.start(settings, rate_limit_clock=mid_minute_clock())
    yield services
    await services.close()


@pytest.fixture
def app(services: Services) -> Application:
    return make_app(services)


@pytest.fixture
async def http_server(app: Application) -> AsyncIterator[HTTPServer]:
    server = HTTPServer(app)
    sock, port = bind_unused_port()
    server.add_sockets([sock])
    server.port = port  # type: ignore[attr-defined]
    yield server
    server.stop()
    await server.close_all_connections()


@pytest.fixture
def http_port(http_server: HTTPServer) -> int:
    port: int = http_server.port  # type: ignore[attr-defined]
    return port


@pytest.fixture
def base_url(http_port: int) -> str:
    return f"http://127.0.0.1:{http_port}"


@pytest.fixture
async def http_client(http_server: HTTPServer) -> AsyncIterator[AsyncHTTPClient]:
    client = AsyncHTTPClient(force_instance=True)
    yield client
    client.close()


@pytest.fixture
def fetch(http_client: AsyncHTTPClient, base_url: str) -> Callable[..., Any]:
    """``await fetch("/path", token=..., **kwargs)``: never raises on HTTP errors."""

    async def do_fetch(path: str, *, token: str | None = None, **kwargs: Any) -> HTTPResponse:
        headers = dict(kwargs.pop("headers", {}) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return await http_client.fetch(
            base_url + path, headers=headers, raise_error=False, **kwargs
        )

    return do_fetch


@pytest.fixture
def issue_token(services: Services) -> Callable[..., str]:
    """Sign a token with the test app's own issuer: ``issue_token("alice", scopes=[...])``."""

    def issue(subject: str = "alice", **kwargs: Any) -> str:
        extra = kwargs.pop("extra", None)
        claims = services.issuer.claims_for(subject, extra=extra, **kwargs)
        return services.issuer.sign(claims).token

    return issue


def default_limits() -> dict[str, str]:
    """Every rate-limit policy at its shipped default (the tests' ``settings`` are generous)."""
    return {
        f.metadata["env"]: f.default
        for f in dataclasses.fields(Settings)
        if f.metadata["env"] in GENEROUS_LIMITS
    }


def redis_url() -> str:
    return os.environ.get("JOTGUARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def require_service(name: str, reachable: bool) -> None:
    """Skip when a service is missing on a laptop; fail in CI (JOTGUARD_REQUIRE_SERVICES=1)."""
    if reachable:
        return
    if os.environ.get("JOTGUARD_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{name} is required in CI (JOTGUARD_REQUIRE_SERVICES=1) but unreachable")
    pytest.skip(f"{name} is not reachable")


# -- remote issuers (Auth0-like) -----------------------------------------------------


@pytest.fixture(scope="session")
def rsa_key_pool() -> list[RSAKey]:
    """RSA keys a fake issuer publishes and rotates through, generated once per session."""
    return [RSAKey.generate_key(2048, private=True) for _ in range(4)]


@pytest.fixture
async def fake_issuer(rsa_key_pool: list[RSAKey]) -> AsyncIterator[FakeIssuer]:
    """An Auth0-like issuer serving on 127.0.0.1 (see tests/fake_issuer.py)."""
    issuer = FakeIssuer(rsa_key_pool)
    issuer.start()
    yield issuer
    await issuer.stop()


# -- DPoP -------------------------------------------------------------------------------


@pytest.fixture
def dpop_client(fetch: Callable[..., Any], base_url: str) -> DPoPClient:
    """Requests to the test server with a fresh DPoP proof each, by the session's ES256
    key (``dpop_client.key``): see tests/dpop_http.py."""
    return DPoPClient(fetch, base_url, key_for("ES256"))
