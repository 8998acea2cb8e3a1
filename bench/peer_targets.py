"""The peers jotguard is measured against, bare and with the same protection added.

Each verifies the same token against the same issuer's JWKS. The ``+extras`` peers add
what jotguard does on every request on its defaults, the way a user of that stack adds it:
one access line per request into the same kind of destination as jotguard's (the process's
standard streams, redirected to a file by the harness), a per-user rate-limit count with
limits out of reach (as jotguard's are in the benchmark), and a denylist check against
the run's shared revoked set (:meth:`bench.targets.Context.revoked`). Each peer's
installation lives under the work directory (``~/.cache/jotguard-bench``), never in the
repository or the project's environment.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bench.dpop_targets import LEEWAY, DPoPTarget
from bench.targets import AUDIENCE, PEERS, Context, Target, Unavailable, clean_env

# What the +extras peers count against: out of the benchmark's reach, as jotguard's
# UNREACHABLE_LIMITS are (100,000,000 a minute).
PEER_LIMIT = "100000000/60"
REVOKED = 10_000


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


class Peer(Target):
    kind = "peer"
    base = ""  # the stack's name; "+extras" is appended when extras are on

    def __init__(self, port: int, *, extras: bool = False) -> None:
        super().__init__(port)
        self.extras = extras
        self.name = self.base + ("+extras" if extras else "")
        self.access_log = self.rate_limited = extras
        self.revoked = REVOKED if extras else 0

    def env(self, ctx: Context, **extra: str) -> dict[str, str]:
        if self.extras:
            extra["RATE_LIMIT"] = PEER_LIMIT
            extra["REVOKED_FILE"] = str(ctx.revoked_file(self.revoked))
        return clean_env(
            PORT=str(self.port),
            ISSUER=ctx.issuer,
            AUDIENCE=AUDIENCE,
            JWKS_URI=ctx.jwks_uri,
            **extra,
        )


class ExpressPeer(Peer):
    """The tutorial's stack: express, express-jwt, jwks-rsa; with extras, morgan,
    express-rate-limit and express-jwt's ``isRevoked`` (``bench/peers/express/server.js``)."""

    base = "express"
    script = "server.js"

    def prepare(self, ctx: Context) -> None:
        node, npm = shutil.which("node"), shutil.which("npm")
        if node is None or npm is None:
            raise Unavailable("node and npm are not installed")
        home = ctx.work / "express"
        home.mkdir(parents=True, exist_ok=True)
        sources = [PEERS / "express" / name for name in ("package.json", "server.js", "dpop.js")]
        for source in sources:
            shutil.copy2(source, home / source.name)
        npm_install = [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"]
        _install(home / ".installed", _fingerprint(*sources), [npm_install], home)

    def command(self, ctx: Context) -> tuple[list[str], dict[str, str], Path]:
        home = ctx.work / "express"
        env = self.env(ctx, NODE_ENV="production", ACCESS_LOG="1" if self.access_log else "0")
        return [shutil.which("node") or "node", self.script], env, home


class ExpressDPoPPeer(DPoPTarget, ExpressPeer):
    """Express with Auth0's express-oauth2-jwt-bearer, DPoP required, plus the jti cache
    the library leaves to the server (``bench/peers/express/dpop.js``); bare otherwise."""

    base = "express-dpop"
    script = "dpop.js"
    # The library answers 400 for invalid_request and invalid_dpop_proof (RFC 6750 §3.1).
    refusals = (400, 401)

    def env(self, ctx: Context, **extra: str) -> dict[str, str]:
        lifetime = str(self.client(ctx).proof_lifetime)
        return super().env(ctx, DPOP_PROOF_LIFETIME=lifetime, DPOP_LEEWAY=str(LEEWAY), **extra)


class FastAPIPeer(Peer):
    """FastAPI + PyJWT on uvicorn (uvloop, httptools), in a venv of its own; with extras,
    uvicorn's access log on and a per-user counter and denylist in the dependency."""

    base = "fastapi"
    packages = ("fastapi", "uvicorn[standard]", "pyjwt[crypto]")

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
        command += ["--port", str(self.port)]
        if self.access_log:
            # uvicorn's access logger writes to stdout at INFO (a warning level drops it).
            command += ["--access-log", "--log-level", "info"]
        else:
            command += ["--no-access-log", "--log-level", "warning"]
        return command, self.env(ctx), PEERS


class TornadoPeer(Peer):
    """Plain Tornado + joserfc on uvloop, from the project's own environment; its
    ``/test`` is Tornado's hello world, the ceiling of any Tornado application."""

    base = "tornado"

    def command(self, ctx: Context) -> tuple[list[str], dict[str, str], Path]:
        return [sys.executable, "tornado_peer.py"], self.env(ctx), PEERS


PEER_TYPES: dict[str, Callable[[int], Target]] = {
    "express": ExpressPeer,
    "express+extras": lambda port: ExpressPeer(port, extras=True),
    "express-dpop": ExpressDPoPPeer,
    "fastapi": FastAPIPeer,
    "fastapi+extras": lambda port: FastAPIPeer(port, extras=True),
    "tornado": TornadoPeer,
}
