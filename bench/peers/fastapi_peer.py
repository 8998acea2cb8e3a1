"""FastAPI + PyJWT, as a benchmark peer for jotguard (bench/ only; its own venv).

Verifies RS256 tokens against the issuer's JWKS with PyJWT's ``PyJWKClient`` (keys
cached). The dependency is ``async`` so decoding runs on the loop, not in FastAPI's
thread pool: the faster of the two ways to write it.

Bare by default. The like-for-like peer adds what jotguard does on every request, the
way a FastAPI user adds it (uvicorn's own access log is switched on by the harness):
``RATE_LIMIT=N/SECONDS`` a fixed-window counter per authenticated user (per client
address on the unprotected route) in a dict, with draft-8 ``RateLimit`` headers, and
``REVOKED_FILE=path`` a denylist: a set of revoked (iss, jti) pairs and the subject and
client cutoffs, checked in the dependency after verification.

Run: ``uvicorn fastapi_peer:app`` with ISSUER, AUDIENCE and JWKS_URI set.
"""

import json
import math
import os
import time

import jwt
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

ISSUER = os.environ["ISSUER"]
AUDIENCE = os.environ["AUDIENCE"]
jwks = jwt.PyJWKClient(os.environ["JWKS_URI"], cache_keys=True)
bearer = HTTPBearer()


class Denylist:
    def __init__(self, path: str) -> None:
        with open(path) as listed:
            data = json.load(listed)
        self.jtis = {(data["issuer"], jti) for jti in data["jtis"]}
        self.subjects: dict[str, float] = data["subjects"]
        self.clients: dict[str, float] = data["clients"]

    def revoked(self, claims: dict) -> bool:
        # jotguard's rule: a jti entry revokes its token; a subject or client cutoff
        # revokes every token issued at or before it.
        if (claims.get("iss"), claims.get("jti")) in self.jtis:
            return True
        iat = claims.get("iat", 0)
        sub, client = claims.get("sub"), claims.get("client_id")
        return (sub in self.subjects and iat <= self.subjects[sub]) or (
            client in self.clients and iat <= self.clients[client]
        )


class FixedWindow:
    """Per-key counts in windows of ``seconds`` from the key's first hit, as
    express-rate-limit's memory store counts."""

    def __init__(self, spec: str) -> None:
        limit, seconds = spec.split("/")
        self.limit, self.seconds = int(limit), float(seconds)
        self.policy = (
            f'"{self.limit}-in-{int(self.seconds)}s"; q={self.limit}; w={int(self.seconds)}'
        )
        self.windows: dict[str, list[float]] = {}

    def hit(self, key: str, response: Response) -> None:
        now = time.monotonic()
        window = self.windows.get(key)
        if window is None or window[0] <= now:
            window = self.windows[key] = [now + self.seconds, 0]
        window[1] += 1
        remaining = max(0, self.limit - int(window[1]))
        reset = math.ceil(window[0] - now)
        response.headers["RateLimit-Policy"] = self.policy
        response.headers["RateLimit"] = (
            f'"{self.limit}-in-{int(self.seconds)}s"; r={remaining}; t={reset}'
        )
        if window[1] > self.limit:
            raise HTTPException(429, "rate_limited", {"Retry-After": str(reset)})


DENYLIST = Denylist(os.environ["REVOKED_FILE"]) if os.environ.get("REVOKED_FILE") else None
LIMITS = FixedWindow(os.environ["RATE_LIMIT"]) if os.environ.get("RATE_LIMIT") else None

app = FastAPI()


async def verified_claims(
    response: Response,
    credentials: HTTPAuthorizationCredentials = Depends(bearer),  # noqa: B008
) -> dict:
    token = credentials.credentials
    try:
        key = jwks.get_signing_key_from_jwt(token)
        claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER)
    except jwt.PyJWTError as exc:
        raise HTTPException(401, "invalid_token", {"WWW-Authenticate": "Bearer"}) from exc
    if DENYLIST is not None and DENYLIST.revoked(claims):
        raise HTTPException(401, "revoked_token", {"WWW-Authenticate": "Bearer"})
    if LIMITS is not None:
        LIMITS.hit("user:" + claims["sub"], response)
    return claims


async def anonymous_limit(request: Request, response: Response) -> None:
    if LIMITS is not None and request.client is not None:
        LIMITS.hit(request.client.host, response)


@app.get("/test", response_class=PlainTextResponse)
async def unprotected(_: None = Depends(anonymous_limit)) -> str:
    return "This is an unprotected route."


@app.get("/test-auth", response_class=PlainTextResponse)
async def protected(claims: dict = Depends(verified_claims)) -> str:  # noqa: B008
    return "This is a protected route."
