"""What a store keeps when a mirror writes back a state it lost: the rules of
:func:`backends.revocation.writeback.restoration`, one case each."""

from __future__ import annotations

import pytest

from backends.revocation.base import Change, Revocation
from backends.revocation.writeback import RESTORED_BY, lost, restoration

NOW = 1_000_000.0
LOST_FEED = "e1"


def entry(cutoff: float = NOW - 10, expires_at: float = NOW + 600, id: str = "") -> Revocation:
    # As a mirror holds it: no id, reason or actor.
    return Revocation(id, "sub", "alice", None, cutoff, expires_at, 0.0)


def held(seq: int, *, removed: bool = False, **fields: float) -> Change:
    return Change(seq, entry(**fields), removed)


def stored(seq: int, *, removed: bool = False, origin=None, **fields) -> Change:
    return Change(seq, entry(id="stored-id", **fields), removed, origin)


def test_what_the_store_no_longer_has_is_written_back_with_new_ids_and_its_origin():
    kept = restoration(None, held(7), LOST_FEED, NOW)
    assert kept is not None
    assert not kept.removed
    assert kept.origin == (LOST_FEED, 7)
    assert kept.entry.id
    assert kept.entry.actor == RESTORED_BY
    assert kept.entry.created_at == NOW
    assert (kept.entry.cutoff, kept.entry.expires_at) == (NOW - 10, NOW + 600)


def test_an_expired_entry_is_never_written_back():
    assert restoration(None, held(7, expires_at=NOW), LOST_FEED, NOW) is None


def test_a_tombstone_is_written_back_too_so_it_can_order_later_ones():
    kept = restoration(None, held(9, removed=True), LOST_FEED, NOW)
    assert kept is not None
    assert kept.removed
    assert kept.origin == (LOST_FEED, 9)


@pytest.mark.parametrize("removed", [False, True])
def test_of_two_states_written_back_from_one_lost_feed_the_later_stands(removed):
    earlier = stored(3, removed=not removed, origin=(LOST_FEED, 5))
    later = restoration(earlier, held(8, removed=removed), LOST_FEED, NOW)
    assert later is not None
    assert later.removed is removed
    assert later.entry.id == "stored-id"  # the id operators see does not change
    assert later.origin == (LOST_FEED, 8)
    # ... and an earlier one never replaces a later one.
    assert (
        restoration(stored(3, origin=(LOST_FEED, 8)), held(5, removed=True), LOST_FEED, NOW) is None
    )


def test_an_unrevocation_the_store_made_after_the_loss_stands():
    assert restoration(stored(2, removed=True), held(40), LOST_FEED, NOW) is None


def test_a_tombstone_never_removes_an_entry_the_store_holds_of_its_own():
    assert restoration(stored(2), held(40, removed=True), LOST_FEED, NOW) is None


def test_a_revocation_merges_into_the_store_s_own_as_revoking_again_would():
    own = stored(2, cutoff=NOW - 100, expires_at=NOW + 900)
    kept = restoration(own, held(40, cutoff=NOW - 10, expires_at=NOW + 600), LOST_FEED, NOW)
    assert kept is not None
    assert kept.origin is None
    assert (kept.entry.id, kept.entry.cutoff, kept.entry.expires_at) == (
        "stored-id",
        NOW - 10,
        NOW + 900,
    )
    assert restoration(kept, held(41, cutoff=NOW - 10), LOST_FEED, NOW) is None  # nothing new


def test_an_expired_store_state_counts_as_absent():
    kept = restoration(stored(2, removed=True, expires_at=NOW - 1), held(40), LOST_FEED, NOW)
    assert kept is not None
    assert not kept.removed


def test_lost_leaves_out_what_the_store_decides_alike_and_what_expired():
    alike, differs, expired = held(1), held(2, cutoff=NOW - 5), held(3, expires_at=NOW - 1)
    assert lost([alike, differs, expired], lambda key: None, NOW) == [alike, differs]
    assert lost([alike], lambda key: stored(9), NOW) == []
    assert lost([differs], lambda key: stored(9), NOW) == [differs]
    assert lost([held(4, removed=True)], lambda key: stored(9, removed=True), NOW) == []
    assert lost([held(4, removed=True)], lambda key: stored(9), NOW) == [held(4, removed=True)]
