"""Client secrets: a keyed fast hash (no argon2 per call), old argon2id hashes upgraded."""

from __future__ import annotations

import stat

import pytest

from backends.errors import ConfigError
from backends.issuance.client_secrets import KEY_FILE, ClientSecrets, read_or_create_key
from backends.issuance.passwords import PasswordHasher
from tests.issuance.conftest import body


async def test_client_secrets_are_stored_as_a_keyed_hash_and_checked_without_argon2(
    make_client, token_request, issuance, argon2_checks
):
    client_id, secret = await make_client()
    stored = (await issuance.store.get_client(client_id)).secret_hash
    assert stored.startswith("hmac-sha256$")
    assert secret not in stored

    for path in ("/oauth/token", "/oauth/introspect", "/oauth/revoke"):
        form = {"grant_type": "client_credentials"} if path == "/oauth/token" else {"token": "x"}
        assert (await token_request(form, client=(client_id, secret), path=path)).code == 200
    wrong = await token_request(
        {"grant_type": "client_credentials"}, client=(client_id, secret + "x")
    )
    unknown = await token_request({"grant_type": "client_credentials"}, client=("ghost", secret))
    assert (wrong.code, unknown.code) == (401, 401)
    assert body(wrong) == body(unknown)
    assert argon2_checks == []  # not one argon2 check, known, wrong or unknown


async def test_an_argon2id_client_hash_still_works_and_is_upgraded_on_success(
    make_client, token_request, issuance, argon2_checks
):
    client_id, secret = await make_client()
    legacy = await issuance.hasher.hash(secret)  # what earlier versions stored
    client = await issuance.store.get_client(client_id)
    assert await issuance.store.upgrade_client_secret_hash(client_id, client.secret_hash, legacy)

    wrong = await token_request(
        {"grant_type": "client_credentials"}, client=(client_id, "not-the-secret")
    )
    assert wrong.code == 401
    assert (await issuance.store.get_client(client_id)).secret_hash == legacy  # kept

    right = await token_request({"grant_type": "client_credentials"}, client=(client_id, secret))
    assert right.code == 200
    upgraded = (await issuance.store.get_client(client_id)).secret_hash
    assert upgraded.startswith("hmac-sha256$")
    assert [encoded for encoded, _ in argon2_checks] == [legacy, legacy]

    argon2_checks.clear()
    again = await token_request({"grant_type": "client_credentials"}, client=(client_id, secret))
    assert again.code == 200
    assert argon2_checks == []  # from now on the keyed hash


async def test_an_upgrade_never_overwrites_a_secret_changed_meanwhile(make_client, issuance):
    client_id, _ = await make_client()
    current = (await issuance.store.get_client(client_id)).secret_hash
    assert not await issuance.store.upgrade_client_secret_hash(client_id, "stale", "new")
    assert (await issuance.store.get_client(client_id)).secret_hash == current
    assert not await issuance.store.upgrade_client_secret_hash("ghost", current, "new")


async def test_the_key_is_private_in_the_data_directory_and_other_keys_verify_nothing(
    services, data_dir, tmp_path
):
    secrets = services.issuance.tokens.client_secrets
    secret, stored = await secrets.new_secret()
    path = data_dir / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (await secrets.verify(stored, secret)).matched
    assert not (await secrets.verify(stored, secret + "x")).matched
    assert not (await secrets.verify(None, secret)).matched

    elsewhere = ClientSecrets(tmp_path / "other.key", services.issuance.hasher)
    assert not (await elsewhere.verify(stored, secret)).matched  # keyed: a dump alone says nothing


def test_a_damaged_key_file_is_refused(tmp_path):
    path = tmp_path / KEY_FILE
    path.write_text("not a key\n")
    with pytest.raises(ConfigError, match="not a client-secret key"):
        read_or_create_key(path)


async def test_a_hash_of_unknown_form_never_matches(tmp_path):
    hasher = PasswordHasher(time_cost=1, memory_kib=64, workers=1)
    try:
        secrets = ClientSecrets(tmp_path / KEY_FILE, hasher)
        assert not (await secrets.verify("sha1$abc", "x")).matched
        assert not (await secrets.verify("hmac-sha256$zz\u00e9", "x")).matched
    finally:
        hasher.close()
