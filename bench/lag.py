"""Revocation lag between instances: revoke through A's admin API, time until B says 401.

Two ``jotguard serve`` processes share one store. Each trial has B verify (and cache) a
fresh token, revokes its jti through A, and from A's 201 polls B on a kept-alive
connection until B answers 401. Lag is measured from the acknowledgement, so it is what
an operator sees: "revoked" to "refused everywhere".

Nothing here knows how a store propagates (pub/sub, a poll every second, a change
notifier every few tens of milliseconds): revocations are made at random moments over a
window as long as the longest lag seen so far (grown during unrecorded warm-up trials),
so they fall at random points of whatever cycle B follows, whatever its length. Without
that, each trial would start just after the change that ended the one before, in step
with B. Adding a store is one :class:`LagCase`; so is a DPoP case (tokens bound to a key,
a fresh proof on each of B's requests), through :class:`Credentials`.
"""

from __future__ import annotations

import http.client
import json
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from backends.auth.local import LocalIssuer
from backends.keys.keyring import Keyring
from bench.targets import AUDIENCE, Context, Unavailable, new_port
from bench.variants import Jotguard, Variant, issue_token

GIVE_UP_SECONDS = 10.0
WARM_UP_TRIALS = 5  # not recorded: they find how long the window must be


@dataclass(frozen=True)
class Credential:
    """One token to revoke: its id and expiry, and the headers for each request B gets
    with it (``headers(method, path)``: a DPoP credential signs a fresh proof each time)."""

    jti: str
    expires_at: float
    headers: Callable[[str, str], dict[str, str]]


class Credentials:
    """Fresh bearer tokens from the local issuer (the keyring every target shares)."""

    def __init__(self, ctx: Context) -> None:
        keyring = Keyring(ctx.data_dir / "keyring.json", "RS256", retention=86400 + 30)
        keyring.load()
        self.issuer = LocalIssuer(keyring, issuer=ctx.issuer, audience=AUDIENCE, ttl=900)

    def fresh(self, n: int) -> Credential:
        signed = self.issuer.sign(self.issuer.claims_for(f"lag-{n}"))
        bearer = {"Authorization": f"Bearer {signed.token}"}
        return Credential(signed.jti, signed.expires_at, lambda method, path: bearer)


@dataclass(frozen=True)
class LagCase:
    """One lag line: a store (as a jotguard variant) and how its tokens are presented."""

    name: str
    variant: Variant
    credentials: Callable[[Context], Credentials] = field(default=Credentials)


LAG_CASES = [
    LagCase("redis", Variant("redis", "redis")),
    LagCase("sqlite", Variant("sqlite", "sqlite")),
]


@dataclass(frozen=True)
class Lag:
    store: str
    lags_ms: list[float]
    lost: int  # trials B still accepted the token after GIVE_UP_SECONDS
    window_ms: float = 0.0  # revocations were made at random over this long

    def percentile(self, p: float) -> float:
        ordered = sorted(self.lags_ms)
        return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]

    def line(self) -> str:
        if not self.lags_ms:
            return f"{self.store:<12} no trial completed"
        text = (
            f"{self.store:<12} p50 {self.percentile(0.5):7.1f} ms   p99 "
            f"{self.percentile(0.99):7.1f} ms   max {max(self.lags_ms):7.1f} ms"
            f"   mean {statistics.fmean(self.lags_ms):7.1f} ms   ({len(self.lags_ms)} trials,"
            f" revoked at random over {self.window_ms:.0f} ms)"
        )
        return text + (f"   {self.lost} NOT PROPAGATED" if self.lost else "")


class Client:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, 10)

    def request(self, method: str, path: str, headers: dict[str, str], body: object = None) -> int:
        headers = dict(headers)
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


def _trial(a: Client, b: Client, credential: Credential, admin: str, wait: float) -> float | None:
    if b.request("GET", "/test-auth", credential.headers("GET", "/test-auth")) != 200:
        raise RuntimeError("instance B refused a fresh token")
    time.sleep(wait)
    revoke = {"jti": credential.jti, "exp": credential.expires_at}
    status = a.request("POST", "/admin/revocations", {"Authorization": f"Bearer {admin}"}, revoke)
    acknowledged = time.perf_counter()
    if status != 201:
        raise RuntimeError(f"instance A answered {status} to the revocation")
    while time.perf_counter() - acknowledged < GIVE_UP_SECONDS:
        if b.request("GET", "/test-auth", credential.headers("GET", "/test-auth")) == 401:
            return (time.perf_counter() - acknowledged) * 1000
    return None


def run_trials(
    name: str,
    trial: Callable[[int, float], float | None],
    trials: int,
    rng: random.Random | None = None,
) -> Lag:
    """``trial(n, wait)`` waits ``wait`` seconds, revokes, and returns the lag in ms (None:
    never propagated). The wait is drawn over the longest lag seen so far, so revocations
    land at random points of B's cycle whatever its period; warm-up trials set it first."""
    rng = rng or random.Random()
    lags: list[float] = []
    lost = 0
    window = 0.0
    for n in range(WARM_UP_TRIALS + trials):
        lag = trial(n, rng.uniform(0, window))
        if lag is not None:
            window = max(window, lag / 1000)
        if n < WARM_UP_TRIALS:
            continue
        if lag is None:
            lost += 1
        else:
            lags.append(lag)
    return Lag(name, lags, lost, window * 1000)


def measure_lag(ctx: Context, case: LagCase, trials: int) -> Lag:
    """Start A and B on ``case``'s store, run the warm-up and ``trials``, stop them."""
    a, b = Jotguard(case.variant, new_port()), Jotguard(case.variant, new_port())
    a.name, b.name = f"lag {case.name} A", f"lag {case.name} B"
    clients: list[Client] = []
    try:
        a.prepare(ctx)
        b.store_url = a.store_url
        for target in (a, b):
            target.start(ctx)
            target.wait_ready(ctx)
        admin = issue_token(ctx, ttl=3600, sub="bench-admin", scope="admin")
        credentials = case.credentials(ctx)
        clients = [Client(a.url), Client(b.url)]

        def trial(n: int, wait: float) -> float | None:
            return _trial(clients[0], clients[1], credentials.fresh(n), admin, wait)

        return run_trials(case.name, trial, trials)
    except Unavailable as exc:
        print(f"  lag {case.name}: skipped: {exc}")
        return Lag(case.name, [], 0)
    finally:
        for client in clients:
            client.close()
        a.stop()
        b.stop()
