"""The Authenticator with a denylist: no revoked token comes back while a verifier would
still accept it, whatever its lifetime, and the check runs only on verified tokens."""

from __future__ import annotations

import pytest

from backends.auth import Authenticator
from backends.auth.local import LocalIssuer
from backends.auth.verifier import JWTVerifier
from backends.errors import BackendUnavailable, InvalidToken
from backends.keys.keyring import Keyring
from backends.revocation.memory import MemoryRevocationStore
from tests.clock import FakeClock

ISS = "http://jotguard.test/"
LEEWAY = 30
MAX_TTL = 600


class Backend:
    def __init__(self, keyring, clock):
        self.issuer = ISS
        self.verifier = JWTVerifier(
            issuer=ISS,
            audiences=["jotguard"],
            keys=keyring,
            algorithms=[keyring.alg],
            leeway=LEEWAY,
            clock=clock,
        )

    async def authenticate(self, token):
        return await self.verifier.verify(token)

    def keys_usable_until(self):
        return None


@pytest.fixture
def keyring(keyring_template):
    ring = Keyring(keyring_template, "RS256", retention=86400)
    ring.load()
    return ring


def setup(keyring, start):
    clock = FakeClock(start)
    store = MemoryRevocationStore(leeway=LEEWAY, max_token_ttl=MAX_TTL, clock=clock)
    auth = Authenticator(
        [Backend(keyring, clock)],
        revocations=store,
        max_token_lifetime=MAX_TTL + LEEWAY,
        clock=clock,
    )
    issuer = LocalIssuer(keyring, issuer=ISS, audience="jotguard", ttl=MAX_TTL)
    return clock, store, auth, issuer


def sign(issuer, subject, *, iat, lifetime, without_iat=False):
    claims = issuer.claims_for(subject)
    claims.update(iat=iat, exp=iat + lifetime)
    if without_iat:
        del claims["iat"]
    return issuer.sign(claims).token


@pytest.mark.parametrize("lifetime", [60, MAX_TTL, MAX_TTL + LEEWAY])
async def test_a_subject_revocation_lasts_as_long_as_any_token_it_covers(keyring, lifetime):
    start = 1_800_000_000
    clock, store, auth, issuer = setup(keyring, start)
    token = sign(issuer, "alice", iat=start, lifetime=lifetime)
    await auth.authenticate(token)
    await store.revoke_subject("alice", before=start)
    # Every instant the verifier still accepts the token, the denylist still refuses it.
    instants = [*range(0, lifetime + LEEWAY, 7), lifetime + LEEWAY - 0.01]
    for offset in instants:
        clock.now = start + offset
        with pytest.raises(InvalidToken) as caught:
            await auth.authenticate(token)
        assert caught.value.reason == "revoked", offset
    clock.now = start + lifetime + LEEWAY
    with pytest.raises(InvalidToken) as expired:
        await auth.authenticate(token)
    assert expired.value.reason == "expired"


@pytest.mark.parametrize("lifetime", [60, MAX_TTL + LEEWAY])
async def test_a_fast_clocks_token_cannot_escape_a_subject_revocation(keyring, lifetime):
    # Made before the revocation by an issuer whose clock runs LEEWAY seconds fast:
    # stamped after the cutoff, and accepted by the verifier all the same.
    start = 1_800_000_000
    clock, store, auth, issuer = setup(keyring, start)
    token = sign(issuer, "alice", iat=start + LEEWAY, lifetime=lifetime)
    if lifetime == 60:
        await auth.authenticate(token)
    # (The longest-lived one is refused until its remaining life fits the bound.)
    await store.revoke_subject("alice", before=start)
    # Refused every instant the verifier would still accept it (exp + leeway).
    instants = [*range(0, LEEWAY + lifetime + LEEWAY, 7), LEEWAY + lifetime + LEEWAY - 0.01]
    reasons = []
    for offset in instants:
        clock.now = start + offset
        with pytest.raises(InvalidToken) as caught:
            await auth.authenticate(token)
        reasons.append(caught.value.reason)
    assert set(reasons) <= {"revoked", "lifetime_too_long"}
    assert reasons[-1] == "revoked"
    # A token stamped past the leeway window is another matter: issued after the cutoff.
    clock.now = start + LEEWAY + 1
    await auth.authenticate(sign(issuer, "alice", iat=start + LEEWAY + 1, lifetime=60))


async def test_a_jti_revocation_lasts_until_the_verifier_gives_up(keyring):
    start = 1_800_000_000
    clock, store, auth, issuer = setup(keyring, start)
    token = sign(issuer, "alice", iat=start, lifetime=60)
    principal = await auth.authenticate(token)
    await store.revoke_token(principal.token_id, issuer=ISS, expires_at=principal.expires_at)
    clock.now = start + 60 + LEEWAY - 0.01
    with pytest.raises(InvalidToken) as caught:
        await auth.authenticate(token)
    assert caught.value.reason == "revoked"
    clock.now = start + 60 + LEEWAY
    with pytest.raises(InvalidToken) as expired:
        await auth.authenticate(token)
    assert expired.value.reason == "expired"


async def test_tokens_longer_than_the_denylist_covers_are_refused(keyring):
    start = 1_800_000_000
    clock, _, auth, issuer = setup(keyring, start)
    too_long = sign(issuer, "alice", iat=start, lifetime=MAX_TTL + LEEWAY + 1)
    with pytest.raises(InvalidToken) as caught:
        await auth.authenticate(too_long)
    assert caught.value.reason == "lifetime_too_long"
    no_iat = sign(issuer, "alice", iat=start, lifetime=MAX_TTL + LEEWAY + 1, without_iat=True)
    with pytest.raises(InvalidToken):
        await auth.authenticate(no_iat)
    clock.now = start + 2  # its remaining lifetime is now within bounds
    await auth.authenticate(no_iat)


async def test_token_without_iat_is_revoked_by_a_subject_cutoff(keyring):
    start = 1_800_000_000
    _, store, auth, issuer = setup(keyring, start)
    no_iat = sign(issuer, "alice", iat=start, lifetime=300, without_iat=True)
    await auth.authenticate(no_iat)
    await store.revoke_subject("alice", before=start - 60)  # before it was issued, even
    with pytest.raises(InvalidToken) as caught:
        await auth.authenticate(no_iat)
    assert caught.value.reason == "revoked"


class Broken(MemoryRevocationStore):
    async def is_revoked(self, principal):
        raise BackendUnavailable("down")


async def test_garbage_never_reaches_the_store_and_outages_fail_closed(keyring):
    start = 1_800_000_000
    clock = FakeClock(start)
    calls = []

    class Spy(Broken):
        async def is_revoked(self, principal):
            calls.append(principal)
            return await super().is_revoked(principal)

    auth = Authenticator([Backend(keyring, clock)], revocations=Spy(), clock=clock)
    issuer = LocalIssuer(keyring, issuer=ISS, audience="jotguard", ttl=MAX_TTL)
    forged = sign(issuer, "alice", iat=start, lifetime=60)[:-4] + "AAAA"
    with pytest.raises(InvalidToken):
        await auth.authenticate(forged)
    assert calls == []
    with pytest.raises(BackendUnavailable):
        await auth.authenticate(sign(issuer, "alice", iat=start, lifetime=60))
    assert len(calls) == 1
