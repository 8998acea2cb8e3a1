"""One contract for every IssuanceStore and CatchphraseStore: memory, SQLite, MongoDB.

MongoDB runs against mongomock-motor everywhere (a Motor client, as the stores
must accept), and through pymongo's AsyncMongoClient against the wire-protocol server
at ``MONGODB_URI`` (skipped when unset, required in CI).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid

import pytest

from backends.catchphrases.base import CatchphraseFields, make_catchphrase
from backends.catchphrases.memory import MemoryCatchphraseStore
from backends.catchphrases.mongo import MongoCatchphraseStore
from backends.catchphrases.sqlite import SQLiteCatchphraseStore
from backends.issuance.base import (
    AccessRecord,
    AlreadyExists,
    Client,
    Family,
    RefreshToken,
    Rotation,
    User,
)
from backends.issuance.memory import MemoryIssuanceStore
from backends.issuance.mongo import MongoIssuanceStore
from backends.issuance.sqlite import SQLiteIssuanceStore
from backends.storage.mongodb import mongo_database
from tests.mongo_wire import mongo_uri

# Real wall-clock times: MongoDB's TTL monitor (and mongomock's) drops documents dated
# in the past.
T0 = float(int(time.time()))

KINDS = [
    "memory",
    "sqlite",
    "mongomock",
    pytest.param("mongodb", marks=pytest.mark.mongodb),
]


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


@pytest.fixture
async def mongo(kind):
    """A fresh database per test for the Mongo kinds, else None."""
    name = f"jotguard_test_{uuid.uuid4().hex[:12]}"
    if kind == "mongomock":
        from mongomock_motor import AsyncMongoMockClient

        yield AsyncMongoMockClient()[name]
    elif kind == "mongodb":
        client, _ = mongo_database(mongo_uri())
        yield client[name]
        await client.drop_database(name)
        await client.close()
    else:
        yield None


# Each store's classes for the memory, SQLite and MongoDB kinds.
STORE_CLASSES = {
    "issuance": (MemoryIssuanceStore, SQLiteIssuanceStore, MongoIssuanceStore),
    "catchphrases": (MemoryCatchphraseStore, SQLiteCatchphraseStore, MongoCatchphraseStore),
}


def of_kind(store: str, kind, mongo, tmp_path):
    """The ``store`` of ``kind``; SQLite in ``<store>.sqlite3`` under ``tmp_path``."""
    memory_class, sqlite_class, mongo_class = STORE_CLASSES[store]
    if kind == "memory":
        return memory_class()
    if kind == "sqlite":
        return sqlite_class(tmp_path / f"{store}.sqlite3")
    return mongo_class(mongo)


@pytest.fixture
async def store(kind, mongo, tmp_path):
    made = of_kind("issuance", kind, mongo, tmp_path)
    yield made
    await made.close()


@pytest.fixture
async def phrases(kind, mongo, tmp_path):
    made = of_kind("catchphrases", kind, mongo, tmp_path)
    yield made
    await made.close()


def a_client(name: str = "app", client_id: str | None = None) -> Client:
    return Client(
        client_id=client_id or uuid.uuid4().hex,
        name=name,
        secret_hash="$argon2id$fake",
        grant_types=frozenset({"password", "refresh_token"}),
        scopes=frozenset({"read:catchphrases", "admin"}),
        created_at=100.0,
    )


def a_user(name: str = "alice") -> User:
    return User(uuid.uuid4().hex, name, "$argon2id$fake", frozenset({"a", "b"}), False, 1.0)


def a_token(family: str, *, now: float = T0, ttl: float = 100.0) -> RefreshToken:
    return RefreshToken(
        token_hash=uuid.uuid4().hex,
        family_id=family,
        client_id="c1",
        subject="u1",
        scopes=frozenset({"a"}),
        issued_at=now,
        expires_at=now + ttl,
    )


async def a_family(store, *, subject: str = "u1", now: float = T0):
    family = Family(uuid.uuid4().hex, "c1", subject, now, now + 100)
    token = a_token(family.family_id, now=now)
    access = AccessRecord(uuid.uuid4().hex, now + 15)
    await store.start_family(family, token, access)
    return family, token, access


# -- clients and users ----------------------------------------------------------------


async def test_clients_round_trip(store):
    client = a_client()
    await store.add_client(client)
    assert await store.get_client(client.client_id) == client
    assert await store.get_client("nobody") is None
    assert await store.list_clients() == [client]


async def test_client_names_are_unique(store):
    await store.add_client(a_client("app"))
    with pytest.raises(AlreadyExists):
        await store.add_client(a_client("app"))
    assert len(await store.list_clients()) == 1


async def test_first_client_is_added_only_to_an_empty_registry(store):
    assert await store.add_first_client(a_client("admin")) is True
    assert await store.add_first_client(a_client("admin2")) is False
    assert [c.name for c in await store.list_clients()] == ["admin"]


async def test_client_secret_hash_is_upgraded_only_from_the_hash_it_replaces(store):
    client = a_client()
    await store.add_client(client)
    assert not await store.upgrade_client_secret_hash(client.client_id, "$argon2id$other", "x")
    assert (await store.get_client(client.client_id)).secret_hash == client.secret_hash
    assert await store.upgrade_client_secret_hash(
        client.client_id, client.secret_hash, "hmac-sha256$00"
    )
    assert (await store.get_client(client.client_id)).secret_hash == "hmac-sha256$00"
    assert not await store.upgrade_client_secret_hash("nobody", client.secret_hash, "x")


async def test_users_round_trip_and_disable(store):
    alice, bob = a_user("alice"), a_user("bob")
    await store.add_user(bob)
    await store.add_user(alice)
    assert await store.get_user(alice.user_id) == alice
    assert await store.get_user_by_name("alice") == alice
    assert await store.get_user_by_name("carol") is None
    assert [u.username for u in await store.list_users()] == ["alice", "bob"]

    disabled = await store.set_user_disabled("alice", True)
    assert disabled is not None
    assert disabled.disabled
    assert (await store.get_user(alice.user_id)).disabled
    assert (await store.set_user_disabled("alice", False)).disabled is False
    assert await store.set_user_disabled("carol", True) is None


async def test_usernames_are_unique(store):
    await store.add_user(a_user("alice"))
    with pytest.raises(AlreadyExists):
        await store.add_user(a_user("alice"))


async def test_password_hash_can_be_upgraded(store):
    alice = a_user()
    await store.add_user(alice)
    await store.set_password_hash(alice.user_id, "$argon2id$new")
    assert (await store.get_user(alice.user_id)).password_hash == "$argon2id$new"


async def test_clients_can_be_found_by_name_disabled_rotated_and_deleted(store):
    client, other = a_client("app"), a_client("other")
    await store.add_client(client)
    await store.add_client(other)
    assert await store.get_client_by_name("app") == client
    assert await store.get_client_by_name("nobody") is None

    disabled = await store.set_client_disabled(client.client_id, True)
    assert disabled is not None
    assert disabled.disabled
    assert (await store.get_client(client.client_id)).disabled
    assert (await store.set_client_disabled(client.client_id, False)).disabled is False
    assert await store.set_client_disabled("nobody", True) is None

    rotated = await store.set_client_secret_hash(client.client_id, "$argon2id$rotated")
    assert rotated.secret_hash == "$argon2id$rotated"
    assert (await store.get_client(client.client_id)).secret_hash == "$argon2id$rotated"
    assert await store.set_client_secret_hash("nobody", "x") is None

    deleted = await store.delete_client(client.client_id)
    assert deleted.client_id == client.client_id
    assert await store.get_client(client.client_id) is None
    assert await store.delete_client(client.client_id) is None
    assert await store.list_clients() == [other]
    # The name is free again; a new client gets a new id.
    await store.add_client(a_client("app"))


async def test_users_can_be_deleted(store):
    alice, bob = a_user("alice"), a_user("bob")
    await store.add_user(alice)
    await store.add_user(bob)
    deleted = await store.delete_user(alice.user_id)
    assert deleted.user_id == alice.user_id
    assert await store.get_user(alice.user_id) is None
    assert await store.get_user_by_name("alice") is None
    assert await store.delete_user(alice.user_id) is None
    assert [u.username for u in await store.list_users()] == ["bob"]


# -- refresh-token families -----------------------------------------------------------


async def test_start_family_records_token_and_access(store):
    family, token, access = await a_family(store)
    found = await store.get_refresh_token(token.token_hash)
    assert found is not None
    got_token, got_family = found
    assert got_token == token
    assert got_family.family_id == family.family_id
    assert got_family.revoked_at is None
    assert got_family.access_tokens == (access,)
    assert await store.get_refresh_token("unknown") is None


async def test_rotate_marks_used_and_adds_successor(store):
    family, old, first = await a_family(store)
    new = a_token(family.family_id, now=T0 + 10)
    access = AccessRecord("jti-2", T0 + 25)

    assert await store.rotate(old.token_hash, new, access, now=T0 + 10) is Rotation.ROTATED

    used, fam = await store.get_refresh_token(old.token_hash)
    assert used.used_at == T0 + 10
    assert (await store.get_refresh_token(new.token_hash))[0].used_at is None
    assert set(fam.access_tokens) == {first, access}
    assert fam.expires_at >= new.expires_at


async def test_rotate_twice_is_already_used(store):
    family, old, _ = await a_family(store)
    first = a_token(family.family_id, now=T0 + 10)
    second = a_token(family.family_id, now=T0 + 11)
    await store.rotate(old.token_hash, first, AccessRecord("j2", T0 + 25), now=T0 + 10)
    outcome = await store.rotate(old.token_hash, second, AccessRecord("j3", T0 + 26), now=T0 + 11)
    assert outcome is Rotation.ALREADY_USED


async def test_concurrent_rotations_of_one_token_let_exactly_one_win(store):
    family, old, _ = await a_family(store)
    attempts = [
        store.rotate(
            old.token_hash, a_token(family.family_id), AccessRecord(f"j{n}", T0 + 25), now=T0 + 10
        )
        for n in range(5)
    ]
    outcomes = await asyncio.gather(*attempts)
    assert outcomes.count(Rotation.ROTATED) == 1
    assert outcomes.count(Rotation.ALREADY_USED) == 4


async def test_rotate_in_a_revoked_family_is_refused(store):
    family, old, _ = await a_family(store)
    await store.revoke_family(family.family_id, now=T0 + 5)
    outcome = await store.rotate(
        old.token_hash, a_token(family.family_id), AccessRecord("j2", T0 + 25), now=T0 + 10
    )
    assert outcome is Rotation.FAMILY_REVOKED
    assert (await store.get_refresh_token(old.token_hash))[0].used_at is None


async def test_rotate_unknown_token(store):
    outcome = await store.rotate("nope", a_token("f"), AccessRecord("j", 1), now=1)
    assert outcome is Rotation.UNKNOWN


async def test_rotation_drops_expired_access_records(store):
    family, old, _first = await a_family(store)  # first expires at T0 + 15
    new = a_token(family.family_id, now=T0 + 20)
    await store.rotate(old.token_hash, new, AccessRecord("j2", T0 + 35), now=T0 + 20)
    _, fam = await store.get_refresh_token(new.token_hash)
    assert [a.jti for a in fam.access_tokens] == ["j2"]


async def test_revoke_family_is_idempotent_and_keeps_the_first_time(store):
    family, _, access = await a_family(store)
    revoked = await store.revoke_family(family.family_id, now=T0 + 5)
    again = await store.revoke_family(family.family_id, now=T0 + 9)
    assert revoked.revoked_at == again.revoked_at == T0 + 5
    assert again.access_tokens == (access,)
    assert again.access_revoked is False
    await store.mark_access_revoked(family.family_id)
    assert (await store.revoke_family(family.family_id, now=T0 + 10)).access_revoked is True
    assert await store.revoke_family("unknown", now=1) is None


async def test_revoke_families_of_a_subject(store):
    mine = [await a_family(store, subject="alice") for _ in range(2)]
    other, _, _ = await a_family(store, subject="bob")

    revoked = await store.revoke_families_of("alice", now=T0 + 5)

    assert {f.family_id for f in revoked} == {f.family_id for f, _, _ in mine}
    assert all(f.revoked_at == T0 + 5 for f in revoked)
    assert (await store.revoke_family(other.family_id, now=T0 + 6)).revoked_at == T0 + 6


async def test_revoke_families_of_a_client(store):
    mine, _, _ = await a_family(store, subject="alice")  # client c1
    other = Family(uuid.uuid4().hex, "c2", "alice", T0, T0 + 100)
    await store.start_family(other, a_token(other.family_id), AccessRecord("j9", T0 + 15))

    revoked = await store.revoke_families_of_client("c1", now=T0 + 5)

    assert [f.family_id for f in revoked] == [mine.family_id]
    assert revoked[0].revoked_at == T0 + 5
    assert (await store.revoke_family(other.family_id, now=T0 + 6)).revoked_at == T0 + 6


async def test_add_to_family_branches_a_live_family_only(store):
    family, old, first = await a_family(store)
    successor = a_token(family.family_id)
    await store.rotate(old.token_hash, successor, AccessRecord("j2", T0 + 25), now=T0 + 1)
    branch = a_token(family.family_id, now=T0 + 2, ttl=500)
    access = AccessRecord("j3", T0 + 30)

    assert await store.add_to_family(family.family_id, branch, access, now=T0 + 2) is (
        Rotation.ROTATED
    )
    got, fam = await store.get_refresh_token(branch.token_hash)
    assert got.used_at is None
    assert {a.jti for a in fam.access_tokens} == {first.jti, "j2", "j3"}
    assert fam.expires_at >= branch.expires_at

    await store.revoke_family(family.family_id, now=T0 + 3)
    late = a_token(family.family_id, now=T0 + 4)
    outcome = await store.add_to_family(
        family.family_id, late, AccessRecord("j4", T0 + 30), now=T0 + 4
    )
    assert outcome is Rotation.FAMILY_REVOKED
    unknown = await store.add_to_family("gone", a_token("gone"), AccessRecord("j5", 1), now=1)
    assert unknown is Rotation.UNKNOWN


async def test_a_dpop_binding_is_kept_by_start_rotate_and_branch(store):
    family = Family(uuid.uuid4().hex, "c1", "u1", T0, T0 + 100)
    first = dataclasses.replace(a_token(family.family_id), jkt="thumbprint-of-the-key")
    await store.start_family(family, first, AccessRecord("j1", T0 + 15))
    successor = dataclasses.replace(a_token(family.family_id), jkt=first.jkt)
    await store.rotate(first.token_hash, successor, AccessRecord("j2", T0 + 25), now=T0 + 1)
    branch = dataclasses.replace(a_token(family.family_id), jkt=first.jkt)
    await store.add_to_family(family.family_id, branch, AccessRecord("j3", T0 + 25), now=T0 + 2)

    for token in (first, successor, branch):
        got, _ = await store.get_refresh_token(token.token_hash)
        assert got.jkt == "thumbprint-of-the-key"
    _, unbound, _ = await a_family(store)
    assert (await store.get_refresh_token(unbound.token_hash))[0].jkt is None


async def test_purge_drops_only_what_has_expired(store):
    _family, token, _ = await a_family(store, now=T0)  # token and family end at T0 + 100
    _young, young_token, _ = await a_family(store, now=T0 + 1000)

    assert await store.purge_expired(now=T0 + 500) >= 2

    assert await store.get_refresh_token(token.token_hash) is None
    assert await store.get_refresh_token(young_token.token_hash) is not None


# -- catchphrases ---------------------------------------------------------------------


async def test_catchphrases_crud(phrases):
    item = make_catchphrase(CatchphraseFields("Here's looking at you, kid", "Casablanca"), "u", 5)
    await phrases.add(item)
    assert await phrases.get(item.id) == item

    updated = await phrases.replace(item.id, CatchphraseFields("Play it, Sam"), now=6)
    assert updated.catchphrase == "Play it, Sam"
    assert updated.movie is None
    assert updated.updated_at == 6
    assert updated.created_at == 5
    assert await phrases.replace("missing", CatchphraseFields("x"), now=6) is None

    assert await phrases.delete(item.id) is True
    assert await phrases.delete(item.id) is False
    assert await phrases.get(item.id) is None


async def test_catchphrases_list_pages_by_id(phrases):
    items = [make_catchphrase(CatchphraseFields(f"n{n}"), "u", 1000 + n) for n in range(5)]
    for item in reversed(items):
        await phrases.add(item)
    first = await phrases.list(limit=3)
    assert [i.id for i in first] == [i.id for i in items[:3]]
    rest = await phrases.list(limit=3, after=first[-1].id)
    assert [i.id for i in rest] == [i.id for i in items[3:]]


async def test_sqlite_files_are_private(tmp_path):
    store = SQLiteIssuanceStore(tmp_path / "data" / "issuance.sqlite3")
    try:
        await store.add_client(a_client())
        files = sorted(p.name for p in (tmp_path / "data").iterdir())
        modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "data").iterdir()}
    finally:
        await store.close()
    assert files == ["issuance.sqlite3", "issuance.sqlite3-shm", "issuance.sqlite3-wal"]
    assert set(modes.values()) == {0o600}, modes
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700
