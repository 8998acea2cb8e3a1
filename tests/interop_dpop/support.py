"""Helpers of the DPoP interop tests: others' programs run as clients and servers, the live
jotguard they talk to, and what their exchanges must show.

Node scripts (``client.mjs``, ``provider.mjs``, ``resource_server.mjs``, ``verify.mjs``)
run from the directory the npm packages were installed into (``conftest.node_dir``);
``python_clients.py`` with the PyPI packages on its ``PYTHONPATH``. Both speak JSON on
stdin and stdout.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient

from backends.auth.compact import parse_compact
from tests.conftest import GENEROUS_LIMITS, require_service
from tests.live import LiveServer, live_jotguard

HERE = Path(__file__).parent
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


def install(name: str, command: list[str], cwd: Path) -> None:
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


def run_json(command: list[str], payload: Any, **kwargs: Any) -> Any:
    """Run one of the scripts of others' programs: ``payload`` in, its JSON answer out."""
    result = subprocess.run(
        command,
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        **kwargs,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def node(node_dir: Path, script: str, payload: Any) -> Any:
    return run_json(["node", script], payload, cwd=node_dir)


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


def python_client(target: Path, command: str, payload: Any) -> Any:
    script = [sys.executable, str(HERE / "python_clients.py"), command]
    return run_json(script, payload, env={**os.environ, "PYTHONPATH": str(target)})


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


def provider_form(**extra: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": "service",
        "client_secret": "service-secret",
        "scope": "read",
        "resource": RESOURCE,
        **extra,
    }


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
