"""Clients, users and refresh-token families, and the IssuanceStore protocol that keeps them.

A *family* is one login (one password grant) and everything that descends from
it: each refresh rotates to a new refresh token in the same family, and the
family records the access tokens it handed out, so that presenting an
already-used refresh token (a theft signal) can revoke them all at once.
Refresh tokens are opaque; the store keeps only their SHA-256 hash.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

GRANT_TYPES = ("client_credentials", "password", "refresh_token")

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
# Login names: printable, no spaces or separators that would confuse logs or Basic auth.
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
_CLIENT_NAME = _USERNAME


class AlreadyExists(Exception):
    """A client or user with that name already exists."""


def is_scope_token(value: str) -> bool:
    return bool(_SCOPE_TOKEN.fullmatch(value))


def parse_scopes(raw: str) -> frozenset[str]:
    """Space-separated scopes; ``ValueError`` naming the first bad one."""
    scopes = raw.split()
    for scope in scopes:
        if not is_scope_token(scope):
            raise ValueError(f"invalid scope {scope!r}")
    return frozenset(scopes)


def parse_grant_types(raw: str) -> frozenset[str]:
    grants = frozenset(g.strip() for g in raw.split(",") if g.strip())
    unknown = sorted(grants.difference(GRANT_TYPES))
    if unknown:
        raise ValueError(f"unknown grant type {unknown[0]!r} (known: {', '.join(GRANT_TYPES)})")
    if not grants:
        raise ValueError("at least one grant type is needed")
    return grants


def check_name(value: str, what: str) -> str:
    if not _USERNAME.fullmatch(value):
        raise ValueError(
            f"{what} must be 1-64 characters: letters, digits and . _ @ + -, "
            "starting with a letter or digit"
        )
    return value


def scope_string(scopes: Iterable[str]) -> str:
    return " ".join(sorted(scopes))


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    name: str
    secret_hash: str
    grant_types: frozenset[str]
    scopes: frozenset[str]
    created_at: float
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class User:
    """``user_id`` is the token subject: stable, never reassigned, unlike a login name."""

    user_id: str
    username: str
    password_hash: str
    scopes: frozenset[str]
    disabled: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class AccessRecord:
    """An access token handed out from a family: enough to revoke it by jti."""

    jti: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class RefreshToken:
    token_hash: str
    family_id: str
    client_id: str
    subject: str
    scopes: frozenset[str]
    issued_at: float
    expires_at: float
    used_at: float | None = None
    # The RFC 7638 thumbprint of the DPoP key the token is bound to (RFC 9449 §5): a
    # refresh must prove that key. Set when the login started with a proof; its
    # successors inherit it, so a login's binding never changes.
    jkt: str | None = None


@dataclass(frozen=True, slots=True)
class Family:
    family_id: str
    client_id: str
    subject: str
    created_at: float
    expires_at: float
    revoked_at: float | None = None
    # True once every access token below has been written to the revocation store.
    access_revoked: bool = False
    access_tokens: tuple[AccessRecord, ...] = field(default=())

    def live_access_tokens(self, now: float) -> list[AccessRecord]:
        return [a for a in self.access_tokens if a.expires_at > now]


# Seconds after a rotation in which its retry is recognised (see IssuanceStore.rotate):
# a client retries a 503 within seconds.
ROTATION_REPLAY_WINDOW = 30.0


class Rotation(Enum):
    ROTATED = "rotated"
    # The presented token was used already: reuse, or a client racing itself.
    ALREADY_USED = "already_used"
    FAMILY_REVOKED = "family_revoked"
    # Gone meanwhile (expired and purged).
    UNKNOWN = "unknown"


class IssuanceStore(Protocol):
    """Where clients, users and refresh-token families live.

    Every method raises ``BackendUnavailable`` when the store cannot answer; a
    write returns only once the store has made it durable.
    """

    durable: bool
    """Whether the registry outlives this process and is shared with the CLI (memory: no)."""

    # -- clients ----------------------------------------------------------------------

    async def add_client(self, client: Client) -> None:
        """:raises AlreadyExists: a client with that name exists."""
        ...

    async def add_first_client(self, client: Client) -> bool:
        """Add ``client`` only if the registry is empty; True if it was added."""
        ...

    async def get_client(self, client_id: str) -> Client | None: ...

    async def get_client_by_name(self, name: str) -> Client | None: ...

    async def list_clients(self) -> list[Client]: ...

    async def upgrade_client_secret_hash(self, client_id: str, old: str, new: str) -> bool:
        """Store ``new`` as the client's secret hash if ``old`` is still the stored one.

        Conditional, so an upgrade racing a secret change can never bring back the old
        secret. True if it was replaced.
        """
        ...

    async def set_client_disabled(self, client_id: str, disabled: bool) -> Client | None:
        """The updated client, or None if there is no such client."""
        ...

    async def set_client_secret_hash(self, client_id: str, secret_hash: str) -> Client | None:
        """Replace the client's secret (the old one stops working); None: no such client."""
        ...

    async def delete_client(self, client_id: str) -> Client | None:
        """Remove the client; the removed client, or None if there was none."""
        ...

    # -- users ------------------------------------------------------------------------

    async def add_user(self, user: User) -> None:
        """:raises AlreadyExists: a user with that username exists."""
        ...

    async def get_user(self, user_id: str) -> User | None: ...

    async def get_user_by_name(self, username: str) -> User | None: ...

    async def list_users(self) -> list[User]: ...

    async def set_user_disabled(self, username: str, disabled: bool) -> User | None:
        """The updated user, or None if there is no such user."""
        ...

    async def set_password_hash(self, user_id: str, password_hash: str) -> None: ...

    async def delete_user(self, user_id: str) -> User | None:
        """Remove the user; the removed user, or None if there was none. Its id is never
        given to another user."""
        ...

    # -- refresh-token families -------------------------------------------------------

    async def start_family(self, family: Family, token: RefreshToken, access: AccessRecord) -> None:
        """Record a new login: its family, first refresh token and first access token."""
        ...

    async def get_refresh_token(self, token_hash: str) -> tuple[RefreshToken, Family] | None: ...

    async def rotate(
        self, old_hash: str, new: RefreshToken, access: AccessRecord, *, now: float
    ) -> Rotation:
        """Atomically mark ``old_hash`` used and add ``new`` and ``access`` to its family.

        Succeeds only for a token not used before whose family is not revoked, so
        of two concurrent uses of one token exactly one rotates.

        A store whose acknowledgement can be lost after the write applied (a remote
        server) may also answer ROTATED for ``old_hash`` used less than
        :data:`ROTATION_REPLAY_WINDOW` ago whose successor was never used: the retry
        of a rotation whose answer never arrived. ``new`` then supersedes the unused
        successor, so whoever holds that one presents a used token later (reuse).
        """
        ...

    async def add_to_family(
        self, family_id: str, new: RefreshToken, access: AccessRecord, *, now: float
    ) -> Rotation:
        """Add ``new`` and ``access`` to a family that is not revoked (a refresh token
        reused within the reuse interval branches it); ROTATED if added, else
        FAMILY_REVOKED, or UNKNOWN when the family is gone."""
        ...

    async def revoke_family(self, family_id: str, *, now: float) -> Family | None:
        """Mark the family revoked (idempotent; the first time wins) and return it."""
        ...

    async def revoke_families_of(self, subject: str, *, now: float) -> list[Family]:
        """Revoke every family of ``subject``; returns them."""
        ...

    async def revoke_families_of_client(self, client_id: str, *, now: float) -> list[Family]:
        """Revoke every family started through ``client_id``; returns them."""
        ...

    async def mark_access_revoked(self, family_id: str) -> None:
        """Every live access token of the family is in the revocation store now."""
        ...

    async def purge_expired(self, *, now: float) -> int:
        """Drop refresh tokens and families past their expiry; how many went."""
        ...

    async def close(self) -> None: ...
