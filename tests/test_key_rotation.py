"""Staged key rotation: the next key is published before it signs; ``--now`` switches at once."""

from __future__ import annotations

import base64
import json
import time

import pytest

from backends.errors import ConfigError, InvalidToken
from backends.keys.keyring import Keyring, read_keys
from tests.cli import cli_env, http_get, jotguard
from tests.clock import FakeClock
from tests.live import live_jotguard

AHEAD = 600
RETENTION = 86400 + 30


def kid_of(token: str) -> str:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["kid"]


@pytest.fixture
def clock():
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def keyring(tmp_path, clock):
    ring = Keyring(tmp_path / "keyring.json", "ES256", retention=RETENTION, clock=clock)
    ring.ensure()
    return ring


def published(ring: Keyring) -> list[str]:
    return [k["kid"] for k in ring.public_jwks()["keys"]]


def test_a_staged_rotation_publishes_first_and_signs_later(keyring, clock):
    old = keyring.current
    fresh = keyring.rotate(ahead=AHEAD)
    assert published(keyring) == [old.kid, fresh.kid]
    assert keyring.state(fresh) == "next"
    assert keyring.current.kid == old.kid
    clock.advance(AHEAD - 1)
    assert keyring.current.kid == old.kid
    clock.advance(1)
    assert keyring.current.kid == fresh.kid
    assert keyring.state(keyring.all_keys()[0]) == "retired"
    assert published(keyring) == [old.kid, fresh.kid]  # the retired key verifies its tokens


async def test_a_retired_key_is_accepted_until_retention_ends(keyring, clock):
    old = keyring.current
    keyring.rotate(ahead=AHEAD)
    clock.advance(AHEAD + RETENTION)
    assert (await keyring.get_key(old.kid, "ES256")).kid == old.kid
    clock.advance(1)
    with pytest.raises(InvalidToken):
        await keyring.get_key(old.kid, "ES256")


def test_every_process_on_the_file_follows_the_same_schedule(keyring, clock, tmp_path):
    fresh = keyring.rotate(ahead=AHEAD)
    other = Keyring(tmp_path / "keyring.json", "ES256", retention=RETENTION, clock=clock)
    other.load()  # another process: the CLI, or a second server
    clock.advance(AHEAD)
    assert keyring.current.kid == other.current.kid == fresh.kid


def test_rotating_again_while_a_key_waits_queues_the_new_one_behind_it(keyring, clock):
    first = keyring.current
    second = keyring.rotate(ahead=AHEAD)
    clock.advance(100)
    third = keyring.rotate(ahead=AHEAD)
    assert published(keyring) == [first.kid, second.kid, third.kid]
    clock.advance(AHEAD - 100)
    assert keyring.current.kid == second.kid
    clock.advance(100)
    assert keyring.current.kid == third.kid


def test_an_emergency_rotation_signs_at_once_and_drops_a_waiting_key(keyring, clock):
    old = keyring.current
    waiting = keyring.rotate(ahead=AHEAD)
    emergency = keyring.rotate(ahead=0)
    assert keyring.current.kid == emergency.kid
    assert keyring.state(keyring.all_keys()[0]) == "retired"
    # It never signed anything: nothing needs it published.
    assert waiting.kid not in published(keyring)
    assert published(keyring) == [old.kid, emergency.kid]


def test_remove_refuses_the_current_key_and_forgets_a_retired_one(keyring):
    old = keyring.current
    with pytest.raises(ConfigError):
        keyring.remove(old.kid)
    keyring.rotate(ahead=0)
    keyring.remove(old.kid)
    assert old.kid not in published(keyring)
    with pytest.raises(KeyError):
        keyring.remove(old.kid)


def test_removing_a_waiting_key_leaves_the_current_one_signing(keyring, clock):
    current = keyring.current
    waiting = keyring.rotate(ahead=AHEAD)
    keyring.remove(waiting.kid)  # it leaked before it ever signed
    assert published(keyring) == [current.kid]
    clock.advance(AHEAD + RETENTION + 1)
    assert keyring.current.kid == current.kid


def test_a_keyring_written_before_staged_rotation_loads_as_signing_since_creation(keyring, clock):
    path = keyring.path
    document = json.loads(path.read_text())
    for record in document["keys"]:
        del record["activates_at"]
    path.write_text(json.dumps(document))
    [key] = read_keys(path)
    assert key.activates_at == key.created_at
    keyring.load()
    assert keyring.current.kid == key.kid


def test_telemetry_counts_next_current_and_retired_keys(keyring, clock):
    keyring.rotate(ahead=0)
    keyring.rotate(ahead=AHEAD)
    counts = {s.labels["state"]: s.value for s in keyring.telemetry() if s.labels}
    assert counts == {"next": 1, "current": 1, "retired": 1}


# -- the server beside the CLI, in-process ------------------------------------------------


@pytest.fixture
def settings_overrides():
    return {"JOTGUARD_KEY_PUBLISH_AHEAD": "3"}


async def test_the_server_publishes_at_once_and_switches_on_schedule(
    services, fetch, settings, clock
):
    services.keyring.clock = clock
    # The CLI: another Keyring on the same file, in step with the same clock.
    operator = Keyring(settings.keyring_path, settings.signing_alg, retention=60, clock=clock)
    before = json.loads((await fetch("/.well-known/jwks.json")).body)["keys"]
    old = services.keyring.current.kid

    fresh = operator.rotate(ahead=settings.key_publish_ahead)
    after = json.loads((await fetch("/.well-known/jwks.json")).body)["keys"]
    assert [k["kid"] for k in after] == [k["kid"] for k in before] + [fresh.kid]

    claims = services.issuer.claims_for("alice")
    assert kid_of((await services.issuer.sign_async(claims)).token) == old

    clock.advance(settings.key_publish_ahead)
    token = (await services.issuer.sign_async(services.issuer.claims_for("alice"))).token
    assert kid_of(token) == fresh.kid
    assert (await fetch("/test-auth", token=token)).code == 200

    emergency = operator.rotate(ahead=0)
    token = (await services.issuer.sign_async(services.issuer.claims_for("alice"))).token
    assert kid_of(token) == emergency.kid
    assert (await fetch("/test-auth", token=token)).code == 200


# -- the operator's commands against a running server -------------------------------------


@pytest.mark.slow
def test_keys_rotate_beside_a_running_server(tmp_path):
    data = tmp_path / "data"
    with live_jotguard(data, {"JOTGUARD_KEY_PUBLISH_AHEAD": "2"}) as server:
        env = cli_env(data, JOTGUARD_SIGNING_ALG="ES256", JOTGUARD_KEY_PUBLISH_AHEAD="2")

        def jwks() -> list[str]:
            document = json.loads(http_get(server.url + ".well-known/jwks.json")[1])
            return [k["kid"] for k in document["keys"]]

        def issue() -> str:
            done = jotguard("token", "issue", "--sub", "alice", env=env)
            assert done.returncode == 0, done.stderr
            return done.stdout.strip()

        before = jwks()
        rotated = jotguard("keys", "rotate", env=env)
        assert rotated.returncode == 0, rotated.stderr
        fresh = rotated.stdout.strip()
        assert jwks() == [*before, fresh]
        assert kid_of(issue()) in before

        deadline = time.monotonic() + 20
        while kid_of(token := issue()) != fresh:
            assert time.monotonic() < deadline, "the new key never started signing"
            time.sleep(0.2)
        assert http_get(server.url + "test-auth", token)[0] == 200

        emergency = jotguard("keys", "rotate", "--now", env=env).stdout.strip()
        token = issue()
        assert kid_of(token) == emergency
        assert http_get(server.url + "test-auth", token)[0] == 200
