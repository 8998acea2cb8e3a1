"""The MongoDB IssuanceStore, on pymongo's AsyncMongoClient (a Motor database works too).

No multi-document transactions (they need a replica set): every write that must
be atomic is one conditional single-document update, ordered so that a failure
half-way leaves nothing a client could use, and never marks a refresh token used
before its successor exists (a retry after an outage must not look like theft). The
write that marks it used records the successor, so a retry whose acknowledgement was
lost (a standalone server has no retryable writes) gets a fresh successor in place of
the unused one, not a family revocation.
TTL indexes drop expired documents eventually; expiry is still checked on read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from backends.issuance.base import (
    ROTATION_REPLAY_WINDOW,
    AccessRecord,
    AlreadyExists,
    Client,
    Family,
    RefreshToken,
    Rotation,
    User,
)
from backends.issuance.mongo_docs import (
    client_from,
    date,
    family_from,
    token_doc,
    token_from,
    user_from,
)
from backends.storage.mongodb import Indexes, mongo_errors

R = TypeVar("R")

# A chain of superseded successors grows by one per failed retry: a few suffice.
_SUCCESSOR_HOPS = 4


class MongoIssuanceStore:
    """:param database: a pymongo ``AsyncDatabase`` or a Motor database."""

    durable = True

    def __init__(self, database: Any, *, client: Any = None) -> None:
        self._client = client
        self.clients = database["clients"]
        self.users = database["users"]
        self.tokens = database["refresh_tokens"]
        self.families = database["refresh_families"]
        self._indexes = Indexes(self._create_indexes)

    async def _create_indexes(self) -> None:
        with mongo_errors("issuance"):
            await self.clients.create_index("name", unique=True)
            await self.users.create_index("username", unique=True)
            await self.tokens.create_index("family_id")
            await self.tokens.create_index("purge_at", expireAfterSeconds=0)
            await self.families.create_index("subject")
            await self.families.create_index("client_id")
            await self.families.create_index("purge_at", expireAfterSeconds=0)

    async def _one(
        self, fetch: Callable[[], Awaitable[dict[str, Any] | None]], record: Callable[[Any], R]
    ) -> R | None:
        """The record of the document ``fetch`` answers (found, updated or deleted), or None."""
        await self._indexes.ensure()
        with mongo_errors("issuance"):
            doc = await fetch()
        return None if doc is None else record(doc)

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
        await self._indexes.ensure()
        try:
            with mongo_errors("issuance"):
                await self.clients.insert_one(self._client_doc(client))
        except DuplicateKeyError:
            raise AlreadyExists(f"a client named {client.name!r} exists") from None

    async def add_first_client(self, client: Client) -> bool:
        await self._indexes.ensure()
        try:
            with mongo_errors("issuance"):
                if await self.clients.count_documents({}, limit=1):
                    return False
                await self.clients.insert_one(self._client_doc(client))
        except DuplicateKeyError:
            return False  # another server bootstrapped the same name at the same moment
        return True

    async def get_client(self, client_id: str) -> Client | None:
        return await self._one(lambda: self.clients.find_one({"_id": client_id}), client_from)

    async def list_clients(self) -> list[Client]:
        await self._indexes.ensure()
        with mongo_errors("issuance"):
            docs = [d async for d in self.clients.find({}).sort([("created_at", 1), ("name", 1)])]
        return [client_from(d) for d in docs]

    async def upgrade_client_secret_hash(self, client_id: str, old: str, new: str) -> bool:
        await self._indexes.ensure()
        with mongo_errors("issuance"):
            result = await self.clients.update_one(
                {"_id": client_id, "secret_hash": old}, {"$set": {"secret_hash": new}}
            )
        return bool(result.modified_count)

    async def get_client_by_name(self, name: str) -> Client | None:
        return await self._one(lambda: self.clients.find_one({"name": name}), client_from)

    async def _set_client(self, client_id: str, fields: dict[str, Any]) -> Client | None:
        return await self._one(
            lambda: self.clients.find_one_and_update(
                {"_id": client_id}, {"$set": fields}, return_document=ReturnDocument.AFTER
            ),
            client_from,
        )

    async def set_client_disabled(self, client_id: str, disabled: bool) -> Client | None:
        return await self._set_client(client_id, {"disabled": disabled})

    async def set_client_secret_hash(self, client_id: str, secret_hash: str) -> Client | None:
        return await self._set_client(client_id, {"secret_hash": secret_hash})

    async def delete_client(self, client_id: str) -> Client | None:
        return await self._one(
            lambda: self.clients.find_one_and_delete({"_id": client_id}), client_from
        )

    # -- users ------------------------------------------------------------------------

    async def add_user(self, user: User) -> None:
        await self._indexes.ensure()
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
        return await self._one(lambda: self.users.find_one({"_id": user_id}), user_from)

    async def get_user_by_name(self, username: str) -> User | None:
        return await self._one(lambda: self.users.find_one({"username": username}), user_from)

    async def list_users(self) -> list[User]:
        await self._indexes.ensure()
        with mongo_errors("issuance"):
            docs = [d async for d in self.users.find({}).sort("username", 1)]
        return [user_from(d) for d in docs]

    async def set_user_disabled(self, username: str, disabled: bool) -> User | None:
        return await self._one(
            lambda: self.users.find_one_and_update(
                {"username": username},
                {"$set": {"disabled": disabled}},
                return_document=ReturnDocument.AFTER,
            ),
            user_from,
        )

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self._indexes.ensure()
        with mongo_errors("issuance"):
            await self.users.update_one(
                {"_id": user_id}, {"$set": {"password_hash": password_hash}}
            )

    async def delete_user(self, user_id: str) -> User | None:
        return await self._one(lambda: self.users.find_one_and_delete({"_id": user_id}), user_from)

    # -- refresh-token families -------------------------------------------------------

    async def start_family(self, family: Family, token: RefreshToken, access: AccessRecord) -> None:
        await self._indexes.ensure()
        doc = {
            "_id": family.family_id,
            "client_id": family.client_id,
            "subject": family.subject,
            "created_at": family.created_at,
            "expires_at": family.expires_at,
            "purge_at": date(family.expires_at),
            "revoked_at": None,
            "access_revoked": False,
            "access": [{"jti": access.jti, "exp": access.expires_at}],
        }
        with mongo_errors("issuance"):
            await self.families.insert_one(doc)
            await self.tokens.insert_one(token_doc(token))

    async def get_refresh_token(self, token_hash: str) -> tuple[RefreshToken, Family] | None:
        await self._indexes.ensure()
        with mongo_errors("issuance"):
            doc = await self.tokens.find_one({"_id": token_hash})
            if doc is None:
                return None
            family = await self.families.find_one({"_id": doc["family_id"]})
        return None if family is None else (token_from(doc), family_from(family))

    async def rotate(
        self, old_hash: str, new: RefreshToken, access: AccessRecord, *, now: float
    ) -> Rotation:
        await self._indexes.ensure()
        with mongo_errors("issuance"):
            old = await self.tokens.find_one({"_id": old_hash})
            if old is None:
                return Rotation.UNKNOWN
            if old.get("used_at") is not None:
                return await self._replay(old, new, access, now)
            # Marking it used records its successor: if that acknowledgement is lost,
            # the client's retry is recognised by it (see _replay), not taken for theft.
            rotation = await self._succeed(
                old_hash, old["family_id"], new, access, now, link="successor"
            )
            if rotation is not Rotation.ROTATED:
                return rotation
        return await self._answered(old_hash, new.token_hash)

    async def _succeed(
        self,
        used: str,
        family_id: str,
        new: RefreshToken,
        access: AccessRecord,
        now: float,
        *,
        link: str,
    ) -> Rotation:
        """``new`` joins the family, then the unused token ``used`` is marked used, its
        field ``link`` naming ``new``: ROTATED, or FAMILY_REVOKED, or ALREADY_USED
        (``used`` was used meanwhile).

        The successor first: until ``used`` is marked, a failure leaves it usable, and
        an orphaned successor was never handed out."""
        if not await self._join(family_id, new, access, now):
            return Rotation.FAMILY_REVOKED
        marked = await self.tokens.find_one_and_update(
            {"_id": used, "used_at": None}, {"$set": {"used_at": now, link: new.token_hash}}
        )
        return Rotation.ROTATED if marked is not None else Rotation.ALREADY_USED

    async def _answered(self, old_hash: str, successor: str) -> Rotation:
        """Close the retry window of a rotation about to be answered with ``successor``."""
        try:
            closed = await self.tokens.update_one(
                {"_id": old_hash, "successor": successor}, {"$set": {"answered": True}}
            )
        except PyMongoError:
            # The rotation itself is stored: answer it. Only its window stays open.
            return Rotation.ROTATED
        # Superseded meanwhile by someone else presenting the old token: two holders.
        return Rotation.ROTATED if closed.matched_count else Rotation.ALREADY_USED

    async def _replay(
        self, old: dict[str, Any], new: RefreshToken, access: AccessRecord, now: float
    ) -> Rotation:
        """A used token presented again. It is the retry of a rotation whose answer was
        lost if that rotation was never answered, moments ago, and its successor is
        unused: ``new`` then supersedes that successor. Else ALREADY_USED (reuse)."""
        if old.get("answered") or now - old["used_at"] > ROTATION_REPLAY_WINDOW:
            return Rotation.ALREADY_USED
        current = await self._current_successor(old)
        if current is None:
            return Rotation.ALREADY_USED
        rotation = await self._succeed(
            current, old["family_id"], new, access, now, link="superseded_by"
        )
        if rotation is not Rotation.ROTATED:
            return rotation  # revoked, or its holder used it: the first answer arrived
        moved = await self.tokens.update_one(
            {"_id": old["_id"], "successor": old["successor"], "answered": {"$ne": True}},
            {"$set": {"successor": new.token_hash}},
        )
        if not moved.matched_count:
            return Rotation.ALREADY_USED  # another request answered or replayed it first
        return await self._answered(old["_id"], new.token_hash)

    async def _current_successor(self, old: dict[str, Any]) -> str | None:
        """The unused successor, past any a failed retry superseded without recording."""
        successor: str | None = old.get("successor")
        for _ in range(_SUCCESSOR_HOPS):
            if successor is None:
                return None
            doc = await self.tokens.find_one({"_id": successor})
            if doc is None:
                return None
            if doc.get("used_at") is None:
                return successor
            successor = doc.get("superseded_by")
        return None

    async def _join(
        self, family_id: str, new: RefreshToken, access: AccessRecord, now: float
    ) -> bool:
        """Store ``new``, then record ``access`` in the family and extend it to ``new``;
        False if the family is revoked (``new`` is then an orphan, never handed out)."""
        await self.tokens.insert_one(token_doc(new))
        await self.families.update_one(
            {"_id": family_id}, {"$pull": {"access": {"exp": {"$lte": now}}}}
        )
        expires_at = max(new.expires_at, access.expires_at)
        recorded = await self.families.find_one_and_update(
            {"_id": family_id, "revoked_at": None},
            {
                "$push": {"access": {"jti": access.jti, "exp": access.expires_at}},
                "$max": {"expires_at": expires_at, "purge_at": date(expires_at)},
            },
        )
        return recorded is not None

    async def add_to_family(
        self, family_id: str, new: RefreshToken, access: AccessRecord, *, now: float
    ) -> Rotation:
        await self._indexes.ensure()
        with mongo_errors("issuance"):
            family = await self.families.find_one({"_id": family_id})
            if family is None:
                return Rotation.UNKNOWN
            if family.get("revoked_at") is not None:
                return Rotation.FAMILY_REVOKED
            recorded = await self._join(family_id, new, access, now)
        return Rotation.ROTATED if recorded else Rotation.FAMILY_REVOKED

    async def revoke_family(self, family_id: str, *, now: float) -> Family | None:
        await self._indexes.ensure()
        with mongo_errors("issuance"):
            await self.families.update_one(
                {"_id": family_id, "revoked_at": None}, {"$set": {"revoked_at": now}}
            )
            doc = await self.families.find_one({"_id": family_id})
        return None if doc is None else family_from(doc)

    async def revoke_families_of(self, subject: str, *, now: float) -> list[Family]:
        return await self._revoke_families_where("subject", subject, now)

    async def revoke_families_of_client(self, client_id: str, *, now: float) -> list[Family]:
        return await self._revoke_families_where("client_id", client_id, now)

    async def _revoke_families_where(self, field: str, value: str, now: float) -> list[Family]:
        await self._indexes.ensure()
        with mongo_errors("issuance"):
            await self.families.update_many(
                {field: value, "revoked_at": None}, {"$set": {"revoked_at": now}}
            )
            docs = [d async for d in self.families.find({field: value})]
        return [family_from(d) for d in docs]

    async def mark_access_revoked(self, family_id: str) -> None:
        await self._indexes.ensure()
        with mongo_errors("issuance"):
            await self.families.update_one({"_id": family_id}, {"$set": {"access_revoked": True}})

    async def purge_expired(self, *, now: float) -> int:
        await self._indexes.ensure()
        with mongo_errors("issuance"):
            tokens = await self.tokens.delete_many({"expires_at": {"$lte": now}})
            families = await self.families.delete_many({"expires_at": {"$lte": now}})
        return int(tokens.deleted_count) + int(families.deleted_count)

    async def close(self) -> None:
        if self._client is not None:
            result = self._client.close()
            if asyncio.iscoroutine(result):  # pymongo's async client; Motor's close is sync
                await result
