"""``jotguard revoke``: writes straight to the configured store; the must-show flow runs
through a real ``jotguard serve`` process, restarted in the middle."""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

import pytest

from backends.auth.compact import parse_compact
from backends.auth.local import LocalIssuer
from backends.keys.keyring import Keyring
from backends.principal import Principal
from backends.revocation.factory import open_store
from tests import cli
from webapp.cli.main import main

ISS = "http://jotguard.test/"


@pytest.fixture
def env(data_dir, monkeypatch):
    values = {
        "JOTGUARD_DATA_DIR": str(data_dir),
        "JOTGUARD_ISSUER": ISS,
        "JOTGUARD_ENV_FILE": str(data_dir / "absent.env"),
        "JOTGUARD_LOG_LEVEL": "WARNING",
        **cli.CHEAP_ARGON2,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def store_url(data_dir):
    return f"sqlite:///{data_dir}/revocations.sqlite3"


async def is_revoked(data_dir, principal):
    store = open_store(store_url(data_dir))
    try:
        return await store.is_revoked(principal)
    finally:
        await store.close()


def run_cli(*argv):
    return main(["revoke", *argv])


def test_cli_revokes_a_subject_in_the_default_store(env, data_dir, capsys):
    assert run_cli("--sub", "alice", "--reason", "phished") == 0
    out = capsys.readouterr().out
    assert out.startswith("revoked sub alice for every issuer (id ")
    alice = Principal("alice", ISS, "j", int(time.time()) + 60, int(time.time()) - 1)
    assert asyncio.run(is_revoked(data_dir, alice)) is not None


def test_cli_revokes_a_token_read_from_stdin_and_prints_only_its_jti(
    env, data_dir, capsys, monkeypatch
):
    main(["token", "issue", "--sub", "alice"])
    token = capsys.readouterr().out.strip()
    monkeypatch.setattr(sys, "stdin", io.StringIO(token + "\n"))
    assert run_cli("--token", "-") == 0
    out = capsys.readouterr().out
    claims = parse_compact(token).claims
    assert f"revoked jti {claims['jti']} for issuer {claims['iss']} " in out
    assert token not in out
    principal = Principal("alice", ISS, claims["jti"], claims["exp"], claims["iat"])
    assert asyncio.run(is_revoked(data_dir, principal)) == "The token has been revoked"


def test_cli_store_down_is_one_line_and_exit_1(env, monkeypatch, capsys):
    monkeypatch.setenv("JOTGUARD_REVOCATION_STORE", "redis://127.0.0.1:1/0")
    assert run_cli("--client", "app") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("jotguard revoke: revocation store unavailable")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--jti", "abc", "--exp", "5"], "already expired"),
        (["--sub", "alice", "--exp", "5"], "'exp' goes only with 'jti'"),
        (["--token", "garbage"], "the token cannot be verified"),
        (["--sub", ""], "'sub' must be a non-empty string"),
    ],
)
def test_cli_bad_requests_exit_2(env, capsys, argv, message):
    assert run_cli(*argv) == 2
    assert message in capsys.readouterr().err


def test_cli_needs_exactly_one_target(env):
    with pytest.raises(SystemExit) as no_target:
        run_cli("--reason", "x")
    assert no_target.value.code == 2
    with pytest.raises(SystemExit) as two_targets:
        run_cli("--sub", "a", "--client", "b")
    assert two_targets.value.code == 2


# -- through a real server --------------------------------------------------------------


def jotguard(*argv, env):
    return cli.jotguard(*argv, env={**os.environ, **env})


class Server:
    def __init__(self, env):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "webapp", "serve"],
            env={**os.environ, **env, "JOTGUARD_PORT": "0", "JOTGUARD_LOG_LEVEL": "INFO"},
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log = []
        self.lines = queue.Queue()
        # Drain stderr on a thread: a full pipe would block the server's logging.
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.base = self._wait_for_address()

    def _read(self):
        for line in self.process.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def _wait_for_address(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            self.log.append(line)
            if "listening on " in line:
                return line.split("listening on ", 1)[1].split()[0].rstrip("/")
        self.stop()
        raise AssertionError("jotguard serve did not start:\n" + "".join(self.log))

    def status(self, token):
        parts = urlsplit(self.base)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        try:
            conn.request("GET", "/test-auth", headers={"Authorization": f"Bearer {token}"})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def status_when(self, token, expected, timeout=5.0):
        """Poll until the answer is ``expected`` (or ``timeout``): the server's mirror
        picks up the CLI's write on its next poll of the store (every second)."""
        deadline = time.monotonic() + timeout
        while True:
            code, body = self.status(token)
            if code == expected or time.monotonic() > deadline:
                return code, body
            time.sleep(0.02)

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self.reader.join(timeout=5)
            while not self.lines.empty():
                line = self.lines.get()
                if line is not None:
                    self.log.append(line)


@pytest.mark.slow
def test_must_show_revoke_with_the_cli_and_restart(env):
    """Default SQLite store: 200, `jotguard revoke --jti`, 401, restart, still 401."""
    issued = jotguard("token", "issue", "--sub", "alice", env=env)
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    jti = parse_compact(token).claims["jti"]

    server = Server(env)
    try:
        assert server.status(token)[0] == 200
        revoked = jotguard("revoke", "--jti", jti, "--reason", "leaked", env=env)
        assert revoked.returncode == 0, revoked.stderr
        code, body = server.status_when(token, 401)
        assert code == 401
        assert json.loads(body)["error_description"] == "The token has been revoked"
    finally:
        server.stop()

    restarted = Server(env)
    try:
        assert restarted.status(token)[0] == 401
    finally:
        restarted.stop()


@pytest.mark.slow
def test_must_show_a_fast_clocks_token_is_revoked_with_its_subject(env, data_dir):
    """`jotguard revoke --sub skewed`, then a validly signed token with iat = now + 20
    (an issuer clock 20 s fast, within the leeway): 401, not 200."""
    keyring = Keyring(data_dir / "keyring.json", "RS256", retention=86400)
    keyring.load()
    issuer = LocalIssuer(keyring, issuer=ISS, audience="jotguard", ttl=900)
    server = Server(env)
    try:
        claims = issuer.claims_for("skewed")
        claims.update(iat=claims["iat"] + 20, exp=claims["exp"] + 20)
        skewed = issuer.sign(claims).token
        control = issuer.sign(issuer.claims_for("skewed")).token
        assert server.status(skewed)[0] == 200  # accepted: within the 30 s leeway
        revoked = jotguard("revoke", "--sub", "skewed", env=env)
        assert revoked.returncode == 0, revoked.stderr
        assert server.status_when(control, 401)[0] == 401
        code, body = server.status(skewed)
        assert code == 401
        assert json.loads(body)["error"] == "invalid_token"
        assert "revoked" in json.loads(body)["error_description"]
    finally:
        server.stop()


@pytest.mark.slow
def test_serve_warns_loudly_with_the_memory_store(env):
    server = Server({**env, "JOTGUARD_REVOCATION_STORE": "memory://"})
    server.stop()
    assert any("REVOCATIONS ARE NOT DURABLE" in line for line in server.log)


def test_cli_refuses_the_memory_store(env, monkeypatch, capsys):
    monkeypatch.setenv("JOTGUARD_REVOCATION_STORE", "memory://")
    assert run_cli("--sub", "alice") == 2
    assert "reach no server" in capsys.readouterr().err
