"""No issuance hands out a token the server would refuse.

A subject or client cutoff covers tokens stamped up to the clock leeway after it (a
fast issuer clock must not let a token escape it), so a token signed within that window
is dead on arrival: the token endpoint answers 503 with ``Retry-After`` instead, and
``jotguard token issue`` exits non-zero.
"""

from __future__ import annotations

import time

from tests.cli import cli_env, initialised, jotguard
from tests.issuance.conftest import body


async def test_a_login_just_after_a_subject_cutoff_is_deferred_not_dead(
    services, make_client, make_user, password_grant, token_request, fetch
):
    client = await make_client()
    user = await make_user()
    await services.revocations.revoke_subject(user.user_id, before=time.time())

    response = await password_grant(client)

    assert response.code == 503, response.body
    assert body(response)["error"] == "temporarily_unavailable"
    assert "access_token" not in body(response)
    assert int(response.headers["Retry-After"]) == services.settings.leeway + 1


async def test_a_client_credentials_grant_just_after_a_client_cutoff_is_deferred(
    services, make_client, token_request
):
    client = await make_client()
    await services.revocations.revoke_client(client[0], before=time.time())

    response = await token_request({"grant_type": "client_credentials"}, client=client)

    assert response.code == 503, response.body
    assert "access_token" not in body(response)
    assert "Retry-After" in response.headers


async def test_the_refresh_family_of_a_deferred_login_is_revoked(
    monkeypatch, services, make_client, make_user, password_grant
):
    client = await make_client()
    user = await make_user()
    await services.revocations.revoke_subject(user.user_id, before=time.time())
    store = services.issuance.store
    started = []
    original = store.start_family

    async def spy(family, token, access):
        started.append(token)
        await original(family, token, access)

    monkeypatch.setattr(store, "start_family", spy)

    assert (await password_grant(client)).code == 503

    [token] = started
    found = await store.get_refresh_token(token.token_hash)
    assert found is not None
    assert found[1].revoked_at is not None


async def test_once_the_leeway_has_passed_the_login_gets_a_token_the_server_accepts(
    services, make_client, make_user, password_grant, fetch
):
    client = await make_client()
    user = await make_user()
    past = time.time() - services.settings.leeway - 2
    await services.revocations.revoke_subject(user.user_id, before=past)

    response = await password_grant(client)

    assert response.code == 200, response.body
    token = body(response)["access_token"]
    protected = await fetch("/test-auth", headers={"Authorization": f"Bearer {token}"})
    assert protected.code == 200, protected.body


def test_token_issue_just_after_a_subject_cutoff_exits_non_zero(tmp_path):
    env = initialised(cli_env(tmp_path / "data"))
    assert jotguard("revoke", "--sub", "zed", env=env).returncode == 0

    result = jotguard("token", "issue", "--sub", "zed", env=env)

    assert result.returncode == 1, result.stdout
    assert result.stdout == ""
    assert "would be refused" in result.stderr
    other = jotguard("token", "issue", "--sub", "amy", env=env)
    assert other.returncode == 0, other.stderr
