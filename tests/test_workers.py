"""Several processes: ``serve --workers N`` on one port, and separate instances sharing a
store. A revocation made through any of them reaches every one (each has its own mirror);
SIGTERM stops all workers cleanly. Real ``jotguard`` processes, as an operator runs them."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path

import pytest
from redis import Redis

from backends.dpop import generate_key, make_proof, public_jwk
from tests.cli import (
    Server,
    cli_env,
    free_port,
    http_get,
    jotguard,
    revoke_through,
    token,
    wait_until,
)
from tests.conftest import redis_url, require_service
from tests.redis_keys import reachable
from tests.settings_support import refusal
from webapp.service.server import SHUTDOWN_GRACE_SECONDS

pytestmark = pytest.mark.slow

ISSUER = "http://jotguard.test/"


def children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


@pytest.fixture
def env(data_dir: Path) -> dict[str, str]:
    return cli_env(data_dir, JOTGUARD_ISSUER=ISSUER, JOTGUARD_REVOCATION_POLL_INTERVAL="0.1")


# -- one port, several workers ----------------------------------------------------------------


def test_workers_share_the_port_and_all_stop_on_sigterm(env):
    port = free_port()
    server = Server(env, port, "--workers", "2")
    try:
        workers = children(server.process.pid)
        assert len(workers) == 2
        # Each worker serves on uvloop (its extension module is mapped into the process).
        assert all("uvloop" in Path(f"/proc/{pid}/maps").read_text() for pid in workers)
        alice = token(env, "alice")
        assert all(http_get(server.url + "/test-auth", alice)[0] == 200 for _ in range(10))
    finally:
        code, _, err = server.stop()
    assert code == 0, err
    assert "stopping 2 workers (SIGTERM)" in err
    assert err.count("] jotguard: stopped") == 2
    assert all(not Path(f"/proc/{pid}").exists() for pid in workers)


def test_a_revocation_through_one_worker_reaches_every_worker(env):
    port = free_port()
    server = Server(env, port, "--workers", "2")
    try:
        alice, admin = token(env, "alice"), token(env, "root", "admin")
        assert http_get(server.url + "/test-auth", alice)[0] == 200
        assert revoke_through(server.url, admin, {"sub": "alice"}) == 201

        # Each request opens a new connection, so either worker may answer it.
        def refused_everywhere() -> bool:
            return all(http_get(server.url + "/test-auth", alice)[0] == 401 for _ in range(20))

        assert wait_until(refused_everywhere)
    finally:
        server.stop()


def test_a_dead_worker_is_replaced(env):
    port = free_port()
    server = Server(env, port, "--workers", "2")
    try:
        first = children(server.process.pid)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: len(children(server.process.pid) - {victim}) == 2)
        assert http_get(server.url + "/test")[0] == 200
    finally:
        code, _, err = server.stop()
    assert code == 0
    assert f"(pid {victim}) exited with -9 " in err
    assert "; starting another" in err


def test_a_stop_while_a_replacement_worker_starts_is_not_lost(env):
    # The replacement is signalled before it can have installed its own handlers: it
    # must stop at once, not sit out the supervisor's grace and margin until a kill.
    server = Server(env, free_port(), "--workers", "2")
    try:
        first = children(server.process.pid)
        for victim in first:  # both: two replacements starting make the window wider
            os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: bool(children(server.process.pid) - first), 10, step=0.001)
        started = time.monotonic()
        code, _, err = server.stop()
    finally:
        server.process.kill()
    assert code == 0, err
    assert time.monotonic() - started < SHUTDOWN_GRACE_SECONDS
    assert "did not stop" not in err


def test_a_proof_spent_at_one_worker_is_refused_at_every_worker(env, data_dir, tmp_path):
    # No Redis: the workers share the replay cache in the data directory's SQLite file.
    key = generate_key("ES256")
    (tmp_path / "key.jwk").write_text(json.dumps(public_jwk(key)))
    issued = jotguard(
        "token", "issue", "--sub", "alice", "--dpop-jwk", str(tmp_path / "key.jwk"), env=env
    )
    assert issued.returncode == 0, issued.stderr
    bound = issued.stdout.strip()
    server = Server({**env, "JOTGUARD_LOG_FORMAT": "json"}, free_port(), "--workers", "2")
    try:
        proof = make_proof(key, "GET", server.url + "/test-auth", access_token=bound)
        # Each request opens a new connection, so either worker may answer it.
        dpop = {"Authorization": f"DPoP {bound}", "DPoP": proof}
        statuses = [http_get(server.url + "/test-auth", headers=dpop)[0] for _ in range(20)]
    finally:
        code, _, err = server.stop()
    assert code == 0, err
    assert statuses == [200] + [401] * 19
    answers = [
        (line["worker"], line["status"], line.get("auth"))
        for line in map(json.loads, filter(lambda text: text.startswith("{"), err.splitlines()))
        if line.get("route") == "/test-auth"
    ]
    ((first, _, _),) = [answer for answer in answers if answer[1] == 200]
    replays = [(worker, auth) for worker, status, auth in answers if status != 200]
    assert {auth for _, auth in replays} == {"dpop_replay"}
    assert 1 - first in {worker for worker, _ in replays}, "no replay reached the other worker"
    assert (data_dir / "dpop-replay.sqlite3").exists()


def test_workers_refuse_the_memory_store(env, data_dir):
    done = jotguard(
        "serve", "--workers", "2", env={**env, "JOTGUARD_REVOCATION_STORE": "memory://"}
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "memory://" in done.stderr


def test_workers_refuse_a_separate_metrics_port(env):
    done = jotguard("serve", "--workers", "2", "--metrics", str(free_port()), env=env)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "metrics port" in done.stderr


@pytest.mark.parametrize("value", ["0", "65", "two"])
def test_bad_worker_counts_name_the_variable(value):
    assert str(refusal("JOTGUARD_WORKERS", value)).startswith("JOTGUARD_WORKERS:")


# -- separate instances sharing a store ---------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def shared_store(request, data_dir):
    if request.param == "sqlite":
        yield f"sqlite:///{data_dir}/shared.sqlite3"
        return
    require_service("Redis", reachable(redis_url()))
    prefix = f"jotguard-test:{uuid.uuid4().hex}:"
    yield f"{redis_url()}?prefix={prefix}"
    client = Redis.from_url(redis_url())
    for key in client.scan_iter(match=prefix + "*", count=500):
        client.delete(key)
    client.close()


def test_revoke_through_instance_a_and_instance_b_refuses_the_token(env, shared_store):
    # Polling once a second (the default); Redis announces changes at once besides.
    env = {**env, "JOTGUARD_REVOCATION_STORE": shared_store}
    del env["JOTGUARD_REVOCATION_POLL_INTERVAL"]
    a = Server(env, free_port())
    b = Server(env, free_port())
    try:
        alice, admin = token(env, "alice"), token(env, "root", "admin")
        assert http_get(b.url + "/test-auth", alice)[0] == 200  # verified and cached by B

        assert revoke_through(a.url, admin, {"sub": "alice"}) == 201
        assert http_get(a.url + "/test-auth", alice)[0] == 401  # A applied it before the 201

        assert wait_until(lambda: http_get(b.url + "/test-auth", alice)[0] == 401)
        _, body, _ = http_get(b.url + "/test-auth", alice)
        assert "revoked" in json.loads(body)["error_description"]
        assert http_get(b.url + "/test-auth", token(env, "bob"))[0] == 200
    finally:
        a.stop()
        b.stop()
