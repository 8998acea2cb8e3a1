"""The Mongo issuance store's replay of a rotation whose answer was lost, and every case it
refuses (reuse, never a second successor): on mongomock, with the lost acknowledgement
played by clearing ``answered`` as a lost reply leaves it. Over the wire, with a real lost
reply, see tests/test_mongo_wire_faults.py."""

from __future__ import annotations

import uuid

import pytest
from mongomock_motor import AsyncMongoMockClient

from backends.issuance.base import (
    ROTATION_REPLAY_WINDOW,
    AccessRecord,
    Family,
    RefreshToken,
    Rotation,
)
from backends.issuance.mongo import MongoIssuanceStore

T0 = 1_900_000_000.0


def token(family_id: str, now: float) -> RefreshToken:
    return RefreshToken(uuid.uuid4().hex, family_id, "c1", "u1", frozenset({"a"}), now, now + 600)


@pytest.fixture
async def store():
    made = MongoIssuanceStore(AsyncMongoMockClient()[f"replay_{uuid.uuid4().hex[:8]}"])
    yield made
    await made.close()


async def rotated_unanswered(store: MongoIssuanceStore) -> tuple[RefreshToken, RefreshToken]:
    """(old, successor): old rotated to successor, whose answer never reached the client."""
    family = Family(uuid.uuid4().hex, "c1", "u1", T0, T0 + 600)
    old = token(family.family_id, T0)
    await store.start_family(family, old, AccessRecord("a0", T0 + 60))
    successor = token(family.family_id, T0)
    rotated = await store.rotate(old.token_hash, successor, AccessRecord("a1", T0 + 60), now=T0)
    assert rotated is Rotation.ROTATED
    await store.tokens.update_one({"_id": old.token_hash}, {"$unset": {"answered": ""}})
    return old, successor


async def present(store: MongoIssuanceStore, presented: RefreshToken, now: float) -> Rotation:
    fresh = token(presented.family_id, now)
    return await store.rotate(presented.token_hash, fresh, AccessRecord("ax", now + 60), now=now)


async def test_a_retry_within_the_window_is_replayed_and_supersedes_the_lost_successor(store):
    old, lost = await rotated_unanswered(store)
    assert await present(store, old, T0 + 1) is Rotation.ROTATED
    assert await present(store, lost, T0 + 2) is Rotation.ALREADY_USED  # superseded: reuse


async def test_a_replayed_rotation_is_answered_and_not_replayed_again(store):
    old, _ = await rotated_unanswered(store)
    assert await present(store, old, T0 + 1) is Rotation.ROTATED
    assert await present(store, old, T0 + 2) is Rotation.ALREADY_USED


async def test_no_replay_once_the_successor_was_used(store):
    old, successor = await rotated_unanswered(store)
    assert await present(store, successor, T0 + 1) is Rotation.ROTATED  # the answer arrived
    assert await present(store, old, T0 + 2) is Rotation.ALREADY_USED


async def test_no_replay_after_the_window(store):
    old, _ = await rotated_unanswered(store)
    late = T0 + ROTATION_REPLAY_WINDOW + 1
    assert await present(store, old, late) is Rotation.ALREADY_USED


async def test_no_replay_of_a_rotation_that_was_answered(store):
    old, successor = await rotated_unanswered(store)
    await store.tokens.update_one({"_id": old.token_hash}, {"$set": {"answered": True}})
    assert await present(store, old, T0 + 1) is Rotation.ALREADY_USED
    # And the holder of the answered successor keeps it: nothing superseded it.
    assert await present(store, successor, T0 + 2) is Rotation.ROTATED


async def test_no_replay_in_a_revoked_family(store):
    old, _ = await rotated_unanswered(store)
    await store.revoke_family(old.family_id, now=T0 + 1)
    assert await present(store, old, T0 + 2) is Rotation.FAMILY_REVOKED
