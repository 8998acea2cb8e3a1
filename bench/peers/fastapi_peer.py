"""FastAPI + PyJWT, as a benchmark peer for jotguard (bench/ only; its own venv).

Verifies RS256 tokens against the issuer's JWKS with PyJWT's ``PyJWKClient`` (keys
cached). The dependency is ``async`` so decoding runs on the loop, not in FastAPI's
thread pool: the faster of the two ways to write it. No denylist.

Run: ``uvicorn fastapi_peer:app`` with ISSUER, AUDIENCE and JWKS_URI set.
"""

import os

import jwt
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

ISSUER = os.environ["ISSUER"]
AUDIENCE = os.environ["AUDIENCE"]
jwks = jwt.PyJWKClient(os.environ["JWKS_URI"], cache_keys=True)
bearer = HTTPBearer()

app = FastAPI()


async def verified_claims(
    credentials: HTTPAuthorizationCredentials = Depends(bearer),  # noqa: B008
) -> dict:
    token = credentials.credentials
    try:
        key = jwks.get_signing_key_from_jwt(token)
        return jwt.decode(token, key.key, algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER)
    except jwt.PyJWTError as exc:
        raise HTTPException(401, "invalid_token", {"WWW-Authenticate": "Bearer"}) from exc


@app.get("/test", response_class=PlainTextResponse)
async def unprotected() -> str:
    return "This is an unprotected route."


@app.get("/test-auth", response_class=PlainTextResponse)
async def protected(claims: dict = Depends(verified_claims)) -> str:  # noqa: B008
    return "This is a protected route."
