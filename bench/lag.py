"""Revocation lag between instances: revoke through A's admin API, time until B says 401.

Two ``jotguard serve`` processes share one store. Each trial signs a fresh token, has B
verify (and cache) it, revokes its jti through A, and from A's 201 polls B on a kept-alive
connection until B answers 401. Lag is measured from the acknowledgement, so it is what
an operator sees: "revoked" to "refused everywhere".
"""

from __future__ import annotations

import http.client
import json
import random
import statistics
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from backends.keyring import Keyring
from backends.local import LocalIssuer
from bench.targets import AUDIENCE, Context, Jotguard, Unavailable, Variant, issue_token, new_port

GIVE_UP_SECONDS = 10.0


@dataclass(frozen=True)
class Lag:
    store: str
    lags_ms: list[float]
    lost: int  # trials B still accepted the token after GIVE_UP_SECONDS

    def percentile(self, p: float) -> float:
        ordered = sorted(self.lags_ms)
        return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]

    def line(self) -> str:
        if not self.lags_ms:
            return f"{self.store:<26} no trial completed"
        text = (
            f"{self.store:<26} p50 {self.percentile(0.5):7.1f} ms   p99 "
            f"{self.percentile(0.99):7.1f} ms   max {max(self.lags_ms):7.1f} ms"
            f"   mean {statistics.fmean(self.lags_ms):7.1f} ms   ({len(self.lags_ms)} trials)"
        )
        return text + (f"   {self.lost} NOT PROPAGATED" if self.lost else "")


class Client:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, 10)

    def request(self, method: str, path: str, token: str, body: object = None) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        response.read()
        return response.status

    def close(self) -> None:
        self.conn.close()


def _trial(
    a: Client, b: Client, issuer: LocalIssuer, admin: str, n: int, jitter: float
) -> float | None:
    signed = issuer.sign(issuer.claims_for(f"lag-{n}"))
    if b.request("GET", "/test-auth", signed.token) != 200:
        raise RuntimeError("instance B refused a fresh token")
    # Revocations arrive at random moments, not in step with B's polls: without this,
    # each trial would start just after the poll that ended the one before.
    time.sleep(random.uniform(0, jitter))
    status = a.request(
        "POST", "/admin/revocations", admin, {"jti": signed.jti, "exp": signed.expires_at}
    )
    acknowledged = time.perf_counter()
    if status != 201:
        raise RuntimeError(f"instance A answered {status} to the revocation")
    while time.perf_counter() - acknowledged < GIVE_UP_SECONDS:
        if b.request("GET", "/test-auth", signed.token) == 401:
            return (time.perf_counter() - acknowledged) * 1000
    return None


def measure_lag(ctx: Context, variant: Variant, trials: int, *, jitter: float = 0.0) -> Lag:
    """Start A and B on ``variant``'s store, run ``trials``, stop them."""
    a, b = Jotguard(variant, new_port()), Jotguard(variant, new_port())
    a.name, b.name = f"lag {variant.name} A", f"lag {variant.name} B"
    clients: list[Client] = []
    try:
        a.prepare(ctx)
        b.store_url = a.store_url
        for target in (a, b):
            target.start(ctx)
            target.wait_ready(ctx)
        admin = issue_token(ctx, ttl=3600, sub="bench-admin", scope="admin")
        keyring = Keyring(ctx.data_dir / "keyring.json", "RS256", retention=86400 + 30)
        keyring.load()
        issuer = LocalIssuer(keyring, issuer=ctx.issuer, audience=AUDIENCE, ttl=900)
        clients = [Client(a.url), Client(b.url)]
        lags: list[float] = []
        lost = 0
        for n in range(trials):
            lag = _trial(clients[0], clients[1], issuer, admin, n, jitter)
            if lag is None:
                lost += 1
            else:
                lags.append(lag)
        return Lag(variant.name, lags, lost)
    except Unavailable as exc:
        print(f"  lag {variant.name}: skipped: {exc}")
        return Lag(variant.name, [], 0)
    finally:
        for client in clients:
            client.close()
        a.stop()
        b.stop()
