"""What the benchmark serves: jotguard variants and the peers, each a process on a free port.

Every target answers ``/test`` (unprotected) and ``/test-auth`` (protected) and accepts
the same token, signed by the first jotguard target's issuer; the peers fetch its keys
from that target's JWKS. Adding a variant is one entry in :data:`VARIANTS`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from backends.errors import BackendUnavailable
from bench.load import free_port, pinned

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
    token: str = ""
    redis_prefixes: list[str] = field(default_factory=list)  # removed after the run


def get(url: str, token: str | None = None, timeout: float = 5) -> int:
    request = urllib.request.Request(url)  # noqa: S310 - loopback URL built here
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


class Unavailable(Exception):
    """The target cannot run here (runtime missing, install failed): skipped, with why."""


class Target:
    name: str
    kind: str  # "jotguard" or "peer"
    process: subprocess.Popen[bytes] | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_path(self, ctx: Context) -> Path:
        return ctx.run / (re.sub(r"[^\w.+-]+", "_", self.name) + ".log")

    def prepare(self, ctx: Context) -> None:
        """Install or seed what the target needs; raise :class:`Unavailable` to skip it."""

    def command(self, ctx: Context) -> tuple[list[str], dict[str, str], Path]:
        raise NotImplementedError

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
        """The routes answer as they must, so no run measures a cheap error path."""
        tampered = ctx.token[:-4] + ("AAAA" if not ctx.token.endswith("AAAA") else "BBBB")
        expected = [
            ("/test", None, 200),
            ("/test-auth", ctx.token, 200),
            ("/test-auth", None, 401),
            ("/test-auth", tampered, 401),
        ]
        for path, token, status in expected:
            got = get(self.url + path, token)
            if got != status:
                raise Unavailable(f"GET {path} answered {got}, expected {status}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOTGUARD_", "AUTH0_"))}
    env.update(extra)
    return env


# -- jotguard -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One way to run jotguard: its revocation store, entries present, extra settings."""

    name: str
    store: str  # "sqlite" or "redis"
    revoked: int = 0
    env: Callable[[Context], dict[str, str]] = field(default=lambda ctx: {})
    note: str = ""


def _remote_issuer(ctx: Context) -> dict[str, str]:
    # The token's issuer becomes a remote issuer whose keys come from its JWKS over HTTP,
    # as an Auth0 tenant's would; this instance's own local issuer is another name.
    remote = [{"issuer": ctx.issuer, "audience": AUDIENCE, "jwks_uri": ctx.jwks_uri}]
    return {
        "JOTGUARD_ISSUER": "http://127.0.0.1:9/jwks-variant-local/",
        "JOTGUARD_REMOTE_ISSUERS": json.dumps(remote),
    }


VARIANTS: list[Variant] = [
    Variant("sqlite", "sqlite", note="embedded defaults"),
    Variant("sqlite+10k", "sqlite", revoked=10_000),
    Variant("redis", "redis"),
    Variant("redis+10k", "redis", revoked=10_000),
    Variant("jwks+sqlite+10k", "sqlite", revoked=10_000, env=_remote_issuer),
    # What the access log (one INFO line per request, on by default) costs.
    Variant("sqlite+nolog", "sqlite", env=lambda ctx: {"JOTGUARD_LOG_LEVEL": "WARNING"}),
]


class Jotguard(Target):
    kind = "jotguard"

    def __init__(self, variant: Variant, port: int) -> None:
        self.variant = variant
        self.name = f"jotguard {variant.name}"
        self.port = port
        self.store_url = ""

    def prepare(self, ctx: Context) -> None:
        from bench.seed import seed_store, store_url

        self.store_url = store_url(self.variant, ctx)
        try:
            seconds = seed_store(self.store_url, ctx.issuer, self.variant.revoked)
        except BackendUnavailable as exc:
            raise Unavailable(f"the store is down: {exc}") from None
        if self.variant.revoked:
            print(
                f"  {self.name:<20} seeded {self.variant.revoked:,} revocations in {seconds:.1f} s"
            )

    def command(self, ctx: Context) -> tuple[list[str], dict[str, str], Path]:
        env = _clean_env(
            JOTGUARD_DATA_DIR=str(ctx.data_dir),
            JOTGUARD_ENV_FILE=str(ctx.data_dir / "absent.env"),
            JOTGUARD_ISSUER=ctx.issuer,
            JOTGUARD_REVOCATION_STORE=self.store_url,
            **UNREACHABLE_LIMITS,
        )
        env.update(self.variant.env(ctx))
        command = [*JOTGUARD, "serve", "--port", str(self.port)]
        return command, env, REPO


def issue_token(
    ctx: Context, ttl: int, *, sub: str = "bench-user", scope: str = "read:bench"
) -> str:
    """A token from jotguard's own CLI (by default the one every target is measured with)."""
    env = _clean_env(
        JOTGUARD_DATA_DIR=str(ctx.data_dir),
        JOTGUARD_ENV_FILE=str(ctx.data_dir / "absent.env"),
        JOTGUARD_ISSUER=ctx.issuer,
    )
    issue = ["token", "issue", "--sub", sub, "--scope", scope, "--ttl", str(ttl)]
    done = subprocess.run(
        [*JOTGUARD, *issue],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


# -- peers ----------------------------------------------------------------------------------


def _peer_env(ctx: Context, port: int, **extra: str) -> dict[str, str]:
    return _clean_env(
        PORT=str(port), ISSUER=ctx.issuer, AUDIENCE=AUDIENCE, JWKS_URI=ctx.jwks_uri, **extra
    )


def _fingerprint(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _install(marker: Path, stamp: str, steps: list[list[str]], cwd: Path) -> None:
    """Run ``steps`` once per ``stamp`` (the peer's sources); reuse the install after that."""
    if marker.exists() and marker.read_text() == stamp:
        return
    for step in steps:
        done = subprocess.run(step, cwd=cwd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise Unavailable(f"{' '.join(step[:3])} failed: {done.stderr.strip()[-500:]}")
    marker.write_text(stamp)


class ExpressPeer(Target):
    """The tutorial's stack: express, express-jwt, jwks-rsa (installed under the work dir)."""

    name = "express"
    kind = "peer"

    def __init__(self, port: int) -> None:
        self.port = port

    def prepare(self, ctx: Context) -> None:
        node, npm = shutil.which("node"), shutil.which("npm")
        if node is None or npm is None:
            raise Unavailable("node and npm are not installed")
        home = ctx.work / "express"
        home.mkdir(parents=True, exist_ok=True)
        sources = [PEERS / "express" / "package.json", PEERS / "express" / "server.js"]
        for source in sources:
            shutil.copy2(source, home / source.name)
        npm_install = [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"]
        _install(home / ".installed", _fingerprint(*sources), [npm_install], home)

    def command(self, ctx: Context) -> tuple[list[str], dict[str, str], Path]:
        home = ctx.work / "express"
        env = _peer_env(ctx, self.port, NODE_ENV="production")
        return [shutil.which("node") or "node", "server.js"], env, home


class FastAPIPeer(Target):
    """FastAPI + PyJWT on uvicorn (uvloop, httptools), in a venv of its own."""

    name = "fastapi"
    kind = "peer"
    packages = ("fastapi", "uvicorn[standard]", "pyjwt[crypto]")

    def __init__(self, port: int) -> None:
        self.port = port

    def prepare(self, ctx: Context) -> None:
        venv = ctx.work / "fastapi-venv"
        python = venv / "bin" / "python"
        ctx.work.mkdir(parents=True, exist_ok=True)
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "-q", *self.packages],
        ]
        stamp = " ".join(self.packages)
        _install(ctx.work / "fastapi-venv.installed", stamp, steps, ctx.work)

    def command(self, ctx: Context) -> tuple[list[str], dict[str, str], Path]:
        uvicorn = ctx.work / "fastapi-venv" / "bin" / "uvicorn"
        command = [str(uvicorn), "fastapi_peer:app", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--no-access-log", "--log-level", "warning"]
        return command, _peer_env(ctx, self.port), PEERS


class TornadoPeer(Target):
    """Plain Tornado + joserfc on uvloop, from the project's own environment."""

    name = "tornado"
    kind = "peer"

    def __init__(self, port: int) -> None:
        self.port = port

    def command(self, ctx: Context) -> tuple[list[str], dict[str, str], Path]:
        return [sys.executable, "tornado_peer.py"], _peer_env(ctx, self.port), PEERS


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


PEER_TYPES: dict[str, Callable[[int], Target]] = {
    "express": ExpressPeer,
    "fastapi": FastAPIPeer,
    "tornado": TornadoPeer,
}


def new_port() -> int:
    return free_port()
