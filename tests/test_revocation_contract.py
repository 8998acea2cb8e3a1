"""One contract, every store: memory, SQLite (a real file), Redis (a real server),
MongoDB through mongomock-motor, and a real MongoDB when MONGODB_URI is set."""

from __future__ import annotations

import asyncio
import random
import secrets

import pytest

from backends.principal import Principal
from backends.revocation.policy import Denylist
from tests.revocation_stores import (
    JTI_GRACE,
    LEEWAY,
    STORE_KINDS,
    SUB_COVER,
    Clock,
    open_test_store,
)

ISS = "http://jotguard.test/"
OTHER_ISS = "https://tenant.auth0.test/"


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture(params=STORE_KINDS)
async def store(request, tmp_path, clock):
    async with open_test_store(request.param, tmp_path, clock) as opened:
        yield opened


def token(
    clock,
    sub="alice",
    *,
    iss=ISS,
    jti=None,
    client_id="app",
    iat=0.0,
    no_iat=False,
    no_jti=False,
    leeway=0,
):
    """A verified token's Principal, issued ``iat`` seconds relative to the clock, by a
    verifier that allowed ``leeway`` seconds of clock skew."""
    issued = int(clock.now + iat)
    return Principal(
        subject=sub,
        issuer=iss,
        token_id=None if no_jti else (jti or secrets.token_urlsafe(8)),
        expires_at=issued + 900,
        issued_at=None if no_iat else issued,
        client_id=client_id,
        leeway=leeway,
    )


async def revoked(store, principal):
    return await store.is_revoked(principal) is not None


# -- one token ---------------------------------------------------------------------------


async def test_revoked_jti_is_refused_and_others_are_not(store, clock):
    victim, bystander = token(clock), token(clock)
    entry = await store.revoke_token(
        victim.token_id, issuer=ISS, expires_at=victim.expires_at, reason="leaked", actor="ops"
    )
    assert (entry.kind, entry.value, entry.issuer, entry.reason, entry.actor) == (
        "jti",
        victim.token_id,
        ISS,
        "leaked",
        "ops",
    )
    assert entry.expires_at == victim.expires_at + JTI_GRACE
    assert await store.is_revoked(victim) == "The token has been revoked"
    assert not await revoked(store, bystander)


async def test_jti_is_keyed_by_issuer(store, clock):
    ours = token(clock, jti="same-id")
    theirs = token(clock, jti="same-id", iss=OTHER_ISS)
    await store.revoke_token("same-id", issuer=ISS, expires_at=ours.expires_at)
    assert await revoked(store, ours)
    assert not await revoked(store, theirs)


# -- subjects and clients ----------------------------------------------------------------


async def test_subject_cutoff_revokes_earlier_tokens_only(store, clock):
    clock.now = float(int(clock.now))  # a whole second: iat == cutoff below
    before = token(clock, "alice", iat=-60)
    at_cutoff = token(clock, "alice")
    bob = token(clock, "bob", iat=-60)
    entry = await store.revoke_subject("alice", before=clock.now)
    assert entry.issuer is None
    assert entry.expires_at == pytest.approx(clock.now + SUB_COVER)
    clock.advance(5)
    after = token(clock, "alice")
    assert await revoked(store, before)
    assert await revoked(store, at_cutoff)  # iat has one-second resolution: same second counts
    assert not await revoked(store, after)
    assert not await revoked(store, bob)
    assert "subject" in await store.is_revoked(before)


async def test_client_cutoff_revokes_every_subject_of_the_client(store, clock):
    alice = token(clock, "alice", client_id="leaky-app", iat=-10)
    bob = token(clock, "bob", client_id="leaky-app", iat=-10)
    other = token(clock, "carol", client_id="good-app", iat=-10)
    await store.revoke_client("leaky-app", before=clock.now)
    assert await revoked(store, alice)
    assert await revoked(store, bob)
    assert not await revoked(store, other)
    assert "client" in await store.is_revoked(alice)


async def test_subject_entry_scoped_to_an_issuer_spares_other_issuers(store, clock):
    local = token(clock, "alice", iat=-10)
    remote = token(clock, "alice", iss=OTHER_ISS, iat=-10)
    await store.revoke_subject("alice", before=clock.now, issuer=OTHER_ISS)
    assert await revoked(store, remote)
    assert not await revoked(store, local)


async def test_unscoped_subject_entry_covers_every_issuer(store, clock):
    local = token(clock, "alice", iat=-10)
    remote = token(clock, "alice", iss=OTHER_ISS, iat=-10)
    await store.revoke_subject("alice", before=clock.now)
    assert await revoked(store, local)
    assert await revoked(store, remote)


async def test_effective_cutoff_is_the_latest_of_all_that_apply(store, clock):
    start = clock.now
    await store.revoke_subject("alice", before=start - 100)  # every issuer, early
    await store.revoke_client("app", before=start - 50, issuer=ISS)
    await store.revoke_subject("alice", before=start - 10, issuer=ISS)  # latest
    assert await revoked(store, token(clock, "alice", iat=-20))
    assert not await revoked(store, token(clock, "alice", iat=0))
    # only the early, unscoped entry applies to the other issuer
    assert not await revoked(store, token(clock, "alice", iss=OTHER_ISS, client_id="x", iat=-20))
    assert await revoked(store, token(clock, "alice", iss=OTHER_ISS, client_id="x", iat=-200))
    # the client entry alone covers bob up to its own cutoff
    assert await revoked(store, token(clock, "bob", iat=-60))
    assert not await revoked(store, token(clock, "bob", iat=-40))


@pytest.mark.parametrize("kind", ["sub", "client"])
async def test_a_cutoff_covers_tokens_stamped_up_to_the_leeway_after_it(store, clock, kind):
    # An issuer whose clock runs fast stamps a token made before the cutoff with a later
    # iat; the verifier accepts it while iat <= its clock + leeway.
    cutoff = clock.now
    if kind == "sub":
        await store.revoke_subject("alice", before=cutoff)
    else:
        await store.revoke_client("app", before=cutoff)
    fast = token(clock, "alice", iat=LEEWAY, leeway=LEEWAY)
    assert await revoked(store, fast)
    assert await revoked(store, token(clock, "alice", iat=LEEWAY - 5, leeway=LEEWAY))
    # Stamped past the leeway window: issued after the cutoff whatever the clocks.
    assert not await revoked(store, token(clock, "alice", iat=LEEWAY + 1, leeway=LEEWAY))
    # A verifier that allowed no skew needs no margin.
    assert not await revoked(store, token(clock, "alice", iat=1, leeway=0))


async def test_token_without_iat_is_revoked_by_any_applicable_cutoff(store, clock):
    no_iat = token(clock, "alice", no_iat=True)
    assert not await revoked(store, no_iat)
    await store.revoke_subject("alice", before=clock.now - 3600)
    assert await revoked(store, no_iat)
    assert not await revoked(store, token(clock, "bob", no_iat=True, client_id=None))


async def test_token_without_jti_is_covered_by_subject_and_client(store, clock):
    no_jti = token(clock, "alice", no_jti=True, iat=-5)
    assert not await revoked(store, no_jti)
    await store.revoke_client("app", before=clock.now)
    assert await revoked(store, no_jti)


# -- repeats, undo ------------------------------------------------------------------------


async def test_repeated_revoke_keeps_one_entry_with_the_latest_cutoff(store, clock):
    first = await store.revoke_subject("alice", before=clock.now, reason="first", actor="a")
    clock.advance(60)
    second = await store.revoke_subject("alice", before=clock.now, reason="second", actor="b")
    assert second.id == first.id
    assert (second.reason, second.actor) == ("first", "a")
    assert second.cutoff == pytest.approx(clock.now)
    assert second.expires_at == pytest.approx(clock.now + SUB_COVER)
    # an earlier cutoff never moves it back
    third = await store.revoke_subject("alice", before=clock.now - 3000)
    assert third.cutoff == pytest.approx(clock.now)
    assert await revoked(store, token(clock, "alice", iat=-30))
    page = await store.list_entries()
    assert [e.id for e in page.entries] == [first.id]


async def test_repeated_jti_revoke_is_idempotent_and_keeps_the_later_expiry(store, clock):
    a = await store.revoke_token("t1", issuer=ISS, expires_at=clock.now + 100)
    b = await store.revoke_token("t1", issuer=ISS, expires_at=clock.now + 50)
    assert b.id == a.id
    assert b.expires_at == pytest.approx(clock.now + 100 + JTI_GRACE)


async def test_unrevoke_restores_and_is_not_repeatable(store, clock):
    victim = token(clock)
    entry = await store.revoke_token(victim.token_id, issuer=ISS, expires_at=victim.expires_at)
    removed = await store.unrevoke(entry.id, reason="mistake", actor="ops")
    assert removed is not None
    assert removed.id == entry.id
    assert not await revoked(store, victim)
    assert await store.unrevoke(entry.id) is None
    assert await store.unrevoke("no-such-id") is None
    assert (await store.list_entries()).entries == []
    again = await store.revoke_token(victim.token_id, issuer=ISS, expires_at=victim.expires_at)
    assert again.id != entry.id
    assert await revoked(store, victim)


# -- expiry --------------------------------------------------------------------------------


async def test_jti_entry_expires_after_exp_plus_leeway(store, clock):
    victim = token(clock)
    await store.revoke_token(victim.token_id, issuer=ISS, expires_at=victim.expires_at)
    clock.now = victim.expires_at + LEEWAY + 0.9
    assert await revoked(store, victim)
    clock.now = victim.expires_at + LEEWAY + 1
    assert not await revoked(store, victim)
    assert (await store.list_entries()).entries == []


async def test_subject_entry_outlives_the_longest_accepted_token(store, clock):
    start = clock.now
    old = token(clock, "alice", iat=0)
    entry = await store.revoke_subject("alice", before=start)
    clock.now = start + SUB_COVER - 0.1
    assert await revoked(store, old)
    clock.now = start + SUB_COVER
    assert not await revoked(store, old)
    assert await store.unrevoke(entry.id) is None


async def test_expired_entry_is_replaced_not_extended(store, clock):
    first = await store.revoke_token("t1", issuer=ISS, expires_at=clock.now + 10)
    clock.advance(10 + JTI_GRACE)
    second = await store.revoke_token("t1", issuer=ISS, expires_at=clock.now + 10)
    assert second.id != first.id
    assert second.created_at == pytest.approx(clock.now)


# -- listing, audit ------------------------------------------------------------------------


async def test_list_is_newest_first_with_cursor_pagination(store, clock):
    ids = []
    for n in range(7):
        ids.append((await store.revoke_subject(f"user{n}", before=clock.now)).id)
        clock.advance(1)
    seen, cursor = [], None
    while True:
        page = await store.list_entries(limit=3, cursor=cursor)
        assert len(page.entries) <= 3
        seen.extend(e.id for e in page.entries)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == list(reversed(ids))


async def test_list_rejects_a_cursor_it_did_not_hand_out(store):
    with pytest.raises(ValueError, match="cursor"):
        await store.list_entries(cursor="'; DROP TABLE x; --")


async def test_audit_log_records_every_action_newest_first(store, clock):
    entry = await store.revoke_subject("alice", before=clock.now, reason="stolen", actor="root")
    clock.advance(1)
    await store.unrevoke(entry.id, reason="found it", actor="ops")
    log = await store.audit_log(limit=1)
    assert len(log.records) == 1
    latest = log.records[0]
    assert (latest.action, latest.entry_id, latest.actor, latest.reason) == (
        "unrevoke",
        entry.id,
        "ops",
        "found it",
    )
    rest = await store.audit_log(limit=10, cursor=log.next_cursor)
    assert rest.next_cursor is None
    [first] = rest.records
    assert (first.action, first.kind, first.value, first.actor, first.reason) == (
        "revoke",
        "sub",
        "alice",
        "root",
        "stolen",
    )
    assert first.at == pytest.approx(clock.now - 1)


async def test_ping(store):
    await store.ping()


# -- change feed -----------------------------------------------------------------------------


async def drain(store, mirror):
    while True:
        batch = await store.changes(mirror.cursor, limit=4)
        for change in batch.changes:
            mirror.apply(change)
        if batch.cursor == mirror.cursor and not batch.changes:
            return
        mirror.cursor = batch.cursor


async def test_change_feed_reports_revocations_and_tombstones(store, clock):
    mirror = Denylist()
    victim = token(clock)
    entry = await store.revoke_token(victim.token_id, issuer=ISS, expires_at=victim.expires_at)
    await drain(store, mirror)
    assert mirror.decide(victim, clock.now) == entry
    start = mirror.cursor
    await store.unrevoke(entry.id)
    batch = await store.changes(start)
    assert [(c.entry.id, c.removed) for c in batch.changes] == [(entry.id, True)]
    assert batch.cursor > start
    mirror.apply(batch.changes[0])
    assert mirror.decide(victim, clock.now) is None
    assert (await store.changes(batch.cursor)).changes == []


async def test_a_mirror_fed_by_the_change_feed_decides_like_the_store(store, clock):
    rng = random.Random(4)  # a fixed, varied history
    subjects, clients, issuers = ["alice", "bob", "carol"], ["app", "cli"], [ISS, OTHER_ISS]
    jtis = [f"j{n}" for n in range(6)]
    tokens = [
        token(
            clock,
            rng.choice(subjects),
            iss=rng.choice(issuers),
            jti=rng.choice(jtis),
            client_id=rng.choice(clients),
            iat=rng.randint(-400, 0),
            no_iat=rng.random() < 0.1,
        )
        for _ in range(40)
    ]
    mirror = Denylist()
    for step in range(30):
        roll = rng.random()
        if roll < 0.3:
            await store.revoke_token(
                rng.choice(jtis), issuer=rng.choice(issuers), expires_at=clock.now + 900
            )
        elif roll < 0.55:
            issuer = rng.choice([None, *issuers])
            before = clock.now - rng.randint(0, 400)
            await store.revoke_subject(rng.choice(subjects), before=before, issuer=issuer)
        elif roll < 0.75:
            issuer = rng.choice([None, *issuers])
            before = clock.now - rng.randint(0, 400)
            await store.revoke_client(rng.choice(clients), before=before, issuer=issuer)
        else:
            live = (await store.list_entries(limit=500)).entries
            if live:
                await store.unrevoke(rng.choice(live).id)
        if step % 7 == 0:
            await drain(store, mirror)
    await drain(store, mirror)
    decisions = 0
    for principal in tokens:
        expected = await store.find(principal)
        assert mirror.decide(principal, clock.now) == expected
        decisions += expected is not None
    assert 0 < decisions < len(tokens)  # the history revokes some tokens, not all


async def test_concurrent_revokes_of_one_subject_keep_the_latest_cutoff(store, clock):
    start = clock.now
    befores = [start - n for n in range(0, 400, 17)]
    random.Random(1).shuffle(befores)
    entries = await asyncio.gather(*(store.revoke_subject("alice", before=b) for b in befores))
    assert len({e.id for e in entries}) == 1
    [entry] = (await store.list_entries()).entries
    assert entry.cutoff == pytest.approx(start)
    log = await store.audit_log(limit=500)
    assert len(log.records) == len(befores)
