"""What the revocation check costs per request, per store, side by side.

Runs ``Authenticator.authenticate`` (signature + claims, then the denylist) on one
token, sequentially and 50 at a time, with no store and with each store; prints
rates and the ratio to the no-store baseline. Redis is measured when reachable.

    .venv/bin/python bench/revocation_check.py [--rounds 1000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from redis.asyncio import Redis

from backends.auth import Authenticator
from backends.auth.local import LocalIssuer, LocalKeyBackend
from backends.keys.keyring import Keyring
from backends.revocation.factory import open_store

ISS = "http://bench.test/"


def redis_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), 0.5).close()
        return True
    except OSError:
        return False


async def rate(auth: Authenticator, token: str, rounds: int, concurrency: int) -> float:
    async def worker(n: int) -> None:
        for _ in range(n):
            await auth.authenticate(token)

    start = time.perf_counter()
    await asyncio.gather(*(worker(rounds // concurrency) for _ in range(concurrency)))
    return rounds / (time.perf_counter() - start)


async def main(rounds: int, repeats: int) -> None:
    data = Path(tempfile.mkdtemp())
    keyring = Keyring(data / "keyring.json", "ES256", retention=86400)
    keyring.ensure()
    issuer = LocalIssuer(keyring, issuer=ISS, audience="bench", ttl=900)
    backend = LocalKeyBackend(keyring, issuer=ISS, audience="bench", leeway=30)
    token = issuer.sign(issuer.claims_for("alice")).token

    prefix = f"jotguard-bench:{uuid.uuid4().hex}:"
    urls = {"none": None, "memory": "memory://", "sqlite": f"sqlite:///{data}/r.sqlite3"}
    if redis_up():
        urls["redis"] = f"redis://127.0.0.1:6379/15?prefix={prefix}"
    auths: dict[str, Authenticator] = {}
    for name, url in urls.items():
        store = open_store(url) if url else None
        if store is not None:
            # A realistic list: other subjects revoked, this token not.
            for n in range(200):
                await store.revoke_subject(f"user{n}", before=time.time())
        auths[name] = Authenticator([backend], revocations=store)
        await rate(auths[name], token, 200, 1)  # warm up
    # Interleaved repeats, median of each: a shared machine's noise hits every store alike.
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in auths}
    for _ in range(repeats):
        for name, auth in auths.items():
            samples[name].append(
                (await rate(auth, token, rounds, 1), await rate(auth, token, rounds, 50))
            )
    results = {
        name: (
            statistics.median(s for s, _ in runs),
            statistics.median(c for _, c in runs),
        )
        for name, runs in samples.items()
    }
    for auth in auths.values():
        if auth.revocations is not None:
            await auth.revocations.close()
    if "redis" in urls:
        client = Redis.from_url("redis://127.0.0.1:6379/15")
        async for key in client.scan_iter(match=prefix + "*"):
            await client.delete(key)
        await client.aclose()

    base_seq, base_conc = results["none"]
    print(f"{'store':8} {'sequential/s':>13} {'ratio':>6} {'50 at once/s':>13} {'ratio':>6}")
    for name, (seq, conc) in results.items():
        print(f"{name:8} {seq:13.0f} {seq / base_seq:6.2f} {conc:13.0f} {conc / base_conc:6.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.repeats))
