"""An Auth0-like issuer on 127.0.0.1 for tests: discovery, JWKS and ``/oauth/token``.

It can rotate keys, go down, hang, answer garbage, and counts what it served.
Keys come from a pool generated once per session (RSA generation is slow).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any
from urllib.parse import parse_qs

from joserfc import jwt
from joserfc.jwk import RSAKey
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.testing import bind_unused_port
from tornado.web import Application, RequestHandler

HANG_LIMIT_SECONDS = 30.0  # a hung request ends by itself even if a test forgets it

# What the JWKS endpoint answers, by mode.
JWKS_MODES = {"ok", "hang", "status500", "html", "garbage", "nokeys", "huge", "gate"}
TOKEN_MODES = {"ok", "hang", "status500", "html", "echo_secret", "rate_limited"}


class FakeIssuer:
    def __init__(self, key_pool: list[RSAKey], *, audience: str = "https://api.example") -> None:
        self.key_pool = list(key_pool)
        self.published: list[RSAKey] = [self.key_pool.pop(0)]
        self.current = self.published[0]
        self.extra_jwks: list[dict[str, Any]] = []  # raw JWKs appended to the published set
        self.audience = audience
        self.client_id = "test-client"
        self.client_secret = "s3cr3t-never-echo-me"
        self.jwks_mode = "ok"
        self.token_mode = "ok"
        self.discovery = "openid"  # "openid", "rfc8414" (only that one) or "none"
        self.discovery_issuer: str | None = None  # what discovery claims; default ours
        self.discovery_jwks_uri: str | None = None  # the jwks_uri it names; default ours
        self.jwks_fetches = 0
        self.discovery_fetches: dict[str, int] = {}
        self.token_requests = 0
        self.last_token_form: dict[str, str] = {}
        self.gate = asyncio.Event()
        self.port = 0
        self._server: HTTPServer | None = None

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return self.base_url + "/"

    @property
    def jwks_uri(self) -> str:
        return self.base_url + "/.well-known/jwks.json"

    @property
    def token_url(self) -> str:
        return self.base_url + "/oauth/token"

    def start(self) -> None:
        app = Application(
            [
                (r"/\.well-known/jwks\.json", _JWKSHandler, {"fake": self}),
                (
                    r"/\.well-known/(openid-configuration|oauth-authorization-server)",
                    _DiscoveryHandler,
                    {"fake": self},
                ),
                (r"/oauth/token", _TokenHandler, {"fake": self}),
            ]
        )
        if self.port:  # coming back up on the same address
            sock = bind_sockets(self.port, "127.0.0.1")[0]
        else:
            sock, self.port = bind_unused_port()
        self._server = HTTPServer(app)
        self._server.add_sockets([sock])

    async def stop(self) -> None:
        """Go down: the port refuses connections until :meth:`start` again."""
        self.gate.set()
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()
            self._server = None

    # -- keys and tokens ------------------------------------------------------------------

    @staticmethod
    def kid_of(key: RSAKey) -> str:
        return key.thumbprint()

    def public_jwks(self) -> dict[str, Any]:
        keys = []
        for key in self.published:
            jwk = key.as_dict(private=False)
            jwk.update(kid=self.kid_of(key), alg="RS256", use="sig")
            keys.append(jwk)
        return {"keys": keys + self.extra_jwks}

    def rotate(self) -> str:
        """Publish the next pool key and sign with it; the old one stays published."""
        fresh = self.key_pool.pop(0)
        self.published.append(fresh)
        self.current = fresh
        return self.kid_of(fresh)

    def sign(
        self,
        *,
        key: RSAKey | None = None,
        kid: str | None = None,
        alg: str = "RS256",
        now: float | None = None,
        header: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """An Auth0-shaped access token (no jti); ``claims`` override the defaults, and
        ``header`` the protected header (a None value leaves the parameter out)."""
        key = key or self.current
        issued = int(now if now is not None else time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": f"{self.client_id}@clients",
            "aud": self.audience,
            "iat": issued,
            "exp": issued + 3600,
            "azp": self.client_id,
            "gty": "client-credentials",
            "scope": "read:catchphrases",
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        protected = {"alg": alg, "typ": "JWT", "kid": kid or self.kid_of(key), **(header or {})}
        protected = {k: v for k, v in protected.items() if v is not None}
        return jwt.encode(protected, payload, key, algorithms=[alg])


class _FakeHandler(RequestHandler):
    def initialize(self, fake: FakeIssuer) -> None:
        self.fake = fake

    async def hang(self) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.fake.gate.wait(), HANG_LIMIT_SECONDS)

    def write_json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(value))


class _JWKSHandler(_FakeHandler):
    async def get(self) -> None:
        self.fake.jwks_fetches += 1
        mode = self.fake.jwks_mode
        if mode in {"hang", "gate"}:
            await self.hang()
            if mode == "hang":
                return
        if mode == "status500":
            self.write_json({"error": "oops"}, 500)
        elif mode == "html":
            self.set_header("Content-Type", "text/html")
            self.finish("<html><body>Service temporarily unavailable</body></html>")
        elif mode == "garbage":
            self.set_header("Content-Type", "application/json")
            self.finish('{"keys": [')
        elif mode == "nokeys":
            self.write_json({"issuer": self.fake.issuer})
        elif mode == "huge":
            self.set_header("Content-Type", "application/json")
            for _ in range(40):  # 2.5 MiB, streamed in chunks
                self.write(b" " * 65536)
                await self.flush()
            self.finish(json.dumps(self.fake.public_jwks()))
        else:
            self.write_json(self.fake.public_jwks())


class _DiscoveryHandler(_FakeHandler):
    def get(self, name: str) -> None:
        fetches = self.fake.discovery_fetches
        fetches[name] = fetches.get(name, 0) + 1
        mode = self.fake.discovery
        if mode == "none" or (mode == "rfc8414" and name == "openid-configuration"):
            self.write_json({"error": "not_found"}, 404)
            return
        self.write_json(
            {
                "issuer": self.fake.discovery_issuer or self.fake.issuer,
                "jwks_uri": self.fake.discovery_jwks_uri or self.fake.jwks_uri,
                "token_endpoint": self.fake.token_url,
            }
        )


class _TokenHandler(_FakeHandler):
    async def post(self) -> None:
        fake = self.fake
        fake.token_requests += 1
        form = {k: v[0] for k, v in parse_qs(self.request.body.decode()).items()}
        fake.last_token_form = form
        mode = fake.token_mode
        if mode == "hang":
            await self.hang()
            return
        if mode == "status500":
            self.write_json({"error": "server_error"}, 500)
            return
        if mode == "html":
            self.set_header("Content-Type", "text/html")
            self.finish("<html>maintenance</html>")
            return
        if mode == "rate_limited":
            self.set_header("Retry-After", "7")
            self.write_json({"error": "too_many_requests", "error_description": "slow down"}, 429)
            return
        if mode == "echo_secret" or form.get("client_secret") != fake.client_secret:
            # Like a careless upstream: the error repeats the request form, secret included.
            self.write_json(
                {
                    "error": "access_denied",
                    "error_description": f"Unauthorized: {json.dumps(form)}",
                },
                401,
            )
            return
        if (
            form.get("grant_type") != "client_credentials"
            or form.get("client_id") != fake.client_id
        ):
            self.write_json({"error": "invalid_request"}, 400)
            return
        token = fake.sign(aud=form.get("audience"))
        self.write_json(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": 3600,
                "scope": "read:catchphrases",
            }
        )
