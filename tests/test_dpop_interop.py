"""DPoP against implementations written by others, each in its own process.

- panva's ``dpop`` (and ``jose`` for "EdDSA") make proofs jotguard must accept;
  ``jose`` verifies jotguard's proofs the way oidc-provider does.
- ``oidc-provider`` issues DPoP-bound JWT access tokens (client credentials,
  resource indicators) for jotguard's proofs; jotguard's RemoteIssuerBackend
  verifies the token from the provider's published keys and DPoPVerifier the
  proofs that come with it, bound by ``cnf.jkt``.
- requests-oauth2client (ES256, EdDSA, PS256, RS256) and pydpop (ES256) make
  proofs jotguard must accept, and verify jotguard's.

The npm and PyPI packages are installed once per test session into pytest's
temporary directory (pinned in tests/interop_dpop/package.json and below), never
into the tree. Without Node/npm or a registry these tests skip, and fail when
JOTGUARD_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

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
from backends.auth.remote import RemoteIssuer, RemoteIssuerBackend
from backends.dpop import (
    DPoPKeyMismatch,
    DPoPPolicy,
    DPoPVerifier,
    InvalidDPoPProof,
    generate_key,
    jwk_thumbprint,
    make_proof,
    verify_proof,
)
from tests.conftest import require_service

pytestmark = [pytest.mark.interop, pytest.mark.slow]

HERE = Path(__file__).parent / "interop_dpop"
NODE_FILES = ("package.json", "proofs.mjs", "verify.mjs", "provider.mjs")
PYTHON_CLIENTS = ("requests-oauth2client==1.8.0", "pydpop==0.2.1")
INSTALL_TIMEOUT = 150
RUN_TIMEOUT = 60
RESOURCE = "https://api.example"
RESOURCE_URL = "https://api.example/things"
TOKEN = "an-access-token"
ALGORITHMS = ("ES256", "EdDSA", "PS256", "RS256")


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
    _install("the npm packages dpop, jose and oidc-provider", command, directory)
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


def accept(proof: str, **kwargs: Any):
    kwargs.setdefault("method", "GET")
    kwargs.setdefault("url", RESOURCE_URL)
    return verify_proof(proof, policy=DPoPPolicy(), now=time.time(), **kwargs)


# -- panva's dpop and jose ----------------------------------------------------------------


@pytest.fixture(scope="session")
def panva_proofs(node_dir: Path) -> dict[str, dict[str, str]]:
    request = {
        "algs": ["ES256", "EdDSA", "Ed25519", "PS256", "RS256"],
        "htm": "GET",
        "htu": RESOURCE_URL,
        "accessToken": TOKEN,
    }
    return {item["alg"]: item for item in node(node_dir, "proofs.mjs", request)}


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "Ed25519", "PS256", "RS256"])
def test_panva_proofs_are_accepted(panva_proofs, alg):
    made = panva_proofs[alg]
    verified = accept(made["proof"], access_token=TOKEN, expected_jkt=made["jkt"])
    assert verified.alg == alg
    assert verified.jkt == made["jkt"]  # both sides compute the same RFC 7638 thumbprint


async def test_a_panva_proof_is_accepted_once_and_only_where_it_was_made_for(panva_proofs):
    proof = panva_proofs["ES256"]["proof"]
    verifier = DPoPVerifier()
    with pytest.raises(InvalidDPoPProof) as elsewhere:
        await verifier.verify([proof], method="GET", url=RESOURCE + "/other", access_token=TOKEN)
    assert elsewhere.value.reason == "dpop_htu"
    with pytest.raises(InvalidDPoPProof) as other_token:
        await verifier.verify([proof], method="GET", url=RESOURCE_URL, access_token="stolen")
    assert other_token.value.reason == "dpop_ath"
    await verifier.verify([proof], method="GET", url=RESOURCE_URL, access_token=TOKEN)
    with pytest.raises(InvalidDPoPProof) as replayed:
        await verifier.verify([proof], method="GET", url=RESOURCE_URL, access_token=TOKEN)
    assert replayed.value.reason == "dpop_replay"


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


# -- oidc-provider issuing DPoP-bound JWT access tokens ----------------------------------


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
    process = subprocess.Popen(
        ["node", "provider.mjs", str(config)],
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
        assert line, (
            f"oidc-provider did not start: {process.stderr.read() if process.stderr else ''}"
        )
        yield json.loads(line)["issuer"]
    finally:
        assert process.stdin is not None
        process.stdin.close()  # the provider exits when its stdin closes
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
async def http() -> AsyncIterator[AsyncHTTPClient]:
    client = AsyncHTTPClient(force_instance=True)
    yield client
    client.close()


async def token_request(
    http: AsyncHTTPClient, issuer: str, proof: str | None, **headers: str
) -> tuple[int, dict[str, Any], Any]:
    body = urllib.parse.urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": "service",
            "client_secret": "service-secret",
            "scope": "read",
            "resource": RESOURCE,
        }
    )
    if proof is not None:
        headers["DPoP"] = proof
    response = await http.fetch(
        issuer + "/token", method="POST", body=body, headers=headers, raise_error=False
    )
    return response.code, json.loads(response.body), response.headers


@pytest.fixture
async def remote_backend(oidc_provider: str) -> AsyncIterator[RemoteIssuerBackend]:
    """jotguard's remote-issuer backend for the provider, its keys found by discovery."""
    backend = RemoteIssuerBackend(
        RemoteIssuer(issuer=oidc_provider, audiences=(RESOURCE,), algorithms=("RS256",))
    )
    yield backend
    await backend.aclose()


@pytest.mark.parametrize("alg", ALGORITHMS)
async def test_oidc_provider_binds_its_jwt_to_a_jotguard_proof(
    oidc_provider, http, remote_backend, alg
):
    key = generate_key(alg)
    status, body, _ = await token_request(
        http, oidc_provider, make_proof(key, "POST", oidc_provider + "/token")
    )
    assert status == 200, body
    assert body["token_type"] == "DPoP"
    token = body["access_token"]

    principal = await remote_backend.authenticate(parse_compact(token))
    assert principal.issuer == oidc_provider
    assert principal.client_id == "service"
    assert "read" in principal.scopes
    jkt = principal.claims["cnf"]["jkt"]
    assert jkt == jwk_thumbprint(key)

    verifier = DPoPVerifier()
    proof = make_proof(key, "GET", RESOURCE_URL, access_token=token)
    verified = await verifier.verify(
        [proof], method="GET", url=RESOURCE_URL, access_token=token, expected_jkt=jkt
    )
    assert verified.jkt == jkt
    with pytest.raises(InvalidDPoPProof) as replayed:
        await verifier.verify(
            [proof], method="GET", url=RESOURCE_URL, access_token=token, expected_jkt=jkt
        )
    assert replayed.value.reason == "dpop_replay"
    thief = make_proof(generate_key("ES256"), "GET", RESOURCE_URL, access_token=token)
    with pytest.raises(DPoPKeyMismatch):
        await verifier.verify(
            [thief], method="GET", url=RESOURCE_URL, access_token=token, expected_jkt=jkt
        )


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


# -- Python client libraries ------------------------------------------------------------


@pytest.fixture(scope="session")
def python_proofs(python_clients: Path) -> list[dict[str, str]]:
    request = {"algs": list(ALGORITHMS), "htm": "GET", "htu": RESOURCE_URL, "accessToken": TOKEN}
    made: list[dict[str, str]] = python_client(python_clients, "make", request)
    return made


@pytest.mark.parametrize(
    ("lib", "alg"), [*(("requests-oauth2client", alg) for alg in ALGORITHMS), ("pydpop", "ES256")]
)
def test_python_client_proofs_are_accepted(python_proofs, lib, alg):
    (made,) = [p for p in python_proofs if (p["lib"], p["alg"]) == (lib, alg)]
    verified = accept(made["proof"], access_token=TOKEN, expected_jkt=made["jkt"])
    assert (verified.alg, verified.jkt) == (alg, made["jkt"])
    with pytest.raises(InvalidDPoPProof):
        accept(made["proof"], access_token="another token")


def test_python_libraries_verify_jotguard_proofs(python_clients):
    keys = {alg: generate_key(alg) for alg in ALGORITHMS}
    cases = [
        {
            "alg": alg,
            "proof": make_proof(key, "GET", RESOURCE_URL, access_token=TOKEN),
            "htm": "GET",
            "htu": RESOURCE_URL,
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
