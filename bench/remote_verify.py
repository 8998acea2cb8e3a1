"""Remote (JWKS-cached) vs local token verification, side by side in one run.

The point: once the key set is cached, an Auth0 token costs what a local one does;
the hot path never waits on the network. Prints the ratio remote/local.

    .venv/bin/python -m bench.remote_verify [rounds]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from joserfc.jwk import RSAKey

from backends.auth import Authenticator
from backends.auth.local import LocalIssuer, LocalKeyBackend
from backends.auth.remote import RemoteIssuer, RemoteIssuerBackend
from backends.keys.keyring import Keyring
from tests.fake_issuer import FakeIssuer


async def main(rounds: int) -> None:
    fake = FakeIssuer([RSAKey.generate_key(2048, private=True)])
    fake.start()
    with tempfile.TemporaryDirectory() as tmp:
        keyring = Keyring(Path(tmp) / "keyring.json", "RS256", retention=86400)
        keyring.ensure()
        local_iss = "http://local.test/"
        local = LocalKeyBackend(keyring, issuer=local_iss, audience="api", leeway=30)
        remote = RemoteIssuerBackend(
            RemoteIssuer(issuer=fake.issuer, audiences=(fake.audience,), jwks_uri=fake.jwks_uri)
        )
        auth = Authenticator([local, remote])
        issuer = LocalIssuer(keyring, issuer=local_iss, audience="api", ttl=900)
        tokens = {"local": issuer.sign(issuer.claims_for("alice")).token, "remote": fake.sign()}
        await auth.authenticate(tokens["remote"])  # warm the key set: one fetch
        timings: dict[str, list[float]] = {"local": [], "remote": []}
        for _ in range(5):  # interleaved, so both see the same machine load
            for name, token in tokens.items():
                start = time.perf_counter()
                for _ in range(rounds):
                    await auth.authenticate(token)
                timings[name].append(time.perf_counter() - start)
        await remote.aclose()
    await fake.stop()
    best = {name: min(values) / rounds * 1e6 for name, values in timings.items()}
    print(f"local  {best['local']:.1f} us/token")
    print(f"remote {best['remote']:.1f} us/token  (JWKS fetches: {fake.jwks_fetches})")
    print(f"ratio remote/local: {best['remote'] / best['local']:.2f}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
