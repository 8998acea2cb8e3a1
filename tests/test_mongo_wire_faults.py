"""The Mongo stores over the wire, through a proxy that loses replies, stalls and cuts.

These run through pymongo's real ``AsyncMongoClient`` against ``MONGODB_URI`` (CI starts
SecantusDB, a MongoDB wire-protocol reimplementation, standalone and then as a
single-node replica set). On a standalone server, as on a standalone ``mongod``, there
are no retryable writes, so a lost acknowledgement reaches the store; on a replica set
the driver resends the write once and the server recognises it, hiding the loss. Each
store must answer within its timeouts with ``BackendUnavailable`` (503),
never a 500 or a hang, and lose nothing it acknowledged.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from backends.catchphrases.factory import open_catchphrase_store
from backends.errors import BackendUnavailable
from backends.issuance.base import AccessRecord, Client, Family, RefreshToken, Rotation
from backends.issuance.factory import open_issuance_store
from backends.issuance.mongo import MongoIssuanceStore
from backends.principal import Principal
from backends.revocation.mongo import MongoRevocationStore
from backends.storage.mongodb import mongo_client
from tests.mongo_wire import WireProxy, mongo_uri, wire_proxy

pytestmark = pytest.mark.mongodb

ISS = "https://issuer.test/"
# Short socket timeouts keep the outage tests quick; the defaults are checked on their own.
# Server selection gets longer: after a lost reply the driver marks the server unknown and
# its monitor looks again only after minHeartbeatFrequencyMS (500 ms).
FAST = {"serverSelectionTimeoutMS": 3000, "connectTimeoutMS": 400, "socketTimeoutMS": 400}
LOST_ENTRY = (b"findAndModify", b"revocations\x00")
LOST_AUDIT = (b"insert", b"revocation_audit")
LOST_COUNTER = (b"findAndModify", b"revocation_counters")
LOST_MARK_USED = (b"findAndModify", b"refresh_tokens", b"used_at")


@pytest.fixture
async def proxy() -> AsyncIterator[WireProxy]:
    async with wire_proxy() as made:
        yield made


@pytest.fixture
async def retried(direct: Any) -> bool:
    """Whether the server is a replica-set member (retryable writes hide one loss)."""
    hello = await direct.client.admin.command("hello")
    return "setName" in hello


async def first_attempt(call: Any, retried: bool) -> Any:
    """The call whose acknowledgement the proxy loses: 503 on a standalone server."""
    if retried:
        return await call
    with pytest.raises(BackendUnavailable):
        await call
    return None


@pytest.fixture
def database() -> str:
    return f"jotguard_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def direct(database: str) -> AsyncIterator[Any]:
    """The test's database, reached around the proxy; dropped afterwards."""
    client, _ = mongo_client(mongo_uri())
    yield client[database]
    await client.drop_database(database)
    await client.close()


@pytest.fixture
async def revocations(proxy: WireProxy, database: str) -> AsyncIterator[MongoRevocationStore]:
    store = MongoRevocationStore.from_url(proxy.url(database, **FAST), settle=0.2)
    yield store
    await store.close()


@pytest.fixture
async def issuance(proxy: WireProxy, database: str) -> AsyncIterator[MongoIssuanceStore]:
    client, _ = mongo_client(proxy.url(database, **FAST))
    store = MongoIssuanceStore(client[database], client=client)
    yield store
    await store.close()


def principal(sub: str = "alice", *, jti: str = "j1", iat: float | None = None) -> Principal:
    issued = int(time.time() - 60 if iat is None else iat)
    return Principal(
        subject=sub,
        issuer=ISS,
        token_id=jti,
        expires_at=issued + 900,
        issued_at=issued,
        client_id="app",
    )


async def unavailable_within(seconds: float, call: Any) -> float:
    started = time.monotonic()
    with pytest.raises(BackendUnavailable):
        await asyncio.wait_for(call, seconds + 5)  # a hang fails here, with its stack
    took = time.monotonic() - started
    assert took < seconds, f"answered after {took:.1f} s"
    return took


# -- revocation: a lost acknowledgement answers 503 with the write in force -----------------


@pytest.mark.parametrize("lost", [LOST_ENTRY, LOST_AUDIT, LOST_COUNTER], ids=lambda n: n[1])
async def test_a_lost_reply_of_a_revoke_answers_503_and_its_retry_converges(
    revocations: MongoRevocationStore, proxy: WireProxy, lost: tuple[bytes, ...], retried: bool
) -> None:
    proxy.drop_reply(*lost)
    revoking = revocations.revoke_subject("alice", before=time.time(), actor="ops")
    await first_attempt(revoking, retried)
    assert proxy.dropped == 1

    entry = await revocations.revoke_subject("alice", before=time.time(), actor="ops")

    assert await revocations.is_revoked(principal()) is not None
    listed = (await revocations.list_entries()).entries
    assert [e.id for e in listed] == [entry.id]  # one entry: the retry merged into it
    audit = (await revocations.audit_log()).records
    assert [r.action for r in audit] in (["revoke"], ["revoke", "revoke"])
    assert {r.entry_id for r in audit} == {entry.id}


async def test_a_lost_reply_of_an_unrevoke_leaves_it_done(
    revocations: MongoRevocationStore, proxy: WireProxy, retried: bool
) -> None:
    entry = await revocations.revoke_token("j1", issuer=ISS, expires_at=time.time() + 600)
    proxy.drop_reply(*LOST_ENTRY)
    await first_attempt(revocations.unrevoke(entry.id), retried)
    assert await revocations.is_revoked(principal()) is None
    assert await revocations.unrevoke(entry.id) is None  # already done: nothing to undo


async def test_concurrent_revokes_against_a_slow_server_all_succeed(
    proxy: WireProxy, database: str
) -> None:
    # Every reply 15 ms late: compare-and-set writers retrying in lockstep used to run
    # out of attempts (the last of N writers needs N tries).
    proxy.delay = 0.015
    store = MongoRevocationStore.from_url(proxy.url(database, **FAST), settle=2.0)
    try:
        cutoffs = [time.time() - 100 + n for n in range(40)]
        written = await asyncio.gather(
            *(store.revoke_subject("alice", before=c, actor=f"w{n}") for n, c in enumerate(cutoffs))
        )
        listed = (await store.list_entries()).entries
        assert len(listed) == 1
        assert listed[0].cutoff == max(cutoffs)
        assert {e.id for e in written} == {listed[0].id}
    finally:
        await store.close()


async def test_a_server_that_stops_answering_gives_503_within_the_timeouts(
    revocations: MongoRevocationStore, proxy: WireProxy
) -> None:
    await revocations.ping()
    proxy.stall()
    # At most: the socket timeout, the monitor's timeout, then server selection's.
    await unavailable_within(5.0, revocations.is_revoked(principal()))
    await unavailable_within(5.0, revocations.revoke_subject("alice", before=time.time()))
    proxy.release()
    proxy.cut()
    # Back: the same store answers again by itself.
    for _ in range(50):
        try:
            await revocations.ping()
            break
        except BackendUnavailable:
            await asyncio.sleep(0.1)
    assert await revocations.is_revoked(principal()) is None


# -- issuance: rotation ---------------------------------------------------------------------


def refresh_token(family_id: str, now: float) -> RefreshToken:
    return RefreshToken(uuid.uuid4().hex, family_id, "c1", "u1", frozenset({"a"}), now, now + 600)


async def login(store: MongoIssuanceStore, now: float) -> RefreshToken:
    family = Family(uuid.uuid4().hex, "c1", "u1", now, now + 600)
    first = refresh_token(family.family_id, now)
    await store.start_family(family, first, AccessRecord(uuid.uuid4().hex, now + 60))
    return first


async def test_a_rotation_whose_reply_was_lost_is_retried_not_taken_for_theft(
    issuance: MongoIssuanceStore, proxy: WireProxy, retried: bool
) -> None:
    now = time.time()
    old = await login(issuance, now)
    lost, retry = refresh_token(old.family_id, now), refresh_token(old.family_id, now + 1)
    proxy.drop_reply(*LOST_MARK_USED)
    first = issuance.rotate(old.token_hash, lost, AccessRecord("a1", now + 60), now=now)
    hidden = await first_attempt(first, retried)
    assert proxy.dropped == 1
    if hidden is not None:  # the driver resent it: answered, so a second use is reuse
        assert hidden is Rotation.ROTATED
        again = issuance.rotate(old.token_hash, retry, AccessRecord("a2", now + 61), now=now + 1)
        assert await again is Rotation.ALREADY_USED
        return

    outcome = await issuance.rotate(
        old.token_hash, retry, AccessRecord("a2", now + 61), now=now + 1
    )

    assert outcome is Rotation.ROTATED
    family = (await issuance.get_refresh_token(retry.token_hash))[1]
    assert family.revoked_at is None
    # The successor whose answer was lost is superseded: presenting it is reuse.
    superseded = (await issuance.get_refresh_token(lost.token_hash))[0]
    assert superseded.used_at is not None
    after = refresh_token(old.family_id, now + 2)
    assert (
        await issuance.rotate(lost.token_hash, after, AccessRecord("a3", now + 62), now=now + 2)
        is Rotation.ALREADY_USED
    )
    # And the retry's own successor rotates as usual.
    assert (
        await issuance.rotate(retry.token_hash, after, AccessRecord("a4", now + 62), now=now + 2)
        is Rotation.ROTATED
    )


async def test_a_rotation_that_was_answered_is_not_replayed(
    issuance: MongoIssuanceStore,
) -> None:
    now = time.time()
    old = await login(issuance, now)
    first = refresh_token(old.family_id, now)
    assert await issuance.rotate(old.token_hash, first, AccessRecord("a1", now + 60), now=now) is (
        Rotation.ROTATED
    )
    again = refresh_token(old.family_id, now + 1)
    assert (
        await issuance.rotate(old.token_hash, again, AccessRecord("a2", now + 61), now=now + 1)
        is Rotation.ALREADY_USED
    )


@pytest.mark.parametrize(
    "lost",
    [(b"insert", b"refresh_tokens"), (b"findAndModify", b"refresh_families", b"$push")],
    ids=["successor", "family"],
)
async def test_a_lost_reply_before_the_old_token_is_marked_leaves_it_usable(
    issuance: MongoIssuanceStore, proxy: WireProxy, lost: tuple[bytes, ...], retried: bool
) -> None:
    now = time.time()
    old = await login(issuance, now)
    proxy.drop_reply(*lost)
    successor = refresh_token(old.family_id, now)
    first = issuance.rotate(old.token_hash, successor, AccessRecord("a1", now + 60), now=now)
    if await first_attempt(first, retried) is Rotation.ROTATED:
        return  # the driver resent it
    retry = refresh_token(old.family_id, now + 1)
    assert (
        await issuance.rotate(old.token_hash, retry, AccessRecord("a2", now + 61), now=now + 1)
        is Rotation.ROTATED
    )


# -- a hung server: every Mongo store is bounded by the shared timeouts ----------------------


async def test_every_store_client_has_socket_connect_and_selection_timeouts() -> None:
    client, _ = mongo_client("mongodb://127.0.0.1:1/jg")
    try:
        options = client.options.pool_options
        assert options.socket_timeout == 2.0
        assert options.connect_timeout == 1.0
        assert client.options.server_selection_timeout == 1.0
    finally:
        await client.close()
    mine, _ = mongo_client("mongodb://127.0.0.1:1/jg?socketTimeoutMS=7000")
    try:
        assert mine.options.pool_options.socket_timeout == 7.0  # the URL's own wins
    finally:
        await mine.close()


async def test_a_hung_find_is_bounded_by_the_default_socket_timeout(
    proxy: WireProxy, database: str
) -> None:
    # Each store as its factory opens it, with the defaults: nothing in the URL.
    store = open_issuance_store(proxy.url(database))
    phrases = open_catchphrase_store(proxy.url(database))
    try:
        await store.add_client(
            Client("c1", "app", "hash", frozenset({"client_credentials"}), frozenset(), 0.0)
        )
        await phrases.list(limit=10)
        proxy.stall(b"find")
        # Socket timeout 2 s, and the driver retries a read once: both at once.
        await asyncio.gather(
            unavailable_within(6.0, store.get_client("c1")),
            unavailable_within(6.0, phrases.list(limit=10)),
        )
    finally:
        proxy.release()
        await store.close()
        await phrases.close()
