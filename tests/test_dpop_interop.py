"""DPoP between jotguard and implementations written by others, each in its own process,
end to end: a live ``jotguard serve`` (tests/live.py) and others' clients, issuer and
resource server talking HTTP.

- panva's ``dpop`` (and ``jose`` for "EdDSA") is a client (``interop_dpop/client.mjs``,
  Node's fetch): a DPoP token from jotguard's /oauth/token, GET /test-auth with it, the
  nonce round trips with ``JOTGUARD_DPOP_NONCE=on``, and its proofs replayed or misused.
- ``oidc-provider`` issues DPoP-bound JWT access tokens (client credentials, resource
  indicators) that the live jotguard takes as a remote issuer's, for panva's and
  jotguard's proofs; with ``"dpop": "required"`` for that issuer its unbound tokens are
  refused. It also verifies jotguard's proofs at its own token endpoint.
- requests-oauth2client (ES256, EdDSA, PS256, RS256) and pydpop (ES256) are Python
  clients of the live jotguard (``interop_dpop/python_clients.py``), and verify
  jotguard's proofs; ``jose`` verifies them the way oidc-provider does.
- Auth0's express-oauth2-jwt-bearer (``interop_dpop/resource_server.mjs``) verifies the
  DPoP tokens the live jotguard issues, with panva's proofs.

The npm and PyPI packages are installed once per test session into pytest's
temporary directory (pinned in tests/interop_dpop/package.json and below), never
into the tree. Without Node/npm or a registry these tests skip, and fail when
JOTGUARD_REQUIRE_SERVICES=1. The servers are shared by the module: every client makes
keys (so proofs and bindings) of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import shutil
import subprocess
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import RSAKey
from tornado.httpclient import AsyncHTTPClient

from backends.auth.compact import parse_compact
from backends.dpop import generate_key, jwk_thumbprint, make_proof
from tests.cli import cli_env, initialised, jotguard
from tests.conftest import GENEROUS_LIMITS, require_service
from tests.live import LiveServer, live_jotguard

pytestmark = [pytest.mark.interop, pytest.mark.slow]

HERE = Path(__file__).parent / "interop_dpop"
NODE_FILES = ("package.json", "client.mjs", "verify.mjs", "provider.mjs", "resource_server.mjs")
PYTHON_CLIENTS = ("requests-oauth2client==1.8.0", "pydpop==0.2.1")
INSTALL_TIMEOUT = 150
RUN_TIMEOUT = 60
RESOURCE = "https://api.example"
TOKEN = "an-access-token"
ALGORITHMS = ("ES256", "EdDSA", "PS256", "RS256")
# The local issuer's name: the live server's port is not known before it starts.
ISSUER = "http://jotguard.interop/"
AUDIENCE = "jotguard"  # JOTGUARD_AUDIENCE's default


def _install(name: str, command: list[str], cwd: Path) -> None:
    """Run an installer; skip (or fail in CI) with its last error line when it cannot."""
    try:
        result = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        require_service(f"{name} (install timed out after {INSTALL_TIMEOUT}s)", False)
        return
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    reason = lines[-1] if lines else f"exit status {result.returncode}"
    require_service(f"{name} ({reason})", result.returncode == 0)


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
    _install(f"the npm packages {packages}", command, directory)
    return directory


def node(node_dir: Path, script: str, payload: Any) -> Any:
    result = subprocess.run(
        ["node", script],
        cwd=node_dir,
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@contextlib.contextmanager
def node_server(node_dir: Path, script: str, config: Path) -> Iterator[dict[str, str]]:
    """A Node server script, given its JSON config file, running until its stdin closes;
    yields the one JSON line it prints once it listens."""
    process = subprocess.Popen(
        ["node", script, str(config)],
        cwd=node_dir,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], RUN_TIMEOUT)
        line = process.stdout.readline() if ready else ""
        assert line, f"{script} did not start: {process.stderr.read() if process.stderr else ''}"
        yield json.loads(line)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def python_clients(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("dpop-interop-python")
    command = [sys.executable, "-m", "pip", "install", "-q", "--target", str(target)]
    _install("the PyPI packages " + ", ".join(PYTHON_CLIENTS), [*command, *PYTHON_CLIENTS], target)
    return target


def python_client(target: Path, command: str, payload: Any) -> Any:
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, str(HERE / "python_clients.py"), command],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# -- the servers: oidc-provider, two live jotguards, Express ------------------------------


@pytest.fixture(scope="module")
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


@pytest.fixture(scope="module")
def jotguard_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A data directory made by ``jotguard init`` with one client_credentials client
    (``jotguard clients add``); the client's id and secret."""
    data_dir = tmp_path_factory.mktemp("jotguard-live") / "data"
    env = initialised(cli_env(data_dir, JOTGUARD_ISSUER=ISSUER, JOTGUARD_SIGNING_ALG="ES256"))
    added = jotguard("clients", "add", "interop", env=env)
    assert added.returncode == 0, added.stderr
    return data_dir, json.loads(added.stdout)


@contextlib.contextmanager
def serve(home: Path, provider: str, dpop: str | None, **env: str) -> Iterator[LiveServer]:
    """``jotguard serve`` trusting the oidc-provider as a remote issuer (its ``dpop`` mode)."""
    entry = {"issuer": provider, "audience": RESOURCE, "jwks_uri": provider + "/jwks"}
    if dpop is not None:
        entry["dpop"] = dpop
    settings = {
        "JOTGUARD_ISSUER": ISSUER,
        "JOTGUARD_REMOTE_ISSUERS": json.dumps([entry]),
        **GENEROUS_LIMITS,
        **env,
    }
    with live_jotguard(home, settings) as server:
        yield server


@pytest.fixture(scope="module")
def plain(jotguard_home, oidc_provider) -> Iterator[LiveServer]:
    """jotguard on its defaults (``JOTGUARD_DPOP=allowed``, no nonces)."""
    with serve(jotguard_home[0], oidc_provider, None) as server:
        yield server


@pytest.fixture(scope="module")
def strict(jotguard_home, oidc_provider) -> Iterator[LiveServer]:
    """jotguard with ``JOTGUARD_DPOP_NONCE=on``, the provider's entry ``"dpop": "required"``."""
    with serve(jotguard_home[0], oidc_provider, "required", JOTGUARD_DPOP_NONCE="on") as server:
        yield server


@pytest.fixture(scope="module")
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


def client_form(jotguard_home: tuple[Path, dict[str, str]]) -> dict[str, str]:
    credentials = jotguard_home[1]
    return {
        "grant_type": "client_credentials",
        "client_id": credentials["client_id"],
        "client_secret": credentials["client_secret"],
    }


def panva_client(
    node_dir: Path,
    alg: str,
    token_url: str,
    form: dict[str, str],
    resource_url: str,
    *,
    calls: int = 1,
    extras: tuple[str, ...] = (),
) -> dict[str, Any]:
    """client.mjs: the token, the client's key thumbprint and every exchange it had."""
    request = {
        "alg": alg,
        "tokenUrl": token_url,
        "tokenParams": form,
        "resourceUrl": resource_url,
        "calls": calls,
        "extras": list(extras),
    }
    result: dict[str, Any] = node(node_dir, "client.mjs", request)
    return result


def steps(result: dict[str, Any]) -> list[tuple[str, int]]:
    return [(e["step"], e["status"]) for e in result["exchanges"]]


def dpop_refusal(exchange: dict[str, Any], error: str) -> str:
    """Assert jotguard's DPoP challenge and JSON body for ``error``; the description."""
    assert exchange["body"]["error"] == error, exchange
    assert exchange["challenge"].startswith(f'DPoP error="{error}"'), exchange
    return str(exchange["body"]["error_description"])


def cnf_jkt(token: str) -> str:
    return str(parse_compact(token).claims["cnf"]["jkt"])


# -- panva's dpop as a client of the live jotguard ---------------------------------------

MISUSES = ("replay", "bearer", "thief", "elsewhere", "otherToken")


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "Ed25519", "PS256", "RS256"])
def test_panva_client_gets_a_dpop_token_and_calls_the_api(node_dir, plain, jotguard_home, alg):
    result = panva_client(
        node_dir,
        alg,
        plain.url + "oauth/token",
        client_form(jotguard_home),
        plain.url + "test-auth",
        extras=MISUSES,
    )
    assert result["token"]["token_type"] == "DPoP", result
    # Both sides compute the same RFC 7638 thumbprint of the client's key.
    assert cnf_jkt(result["token"]["access_token"]) == result["jkt"]
    assert steps(result) == [
        ("token", 200),
        ("resource", 200),
        *((name, 401) for name in MISUSES),
    ]
    refused = dict(zip(MISUSES, result["exchanges"][2:], strict=True))
    assert "used before" in dpop_refusal(refused["replay"], "invalid_dpop_proof")
    assert "DPoP" in dpop_refusal(refused["bearer"], "invalid_token")
    assert "bound to" in dpop_refusal(refused["thief"], "invalid_dpop_proof")
    assert "'htu'" in dpop_refusal(refused["elsewhere"], "invalid_dpop_proof")
    assert "'ath'" in dpop_refusal(refused["otherToken"], "invalid_dpop_proof")


def test_panva_client_does_the_nonce_round_trips(node_dir, strict, jotguard_home):
    result = panva_client(
        node_dir,
        "ES256",
        strict.url + "oauth/token",
        client_form(jotguard_home),
        strict.url + "test-auth",
        calls=2,
        extras=("replay",),
    )
    assert steps(result) == [
        ("token", 400),  # use_dpop_nonce, with a DPoP-Nonce ...
        ("token", 200),  # ... that the retried proof carries
        ("resource", 401),  # the resource server's own nonce round trip
        ("resource", 200),
        ("resource", 200),  # the nonce it kept: no second round trip
        ("replay", 401),
    ]
    asked, got, refused, taken, again, replayed = result["exchanges"]
    assert asked["body"]["error"] == "use_dpop_nonce"
    assert asked["sentNonce"] is None
    assert asked["dpopNonce"]
    assert got["sentNonce"] == asked["dpopNonce"]
    assert got["body"]["token_type"] == "DPoP"
    dpop_refusal(refused, "use_dpop_nonce")
    assert refused["sentNonce"] is None
    assert refused["dpopNonce"]
    assert taken["sentNonce"] == refused["dpopNonce"]
    # The nonce it kept, or the fresher one a success handed out.
    assert again["sentNonce"] in (taken["sentNonce"], taken["dpopNonce"])
    dpop_refusal(replayed, "invalid_dpop_proof")


# -- oidc-provider's tokens at the live jotguard -----------------------------------------


def provider_form(**extra: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": "service",
        "client_secret": "service-secret",
        "scope": "read",
        "resource": RESOURCE,
        **extra,
    }


def test_an_oidc_provider_token_for_a_panva_key_is_taken_by_jotguard(
    node_dir, oidc_provider, plain
):
    misuses = ("replay", "bearer", "thief")
    result = panva_client(
        node_dir,
        "ES256",
        oidc_provider + "/token",
        provider_form(),
        plain.url + "test-auth",
        extras=misuses,
    )
    assert result["token"]["token_type"] == "DPoP", result
    assert cnf_jkt(result["token"]["access_token"]) == result["jkt"]
    assert steps(result) == [("token", 200), ("resource", 200), *((m, 401) for m in misuses)]
    replayed, bearer, thief = result["exchanges"][2:]
    assert "used before" in dpop_refusal(replayed, "invalid_dpop_proof")
    dpop_refusal(bearer, "invalid_token")
    assert "bound to" in dpop_refusal(thief, "invalid_dpop_proof")


async def token_request(
    http: AsyncHTTPClient, issuer: str, proof: str | None, **headers: str
) -> tuple[int, dict[str, Any], Any]:
    body = urllib.parse.urlencode(provider_form())
    if proof is not None:
        headers["DPoP"] = proof
    response = await http.fetch(
        issuer + "/token", method="POST", body=body, headers=headers, raise_error=False
    )
    return response.code, json.loads(response.body), response.headers


async def get(http: AsyncHTTPClient, url: str, authorization: str, proof: str | None = None):
    headers = {"Authorization": authorization}
    if proof is not None:
        headers["DPoP"] = proof
    return await http.fetch(url, headers=headers, raise_error=False)


@pytest.mark.parametrize("alg", ALGORITHMS)
async def test_oidc_provider_binds_its_jwt_to_a_jotguard_proof(oidc_provider, plain, http, alg):
    key = generate_key(alg)
    status, body, _ = await token_request(
        http, oidc_provider, make_proof(key, "POST", oidc_provider + "/token")
    )
    assert status == 200, body
    assert body["token_type"] == "DPoP"
    token = body["access_token"]
    assert cnf_jkt(token) == jwk_thumbprint(key)
    url = plain.url + "test-auth"
    proof = make_proof(key, "GET", url, access_token=token)
    response = await get(http, url, f"DPoP {token}", proof)
    assert response.code == 200, response.body


async def test_an_issuer_that_requires_dpop_has_its_unbound_tokens_refused(
    oidc_provider, plain, strict, http
):
    status, body, _ = await token_request(http, oidc_provider, None)
    assert (status, body["token_type"]) == (200, "Bearer"), body
    assert "cnf" not in parse_compact(body["access_token"]).claims
    bearer = f"Bearer {body['access_token']}"
    # The same token where the issuer's entry leaves DPoP "allowed" (the default)...
    assert (await get(http, plain.url + "test-auth", bearer)).code == 200
    # ...and where it says "required".
    refused = await get(http, strict.url + "test-auth", bearer)
    assert refused.code == 401, refused.body
    assert json.loads(refused.body)["error"] == "invalid_token"
    assert refused.headers["WWW-Authenticate"].startswith('DPoP error="invalid_token"')


async def test_oidc_provider_refuses_a_jotguard_proof_for_another_request(oidc_provider, http):
    key = generate_key("ES256")
    for proof, error in (
        (make_proof(key, "POST", oidc_provider + "/other"), "invalid_dpop_proof"),
        (make_proof(key, "GET", oidc_provider + "/token"), "invalid_dpop_proof"),
        # A stale proof: a provider that has nonces asks for one instead.
        (
            make_proof(key, "POST", oidc_provider + "/token", iat=time.time() - 3600),
            "use_dpop_nonce",
        ),
    ):
        status, body, _ = await token_request(http, oidc_provider, proof)
        assert (status, body["error"]) == (400, error)


async def test_oidc_provider_nonces_with_jotguard_proofs(oidc_provider, http):
    key = generate_key("ES256")
    ask = {"x-test-require-nonce": "1"}
    status, body, headers = await token_request(
        http, oidc_provider, make_proof(key, "POST", oidc_provider + "/token"), **ask
    )
    assert (status, body["error"]) == (400, "use_dpop_nonce")
    nonce = headers["DPoP-Nonce"]
    proof = make_proof(key, "POST", oidc_provider + "/token", nonce=nonce)
    status, body, _ = await token_request(http, oidc_provider, proof, **ask)
    assert status == 200, body
    assert body["token_type"] == "DPoP"


# -- Python client libraries of the live jotguard ----------------------------------------

CLIENT_STATUSES = {
    "plain": [200, 200, 200],
    # use_dpop_nonce at the token endpoint and at the resource, each retried once.
    "strict": [400, 200, 401, 200, 200],
}


@pytest.mark.parametrize(
    ("lib", "alg", "server"),
    [
        *(("requests-oauth2client", alg, "plain") for alg in ALGORITHMS),
        ("requests-oauth2client", "ES256", "strict"),
        ("pydpop", "ES256", "plain"),
        ("pydpop", "ES256", "strict"),
    ],
)
async def test_python_client_libraries_end_to_end(
    python_clients, jotguard_home, request, http, lib, alg, server
):
    live: LiveServer = request.getfixturevalue(server)
    credentials = jotguard_home[1]
    url = live.url + "test-auth"
    result = python_client(
        python_clients,
        "flow",
        {
            "lib": lib,
            "alg": alg,
            "tokenUrl": live.url + "oauth/token",
            "clientId": credentials["client_id"],
            "clientSecret": credentials["client_secret"],
            "resourceUrl": url,
            "calls": 2,
        },
    )
    assert [e["status"] for e in result["exchanges"]] == CLIENT_STATUSES[server], result
    assert result["tokenType"] == "DPoP"
    assert cnf_jkt(result["token"]) == result["jkt"]
    last = result["exchanges"][-1]
    assert last["body"] == "This is a protected route."
    # The library's proof, accepted once, is refused when it comes again.
    replayed = await get(http, url, f"DPoP {result['token']}", last["proof"])
    assert replayed.code == 401
    assert json.loads(replayed.body)["error"] == "invalid_dpop_proof"


def test_python_libraries_verify_jotguard_proofs(python_clients):
    keys = {alg: generate_key(alg) for alg in ALGORITHMS}
    resource_url = RESOURCE + "/things"
    cases = [
        {
            "alg": alg,
            "proof": make_proof(key, "GET", resource_url, access_token=TOKEN),
            "htm": "GET",
            "htu": resource_url,
            "accessToken": TOKEN,
        }
        for alg, key in keys.items()
    ]
    cases.append({**cases[0], "htu": RESOURCE + "/other"})
    results = python_client(python_clients, "verify", cases)
    for result in results[:-1]:
        assert result["requests-oauth2client"] == "ok"
    assert results[0]["pydpop"] == "ok"
    assert results[0]["pydpop_jkt"] == jwk_thumbprint(keys["ES256"])
    assert results[-1]["requests-oauth2client"].startswith("refused")
    assert results[-1]["pydpop"].startswith("refused")


# -- verifiers of others checking jotguard's output -------------------------------------


def test_jose_verifies_jotguard_proofs(node_dir):
    keys = {alg: generate_key(alg) for alg in (*ALGORITHMS, "Ed25519")}
    cases = [
        {
            "proof": make_proof(key, "POST", "https://as.example/token", access_token=TOKEN),
            "htm": "POST",
            "htu": "https://as.example/token",
            "accessToken": TOKEN,
        }
        for key in keys.values()
    ]
    tampered = make_proof(keys["ES256"], "POST", "https://as.example/token", access_token=TOKEN)
    head, payload, signature = tampered.split(".")
    cases.append({**cases[0], "proof": f"{head}.{payload}.{signature[:-6]}AAAAAA"})
    cases.append({**cases[0], "htu": "https://as.example/other"})
    results = node(node_dir, "verify.mjs", cases)
    for (alg, key), result in zip(keys.items(), results, strict=False):
        assert result == {"ok": True, "alg": alg, "jkt": jwk_thumbprint(key)}
    assert not results[-2]["ok"]  # the Node side does check signatures...
    assert results[-1] == {"ok": False, "error": "htu mismatch"}  # ...and claims


async def test_express_oauth2_jwt_bearer_takes_jotguard_dpop_tokens(
    node_dir, plain, jotguard_home, express_api, http
):
    result = panva_client(
        node_dir,
        "ES256",
        plain.url + "oauth/token",
        client_form(jotguard_home),
        express_api + "/test-auth",
        extras=("bearer", "thief"),
    )
    assert steps(result) == [("token", 200), ("resource", 200), ("bearer", 401), ("thief", 401)]
    assert result["token"]["token_type"] == "DPoP"
    assert result["exchanges"][1]["body"] == "This is a protected route."
    bearer, thief = result["exchanges"][2:]
    assert bearer["body"]["error"] == "invalid_token"
    assert "DPoP authentication scheme" in bearer["body"]["error_description"]
    assert thief["body"]["error"] == "invalid_token"
    assert "confirmation mismatch" in thief["body"]["error_description"]
    # The refusals are for the binding: an unbound jotguard token is taken as Bearer.
    form = urllib.parse.urlencode(client_form(jotguard_home))
    unbound = await http.fetch(plain.url + "oauth/token", method="POST", body=form)
    answer = json.loads(unbound.body)
    assert answer["token_type"] == "Bearer"
    taken = await get(http, express_api + "/test-auth", f"Bearer {answer['access_token']}")
    assert taken.code == 200, taken.body
