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
from typing import Any

from bench.load import Headers, free_port, pinned
from bench.seed import RevokedSet, revoked_set

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
    revocation_sets: dict[int, RevokedSet] = field(default_factory=dict)
    redis_prefixes: list[str] = field(default_factory=list)  # removed after the run

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


def fetch(url: str, token: str | None = None, timeout: float = 5) -> Answer:
    request = urllib.request.Request(url)  # noqa: S310 - loopback URL built here
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read()
            return Answer(int(response.status), _lowered(response.headers))
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, _lowered(exc.headers))


def get(url: str, token: str | None = None, timeout: float = 5) -> int:
    return fetch(url, token, timeout).status


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

        The extension point for a DPoP target: it returns a :class:`~bench.load.PerRequest`
        of at least ``requests`` entries, each with the bound token and a fresh proof
        signed here, before the run, so the load generator only reads them. The
        unprotected route gets no token, as the tutorial calls it: the ratio then
        includes the cost of receiving the header, which is the user's real cost.
        """
        return {"Authorization": f"Bearer {ctx.token}"} if route == "/test-auth" else {}

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
        tampered = ctx.token[:-4] + ("AAAA" if not ctx.token.endswith("AAAA") else "BBBB")
        expected = [
            ("/test", None, 200),
            ("/test-auth", ctx.token, 200),
            ("/test-auth", None, 401),
            ("/test-auth", tampered, 401),
        ]
        if self.revoked:
            expected.append(("/test-auth", ctx.revoked_token, 401))
        for path, token, status in expected:
            got = get(self.url + path, token)
            if got != status:
                raise Unavailable(f"GET {path} answered {got}, expected {status}")
        limited = "ratelimit" in self.answer_headers(ctx)
        if limited != self.rate_limited:
            self.rate_limit_mismatch(limited)
        if self.access_log:
            self.wait_for_log_lines(ctx, lines_before + len(expected))

    def answer_headers(self, ctx: Context) -> Mapping[str, str]:
        return fetch(self.url + "/test-auth", ctx.token).headers

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
