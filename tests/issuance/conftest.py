"""Fixtures for the issuance tests: clients and users made through the stores, a
form-encoded ``POST /oauth/token`` helper (with a DPoP proof, if asked), and the CLI."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote_plus, urlencode

import pytest
from tornado.httpclient import HTTPResponse

from backends.dpop import make_proof
from backends.issuance.base import GRANT_TYPES, User
from webapp.cli.main import main
from webapp.service.issuance import Issuance, new_client
from webapp.service.services import Services

READ_WRITE = ("read:catchphrases", "write:catchphrases")
ALL_DEMO = ("read:catchphrases", "write:catchphrases", "delete:catchphrases")
PASSWORD = "correct horse battery"


def body(response: HTTPResponse) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(response.body)
    return decoded


def deferred(response: HTTPResponse) -> bool:
    """A grant told to come back: a cutoff taken moments ago would refuse its token
    (it covers tokens stamped up to the clock leeway after it)."""
    return (
        response.code == 503
        and body(response)["error"] == "temporarily_unavailable"
        and int(response.headers["Retry-After"]) > 0
    )


def basic(client_id: str, secret: str) -> str:
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


@pytest.fixture
def issuance(services: Services) -> Issuance:
    return services.issuance


@pytest.fixture
def argon2_checks(issuance: Issuance, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every argon2 verification the server runs: (the hash, the secret checked)."""
    checked: list[tuple[str, str]] = []
    original = issuance.hasher._verify

    def counting(encoded: str, secret: str) -> bool:
        checked.append((encoded, secret))
        return original(encoded, secret)

    monkeypatch.setattr(issuance.hasher, "_verify", counting)
    return checked


@pytest.fixture
def make_client(issuance: Issuance) -> Callable[..., Awaitable[tuple[str, str]]]:
    """``await make_client(scopes=..., grants=...)`` -> (client_id, client_secret)."""

    async def make(
        scopes: tuple[str, ...] = ALL_DEMO, grants: tuple[str, ...] = GRANT_TYPES
    ) -> tuple[str, str]:
        client, secret = await new_client(
            issuance.tokens.client_secrets,
            f"app-{uuid.uuid4().hex[:8]}",
            frozenset(scopes),
            frozenset(grants),
        )
        await issuance.store.add_client(client)
        return client.client_id, secret

    return make


@pytest.fixture
def make_user(issuance: Issuance) -> Callable[..., Awaitable[User]]:
    async def make(
        username: str = "alice", password: str = PASSWORD, scopes: tuple[str, ...] = READ_WRITE
    ) -> User:
        user = User(
            user_id=uuid.uuid4().hex,
            username=username,
            password_hash=await issuance.hasher.hash(password),
            scopes=frozenset(scopes),
            disabled=False,
            created_at=0.0,
        )
        await issuance.store.add_user(user)
        return user

    return make


@pytest.fixture
def token_request(fetch: Callable[..., Awaitable[HTTPResponse]]) -> Callable[..., Any]:
    """``await token_request({"grant_type": ...}, client=(id, secret), method="basic"|"post")``.

    A ``str`` form is sent as the raw body.
    """

    async def post(
        form: dict[str, str] | str,
        *,
        client: tuple[str, str] | None = None,
        method: str = "basic",
        headers: dict[str, str] | None = None,
        path: str = "/oauth/token",
    ) -> HTTPResponse:
        sent = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        if isinstance(form, dict):
            form = dict(form)
            if client is not None and method == "post":
                form.update(client_id=client[0], client_secret=client[1])
            raw = urlencode(form)
        else:
            raw = form
        if client is not None and method == "basic":
            sent["Authorization"] = basic(*client)
        return await fetch(path, method="POST", body=raw, headers=sent)

    return post


@pytest.fixture
def password_grant(token_request: Callable[..., Any]) -> Callable[..., Any]:
    async def grant(
        client: tuple[str, str], username: str = "alice", password: str = PASSWORD, **extra: str
    ) -> HTTPResponse:
        form = {"grant_type": "password", "username": username, "password": password, **extra}
        response: HTTPResponse = await token_request(form, client=client)
        return response

    return grant


@pytest.fixture
def token_url(base_url: str) -> str:
    """The token endpoint's URL, as a DPoP proof names it in ``htu``."""
    return base_url + "/oauth/token"


@pytest.fixture
def dpop_request(token_request: Callable[..., Any], token_url: str) -> Callable[..., Any]:
    """``await dpop_request(form, client=..., key=key, nonce=...)``: a token request with a
    fresh proof by ``key`` (or the ``proof`` given, or none at all)."""

    async def post(
        form: dict[str, str],
        *,
        client: tuple[str, str],
        key: Any = None,
        proof: str | None = None,
        nonce: str | None = None,
    ) -> HTTPResponse:
        if proof is None and key is not None:
            proof = make_proof(key, "POST", token_url, nonce=nonce)
        headers = {} if proof is None else {"DPoP": proof}
        response: HTTPResponse = await token_request(form, client=client, headers=headers)
        return response

    return post


@pytest.fixture
def cli(settings_environ, monkeypatch, capsys):
    """``code, out, err = await cli("users", "add", ..., stdin="...")``: the real entry point,
    on a thread (it runs its own event loop), with the test server's settings."""
    for name, value in settings_environ.items():
        monkeypatch.setenv(name, value)

    async def run(*argv: str, stdin: str | None = None) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin or ""))
        capsys.readouterr()
        code = await asyncio.to_thread(main, list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run
