"""The DPoP settings, and the gate the service builds from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from backends.dpop import DPoPPolicy, MemoryReplayCache
from backends.dpop.replay_redis import RedisReplayCache
from backends.dpop.replay_sqlite import FILE_NAME, SQLiteReplayCache
from tests.cli import cli_env, jotguard
from tests.settings_support import refusal
from webapp.config.settings import Settings
from webapp.service.services import (
    dpop_gate,
    dpop_nonce_secret,
    dpop_replay_cache,
    dpop_replay_url,
    local_keyring,
)


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("JOTGUARD_DPOP", "sometimes", "must be one of off, allowed, required"),
        ("JOTGUARD_DPOP_ALGS", "ES256,HS256", "HS256 not accepted"),
        ("JOTGUARD_DPOP_ALGS", " , ", "at least one proof algorithm"),
        ("JOTGUARD_DPOP_PROOF_LIFETIME", "0", "from 1 to 3600"),
        ("JOTGUARD_DPOP_NONCE_SECRET", "short", "at least 32 bytes"),
        ("JOTGUARD_PUBLIC_URL", "ftp://api.example.com/", "http(s) URL"),
        ("JOTGUARD_PUBLIC_URL", "https://user:pw@api.example.com/", "user information"),
        ("JOTGUARD_PUBLIC_URL", "https://api.example.com/?x=1", "query or fragment"),
    ],
)
def test_bad_dpop_settings_are_refused(variable: str, value: str, problem: str) -> None:
    assert problem in str(refusal(variable, value))


def test_off_builds_no_gate(settings: Settings) -> None:
    off = Settings.load(environ={"JOTGUARD_ENV_FILE": "/nonexistent", "JOTGUARD_DPOP": "off"})
    assert dpop_gate(off, local_keyring(settings)) is None


def test_the_default_gate_allows_bearer_and_remembers_proofs_in_memory(settings: Settings) -> None:
    keyring = local_keyring(settings)
    keyring.load()
    gate = dpop_gate(settings, keyring)
    assert gate is not None
    assert gate.mode == "allowed"
    assert not gate.required
    assert isinstance(gate.verifier.replay, MemoryReplayCache)
    assert gate.verifier.nonces is None
    assert gate.verifier.policy.leeway == settings.leeway


def test_the_replay_cache_is_in_the_redis_the_service_already_uses() -> None:
    def url(**environ: str) -> str | None:
        return dpop_replay_url(
            Settings.load(environ={"JOTGUARD_ENV_FILE": "/nonexistent", **environ})
        )

    assert url() is None
    assert url(JOTGUARD_REVOCATION_STORE="redis://127.0.0.1:6379/3") == "redis://127.0.0.1:6379/3"
    assert (
        url(
            JOTGUARD_REVOCATION_STORE="redis://127.0.0.1:6379/3",
            JOTGUARD_RATELIMIT_STORAGE="redis://127.0.0.1:6379/4",
        )
        == "redis://127.0.0.1:6379/4"
    )


async def test_workers_without_redis_share_one_replay_file_in_the_data_directory(
    data_dir: Path,
) -> None:
    async def cache_for(**environ: str) -> type:
        base = {"JOTGUARD_ENV_FILE": "/nonexistent", "JOTGUARD_DATA_DIR": str(data_dir)}
        cache = dpop_replay_cache(Settings.load(environ={**base, **environ}), DPoPPolicy())
        if isinstance(cache, SQLiteReplayCache):
            assert cache.path == data_dir / FILE_NAME
        await cache.aclose()
        return type(cache)

    assert await cache_for() is MemoryReplayCache  # one process: the cheapest
    assert await cache_for(JOTGUARD_WORKERS="2") is SQLiteReplayCache
    redis = {"JOTGUARD_RATELIMIT_STORAGE": "redis://127.0.0.1:6379/4"}
    assert await cache_for(JOTGUARD_WORKERS="2", **redis) is RedisReplayCache
    mongo = {"JOTGUARD_REVOCATION_STORE": "mongodb://127.0.0.1:27017/jotguard"}
    assert await cache_for(JOTGUARD_WORKERS="2", **mongo) is SQLiteReplayCache
    assert not (data_dir / FILE_NAME).exists()


def test_a_command_beside_the_workers_creates_no_replay_file(data_dir: Path) -> None:
    # `jotguard revoke` builds the services, DPoP gate included, and spends no proof.
    env = cli_env(data_dir, JOTGUARD_ISSUER="http://jotguard.test/", JOTGUARD_WORKERS="2")
    done = jotguard("revoke", "--sub", "alice", env=env)
    assert done.returncode == 0, done.stderr
    assert (data_dir / "revocations.sqlite3").exists()
    assert not (data_dir / FILE_NAME).exists()


def test_instances_on_one_keyring_derive_one_nonce_secret(settings: Settings) -> None:
    first = local_keyring(settings)
    second = local_keyring(settings)
    first.load()
    second.load()
    assert dpop_nonce_secret(settings, first) == dpop_nonce_secret(settings, second)
    assert len(dpop_nonce_secret(settings, first)) == 32
    configured = Settings.load(
        environ={"JOTGUARD_ENV_FILE": "/nonexistent", "JOTGUARD_DPOP_NONCE_SECRET": "s" * 32}
    )
    assert dpop_nonce_secret(configured, first) == b"s" * 32


def test_the_issuer_url_carries_no_credentials_query_or_fragment() -> None:
    for value in (
        "https://u:p@issuer.example/",
        "https://issuer.example/?a",
        "https://i.example/#f",
    ):
        assert "without user information" in str(refusal("JOTGUARD_ISSUER", value))


def test_a_bad_secret_is_named_but_never_echoed() -> None:
    error = str(refusal("JOTGUARD_DPOP_NONCE_SECRET", "too-short-secret"))
    assert "JOTGUARD_DPOP_NONCE_SECRET" in error
    assert "too-short-secret" not in error
