"""Users' and clients' lifecycle, one implementation behind ``jotguard users|clients`` and
the admin API: disable, enable, delete, change a password, rotate a client secret.

Disabling or deleting an account, or changing a user's password, revokes what it holds:
its refresh-token families at once, its access tokens by a subject (user) or client
cutoff at the local issuer. The account is disabled first, so no new token can be had
while the old ones are being revoked; if revoking fails (the revocation store is down)
the action raises, and running it again finishes the job. Every action is logged on
``jotguard.audit`` with its actor; revocations also land in the revocation audit log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from backends.issuance.base import Client, User
from backends.revocation.base import Revocation
from webapp.service.issuance import Issuance

audit = logging.getLogger("jotguard.audit")


class NotFound(LookupError):
    """No user or client by that name or id; ``str()`` says which."""


@dataclass(frozen=True, slots=True)
class UserChange:
    user: User
    revocation: Revocation | None = None


@dataclass(frozen=True, slots=True)
class ClientChange:
    client: Client
    revocation: Revocation | None = None
    secret: str | None = None  # a rotated secret, shown once


def _audit(actor: str, action: str, target: str) -> None:
    audit.info("%s by %s: %s", action, actor, target)


def _no_user(username: str) -> NotFound:
    return NotFound(f"no user named {username!r}")


def _no_client(client_id: str) -> NotFound:
    return NotFound(f"no client {client_id!r}")


# -- users -----------------------------------------------------------------------------------


async def _disable_user(
    issuance: Issuance, username: str, *, reason: str, actor: str
) -> UserChange:
    user = await issuance.store.set_user_disabled(username, True)
    if user is None:
        raise _no_user(username)
    entry = await issuance.tokens.revoke_user(user, reason=reason, actor=actor)
    return UserChange(user, entry)


async def disable_user(issuance: Issuance, username: str, *, actor: str) -> UserChange:
    change = await _disable_user(issuance, username, reason="user disabled", actor=actor)
    _audit(actor, "user disabled", f"{change.user.username} ({change.user.user_id})")
    return change


async def enable_user(issuance: Issuance, username: str, *, actor: str) -> UserChange:
    user = await issuance.store.set_user_disabled(username, False)
    if user is None:
        raise _no_user(username)
    _audit(actor, "user enabled", f"{user.username} ({user.user_id})")
    return UserChange(user)


async def delete_user(issuance: Issuance, username: str, *, actor: str) -> UserChange:
    # Disabled and revoked before it goes: a failure half-way leaves a user that can get
    # nothing, found again by its name when the command is run once more.
    change = await _disable_user(issuance, username, reason="user deleted", actor=actor)
    await issuance.store.delete_user(change.user.user_id)
    _audit(actor, "user deleted", f"{change.user.username} ({change.user.user_id})")
    return change


async def set_password(
    issuance: Issuance, username: str, password: str, *, actor: str
) -> UserChange:
    """A new password; whoever knew the old one loses the sessions it opened."""
    user = await issuance.store.get_user_by_name(username)
    if user is None:
        raise _no_user(username)
    await issuance.store.set_password_hash(user.user_id, await issuance.hasher.hash(password))
    entry = await issuance.tokens.revoke_user(user, reason="password changed", actor=actor)
    _audit(actor, "password changed", f"{user.username} ({user.user_id})")
    return UserChange(user, entry)


# -- clients ---------------------------------------------------------------------------------


async def find_client(issuance: Issuance, reference: str) -> Client:
    """The client with ``reference`` as its id or, failing that, its name (the CLI)."""
    client = await issuance.store.get_client(reference)
    if client is None:
        client = await issuance.store.get_client_by_name(reference)
    if client is None:
        raise NotFound(f"no client with the id or name {reference!r}")
    return client


async def _disable_client(
    issuance: Issuance, client_id: str, *, reason: str, actor: str
) -> ClientChange:
    client = await issuance.store.set_client_disabled(client_id, True)
    if client is None:
        raise _no_client(client_id)
    entry = await issuance.tokens.revoke_client(client, reason=reason, actor=actor)
    return ClientChange(client, entry)


async def disable_client(issuance: Issuance, client_id: str, *, actor: str) -> ClientChange:
    change = await _disable_client(issuance, client_id, reason="client disabled", actor=actor)
    _audit(actor, "client disabled", f"{change.client.name} ({client_id})")
    return change


async def enable_client(issuance: Issuance, client_id: str, *, actor: str) -> ClientChange:
    client = await issuance.store.set_client_disabled(client_id, False)
    if client is None:
        raise _no_client(client_id)
    _audit(actor, "client enabled", f"{client.name} ({client.client_id})")
    return ClientChange(client)


async def delete_client(issuance: Issuance, client_id: str, *, actor: str) -> ClientChange:
    change = await _disable_client(issuance, client_id, reason="client deleted", actor=actor)
    await issuance.store.delete_client(client_id)
    _audit(actor, "client deleted", f"{change.client.name} ({client_id})")
    return change


async def rotate_client_secret(issuance: Issuance, client_id: str, *, actor: str) -> ClientChange:
    """A new secret, returned once; the old one stops working at once. Tokens already
    issued stay valid: revoke the client's tokens too if the old secret leaked."""
    # Made as every client secret is: the one place (ClientSecrets.new_secret).
    secret, secret_hash = await issuance.tokens.client_secrets.new_secret()
    client = await issuance.store.set_client_secret_hash(client_id, secret_hash)
    if client is None:
        raise _no_client(client_id)
    _audit(actor, "client secret rotated", f"{client.name} ({client.client_id})")
    return ClientChange(client, secret=secret)
