"""The embedded IssuanceStore: one SQLite file in the data directory (WAL, fsync'd commits)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from backends.issuance.base import (
    AccessRecord,
    AlreadyExists,
    Client,
    Family,
    RefreshToken,
    Rotation,
    User,
)
from backends.issuance.sqlite_schema import (
    CLIENTS,
    FAMILY_COLUMNS,
    REFRESH_TOKENS,
    SCHEMA,
    USERS,
    grow_family,
    insert_access,
    migrate,
    select_family,
)
from backends.storage.sqlite import SQLiteRunner, create_schema


class SQLiteIssuanceStore:
    durable = True

    def __init__(self, path: Path) -> None:
        self.db = SQLiteRunner(path, setup=create_schema(SCHEMA, migrate))

    # -- clients ----------------------------------------------------------------------

    async def add_client(self, client: Client) -> None:
        try:
            await self.db.write(lambda db: CLIENTS.insert(db, client))
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"a client named {client.name!r} exists") from None

    async def add_first_client(self, client: Client) -> bool:
        def insert_if_empty(db: sqlite3.Connection) -> bool:
            if db.execute("SELECT 1 FROM clients LIMIT 1").fetchone() is not None:
                return False
            CLIENTS.insert(db, client)
            return True

        return await self.db.write(insert_if_empty)

    async def get_client(self, client_id: str) -> Client | None:
        return await self.db.read(lambda db: CLIENTS.one(db, "client_id", client_id))

    async def get_client_by_name(self, name: str) -> Client | None:
        return await self.db.read(lambda db: CLIENTS.one(db, "name", name))

    async def _update_client(self, client_id: str, assignment: str, value: object) -> Client | None:
        def update(db: sqlite3.Connection) -> Client | None:
            db.execute(
                f"UPDATE clients SET {assignment} = ? WHERE client_id = ?",  # noqa: S608
                (value, client_id),
            )
            return CLIENTS.one(db, "client_id", client_id)

        return await self.db.write(update)

    async def set_client_disabled(self, client_id: str, disabled: bool) -> Client | None:
        return await self._update_client(client_id, "disabled", int(disabled))

    async def set_client_secret_hash(self, client_id: str, secret_hash: str) -> Client | None:
        return await self._update_client(client_id, "secret_hash", secret_hash)

    async def delete_client(self, client_id: str) -> Client | None:
        return await self.db.write(lambda db: CLIENTS.delete(db, "client_id", client_id))

    async def upgrade_client_secret_hash(self, client_id: str, old: str, new: str) -> bool:
        changed = await self.db.write(
            lambda db: (
                db.execute(
                    "UPDATE clients SET secret_hash = ? WHERE client_id = ? AND secret_hash = ?",
                    (new, client_id, old),
                ).rowcount
            )
        )
        return bool(changed)

    async def list_clients(self) -> list[Client]:
        return await self.db.read(lambda db: CLIENTS.all(db, "ORDER BY created_at, name"))

    # -- users ------------------------------------------------------------------------

    async def add_user(self, user: User) -> None:
        try:
            await self.db.write(lambda db: USERS.insert(db, user))
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"a user named {user.username!r} exists") from None

    async def get_user(self, user_id: str) -> User | None:
        return await self.db.read(lambda db: USERS.one(db, "user_id", user_id))

    async def get_user_by_name(self, username: str) -> User | None:
        return await self.db.read(lambda db: USERS.one(db, "username", username))

    async def list_users(self) -> list[User]:
        return await self.db.read(lambda db: USERS.all(db, "ORDER BY username"))

    async def set_user_disabled(self, username: str, disabled: bool) -> User | None:
        def update(db: sqlite3.Connection) -> User | None:
            db.execute(
                "UPDATE users SET disabled = ? WHERE username = ?", (int(disabled), username)
            )
            return USERS.one(db, "username", username)

        return await self.db.write(update)

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self.db.write(
            lambda db: db.execute(
                "UPDATE users SET password_hash = ? WHERE user_id = ?", (password_hash, user_id)
            )
        )

    async def delete_user(self, user_id: str) -> User | None:
        return await self.db.write(lambda db: USERS.delete(db, "user_id", user_id))

    # -- refresh-token families -------------------------------------------------------

    async def start_family(self, family: Family, token: RefreshToken, access: AccessRecord) -> None:
        def insert(db: sqlite3.Connection) -> None:
            db.execute(
                f"INSERT INTO refresh_families ({FAMILY_COLUMNS}) "  # noqa: S608
                "VALUES (?, ?, ?, ?, ?, NULL, 0)",
                (
                    family.family_id,
                    family.client_id,
                    family.subject,
                    family.created_at,
                    family.expires_at,
                ),
            )
            REFRESH_TOKENS.insert(db, token)
            insert_access(db, family.family_id, access)

        await self.db.write(insert)

    async def get_refresh_token(self, token_hash: str) -> tuple[RefreshToken, Family] | None:
        def select(db: sqlite3.Connection) -> tuple[RefreshToken, Family] | None:
            token = REFRESH_TOKENS.one(db, "token_hash", token_hash)
            if token is None:
                return None
            family = select_family(db, token.family_id)
            return None if family is None else (token, family)

        return await self.db.read(select)

    async def rotate(
        self, old_hash: str, new: RefreshToken, access: AccessRecord, *, now: float
    ) -> Rotation:
        def swap(db: sqlite3.Connection) -> Rotation:
            row = db.execute(
                "SELECT t.used_at, f.revoked_at, f.family_id FROM refresh_tokens t "
                "JOIN refresh_families f USING (family_id) WHERE t.token_hash = ?",
                (old_hash,),
            ).fetchone()
            if row is None:
                return Rotation.UNKNOWN
            used_at, revoked_at, family_id = row
            if used_at is not None:
                return Rotation.ALREADY_USED
            if revoked_at is not None:
                return Rotation.FAMILY_REVOKED
            db.execute(
                "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ?", (now, old_hash)
            )
            grow_family(db, family_id, new, access, now)
            return Rotation.ROTATED

        return await self.db.write(swap)

    async def add_to_family(
        self, family_id: str, new: RefreshToken, access: AccessRecord, *, now: float
    ) -> Rotation:
        def add(db: sqlite3.Connection) -> Rotation:
            row = db.execute(
                "SELECT revoked_at FROM refresh_families WHERE family_id = ?", (family_id,)
            ).fetchone()
            if row is None:
                return Rotation.UNKNOWN
            if row[0] is not None:
                return Rotation.FAMILY_REVOKED
            grow_family(db, family_id, new, access, now)
            return Rotation.ROTATED

        return await self.db.write(add)

    async def revoke_family(self, family_id: str, *, now: float) -> Family | None:
        def revoke(db: sqlite3.Connection) -> Family | None:
            db.execute(
                "UPDATE refresh_families SET revoked_at = ? "
                "WHERE family_id = ? AND revoked_at IS NULL",
                (now, family_id),
            )
            return select_family(db, family_id)

        return await self.db.write(revoke)

    async def revoke_families_of(self, subject: str, *, now: float) -> list[Family]:
        return await self._revoke_families_where("subject", subject, now)

    async def revoke_families_of_client(self, client_id: str, *, now: float) -> list[Family]:
        return await self._revoke_families_where("client_id", client_id, now)

    async def _revoke_families_where(self, column: str, value: str, now: float) -> list[Family]:
        def revoke(db: sqlite3.Connection) -> list[Family]:
            db.execute(
                "UPDATE refresh_families SET revoked_at = ? "  # noqa: S608 - column is ours
                f"WHERE {column} = ? AND revoked_at IS NULL",
                (now, value),
            )
            ids = db.execute(
                f"SELECT family_id FROM refresh_families WHERE {column} = ?",  # noqa: S608
                (value,),
            ).fetchall()
            return [f for (i,) in ids if (f := select_family(db, i)) is not None]

        return await self.db.write(revoke)

    async def mark_access_revoked(self, family_id: str) -> None:
        await self.db.write(
            lambda db: db.execute(
                "UPDATE refresh_families SET access_revoked = 1 WHERE family_id = ?",
                (family_id,),
            )
        )

    async def purge_expired(self, *, now: float) -> int:
        def purge(db: sqlite3.Connection) -> int:
            tokens = db.execute("DELETE FROM refresh_tokens WHERE expires_at <= ?", (now,))
            families = db.execute("DELETE FROM refresh_families WHERE expires_at <= ?", (now,))
            return tokens.rowcount + families.rowcount

        return await self.db.write(purge)

    async def close(self) -> None:
        await self.db.close()
