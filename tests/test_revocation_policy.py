"""The pure decision functions every store and mirror share."""

from __future__ import annotations

from backends.principal import Principal
from backends.revocation.base import Change, Revocation
from backends.revocation.policy import Denylist, decide, describe, merge, outlives_denylist

ISS = "http://jotguard.test/"


def entry(kind="sub", value="alice", *, issuer=None, cutoff=1000.0, expires=5000.0, id="e1"):
    return Revocation(id, kind, value, issuer, cutoff, expires, 900.0, "internal note", "ops")


def principal(iat=950, sub="alice", client="app", jti="j1", exp=1900):
    return Principal(sub, ISS, jti, exp, iat, client)


def test_effective_cutoff_is_the_latest_applicable_one():
    early = entry(cutoff=900.0, id="early")
    late = entry("client", "app", issuer=ISS, cutoff=1100.0, id="late")
    elsewhere = entry(issuer="https://other.test/", cutoff=5000.0, id="elsewhere")
    assert decide([early, late, elsewhere], principal(iat=1050), now=1200) is late
    assert decide([early, elsewhere], principal(iat=1050), now=1200) is None


def test_expired_entries_never_decide():
    assert decide([entry(expires=1200.0)], principal(), now=1200.0) is None
    assert decide([entry(expires=1200.5)], principal(), now=1200.0) is not None


def test_jti_entries_match_issuer_and_id():
    mine = entry("jti", "j1", issuer=ISS, cutoff=None)
    assert decide([mine], principal(), now=1200) is mine
    assert decide([mine], principal(jti="j2"), now=1200) is None
    foreign = entry("jti", "j1", issuer="https://other.test/", cutoff=None)
    assert decide([foreign], principal(), now=1200) is None


def test_description_never_carries_the_operators_reason():
    for kind in ("jti", "sub", "client"):
        assert "internal note" not in describe(entry(kind))
    assert describe(entry(cutoff=0.0)).endswith(
        "its subject issued up to 1970-01-01T00:00:00Z are refused"
    )


def test_tokens_that_would_outlive_their_subject_entry_are_flagged():
    assert not outlives_denylist(principal(iat=1000, exp=1900), now=1000, max_lifetime=900)
    assert outlives_denylist(principal(iat=1000, exp=1901), now=1000, max_lifetime=900)
    # no iat: only the remaining lifetime counts
    assert outlives_denylist(principal(iat=None, exp=2000), now=1000, max_lifetime=900)
    # a backdated iat cannot hide a long lifetime either
    assert outlives_denylist(principal(iat=10, exp=1500), now=1000, max_lifetime=900)


def test_merge_keeps_the_first_revocation_and_extends_it():
    first = entry(cutoff=1000.0, expires=5000.0, id="first")
    again = entry(cutoff=1200.0, expires=5200.0, id="again")
    merged = merge(first, again, now=1300)
    assert (merged.id, merged.cutoff, merged.expires_at, merged.reason) == (
        "first",
        1200.0,
        5200.0,
        "internal note",
    )
    assert merge(first, entry(cutoff=10.0, expires=10.0), now=1300) == first
    assert merge(first, again, now=5000) is again  # the first had expired


def test_denylist_keeps_the_newest_state_whatever_the_arrival_order():
    revoked = entry()
    mirror = Denylist()
    mirror.apply(Change(2, revoked, removed=True))
    mirror.apply(Change(1, revoked))  # late duplicate of an older state
    assert mirror.decide(principal(), now=1200) is None
    assert mirror.cursor == 2
    mirror.apply(Change(3, revoked))
    assert mirror.decide(principal(), now=1200) is revoked
    assert mirror.purge(now=6000) == 1
    assert list(mirror.states()) == []
