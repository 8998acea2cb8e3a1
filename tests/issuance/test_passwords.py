"""argon2id checks: unknown users cost a full verification; old hashes are upgraded."""

from __future__ import annotations

from backends.issuance.passwords import PasswordHasher
from tests.issuance.conftest import PASSWORD


async def test_unknown_user_runs_the_same_argon2_work_as_a_wrong_password(
    make_client, make_user, password_grant, argon2_checks
):
    client = await make_client()
    alice = await make_user("alice")
    argon2_checks.clear()

    await password_grant(client, username="alice", password="wrong password")
    wrong = [encoded for encoded, _ in argon2_checks]
    argon2_checks.clear()
    await password_grant(client, username="nobody", password="wrong password")
    unknown = [encoded for encoded, _ in argon2_checks]

    # One password check each (the client's secret is a keyed hash, no argon2), against
    # hashes of equal cost.
    assert len(wrong) == len(unknown) == 1
    assert wrong[0] == alice.password_hash
    assert unknown[0] != alice.password_hash
    assert unknown[0].split("$")[:4] == alice.password_hash.split("$")[:4]  # same parameters


async def test_login_upgrades_a_hash_made_with_weaker_parameters(
    make_client, make_user, password_grant, issuance
):
    client = await make_client()
    old = PasswordHasher(time_cost=1, memory_kib=64)
    try:
        weak = await old.hash(PASSWORD)
    finally:
        old.close()
    alice = await make_user("alice")
    await issuance.store.set_password_hash(alice.user_id, weak)
    stronger = PasswordHasher(time_cost=2, memory_kib=64)
    issuance.tokens.hasher = stronger
    try:
        assert (await password_grant(client)).code == 200
        upgraded = (await issuance.store.get_user(alice.user_id)).password_hash
        assert upgraded != weak
        assert "t=2" in upgraded
        assert (await password_grant(client)).code == 200
    finally:
        stronger.close()


async def test_hasher_verify_rejects_garbage_hashes_without_raising():
    hasher = PasswordHasher(time_cost=1, memory_kib=64, workers=1)
    try:
        assert await hasher.verify("not-a-hash", "x") is False
        assert await hasher.verify(None, "x") is False
        assert await hasher.verify(await hasher.hash("x"), "x") is True
    finally:
        hasher.close()
