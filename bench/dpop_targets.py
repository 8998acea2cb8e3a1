"""Targets measured with DPoP (RFC 9449): a bound token and a fresh proof on every request.

The run has one ES256 key (a client signs many proofs with one key) and access tokens
bound to it (``cnf.jkt``, its RFC 7638 thumbprint), minted from jotguard's local issuer,
as the Bearer ones are, with the ``cnf`` claim added. Proofs are signed here right
before each load run, one per request: each with its own ``jti``, ``htm`` GET, ``htu``
the exact URL that target is sent, ``ath`` the token's hash and ``iat`` the moment it
was signed; the load generator only reads them (:class:`bench.load.PerRequest`), so
signing is never what limits a run. A server accepts a proof once (its replay cache)
and for its lifetime plus a leeway after ``iat``: :func:`proof_lifetime_for` gives a run
a lifetime that covers signing the batch and the run itself.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from backends.dpop import generate_key, jwk_thumbprint, make_proof
from backends.keys import JoseKey
from bench.load import Headers, PerRequest
from bench.targets import Context, Probe, Target, Unavailable, bearer, claims_of, cli_env, tampered

PROOF_ALGORITHM = "ES256"
DEFAULT_PROOF_LIFETIME = 60  # s: JOTGUARD_DPOP_PROOF_LIFETIME's default
LEEWAY = 30  # s: the clock skew jotguard allows a proof's iat, both ways
# Signing takes about 50 us a proof: even the warm-up's 60,000 take a few seconds; this
# much room between the first proof's iat and the start of its run is plenty.
PREPARATION_ALLOWANCE = 30


def proof_lifetime_for(seconds: float) -> int:
    """The proof lifetime a load run of ``seconds`` needs: the default, unless a proof
    signed before the run could grow too old by its end."""
    return max(DEFAULT_PROOF_LIFETIME, math.ceil(seconds + PREPARATION_ALLOWANCE))


@dataclass(frozen=True)
class DPoPClient:
    """The run's DPoP client: its key, the tokens bound to it, and its proofs."""

    key: JoseKey
    token: str  # bound to ``key``: what every DPoP target is measured with
    revoked_token: str  # bound too, with the jti of the run's revoked token
    proof_lifetime: int  # what the servers are configured with for this run

    def proof(
        self,
        url: str,
        *,
        token: str | None = None,
        method: str = "GET",
        iat: float | None = None,
        key: JoseKey | None = None,
    ) -> str:
        return make_proof(key or self.key, method, url, access_token=token or self.token, iat=iat)

    def headers(self, url: str, *, token: str | None = None, proof: str = "") -> dict[str, str]:
        """One request's headers: the token (the bound one by default) with its proof."""
        token = token or self.token
        return {"Authorization": f"DPoP {token}", "DPoP": proof or self.proof(url, token=token)}

    def per_request(self, url: str, count: int) -> PerRequest:
        """``count`` requests' headers for ``url``, each with a proof of its own."""
        return PerRequest([self.headers(url) for _ in range(count)])


def dpop_client(ctx: Context, ttl: int, proof_lifetime: int) -> DPoPClient:
    """A new key and tokens bound to it, signed by the run's local issuer in this process
    (the CLI issues no ``cnf`` claim). The revoked one shares the jti of
    ``ctx.revoked_token``, which every revoked set holds, so it is revoked too."""
    from webapp.config.settings import Settings
    from webapp.service.services import local_issuer, local_keyring

    settings = Settings.load(environ=cli_env(ctx))
    keyring = local_keyring(settings)
    keyring.load()  # made by `jotguard init` for the run; never created here
    issuer = local_issuer(settings, keyring)
    key = generate_key(PROOF_ALGORITHM)
    confirmation = {"cnf": {"jkt": jwk_thumbprint(key)}}

    def bound(sub: str, jti: str | None = None) -> str:
        claims = issuer.claims_for(sub, scopes=["read:bench"], ttl=ttl, extra=confirmation)
        if jti is not None:
            claims["jti"] = jti
        return issuer.sign(claims).token

    revoked_jti = claims_of(ctx.revoked_token)["jti"] if ctx.revoked_token else None
    return DPoPClient(key, bound("bench-user"), bound("bench-revoked", revoked_jti), proof_lifetime)


class DPoPTarget(Target):
    """Mixed in before a target class: its protected route is measured with DPoP, and
    :meth:`check` proves it refuses what a DPoP resource server must refuse."""

    def client(self, ctx: Context) -> DPoPClient:
        if ctx.dpop is None:
            raise Unavailable("the run has no DPoP client (key and bound token)")
        return ctx.dpop

    def protection(self) -> str:
        return f"{super().protection()}, DPoP ({PROOF_ALGORITHM} proof per request, replay cache)"

    def protected_headers(self, ctx: Context) -> dict[str, str]:
        return self.client(ctx).headers(self.url + "/test-auth")

    def request_headers(self, route: str, ctx: Context, requests: int) -> Headers:
        if route != "/test-auth":
            return {}
        return self.client(ctx).per_request(self.url + route, requests)

    def probes(self, ctx: Context) -> list[Probe]:
        client, url = self.client(ctx), self.url + "/test-auth"
        spent = client.headers(url)
        stale = time.time() - client.proof_lifetime - LEEWAY - 60

        def refused(what: str, headers: dict[str, str]) -> Probe:
            return Probe(what, "/test-auth", headers, accepted=False)

        def with_proof(what: str, proof: str) -> Probe:
            return refused(what, client.headers(url, proof=proof))

        probes = [
            Probe("no token", "/test", {}, accepted=True),
            Probe("the bound token, a fresh proof", "/test-auth", spent, accepted=True),
            refused("the same proof again", spent),
            refused("no token", {}),
            refused("the bound token as a Bearer token", bearer(client.token)),
            refused("the bound token, no proof", {"Authorization": f"DPoP {client.token}"}),
            with_proof("a proof for another URL", client.proof(self.url + "/test")),
            with_proof("a proof for another method", client.proof(url, method="POST")),
            with_proof("a proof for another token", client.proof(url, token=ctx.token)),
            with_proof("a proof by another key", client.proof(url, key=generate_key())),
            with_proof("a stale proof", client.proof(url, iat=stale)),
            refused("a tampered bound token", client.headers(url, token=tampered(client.token))),
        ]
        if self.revoked:
            revoked = client.headers(url, token=client.revoked_token)
            probes.append(refused("a revoked bound token", revoked))
        return probes
