"""Plain Tornado + joserfc, as a benchmark peer for jotguard (bench/ only).

What a Tornado user writes without jotguard: a handler that verifies the RS256
signature and the claims with joserfc on every request, on uvloop as ``jotguard
serve`` runs. Its ``/test`` is Tornado's hello world: the ceiling any Tornado
application reaches on this machine. No access log, no rate limiting, no denylist.

Run: ``python tornado_peer.py`` with PORT, ISSUER, AUDIENCE and JWKS_URI set.
"""

import asyncio
import json
import os
import urllib.request

import tornado.web
import uvloop
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

ISSUER = os.environ["ISSUER"]
AUDIENCE = os.environ["AUDIENCE"]
with urllib.request.urlopen(os.environ["JWKS_URI"], timeout=10) as answer:  # noqa: S310
    KEYS = KeySet.import_key_set(json.load(answer))
CLAIMS = jwt.JWTClaimsRegistry(
    iss={"essential": True, "value": ISSUER}, aud={"essential": True, "value": AUDIENCE}
)


class Unprotected(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write("This is an unprotected route.")


class Protected(tornado.web.RequestHandler):
    def get(self) -> None:
        scheme, _, token = self.request.headers.get("Authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer":
                raise ValueError("no bearer token")
            CLAIMS.validate(jwt.decode(token, KEYS, algorithms=["RS256"]).claims)
        except (JoseError, ValueError):
            self.set_status(401)
            self.set_header("WWW-Authenticate", "Bearer")
            return
        self.write("This is a protected route.")


async def main() -> None:
    app = tornado.web.Application(
        [(r"/test", Unprotected), (r"/test-auth", Protected)], log_function=lambda _: None
    )
    app.listen(int(os.environ["PORT"]), "127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main())
