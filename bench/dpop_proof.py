"""What checking one DPoP proof costs, next to verifying one bearer JWT, in one run.

Rows, each in microseconds per operation and as a ratio to the bearer baseline
(jotguard's ``JWTVerifier`` on an RS256 access token, signature and claims, no
token cache):

- ``verify_proof`` for ES256, EdDSA, PS256 and RS256 proofs, each proof fresh
  (own jti), made ahead so signing is not measured; the key is one the process
  has seen (a client signs many proofs with one key);
- ES256 with a new key for every proof (the key import is not cached: the cost
  an attacker with many keys imposes);
- ``DPoPVerifier.verify`` (ES256): the proof plus the in-memory replay cache, and
  plus the SQLite one (``--workers`` without Redis; ``bench.dpop_replay`` compares
  the caches alone);
- the bearer token through ``Authenticator.verify`` with its token cache: what a
  repeated bearer token costs a protected request today.

Rounds are interleaved, best of several, so every row sees the same load; the
load average is printed because the figures are only comparable within a run.

    .venv/bin/python -m bench.dpop_proof [--proofs 400] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from backends.auth import Authenticator
from backends.auth.compact import parse_compact
from backends.auth.local import LocalIssuer, LocalKeyBackend
from backends.auth.token_cache import VerifiedTokenCache
from backends.dpop import DPoPPolicy, DPoPVerifier, generate_key, make_proof, verify_proof
from backends.dpop.replay_sqlite import FILE_NAME, SQLiteReplayCache
from backends.keys.keyring import Keyring

ISS = "http://bench.test/"
URL = "https://api.bench.test/things"
ALGORITHMS = ("ES256", "EdDSA", "PS256", "RS256")

Step = Callable[[int], Awaitable[None]]


def proofs_for(alg: str, count: int, token: str, *, new_keys: bool = False) -> list[str]:
    key = generate_key(alg)
    made = []
    for _ in range(count):
        if new_keys:
            key = generate_key(alg)
        made.append(make_proof(key, "GET", URL, access_token=token))
    return made


async def measure(steps: dict[str, Step], count: int, repeats: int) -> dict[str, float]:
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            for index in range(count):
                await step(index)
            best[name] = min(best[name], (time.perf_counter() - start) / count)
    return best


async def main(count: int, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        keyring = Keyring(Path(tmp) / "keyring.json", "RS256", retention=86400)
        keyring.ensure()
        issuer = LocalIssuer(keyring, issuer=ISS, audience="api", ttl=900)
        backend = LocalKeyBackend(keyring, issuer=ISS, audience="api", leeway=30)
        token = issuer.sign(issuer.claims_for("alice")).token
        cached = Authenticator([backend], token_cache=VerifiedTokenCache(1024))
        policy = DPoPPolicy()
        now = time.time()

        # Every repeat needs proofs the replay cache has not seen.
        proofs = {alg: proofs_for(alg, count, token) for alg in ALGORITHMS}
        cold = proofs_for("ES256", count, token, new_keys=True)
        verifier = DPoPVerifier(policy)
        shared = DPoPVerifier(policy, replay=SQLiteReplayCache(Path(tmp) / FILE_NAME))

        async def bearer(_: int) -> None:
            await backend.authenticate(parse_compact(token))

        def proof_step(batch: list[str]) -> Step:
            async def step(index: int) -> None:
                verify_proof(
                    batch[index], method="GET", url=URL, policy=policy, now=now, access_token=token
                )

            return step

        def spend_step(cache: DPoPVerifier) -> Step:
            spendable = [proofs_for("ES256", count, token) for _ in range(repeats)]
            round_of = {"n": -1}

            async def spend(index: int) -> None:
                if index == 0:
                    round_of["n"] += 1
                proof = spendable[round_of["n"]][index]
                await cache.verify([proof], method="GET", url=URL, access_token=token)

            return spend

        async def bearer_cached(_: int) -> None:
            await cached.verify(token)

        steps: dict[str, Step] = {"bearer RS256 (JWTVerifier)": bearer}
        steps.update({f"proof {alg}": proof_step(proofs[alg]) for alg in ALGORITHMS})
        steps["proof ES256, new key each"] = proof_step(cold)
        steps["proof ES256 + replay cache"] = spend_step(verifier)
        steps["proof ES256 + SQLite replay cache"] = spend_step(shared)
        steps["bearer RS256, token cache hit"] = bearer_cached
        await bearer_cached(0)
        await shared.replay.first_use("warm", "up", expires_at=now + 60, now=now)  # the file
        best = await measure(steps, count, repeats)
        await shared.replay.aclose()

    baseline = best["bearer RS256 (JWTVerifier)"]
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    print(f"{count} operations a row, best of {repeats} interleaved rounds")
    print(f"{'':34}{'us/op':>9}  {'÷ bearer JWT':>12}")
    for name, seconds in best.items():
        print(f"{name:34}{seconds * 1e6:9.1f}  {seconds / baseline:12.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proofs", type=int, default=400, help="operations per row and round")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.proofs, args.repeats))
