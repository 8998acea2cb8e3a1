"""An in-process IssuanceStore: for tests and throwaway runs; nothing survives a restart.

No method awaits between reading and writing, so each one is atomic on the loop.
"""

from __future__ import annotations

import dataclasses

from backends.issuance.base import (
    AccessRecord,
    AlreadyExists,
    Client,
    Family,
    RefreshToken,
    Rotation,
    User,
)


class MemoryIssuanceStore:
    durable = False

    def __init__(self) -> None:
        self._clients: dict[str, Client] = {}
        self._users: dict[str, User] = {}
        self._tokens: dict[str, RefreshToken] = {}
        self._families: dict[str, Family] = {}

    # -- clients ----------------------------------------------------------------------

    async def add_client(self, client: Client) -> None:
        if any(c.name == client.name for c in self._clients.values()):
            raise AlreadyExists(f"a client named {client.name!r} exists")
        self._clients[client.client_id] = client

    async def add_first_client(self, client: Client) -> bool:
        if self._clients:
            return False
        self._clients[client.client_id] = client
        return True

    async def get_client(self, client_id: str) -> Client | None:
        return self._clients.get(client_id)

    async def get_client_by_name(self, name: str) -> Client | None:
        return next((c for c in self._clients.values() if c.name == name), None)

    async def list_clients(self) -> list[Client]:
        return sorted(self._clients.values(), key=lambda c: (c.created_at, c.name))

    async def upgrade_client_secret_hash(self, client_id: str, old: str, new: str) -> bool:
        client = self._clients.get(client_id)
        if client is None or client.secret_hash != old:
            return False
        self._clients[client_id] = dataclasses.replace(client, secret_hash=new)
        return True

    async def set_client_disabled(self, client_id: str, disabled: bool) -> Client | None:
        client = self._clients.get(client_id)
        if client is not None:
            client = self._clients[client_id] = dataclasses.replace(client, disabled=disabled)
        return client

    async def set_client_secret_hash(self, client_id: str, secret_hash: str) -> Client | None:
        client = self._clients.get(client_id)
        if client is not None:
            client = self._clients[client_id] = dataclasses.replace(client, secret_hash=secret_hash)
        return client

    async def delete_client(self, client_id: str) -> Client | None:
        return self._clients.pop(client_id, None)

    # -- users ------------------------------------------------------------------------

    async def add_user(self, user: User) -> None:
        if any(u.username == user.username for u in self._users.values()):
            raise AlreadyExists(f"a user named {user.username!r} exists")
        self._users[user.user_id] = user

    async def get_user(self, user_id: str) -> User | None:
        return self._users.get(user_id)

    async def get_user_by_name(self, username: str) -> User | None:
        return next((u for u in self._users.values() if u.username == username), None)

    async def list_users(self) -> list[User]:
        return sorted(self._users.values(), key=lambda u: u.username)

    async def set_user_disabled(self, username: str, disabled: bool) -> User | None:
        user = await self.get_user_by_name(username)
        if user is None:
            return None
        updated = dataclasses.replace(user, disabled=disabled)
        self._users[user.user_id] = updated
        return updated

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        user = self._users.get(user_id)
        if user is not None:
            self._users[user_id] = dataclasses.replace(user, password_hash=password_hash)

    async def delete_user(self, user_id: str) -> User | None:
        return self._users.pop(user_id, None)

    # -- refresh-token families -------------------------------------------------------

    async def start_family(self, family: Family, token: RefreshToken, access: AccessRecord) -> None:
        self._families[family.family_id] = dataclasses.replace(family, access_tokens=(access,))
        self._tokens[token.token_hash] = token

    async def get_refresh_token(self, token_hash: str) -> tuple[RefreshToken, Family] | None:
        token = self._tokens.get(token_hash)
        if token is None:
            return None
        return token, self._families[token.family_id]

    async def rotate(
        self, old_hash: str, new: RefreshToken, access: AccessRecord, *, now: float
    ) -> Rotation:
        old = self._tokens.get(old_hash)
        if old is None:
            return Rotation.UNKNOWN
        if old.used_at is not None:
            return Rotation.ALREADY_USED
        rotation = self._join(self._families[old.family_id], new, access, now)
        if rotation is Rotation.ROTATED:
            self._tokens[old_hash] = dataclasses.replace(old, used_at=now)
        return rotation

    async def add_to_family(
        self, family_id: str, new: RefreshToken, access: AccessRecord, *, now: float
    ) -> Rotation:
        family = self._families.get(family_id)
        if family is None:
            return Rotation.UNKNOWN
        return self._join(family, new, access, now)

    def _join(
        self, family: Family, new: RefreshToken, access: AccessRecord, now: float
    ) -> Rotation:
        """``new`` and ``access`` join ``family``, extending it, unless it is revoked."""
        if family.revoked_at is not None:
            return Rotation.FAMILY_REVOKED
        self._tokens[new.token_hash] = new
        live = tuple(a for a in family.access_tokens if a.expires_at > now)
        self._families[family.family_id] = dataclasses.replace(
            family,
            access_tokens=(*live, access),
            expires_at=max(family.expires_at, new.expires_at, access.expires_at),
        )
        return Rotation.ROTATED

    async def revoke_family(self, family_id: str, *, now: float) -> Family | None:
        family = self._families.get(family_id)
        if family is None:
            return None
        if family.revoked_at is None:
            family = dataclasses.replace(family, revoked_at=now)
            self._families[family_id] = family
        return family

    async def revoke_families_of(self, subject: str, *, now: float) -> list[Family]:
        ids = [f.family_id for f in self._families.values() if f.subject == subject]
        return [f for i in ids if (f := await self.revoke_family(i, now=now)) is not None]

    async def revoke_families_of_client(self, client_id: str, *, now: float) -> list[Family]:
        ids = [f.family_id for f in self._families.values() if f.client_id == client_id]
        return [f for i in ids if (f := await self.revoke_family(i, now=now)) is not None]

    async def mark_access_revoked(self, family_id: str) -> None:
        family = self._families.get(family_id)
        if family is not None:
            self._families[family_id] = dataclasses.replace(family, access_revoked=True)

    async def purge_expired(self, *, now: float) -> int:
        tokens = [h for h, t in self._tokens.items() if t.expires_at <= now]
        families = [i for i, f in self._families.items() if f.expires_at <= now]
        for h in tokens:
            del self._tokens[h]
        for i in families:
            del self._families[i]
            for h in [h for h, t in self._tokens.items() if t.family_id == i]:
                del self._tokens[h]
        return len(tokens) + len(families)

    async def close(self) -> None:
        return None
