"""What the benchmark serves: a target is a process on a free port, with what it does per
request declared and checked before it is measured.

Every target answers ``/test`` (unprotected) and ``/test-auth`` (protected) and accepts
the same token, signed by the first jotguard target's issuer; the peers fetch its keys
from that target's JWKS. jotguard's variants are in :mod:`bench.variants`, the peers in
:mod:`bench.peer_targets`.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.load import Headers, free_port, pinned
from bench.seed import RevokedSet, revoked_set

if TYPE_CHECKING:
    from bench.dpop_targets import DPoPClient

REPO = Path(__file__).resolve().parent.parent
PEERS = Path(__file__).resolve().parent / "peers"
AUDIENCE = "jotguard"
JOTGUARD = (sys.executable, "-m", "webapp")
# Rate limiting stays on and counts every request (its cost is measured), with limits no
# benchmark reaches: a 429 is no measurement (and would void the run).
UNREACHABLE_LIMITS = {
    f"JOTGUARD_RATELIMIT_{name}": "100000000/minute"
    for name in ("DEFAULT", "PREAUTH", "ADMIN", "FAILED_AUTH")
}


@dataclass
class Context:
    """Shared by every target of one run."""

    work: Path  # kept between runs: peers' installs
    run: Path  # this run's temporary files
    data_dir: Path  # jotguard's keyring (shared by every jotguard target)
    issuer: str  # the issuer URL every jotguard target is configured with
    jwks_uri: str
    redis_url: str
    server_cpu: int | None
    token: str = ""  # the token every target is measured with
    revoked_token: str = ""  # a token whose jti is in every revoked set: must get 401
    dpop: DPoPClient | None = None  # the DPoP targets' key and bound tokens (RFC 9449)
    revocation_sets: dict[int, RevokedSet] = field(default_factory=dict)
    redis_prefixes: list[str] = field(default_factory=list)  # removed after the run

    @classmethod
    def for_run(
        cls, run: Path, issuer: str, *, work: Path, redis_url: str, server_cpu: int | None = None
    ) -> Context:
        """A run's context: jotguard's data directory in ``run``, the issuer's JWKS at its
        well-known path (``issuer`` ends with a slash, as jotguard's do)."""
        return cls(
            work=work,
            run=run,
            data_dir=run / "data",
            issuer=issuer,
            jwks_uri=issuer + ".well-known/jwks.json",
            redis_url=redis_url,
            server_cpu=server_cpu,
        )

    def revoked(self, count: int) -> RevokedSet:
        """The run's ``count`` revocations, made once and shared by every target."""
        if count not in self.revocation_sets:
            jti = claims_of(self.revoked_token)["jti"]
            self.revocation_sets[count] = revoked_set(count, self.issuer, including=jti)
        return self.revocation_sets[count]

    def revoked_file(self, count: int) -> Path:
        path = self.run / f"revoked-{count}.json"
        return path if path.exists() else self.revoked(count).write(path)


def claims_of(token: str) -> dict[str, Any]:
    """A JWT's payload, unverified (the harness reads its own tokens)."""
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]  # names lower-cased


def _lowered(headers: Message) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tampered(token: str) -> str:
    """``token`` with its signature's last characters changed: well formed, never valid."""
    return token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")


def fetch(url: str, headers: Mapping[str, str] | None = None, timeout: float = 5) -> Answer:
    request = urllib.request.Request(url, headers=dict(headers or {}))  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read()
            return Answer(int(response.status), _lowered(response.headers))
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, _lowered(exc.headers))


def get(url: str, headers: Mapping[str, str] | None = None, timeout: float = 5) -> int:
    return fetch(url, headers, timeout).status


@dataclass(frozen=True)
class Probe:
    """One request :meth:`Target.check` sends before the run: answered 200, or refused."""

    what: str  # what the request carries, for the message when it is answered wrongly
    path: str
    headers: Mapping[str, str]
    accepted: bool


class Unavailable(Exception):
    """The target cannot run here (runtime missing, install failed): skipped, with why."""


class Target:
    """One server under load. What it does per request beyond verifying the token is
    declared here (``access_log``, ``rate_limited``, ``revoked``) and proven by
    :meth:`check` before it is measured, so a like-for-like pair really does equal work."""

    name: str
    kind: str  # "jotguard" or "peer"
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    access_log: bool = False  # one line per request into its log file (stdout/stderr)
    rate_limited: bool = False  # counts every request (per user, per IP when anonymous)
    revoked: int = 0  # revocations its per-request check holds (the run's shared set)
    refusals: tuple[int, ...] = (401,)  # the statuses it refuses a request with

    def __init__(self, port: int) -> None:
        self.port = port
        self.caveats: list[str] = []  # printed beside every figure of this target

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def protection(self) -> str:
        parts = ["access log" if self.access_log else "no access log"]
        parts.append("rate limit counted" if self.rate_limited else "no rate limit")
        parts.append(f"{self.revoked:,} revoked" if self.revoked else "no denylist")
        return ", ".join(parts)

    def log_path(self, ctx: Context) -> Path:
        return ctx.run / (re.sub(r"[^\w.+-]+", "_", self.name) + ".log")

    def log_lines(self, ctx: Context) -> int:
        path = self.log_path(ctx)
        return path.read_bytes().count(b"\n") if path.exists() else 0

    def prepare(self, ctx: Context) -> None:
        """Install or seed what the target needs; raise :class:`Unavailable` to skip it."""

    def command(self, ctx: Context) -> tuple[list[str], dict[str, str], Path]:
        raise NotImplementedError

    def request_headers(self, route: str, ctx: Context, requests: int) -> Headers:
        """The headers of ``requests`` requests to ``route`` (an estimate: warm-up rate x
        run length, with a margin).

        A DPoP target (:class:`bench.dpop_targets.DPoPTarget`) returns a
        :class:`~bench.load.PerRequest` of at least ``requests`` entries, each with the
        bound token and a fresh proof signed here, before the run, so the load generator
        only reads them. The unprotected route gets no token, as the tutorial calls it.
        """
        return self.protected_headers(ctx) if route == "/test-auth" else {}

    def protected_headers(self, ctx: Context) -> dict[str, str]:
        """What one request to the protected route carries to be answered 200."""
        return bearer(ctx.token)

    def start(self, ctx: Context) -> None:
        command, env, cwd = self.command(ctx)
        log = self.log_path(ctx).open("wb")
        self.process = subprocess.Popen(
            pinned(command, ctx.server_cpu), env=env, cwd=cwd, stdout=log, stderr=log
        )

    def wait_ready(self, ctx: Context, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                tail = self.log_path(ctx).read_text(errors="replace")[-2000:]
                raise Unavailable(f"exited at start:\n{tail}")
            try:
                if get(self.url + "/test", timeout=1) == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise Unavailable("did not answer /test in time")

    def check(self, ctx: Context) -> None:
        """The routes answer as they must, so no run measures a cheap error path, and the
        target does the per-request work it declares."""
        lines_before = self.log_lines(ctx)
        probes = self.probes(ctx)
        for probe in probes:
            got = get(self.url + probe.path, probe.headers)
            if (got == 200) if probe.accepted else (got in self.refusals):
                continue
            expected = "200" if probe.accepted else " or ".join(map(str, self.refusals))
            what = f"GET {probe.path} ({probe.what})"
            raise Unavailable(f"{what} answered {got}, expected {expected}")
        limited = "ratelimit" in fetch(self.url + "/test-auth", self.protected_headers(ctx)).headers
        if limited != self.rate_limited:
            self.rate_limit_mismatch(limited)
        if self.access_log:
            self.wait_for_log_lines(ctx, lines_before + len(probes))

    def probes(self, ctx: Context) -> list[Probe]:
        """What :meth:`check` sends, in order: a refusal for every check it declares."""
        probes = [
            Probe("no token", "/test", {}, accepted=True),
            Probe("the token", "/test-auth", bearer(ctx.token), accepted=True),
            Probe("no token", "/test-auth", {}, accepted=False),
            Probe("a tampered token", "/test-auth", bearer(tampered(ctx.token)), accepted=False),
        ]
        if self.revoked:
            revoked = bearer(ctx.revoked_token)
            probes.append(Probe("a revoked token", "/test-auth", revoked, accepted=False))
        return probes

    def rate_limit_mismatch(self, limited: bool) -> None:
        said = "sends RateLimit headers" if limited else "sends no RateLimit header"
        raise Unavailable(f"declares rate_limited={self.rate_limited} but {said}")

    def wait_for_log_lines(self, ctx: Context, lines: int, timeout: float = 3) -> None:
        deadline = time.monotonic() + timeout
        while self.log_lines(ctx) < lines:
            if time.monotonic() > deadline:
                raise Unavailable("declares an access log but wrote no line per request")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOTGUARD_", "AUTH0_"))}
    env.update(extra)
    return env


def cli_env(ctx: Context) -> dict[str, str]:
    """The environment jotguard's CLI (and its settings, read in-process) get in this run:
    the run's data directory and issuer, no ``.env`` file."""
    return clean_env(
        JOTGUARD_DATA_DIR=str(ctx.data_dir),
        JOTGUARD_ENV_FILE=str(ctx.data_dir / "absent.env"),
        JOTGUARD_ISSUER=ctx.issuer,
    )


def cleanup_redis(ctx: Context) -> None:
    """Delete every key this run wrote to Redis (its own prefixes only)."""
    if not ctx.redis_prefixes:
        return
    from redis import Redis
    from redis.exceptions import RedisError

    try:
        client = Redis.from_url(ctx.redis_url)
        for prefix in ctx.redis_prefixes:
            for key in client.scan_iter(match=prefix + "*", count=1000):
                client.delete(key)
        client.close()
    except RedisError as exc:
        print(f"could not remove the run's Redis keys ({exc})")


def new_port() -> int:
    return free_port()
