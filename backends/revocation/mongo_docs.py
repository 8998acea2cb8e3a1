"""How the MongoDB revocation store lays out its documents, and the updates that write them.

An entry's document carries two numbers: ``seq``, its change number for the feed
(only ever raised, with ``$max``), and ``v``, bumped by every change of its state, so
that the one write needing compare-and-set (writing back what a follower held) does
not conflict with a re-stamp of ``seq``, which changes no state.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from backends.revocation.base import AuditRecord, Change, EntryKey, Origin, Revocation, entry_from


def key_filter(key: EntryKey) -> dict[str, Any]:
    kind, issuer, value = key
    return {"kind": kind, "issuer": issuer or "", "value": value}


def live_filter(key: EntryKey, now: float) -> dict[str, Any]:
    return {**key_filter(key), "removed": False, "expires_at": {"$gt": now}}


def dead_filter(key: EntryKey, now: float) -> dict[str, Any]:
    """The key's document when it holds no live entry (un-revoked or expired)."""
    return {**key_filter(key), "$or": [{"removed": True}, {"expires_at": {"$lte": now}}]}


def _ttl_at(expires_at: float) -> datetime:
    return datetime.fromtimestamp(expires_at, tz=timezone.utc)


def encode(entry: Revocation, removed: bool, origin: Origin | None = None) -> dict[str, Any]:
    """Every field of an entry's state except its two numbers."""
    return {
        **key_filter(entry.key),
        "id": entry.id,
        "cutoff": entry.cutoff,
        "expires_at": entry.expires_at,
        "ttl_at": _ttl_at(entry.expires_at),
        "created_at": entry.created_at,
        "reason": entry.reason,
        "actor": entry.actor,
        "removed": removed,
        "origin": list(origin) if origin is not None else None,
    }


def merge_update(incoming: Revocation, seq: int) -> dict[str, Any]:
    """The update that revokes ``incoming`` over a live entry of the same key.

    As :func:`~backends.revocation.policy.merge`: the first revocation's id, reason,
    actor and time stay; cutoff and expiry only move later. One atomic update, so
    concurrent revokes of one key converge without retries.
    """
    later: dict[str, Any] = {
        "expires_at": incoming.expires_at,
        "ttl_at": _ttl_at(incoming.expires_at),
        "seq": seq,
    }
    if incoming.cutoff is not None:
        later["cutoff"] = incoming.cutoff  # BSON orders null below numbers: a null is raised
    return {"$max": later, "$inc": {"v": 1}}


def replace_update(entry: Revocation, seq: int) -> dict[str, Any]:
    """The update that puts ``entry`` where the key holds nothing live (or nothing)."""
    return {"$set": encode(entry, removed=False), "$max": {"seq": seq}, "$inc": {"v": 1}}


def decode(doc: dict[str, Any]) -> Change:
    entry = entry_from(doc)
    origin = doc.get("origin")  # absent from documents written before origins existed
    return Change(doc["seq"], entry, doc["removed"], tuple(origin) if origin else None)


def audit_doc(seq: int, record: AuditRecord) -> dict[str, Any]:
    return {
        "seq": seq,
        "at": record.at,
        "action": record.action,
        "entry_id": record.entry_id,
        "kind": record.kind,
        "value": record.value,
        "issuer": record.issuer or "",
        "actor": record.actor,
        "reason": record.reason,
    }
