"""Fixtures of the DPoP interop tests: the packages of others, installed once per session
into pytest's temporary directory, and the servers every module of this package shares
(each client makes keys, so proofs and bindings, of its own)."""

from __future__ import annotations

import json
import secrets
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from joserfc.jwk import RSAKey
from tornado.httpclient import AsyncHTTPClient

from tests.cli import cli_env, initialised, jotguard
from tests.conftest import require_service
from tests.interop_dpop.support import (
    AUDIENCE,
    HERE,
    ISSUER,
    NODE_FILES,
    PYTHON_CLIENTS,
    RESOURCE,
    install,
    node_server,
    serve,
)
from tests.live import LiveServer


@pytest.fixture(scope="session")
def node_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    require_service("Node.js and npm", node is not None and npm is not None)
    assert npm is not None
    directory = tmp_path_factory.mktemp("dpop-interop-node")
    for name in NODE_FILES:
        shutil.copy(HERE / name, directory / name)
    command = [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"]
    packages = "dpop, jose, oidc-provider, express and express-oauth2-jwt-bearer"
    install(f"the npm packages {packages}", command, directory)
    return directory


@pytest.fixture(scope="session")
def python_clients(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("dpop-interop-python")
    command = [sys.executable, "-m", "pip", "install", "-q", "--target", str(target)]
    install("the PyPI packages " + ", ".join(PYTHON_CLIENTS), [*command, *PYTHON_CLIENTS], target)
    return target


# -- the servers: oidc-provider, two live jotguards, Express ------------------------------


@pytest.fixture(scope="package")
def oidc_provider(node_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """oidc-provider on 127.0.0.1, a port the OS picked; yields its issuer URL."""
    signing = RSAKey.generate_key(2048, {"alg": "RS256", "use": "sig", "kid": "as-1"}, True)
    config = tmp_path_factory.mktemp("oidc-provider") / "config.json"
    config.write_text(
        json.dumps(
            {
                "jwk": signing.as_dict(private=True),
                "clientId": "service",
                "clientSecret": "service-secret",
                "resource": RESOURCE,
                "nonceSecret": secrets.token_hex(32),
            }
        )
    )
    with node_server(node_dir, "provider.mjs", config) as started:
        yield started["issuer"]


@pytest.fixture(scope="package")
def jotguard_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A data directory made by ``jotguard init`` with one client_credentials client
    (``jotguard clients add``); the client's id and secret."""
    data_dir = tmp_path_factory.mktemp("jotguard-live") / "data"
    env = initialised(cli_env(data_dir, JOTGUARD_ISSUER=ISSUER, JOTGUARD_SIGNING_ALG="ES256"))
    added = jotguard("clients", "add", "interop", env=env)
    assert added.returncode == 0, added.stderr
    return data_dir, json.loads(added.stdout)


@pytest.fixture(scope="package")
def plain(jotguard_home, oidc_provider) -> Iterator[LiveServer]:
    """jotguard on its defaults (``JOTGUARD_DPOP=allowed``, no nonces)."""
    with serve(jotguard_home[0], oidc_provider, None) as server:
        yield server


@pytest.fixture(scope="package")
def strict(jotguard_home, oidc_provider) -> Iterator[LiveServer]:
    """jotguard with ``JOTGUARD_DPOP_NONCE=on``, the provider's entry ``"dpop": "required"``."""
    with serve(jotguard_home[0], oidc_provider, "required", JOTGUARD_DPOP_NONCE="on") as server:
        yield server


@pytest.fixture(scope="package")
def express_api(node_dir: Path, plain: LiveServer, tmp_path_factory) -> Iterator[str]:
    """express-oauth2-jwt-bearer trusting the plain jotguard's tokens; its base URL."""
    config = tmp_path_factory.mktemp("express-api") / "config.json"
    config.write_text(
        json.dumps(
            {
                "issuer": ISSUER,
                "audience": AUDIENCE,
                "jwksUri": plain.url + ".well-known/jwks.json",
                "tokenSigningAlg": "ES256",
            }
        )
    )
    with node_server(node_dir, "resource_server.mjs", config) as started:
        yield started["url"]


@pytest.fixture
async def http() -> AsyncIterator[AsyncHTTPClient]:
    client = AsyncHTTPClient(force_instance=True)
    yield client
    client.close()
