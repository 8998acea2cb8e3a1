"""The in-process revocation mirror: memory-speed checks that stay exactly as strict.

Through HTTP first: a revocation written by another process reaches this one by the
change feed; an acknowledged revocation is enforced here before it returns; a store
outage turns protected requests to 503 once the mirror is older than the freshness
bound, and they recover, without a restart, when the store answers again.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from backends.auth.compact import parse_compact
from backends.errors import BackendUnavailable
from backends.principal import Principal
from backends.revocation import mirror as mirror_module
from backends.revocation.factory import open_store
from backends.revocation.memory import MemoryRevocationStore
from backends.revocation.mirror import RevocationMirror
from backends.revocation.notify import notifier_for
from tests.clock import FakeClock
from tests.conftest import TEST_ISSUER, redis_url
from tests.redis_keys import own_prefix
from tests.revocation_http_support import Proxy
from tests.revocation_stores import STORE_KINDS, open_test_store
from tests.waiting import eventually
from webapp.config.fields import SettingsError
from webapp.config.settings import Settings
from webapp.service import services as services_module


class FlakyStore:
    """Wraps a real store; ``down`` makes every call fail as an unreachable store does.

    ``reads_down`` fails only the change feed, as when a store answers a write and
    then drops."""

    def __init__(self, store) -> None:
        self.store = store
        self.down = False
        self.reads_down = False
        self.durable = store.durable

    def __getattr__(self, name):
        attribute = getattr(self.store, name)
        if not callable(attribute):
            return attribute

        async def call(*args, **kwargs):
            if self.down or (self.reads_down and name == "changes"):
                raise BackendUnavailable("The revocation store cannot answer (test)")
            return await attribute(*args, **kwargs)

        return call


@pytest.fixture
def settings_overrides(tmp_path):
    return {
        "JOTGUARD_REVOCATION_STORE": f"sqlite:///{tmp_path}/shared.sqlite3",
        "JOTGUARD_REVOCATION_POLL_INTERVAL": "0.05",
    }


@pytest.fixture
def flaky(monkeypatch):
    """The app's store, wrapped so the test can take it down."""
    wrapped: list[FlakyStore] = []
    original = services_module.revocation_store

    def open_flaky(settings):
        wrapped.append(FlakyStore(original(settings)))
        return wrapped[0]

    monkeypatch.setattr(services_module, "revocation_store", open_flaky)
    return wrapped


def jti_of(token: str) -> dict:
    return parse_compact(token).claims


async def test_a_revocation_written_by_another_process_reaches_the_server(
    fetch, issue_token, services, settings
):
    assert isinstance(services.revocations, RevocationMirror)
    token = issue_token("alice")
    claims = jti_of(token)
    assert (await fetch("/test-auth", token=token)).code == 200

    # Another process (the CLI, another instance) writes to the same store.
    other = open_store(settings.revocation_store_url)
    await other.revoke_token(claims["jti"], issuer=claims["iss"], expires_at=claims["exp"])
    await other.close()

    async def refused() -> bool:
        return (await fetch("/test-auth", token=token)).code == 401

    assert await eventually(refused)
    response = await fetch("/test-auth", token=token)
    assert "revoked" in response.headers["WWW-Authenticate"]
    assert (await fetch("/test-auth", token=issue_token("alice"))).code == 200


async def test_an_unrevocation_elsewhere_lets_the_token_back_in(
    fetch, issue_token, services, settings
):
    token = issue_token("bob")
    claims = jti_of(token)
    other = open_store(settings.revocation_store_url)
    entry = await other.revoke_token(claims["jti"], issuer=claims["iss"], expires_at=claims["exp"])

    async def status() -> int:
        return (await fetch("/test-auth", token=token)).code

    assert await eventually(lambda: _is(status, 401))
    await other.unrevoke(entry.id)
    await other.close()
    assert await eventually(lambda: _is(status, 200))


async def _is(status, expected: int) -> bool:
    return await status() == expected


async def _revoked(mirror: RevocationMirror, victim: Principal) -> bool:
    return await mirror.is_revoked(victim) is not None


async def test_a_revocation_through_this_process_is_enforced_before_it_returns(
    fetch, issue_token, services
):
    mirror = services.revocations
    # No polling at all from here on: only the write itself may update the mirror.
    for task in mirror._tasks:
        task.cancel()
    token = issue_token("carol")
    assert (await fetch("/test-auth", token=token)).code == 200

    await mirror.revoke_subject("carol", before=time.time() + 1)

    assert (await fetch("/test-auth", token=token)).code == 401


async def test_a_write_acknowledged_while_the_feed_fails_is_still_enforced_here(
    flaky, fetch, issue_token, services
):
    token = issue_token("dave")
    claims = jti_of(token)
    assert (await fetch("/test-auth", token=token)).code == 200
    flaky[0].reads_down = True

    await services.revocations.revoke_token(
        claims["jti"], issuer=claims["iss"], expires_at=claims["exp"]
    )

    response = await fetch("/test-auth", token=token)
    assert response.code == 401, response.body
    # When the feed answers again, the real change replaces the local one: still revoked.
    flaky[0].reads_down = False
    assert await services.revocations.poll()
    assert (await fetch("/test-auth", token=token)).code == 401


async def test_store_down_turns_to_503_after_the_freshness_bound_and_recovers(
    flaky, fetch, issue_token, services
):
    mirror = services.revocations
    clock = FakeClock(time.monotonic() + 1000)
    mirror.monotonic = clock
    assert await mirror.poll()
    token = issue_token("erin")
    assert (await fetch("/test-auth", token=token)).code == 200

    flaky[0].down = True
    assert not await mirror.poll()
    clock.now += services.settings.revocation_freshness  # exactly at the bound: still current
    assert (await fetch("/test-auth", token=token)).code == 200

    clock.now += 0.1
    response = await fetch("/test-auth", token=token)
    assert response.code == 503
    assert response.headers["Retry-After"] == "5"
    assert "WWW-Authenticate" not in response.headers
    assert json.loads(response.body)["error"] == "temporarily_unavailable"

    flaky[0].down = False
    assert await mirror.poll()
    assert (await fetch("/test-auth", token=token)).code == 200


async def test_readiness_reports_a_mirror_behind_the_store(flaky, fetch, services):
    mirror = services.revocations
    clock = FakeClock(time.monotonic() + 1000)
    mirror.monotonic = clock
    assert await mirror.poll()
    assert (await fetch("/readyz")).code == 200

    flaky[0].reads_down = True  # the store answers pings, but the feed fails
    assert not await mirror.poll()
    clock.now += services.settings.revocation_freshness + 0.1
    response = await fetch("/readyz")
    assert response.code == 503
    assert json.loads(response.body)["checks"]["revocation_store"].startswith("failed")

    flaky[0].reads_down = False
    assert await mirror.poll()
    assert (await fetch("/readyz")).code == 200


async def test_a_store_down_at_start_gives_503_until_it_answers(monkeypatch, settings):
    from webapp.service.services import Services

    original = services_module.revocation_store
    flaky: list[FlakyStore] = []

    def open_down(s):
        store = FlakyStore(original(s))
        store.down = True
        flaky.append(store)
        return store

    monkeypatch.setattr(services_module, "revocation_store", open_down)
    services = await Services.start(settings)
    try:
        principal = Principal(subject="x", issuer=TEST_ISSUER, token_id="j", expires_at=2**40)
        with pytest.raises(BackendUnavailable):
            await services.revocations.is_revoked(principal)
        flaky[0].down = False
        assert await services.revocations.poll()
        assert await services.revocations.is_revoked(principal) is None
    finally:
        await services.close()


@pytest.mark.parametrize("settings_overrides", [{"JOTGUARD_REVOCATION_STORE": "memory://"}])
async def test_the_memory_store_is_not_mirrored(services):
    assert isinstance(services.revocations, MemoryRevocationStore)


# -- settings -------------------------------------------------------------------------------


def load(**environ: str) -> Settings:
    return Settings.load(environ={"JOTGUARD_ENV_FILE": "/nonexistent/.env", **environ})


def test_mirror_defaults():
    settings = load()
    assert settings.revocation_poll_interval == 1.0
    assert settings.revocation_freshness == 5.0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("JOTGUARD_REVOCATION_POLL_INTERVAL", "0"),
        ("JOTGUARD_REVOCATION_POLL_INTERVAL", "soon"),
        ("JOTGUARD_REVOCATION_POLL_INTERVAL", "61"),
        ("JOTGUARD_REVOCATION_FRESHNESS", "0.1"),
        ("JOTGUARD_REVOCATION_FRESHNESS", "nan"),
        ("JOTGUARD_REVOCATION_FRESHNESS", "1"),  # not longer than the 1 s poll interval
    ],
)
def test_bad_mirror_settings_name_the_variable(variable, value):
    with pytest.raises(SettingsError) as caught:
        load(**{variable: value})
    assert str(caught.value).startswith(variable + ":")


# -- the mirror decides exactly as its store -----------------------------------------------


def principal(sub: str, jti: str, *, iat: int, client: str = "app") -> Principal:
    return Principal(
        subject=sub,
        issuer=TEST_ISSUER,
        token_id=jti,
        expires_at=iat + 900,
        issued_at=iat,
        client_id=client,
    )


async def test_the_mirror_decides_as_the_store_for_every_kind_of_entry():
    now = time.time()
    store = MemoryRevocationStore()
    mirror = RevocationMirror(store, poll_interval=0.05, freshness=1)
    await mirror.start()
    try:
        await store.revoke_token("j1", issuer=TEST_ISSUER, expires_at=now + 900)
        sub = await store.revoke_subject("alice", before=now - 100)
        await store.revoke_client("bad-app", before=now, issuer=TEST_ISSUER)
        await store.revoke_subject("alice", before=now - 50)  # extends the cutoff
        undone = await store.revoke_token("j9", issuer=TEST_ISSUER, expires_at=now + 900)
        await store.unrevoke(undone.id)
        await store.revoke_client("other", before=now, issuer="http://elsewhere/")
        cases = [
            principal("bob", "j1", iat=int(now)),
            principal("bob", "j2", iat=int(now)),
            principal("alice", "j3", iat=int(now - 80)),
            principal("alice", "j4", iat=int(now - 10)),
            principal("bob", "j5", iat=int(now - 5), client="bad-app"),
            principal("bob", "j9", iat=int(now)),
            principal("bob", "j6", iat=int(now - 5), client="other"),
        ]
        assert await mirror.poll()
        assert mirror.replica.cursor > 0
        decisions = [await mirror.is_revoked(p) for p in cases]
        assert decisions == [await store.is_revoked(p) for p in cases]
        assert [d is not None for d in decisions] == [True, False, True, False, True, False, False]
        # The mirror keeps what decides, not the operator's notes.
        kept = mirror.replica.denylist.live(sub.key, now)
        assert kept is not None
        assert (kept.id, kept.reason, kept.actor) == ("", None, None)
    finally:
        await mirror.close()


async def test_expired_entries_are_purged_in_chunks(monkeypatch):
    # Chunks of 50, not 10,000: the same loop over chunks, without 10,000 revocations.
    chunk = 50
    monkeypatch.setattr(mirror_module, "PURGE_CHUNK", chunk)
    wall = FakeClock(1_000_000.0)
    store = MemoryRevocationStore(clock=wall, leeway=0)
    mirror = RevocationMirror(store, clock=wall)
    for n in range(2 * chunk + 5):  # three chunks, the last one short
        await store.revoke_token(f"old{n}", issuer=TEST_ISSUER, expires_at=wall.now + 10)
    await store.revoke_token("live", issuer=TEST_ISSUER, expires_at=wall.now + 1000)
    await mirror.sync()
    assert len(mirror.replica.denylist) == 2 * chunk + 6

    wall.now += 11
    await mirror._purge_expired()

    assert len(mirror.replica.denylist) == 1
    assert mirror.replica.denylist.live(("jti", TEST_ISSUER, "live"), wall.now) is not None


def test_freshness_must_exceed_the_poll_interval():
    with pytest.raises(ValueError, match="shorter than freshness"):
        RevocationMirror(MemoryRevocationStore(), poll_interval=5, freshness=5)


# -- every store: the mirror follows its feed and decides as it does -----------------------


@pytest.mark.parametrize("kind", STORE_KINDS)
async def test_the_mirror_follows_every_store(kind, tmp_path):
    clock = FakeClock()
    now = clock.now
    async with open_test_store(kind, tmp_path, clock) as store:
        mirror = RevocationMirror(store, poll_interval=0.05, freshness=1, clock=clock)
        await store.revoke_token("j1", issuer=TEST_ISSUER, expires_at=now + 900)
        await store.revoke_subject("alice", before=now - 100)
        undone = await store.revoke_client("bad-app", before=now, issuer=TEST_ISSUER)
        await store.unrevoke(undone.id)
        cases = [
            principal("bob", "j1", iat=int(now)),
            principal("alice", "j3", iat=int(now - 200)),
            principal("alice", "j4", iat=int(now - 10)),
            principal("bob", "j5", iat=int(now - 5), client="bad-app"),
        ]
        expected = [await store.is_revoked(p) for p in cases]
        assert [e is not None for e in expected] == [True, True, False, False]

        async def agrees() -> bool:
            await mirror.sync()  # MongoDB's feed holds back changes younger than `settle`
            return [await mirror.is_revoked(p) for p in cases] == expected

        assert await eventually(agrees)


# -- Redis: pub/sub wakes the mirror at once -------------------------------------------------


@pytest.fixture
async def redis_prefix():
    async with own_prefix() as prefix:
        yield prefix


def slow_polling_mirror(url: str) -> RevocationMirror:
    """Polls once a minute: only a pub/sub announcement can bring a change in sooner."""
    store = open_store(url)
    return RevocationMirror(store, poll_interval=60, freshness=120, notifier=notifier_for(store))


@pytest.mark.redis
async def test_redis_announcements_wake_the_mirror_without_waiting_for_a_poll(redis_prefix):
    url = f"{redis_url()}?prefix={redis_prefix}"
    mirror = slow_polling_mirror(url)
    writer = open_store(url)  # another instance, or the CLI
    await mirror.start()
    try:
        victim = principal("alice", "j1", iat=int(time.time()))
        assert await mirror.is_revoked(victim) is None
        await writer.revoke_token("j1", issuer=TEST_ISSUER, expires_at=time.time() + 900)

        assert await eventually(lambda: _revoked(mirror, victim))
    finally:
        await mirror.close()
        await writer.close()


@pytest.mark.redis
async def test_redis_announcements_resume_after_the_connection_drops(redis_prefix):
    proxy = Proxy(redis_url())
    await proxy.up()
    mirror = slow_polling_mirror(f"redis://127.0.0.1:{proxy.port}/15?prefix={redis_prefix}")
    writer = open_store(f"{redis_url()}?prefix={redis_prefix}")
    await mirror.start()
    try:
        await proxy.down()  # cuts the subscription
        await asyncio.sleep(0.05)
        await proxy.up()
        victim = principal("bob", "j2", iat=int(time.time()))
        await writer.revoke_token("j2", issuer=TEST_ISSUER, expires_at=time.time() + 900)

        assert await eventually(lambda: _revoked(mirror, victim))
    finally:
        await mirror.close()
        await writer.close()
        await proxy.down()


# -- SQLite: PRAGMA data_version wakes the mirror --------------------------------------------


async def test_sqlite_changes_wake_the_mirror_without_waiting_for_a_poll(tmp_path):
    url = f"sqlite:///{tmp_path}/shared.sqlite3"
    mirror = slow_polling_mirror(url)
    writer = open_store(url)  # another process, the CLI, or another worker
    await mirror.start()
    try:
        victim = principal("alice", "j1", iat=int(time.time()))
        assert await mirror.is_revoked(victim) is None
        await writer.revoke_subject("alice", before=time.time(), issuer=TEST_ISSUER)

        assert await eventually(
            lambda: _revoked(mirror, victim)
        )  # a poll would have taken a minute
    finally:
        await mirror.close()
        await writer.close()


async def test_the_sqlite_notifier_wakes_only_when_another_connection_committed(tmp_path):
    url = f"sqlite:///{tmp_path}/shared.sqlite3"
    watched, writer = open_store(url), open_store(url)
    notifier = notifier_for(watched)
    try:
        assert not await notifier.check()  # the first look only sets the baseline
        assert not await notifier.check()
        await writer.revoke_token("j1", issuer=TEST_ISSUER, expires_at=time.time() + 900)
        assert await notifier.check()
        assert not await notifier.check()  # once per change, not on every look
        await watched.changes(0)  # reading the feed is no change
        assert not await notifier.check()
    finally:
        await watched.close()
        await writer.close()


async def test_the_sqlite_notifier_wakes_once_the_store_answers_again(tmp_path):
    url = f"sqlite:///{tmp_path}/shared.sqlite3"
    flaky = FlakyStore(open_store(url))
    notifier = notifier_for(flaky.store)
    notifier.store = flaky
    try:
        assert not await notifier.check()
        flaky.down = True
        assert not await notifier.check()
        flaky.down = False
        # Whatever was written meanwhile: read the feed.
        assert await notifier.check()
        assert not await notifier.check()
    finally:
        await flaky.store.close()
