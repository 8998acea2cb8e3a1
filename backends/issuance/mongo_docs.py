"""How the MongoDB issuance store lays out clients, users and refresh-token families."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from backends.issuance.base import AccessRecord, Client, Family, RefreshToken, User


def date(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def client_from(doc: dict[str, Any]) -> Client:
    return Client(
        doc["_id"],
        doc["name"],
        doc["secret_hash"],
        frozenset(doc["grant_types"]),
        frozenset(doc["scopes"]),
        doc["created_at"],
        bool(doc.get("disabled", False)),  # absent in documents made before it existed
    )


def user_from(doc: dict[str, Any]) -> User:
    return User(
        doc["_id"],
        doc["username"],
        doc["password_hash"],
        frozenset(doc["scopes"]),
        bool(doc["disabled"]),
        doc["created_at"],
    )


def token_from(doc: dict[str, Any]) -> RefreshToken:
    return RefreshToken(
        doc["_id"],
        doc["family_id"],
        doc["client_id"],
        doc["subject"],
        frozenset(doc["scopes"]),
        doc["issued_at"],
        doc["expires_at"],
        doc.get("used_at"),
        doc.get("jkt"),  # absent in documents made before DPoP binding: unbound
    )


def family_from(doc: dict[str, Any]) -> Family:
    return Family(
        doc["_id"],
        doc["client_id"],
        doc["subject"],
        doc["created_at"],
        doc["expires_at"],
        doc.get("revoked_at"),
        bool(doc.get("access_revoked")),
        tuple(AccessRecord(a["jti"], a["exp"]) for a in doc.get("access", [])),
    )


def token_doc(token: RefreshToken) -> dict[str, Any]:
    return {
        "_id": token.token_hash,
        "family_id": token.family_id,
        "client_id": token.client_id,
        "subject": token.subject,
        "scopes": sorted(token.scopes),
        "issued_at": token.issued_at,
        "expires_at": token.expires_at,
        "used_at": token.used_at,
        "jkt": token.jkt,
        "purge_at": date(token.expires_at),
    }
