"""The verified-token cache: a signature is checked once, and nothing else is skipped."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest

from backends.auth.compact import parse_compact
from backends.auth.token_cache import VerifiedTokenCache
from backends.keys.keyring import _write_keys, generate_key
from backends.principal import Principal
from tests.clock import FakeClock
from tests.conftest import TEST_ISSUER
from tests.forge import good_claims, sign
from tests.settings_support import refusal
from webapp.service import services as services_module


@pytest.fixture
def verifications(services, monkeypatch):
    """How many tokens the local backend verified (signature and claims)."""
    backend = services.authenticator.backends[TEST_ISSUER]
    calls: list[str] = []
    original = backend.authenticate

    async def counting(token):
        calls.append(token.raw)
        return await original(token)

    monkeypatch.setattr(backend, "authenticate", counting)
    return calls


async def test_a_token_is_verified_once_then_served_from_the_cache(
    fetch, issue_token, verifications
):
    token = issue_token("alice")
    for _ in range(3):
        assert (await fetch("/test-auth", token=token)).code == 200
    assert verifications == [token]


async def test_revocation_is_still_checked_for_a_cached_token(fetch, issue_token, services):
    token = issue_token("alice")
    claims = parse_compact(token).claims
    assert (await fetch("/test-auth", token=token)).code == 200

    await services.revocations.revoke_token(
        claims["jti"], issuer=claims["iss"], expires_at=claims["exp"]
    )

    response = await fetch("/test-auth", token=token)
    assert response.code == 401
    assert "revoked" in response.headers["WWW-Authenticate"]


async def test_rejected_tokens_are_never_cached(fetch, services, verifications):
    key = services.keyring.current
    wrong_audience = sign(key, good_claims(aud="someone-else"))
    good = sign(key, good_claims())
    tampered = good[:-6] + ("A" * 6 if not good.endswith("A" * 6) else "B" * 6)
    for token in (wrong_audience, wrong_audience, tampered, tampered):
        response = await fetch("/test-auth", token=token)
        assert response.code == 401
        assert json.loads(response.body)["error"] == "invalid_token"
    assert verifications == [wrong_audience, wrong_audience, tampered, tampered]
    assert len(services.authenticator.token_cache) == 0
    # The genuine token is unaffected by its tampered twin having been refused.
    assert (await fetch("/test-auth", token=good)).code == 200


async def test_a_cached_token_expires_with_its_exp(fetch, services, verifications):
    clock = FakeClock(1_000_000.0)
    services.authenticator.token_cache.clock = clock
    backend = services.authenticator.backends[TEST_ISSUER]
    backend.verifier.clock = clock
    services.authenticator.clock = clock
    token = sign(services.keyring.current, good_claims(iat=999_990, exp=1_000_060))

    assert (await fetch("/test-auth", token=token)).code == 200
    clock.now = 1_000_059.0
    assert (await fetch("/test-auth", token=token)).code == 200
    assert len(verifications) == 1

    clock.now = 1_000_060.0 + services.settings.leeway + 1
    response = await fetch("/test-auth", token=token)
    assert response.code == 401
    assert "expired" in response.headers["WWW-Authenticate"]
    assert len(verifications) == 2


async def test_a_key_removed_from_the_keyring_takes_its_tokens_out_of_the_cache(
    fetch, issue_token, services, monkeypatch
):
    token = issue_token("alice")
    assert (await fetch("/test-auth", token=token)).code == 200
    for task in services._tasks:  # restart the keyring follower with a short interval
        task.cancel()
    monkeypatch.setattr(services_module, "KEYRING_POLL_SECONDS", 0.01)
    services._tasks.append(asyncio.create_task(services._follow_keyring()))

    # An operator replaces a compromised keyring: the old key is gone.
    _write_keys(services.keyring.path, [generate_key("RS256")])
    for _ in range(500):
        if len(services.authenticator.token_cache) == 0:
            break
        await asyncio.sleep(0.01)

    response = await fetch("/test-auth", token=token)
    assert response.code == 401
    assert "unknown key" in response.headers["WWW-Authenticate"]


async def test_a_key_gone_from_a_remote_jwks_empties_the_cache(
    fetch, issue_token, services, monkeypatch
):
    class RemoteBackend:  # what the follower reads of a remote issuer: its key ids
        issuer = "https://tenant.example/"
        key_ids: tuple[str, ...] = ("k1", "k2")

        def status(self):
            return SimpleNamespace(key_ids=self.key_ids)

        async def aclose(self):
            return None

    remote = RemoteBackend()
    services.remote_backends.append(remote)
    for task in services._tasks:  # restart the follower with a short interval
        task.cancel()
    monkeypatch.setattr(services_module, "KEYRING_POLL_SECONDS", 0.01)
    services._tasks.append(asyncio.create_task(services._follow_keyring()))
    assert (await fetch("/test-auth", token=issue_token("alice"))).code == 200
    await asyncio.sleep(0.05)
    assert len(services.authenticator.token_cache) == 1  # a new key id clears nothing

    remote.key_ids = ("k2", "k3")  # the issuer dropped k1
    for _ in range(500):
        if len(services.authenticator.token_cache) == 0:
            break
        await asyncio.sleep(0.01)
    assert len(services.authenticator.token_cache) == 0


@pytest.mark.parametrize("settings_overrides", [{"JOTGUARD_TOKEN_CACHE_SIZE": "0"}])
async def test_size_zero_turns_the_cache_off(fetch, issue_token, services, verifications):
    assert services.authenticator.token_cache is None
    token = issue_token("alice")
    for _ in range(2):
        assert (await fetch("/test-auth", token=token)).code == 200
    assert verifications == [token, token]


@pytest.mark.parametrize("value", ["-1", "many", "1000001", "2.5"])
def test_bad_cache_size_names_the_variable(value):
    assert str(refusal("JOTGUARD_TOKEN_CACHE_SIZE", value)).startswith("JOTGUARD_TOKEN_CACHE_SIZE:")


# -- the cache itself --------------------------------------------------------------------


def principal(exp: int = 2_000) -> Principal:
    return Principal(subject="alice", issuer=TEST_ISSUER, token_id="j", expires_at=exp)


def test_least_recently_used_token_goes_first_when_full():
    cache = VerifiedTokenCache(2, clock=FakeClock(1_000))
    cache.put("a", principal())
    cache.put("b", principal())
    assert cache.get("a") is not None  # "b" is now the least recently used
    cache.put("c", principal())
    assert cache.get("b") is None
    assert cache.get("a") is not None
    assert cache.get("c") is not None
    assert len(cache) == 2


def test_a_token_past_its_exp_is_not_stored():
    cache = VerifiedTokenCache(2, clock=FakeClock(1_000))
    cache.put("late", principal(exp=1_000))
    assert cache.get("late") is None
    assert len(cache) == 0


def test_size_below_one_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        VerifiedTokenCache(0)
