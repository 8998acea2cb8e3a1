"""``jotguard serve`` on a Redis without persistence that loses everything (FLUSHALL, a
restart): an acknowledged revocation is enforced within 2 s by the instance that
answered and by the others, and what the instances held is written back for those
started later. Real processes, on a Redis of the test's own."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.cli import Server, cli_env, free_port, http_get, revoke_through, token, wait_until
from tests.redis_server import own_redis

pytestmark = [pytest.mark.slow, pytest.mark.redis]

ISSUER = "http://jotguard.test/"
ENFORCED_WITHIN = 2.0


def refused(server: Server, bearer: str) -> bool:
    return http_get(server.url + "/test-auth", bearer)[0] == 401


def readiness_notes(server: Server) -> dict[str, str]:
    status, body, _ = http_get(server.url + "/readyz")
    assert status == 200, body
    notes: dict[str, str] = json.loads(body).get("notes", {})
    return notes


@pytest.fixture
def redis(tmp_path: Path):
    with own_redis(tmp_path) as server:
        yield server


@pytest.fixture
def env(data_dir: Path, redis) -> dict[str, str]:
    return cli_env(data_dir, JOTGUARD_ISSUER=ISSUER, JOTGUARD_REVOCATION_STORE=redis.url)


@pytest.mark.parametrize("loss", ["FLUSHALL", "restart without persistence"])
def test_a_revocation_acknowledged_after_redis_lost_everything_is_enforced_everywhere(
    env, redis, loss
):
    a, b = Server(env, free_port()), Server(env, free_port())
    try:
        admin = token(env, "root", "admin")
        before = [token(env, f"before-{n}") for n in range(3)]
        for n in range(3):
            assert revoke_through(a.url, admin, {"sub": f"before-{n}"}) == 201
        assert wait_until(lambda: all(refused(s, t) for s in (a, b) for t in before), 5)
        fresh = token(env, "fresh")
        assert not refused(a, fresh)  # verified and cached on both
        assert not refused(b, fresh)

        if loss == "FLUSHALL":
            redis.flushall()
        else:
            redis.restart()

        assert revoke_through(a.url, admin, {"token": fresh}) == 201
        acknowledged = time.monotonic()
        assert wait_until(lambda: refused(a, fresh) and refused(b, fresh), ENFORCED_WITHIN)
        assert time.monotonic() - acknowledged <= ENFORCED_WITHIN
        # What they held before the loss is still refused, and written back.
        assert all(refused(s, t) for s in (a, b) for t in before)
        assert wait_until(
            lambda: "entries written back" in readiness_notes(a).get("revocation_store", ""), 10
        )
        note = readiness_notes(a)["revocation_store"]
        assert "lost or replaced its data" in note
        _, metrics, _ = http_get(a.url + "/metrics")
        assert b'jotguard_revocation_store_reloads_total{reason="epoch_changed"} 1.0' in metrics

        late = Server(env, free_port())  # started after the loss: knows only the store
        try:
            assert all(refused(late, t) for t in [*before, fresh])
            assert not refused(late, token(env, "someone-else"))
        finally:
            late.stop()
    finally:
        _, _, a_log = a.stop()
        _, _, b_log = b.stop()
    assert "lost or replaced its data" in a_log
    assert "lost or replaced its data" in b_log
    assert "Traceback" not in a_log + b_log
