"""The MongoDB IssuanceStore, on pymongo's AsyncMongoClient (a Motor database works too).

No multi-document transactions (they need a replica set): every write that must
be atomic is one conditional single-document update, ordered so that a failure
half-way leaves nothing a client could use, and never marks a refresh token used
before its successor exists (a retry after an outage must not look like theft).
TTL indexes drop expired documents eventually; expiry is still checked on read.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from backends.issuance.base import (
    AccessRecord,
    AlreadyExists,
    Client,
    Family,
    RefreshToken,
    Rotation,
    User,
)
from backends.mongodb import mongo_errors


def _date(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def _client(doc: dict[str, Any]) -> Client:
    return Client(
        doc["_id"],
        doc["name"],
        doc["secret_hash"],
        frozenset(doc["grant_types"]),
        frozenset(doc["scopes"]),
        doc["created_at"],
        bool(doc.get("disabled", False)),  # absent in documents made before it existed
    )


def _user(doc: dict[str, Any]) -> User:
    return User(
        doc["_id"],
        doc["username"],
        doc["password_hash"],
        frozenset(doc["scopes"]),
        bool(doc["disabled"]),
        doc["created_at"],
    )


def _token(doc: dict[str, Any]) -> RefreshToken:
    return RefreshToken(
        doc["_id"],
        doc["family_id"],
        doc["client_id"],
        doc["subject"],
        frozenset(doc["scopes"]),
        doc["issued_at"],
        doc["expires_at"],
        doc.get("used_at"),
    )


def _family(doc: dict[str, Any]) -> Family:
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


def _token_doc(token: RefreshToken) -> dict[str, Any]:
    return {
        "_id": token.token_hash,
        "family_id": token.family_id,
        "client_id": token.client_id,
        "subject": token.subject,
        "scopes": sorted(token.scopes),
        "issued_at": token.issued_at,
        "expires_at": token.expires_at,
        "used_at": token.used_at,
        "purge_at": _date(token.expires_at),
    }


class MongoIssuanceStore:
    """:param database: a pymongo ``AsyncDatabase`` or a Motor database."""

    durable = True

    def __init__(self, database: Any, *, client: Any = None) -> None:
        self._client = client
        self.clients = database["clients"]
        self.users = database["users"]
        self.tokens = database["refresh_tokens"]
        self.families = database["refresh_families"]
        self._indexed = False
        self._index_lock = asyncio.Lock()

    async def _ready(self) -> None:
        # Lazily, so the service starts while MongoDB is down and recovers when it is back.
        if self._indexed:
            return
        async with self._index_lock:
            if self._indexed:
                return
            with mongo_errors("issuance"):
                await self.clients.create_index("name", unique=True)
                await self.users.create_index("username", unique=True)
                await self.tokens.create_index("family_id")
                await self.tokens.create_index("purge_at", expireAfterSeconds=0)
                await self.families.create_index("subject")
                await self.families.create_index("client_id")
                await self.families.create_index("purge_at", expireAfterSeconds=0)
            self._indexed = True

    # -- clients ----------------------------------------------------------------------

    def _client_doc(self, client: Client) -> dict[str, Any]:
        return {
            "_id": client.client_id,
            "name": client.name,
            "secret_hash": client.secret_hash,
            "grant_types": sorted(client.grant_types),
            "scopes": sorted(client.scopes),
            "created_at": client.created_at,
            "disabled": client.disabled,
        }

    async def add_client(self, client: Client) -> None:
        await self._ready()
        try:
            with mongo_errors("issuance"):
                await self.clients.insert_one(self._client_doc(client))
        except DuplicateKeyError:
            raise AlreadyExists(f"a client named {client.name!r} exists") from None

    async def add_first_client(self, client: Client) -> bool:
        await self._ready()
        try:
            with mongo_errors("issuance"):
                if await self.clients.count_documents({}, limit=1):
                    return False
                await self.clients.insert_one(self._client_doc(client))
        except DuplicateKeyError:
            return False  # another server bootstrapped the same name at the same moment
        return True

    async def get_client(self, client_id: str) -> Client | None:
        await self._ready()
        with mongo_errors("issuance"):
            doc = await self.clients.find_one({"_id": client_id})
        return None if doc is None else _client(doc)

    async def list_clients(self) -> list[Client]:
        await self._ready()
        with mongo_errors("issuance"):
            docs = [d async for d in self.clients.find({}).sort([("created_at", 1), ("name", 1)])]
        return [_client(d) for d in docs]

    async def upgrade_client_secret_hash(self, client_id: str, old: str, new: str) -> bool:
        await self._ready()
        with mongo_errors("issuance"):
            result = await self.clients.update_one(
                {"_id": client_id, "secret_hash": old}, {"$set": {"secret_hash": new}}
            )
        return bool(result.modified_count)

    async def get_client_by_name(self, name: str) -> Client | None:
        await self._ready()
        with mongo_errors("issuance"):
            doc = await self.clients.find_one({"name": name})
        return None if doc is None else _client(doc)

    async def _set_client(self, client_id: str, fields: dict[str, Any]) -> Client | None:
        await self._ready()
        with mongo_errors("issuance"):
            doc = await self.clients.find_one_and_update(
                {"_id": client_id}, {"$set": fields}, return_document=ReturnDocument.AFTER
            )
        return None if doc is None else _client(doc)

    async def set_client_disabled(self, client_id: str, disabled: bool) -> Client | None:
        return await self._set_client(client_id, {"disabled": disabled})

    async def set_client_secret_hash(self, client_id: str, secret_hash: str) -> Client | None:
        return await self._set_client(client_id, {"secret_hash": secret_hash})

    async def delete_client(self, client_id: str) -> Client | None:
        await self._ready()
        with mongo_errors("issuance"):
            doc = await self.clients.find_one_and_delete({"_id": client_id})
        return None if doc is None else _client(doc)

    # -- users ------------------------------------------------------------------------

    async def add_user(self, user: User) -> None:
        await self._ready()
        doc = {
            "_id": user.user_id,
            "username": user.username,
            "password_hash": user.password_hash,
            "scopes": sorted(user.scopes),
            "disabled": user.disabled,
            "created_at": user.created_at,
        }
        try:
            with mongo_errors("issuance"):
                await self.users.insert_one(doc)
        except DuplicateKeyError:
            raise AlreadyExists(f"a user named {user.username!r} exists") from None

    async def get_user(self, user_id: str) -> User | None:
        await self._ready()
        with mongo_errors("issuance"):
            doc = await self.users.find_one({"_id": user_id})
        return None if doc is None else _user(doc)

    async def get_user_by_name(self, username: str) -> User | None:
        await self._ready()
        with mongo_errors("issuance"):
            doc = await self.users.find_one({"username": username})
        return None if doc is None else _user(doc)

    async def list_users(self) -> list[User]:
        await self._ready()
        with mongo_errors("issuance"):
            docs = [d async for d in self.users.find({}).sort("username", 1)]
        return [_user(d) for d in docs]

    async def set_user_disabled(self, username: str, disabled: bool) -> User | None:
        await self._ready()
        with mongo_errors("issuance"):
            doc = await self.users.find_one_and_update(
                {"username": username},
                {"$set": {"disabled": disabled}},
                return_document=ReturnDocument.AFTER,
            )
        return None if doc is None else _user(doc)

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self._ready()
        with mongo_errors("issuance"):
            await self.users.update_one(
                {"_id": user_id}, {"$set": {"password_hash": password_hash}}
            )

    async def delete_user(self, user_id: str) -> User | None:
        await self._ready()
        with mongo_errors("issuance"):
            doc = await self.users.find_one_and_delete({"_id": user_id})
        return None if doc is None else _user(doc)

    # -- refresh-token families -------------------------------------------------------

    async def start_family(self, family: Family, token: RefreshToken, access: AccessRecord) -> None:
        await self._ready()
        doc = {
            "_id": family.family_id,
            "client_id": family.client_id,
            "subject": family.subject,
            "created_at": family.created_at,
            "expires_at": family.expires_at,
            "purge_at": _date(family.expires_at),
            "revoked_at": None,
            "access_revoked": False,
            "access": [{"jti": access.jti, "exp": access.expires_at}],
        }
        with mongo_errors("issuance"):
            await self.families.insert_one(doc)
            await self.tokens.insert_one(_token_doc(token))

    async def get_refresh_token(self, token_hash: str) -> tuple[RefreshToken, Family] | None:
        await self._ready()
        with mongo_errors("issuance"):
            doc = await self.tokens.find_one({"_id": token_hash})
            if doc is None:
                return None
            family = await self.families.find_one({"_id": doc["family_id"]})
        return None if family is None else (_token(doc), _family(family))

    async def rotate(
        self, old_hash: str, new: RefreshToken, access: AccessRecord, *, now: float
    ) -> Rotation:
        await self._ready()
        with mongo_errors("issuance"):
            old = await self.tokens.find_one({"_id": old_hash})
            if old is None:
                return Rotation.UNKNOWN
            if old.get("used_at") is not None:
                return Rotation.ALREADY_USED
            family_id = old["family_id"]
            # The successor first: until the old token is marked used below, a failure
            # leaves it usable, and an orphaned successor was never handed out.
            await self.tokens.insert_one(_token_doc(new))
            await self.families.update_one(
                {"_id": family_id}, {"$pull": {"access": {"exp": {"$lte": now}}}}
            )
            expires_at = max(new.expires_at, access.expires_at)
            recorded = await self.families.find_one_and_update(
                {"_id": family_id, "revoked_at": None},
                {
                    "$push": {"access": {"jti": access.jti, "exp": access.expires_at}},
                    "$max": {"expires_at": expires_at, "purge_at": _date(expires_at)},
                },
            )
            if recorded is None:
                return Rotation.FAMILY_REVOKED
            used = await self.tokens.find_one_and_update(
                {"_id": old_hash, "used_at": None}, {"$set": {"used_at": now}}
            )
        return Rotation.ROTATED if used is not None else Rotation.ALREADY_USED

    async def add_to_family(
        self, family_id: str, new: RefreshToken, access: AccessRecord, *, now: float
    ) -> Rotation:
        await self._ready()
        with mongo_errors("issuance"):
            family = await self.families.find_one({"_id": family_id})
            if family is None:
                return Rotation.UNKNOWN
            if family.get("revoked_at") is not None:
                return Rotation.FAMILY_REVOKED
            # As in rotate: the token first, then the family records it, only if not revoked.
            await self.tokens.insert_one(_token_doc(new))
            await self.families.update_one(
                {"_id": family_id}, {"$pull": {"access": {"exp": {"$lte": now}}}}
            )
            expires_at = max(new.expires_at, access.expires_at)
            recorded = await self.families.find_one_and_update(
                {"_id": family_id, "revoked_at": None},
                {
                    "$push": {"access": {"jti": access.jti, "exp": access.expires_at}},
                    "$max": {"expires_at": expires_at, "purge_at": _date(expires_at)},
                },
            )
        return Rotation.ROTATED if recorded is not None else Rotation.FAMILY_REVOKED

    async def revoke_family(self, family_id: str, *, now: float) -> Family | None:
        await self._ready()
        with mongo_errors("issuance"):
            await self.families.update_one(
                {"_id": family_id, "revoked_at": None}, {"$set": {"revoked_at": now}}
            )
            doc = await self.families.find_one({"_id": family_id})
        return None if doc is None else _family(doc)

    async def revoke_families_of(self, subject: str, *, now: float) -> list[Family]:
        await self._ready()
        with mongo_errors("issuance"):
            await self.families.update_many(
                {"subject": subject, "revoked_at": None}, {"$set": {"revoked_at": now}}
            )
            docs = [d async for d in self.families.find({"subject": subject})]
        return [_family(d) for d in docs]

    async def revoke_families_of_client(self, client_id: str, *, now: float) -> list[Family]:
        await self._ready()
        with mongo_errors("issuance"):
            await self.families.update_many(
                {"client_id": client_id, "revoked_at": None}, {"$set": {"revoked_at": now}}
            )
            docs = [d async for d in self.families.find({"client_id": client_id})]
        return [_family(d) for d in docs]

    async def mark_access_revoked(self, family_id: str) -> None:
        await self._ready()
        with mongo_errors("issuance"):
            await self.families.update_one({"_id": family_id}, {"$set": {"access_revoked": True}})

    async def purge_expired(self, *, now: float) -> int:
        await self._ready()
        with mongo_errors("issuance"):
            tokens = await self.tokens.delete_many({"expires_at": {"$lte": now}})
            families = await self.families.delete_many({"expires_at": {"$lte": now}})
        return int(tokens.deleted_count) + int(families.deleted_count)

    async def close(self) -> None:
        if self._client is not None:
            result = self._client.close()
            if asyncio.iscoroutine(result):  # pymongo's async client; Motor's close is sync
                await result
