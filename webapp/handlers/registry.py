"""The admin API's users and clients: list, disable, enable, delete, a new password or
client secret (admin scope, each action audited with the caller as its actor).

Each action is :mod:`webapp.service.lifecycle`, as the CLI runs it: disabling or deleting an
account (or changing a password) revokes its refresh-token families and writes its
subject or client revocation entry before the answer is sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from backends.errors import InvalidInput, NotFound
from backends.issuance.base import Client, User
from backends.revocation.base import Revocation
from webapp.handlers.admin import AdminHandler, json_object
from webapp.service import lifecycle
from webapp.service.issuance import Issuance
from webapp.service.openapi import json_body, json_response, operation
from webapp.service.revoking import entry_json
from webapp.web.collaborators import collaborator
from webapp.web.handler import require_json_media_type

T = TypeVar("T")
C_co = TypeVar("C_co", covariant=True)
F = TypeVar("F", bound=Callable[..., Any])

# As check_name and the client ids the registry makes: anything else is not found.
USERNAME = r"(?P<username>[A-Za-z0-9][A-Za-z0-9._@+-]{0,63})"
CLIENT_ID = r"(?P<client_id>[A-Za-z0-9_-]{1,64})"
MIN_PASSWORD, MAX_PASSWORD = 8, 1024

_USER = {
    "type": "object",
    "required": ["user_id", "username", "scopes", "disabled", "created_at"],
    "properties": {
        "user_id": {"type": "string", "description": "The sub of the user's tokens."},
        "username": {"type": "string"},
        "scopes": {"type": "array", "items": {"type": "string"}},
        "disabled": {"type": "boolean"},
        "created_at": {"type": "number"},
    },
}
_CLIENT = {
    "type": "object",
    "required": ["client_id", "name", "grant_types", "scopes", "disabled", "created_at"],
    "properties": {
        "client_id": {"type": "string"},
        "name": {"type": "string"},
        "grant_types": {"type": "array", "items": {"type": "string"}},
        "scopes": {"type": "array", "items": {"type": "string"}},
        "disabled": {"type": "boolean"},
        "created_at": {"type": "number"},
    },
}
_REVOCATION = {
    "type": ["object", "null"],
    "description": "The subject or client entry written, when the action revokes tokens.",
}


def _change(key: str, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [key, "revocation"],
        "properties": {key: item, "revocation": _REVOCATION},
    }


_USER_CHANGE = _change("user", _USER)
_CLIENT_CHANGE = _change("client", _CLIENT)


def _list_of(key: str, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [key],
        "properties": {key: {"type": "array", "items": item}},
    }


def _on_one(summary: str, answer: dict[str, Any]) -> Callable[[F], F]:
    """Documents a route about one user or client: 404 when there is none."""
    return operation(summary, responses={200: answer}, errors=[404], tags=["admin"])


class _Action(Protocol[C_co]):
    """A :mod:`~webapp.service.lifecycle` action on one account, by name or id."""

    def __call__(self, issuance: Issuance, reference: str, /, *, actor: str) -> Awaitable[C_co]: ...


def user_json(user: User) -> dict[str, Any]:
    return {
        "user_id": user.user_id,
        "username": user.username,
        "scopes": sorted(user.scopes),
        "disabled": user.disabled,
        "created_at": round(user.created_at, 3),
    }


def client_json(client: Client) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "name": client.name,
        "grant_types": sorted(client.grant_types),
        "scopes": sorted(client.scopes),
        "disabled": client.disabled,
        "created_at": round(client.created_at, 3),
    }


class RegistryHandler(AdminHandler):
    """An admin route over the local issuer's users and clients."""

    issuance: Issuance = collaborator()

    async def call(self, action: Awaitable[T]) -> T:
        """``action``'s result; 404 for an unknown account."""
        try:
            return await action
        except lifecycle.NotFound as exc:
            raise NotFound(str(exc).capitalize()) from None

    async def act(self, action: _Action[T], reference: str) -> T:
        """``action`` on the account ``reference``, by this caller; 404 if there is none."""
        return await self.call(action(self.issuance, reference, actor=self.actor))

    def answer_user(self, change: lifecycle.UserChange) -> None:
        self._answer("user", user_json(change.user), change.revocation)

    def answer_client(self, change: lifecycle.ClientChange) -> None:
        self._answer("client", client_json(change.client), change.revocation)

    def _answer(self, key: str, account: dict[str, Any], revocation: Revocation | None) -> None:
        entry = entry_json(revocation) if revocation is not None else None
        self.finish({key: account, "revocation": entry})

    @property
    def actor(self) -> str:
        return self.principal.subject


# -- users -----------------------------------------------------------------------------------


class UsersHandler(RegistryHandler):
    @operation(
        "List the password grant's users",
        responses={200: json_response("Every user, by username.", _list_of("users", _USER))},
        tags=["admin"],
    )
    async def get(self) -> None:
        users = await self.call(self.issuance.store.list_users())
        self.finish({"users": [user_json(u) for u in users]})


class UserHandler(RegistryHandler):
    @_on_one("One user", json_response("The user.", _USER))
    async def get(self, username: str) -> None:
        user = await self.call(self.issuance.store.get_user_by_name(username))
        if user is None:
            raise NotFound(f"No user named {username!r}")
        self.finish(user_json(user))

    @_on_one(
        "Delete a user; its refresh and access tokens are revoked first",
        json_response("The deleted user.", _USER_CHANGE),
    )
    async def delete(self, username: str) -> None:
        self.answer_user(await self.act(lifecycle.delete_user, username))


class UserDisableHandler(RegistryHandler):
    @_on_one(
        "Disable a user and revoke its refresh and access tokens",
        json_response("The disabled user.", _USER_CHANGE),
    )
    async def post(self, username: str) -> None:
        self.answer_user(await self.act(lifecycle.disable_user, username))


class UserEnableHandler(RegistryHandler):
    @_on_one("Let a disabled user log in again", json_response("The user.", _USER_CHANGE))
    async def post(self, username: str) -> None:
        self.answer_user(await self.act(lifecycle.enable_user, username))


def _new_password(handler: RegistryHandler) -> str:
    require_json_media_type(handler.request)
    body = json_object(handler.request.body)
    unknown = sorted(set(body) - {"password"})
    if unknown:
        raise InvalidInput(f"unknown field '{unknown[0][:40]}'")
    password = body.get("password")
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(
            f"'password' must be a string of {MIN_PASSWORD} to {MAX_PASSWORD} characters"
        )
    return password


class UserPasswordHandler(RegistryHandler):
    @operation(
        "Set a user's password; the sessions opened with the old one are revoked",
        request_body=json_body(
            {
                "type": "object",
                "required": ["password"],
                "properties": {"password": {"type": "string", "minLength": 8, "maxLength": 1024}},
                "additionalProperties": False,
            }
        ),
        responses={200: json_response("The user.", _USER_CHANGE)},
        errors=[404, 413, 415],
        tags=["admin"],
    )
    async def put(self, username: str) -> None:
        password = _new_password(self)
        change = lifecycle.set_password(self.issuance, username, password, actor=self.actor)
        self.answer_user(await self.call(change))


# -- clients ---------------------------------------------------------------------------------


class ClientsHandler(RegistryHandler):
    @operation(
        "List OAuth clients (never their secrets)",
        responses={200: json_response("Every client, oldest first.", _list_of("clients", _CLIENT))},
        tags=["admin"],
    )
    async def get(self) -> None:
        clients = await self.call(self.issuance.store.list_clients())
        self.finish({"clients": [client_json(c) for c in clients]})


class ClientHandler(RegistryHandler):
    @_on_one("One client", json_response("The client.", _CLIENT))
    async def get(self, client_id: str) -> None:
        client = await self.call(self.issuance.store.get_client(client_id))
        if client is None:
            raise NotFound(f"No client {client_id!r}")
        self.finish(client_json(client))

    @_on_one(
        "Delete a client; its tokens (every user's logins through it) are revoked first",
        json_response("The deleted client.", _CLIENT_CHANGE),
    )
    async def delete(self, client_id: str) -> None:
        self.answer_client(await self.act(lifecycle.delete_client, client_id))


class ClientDisableHandler(RegistryHandler):
    @_on_one(
        "Disable a client and revoke its tokens (every user's logins through it)",
        json_response("The disabled client.", _CLIENT_CHANGE),
    )
    async def post(self, client_id: str) -> None:
        self.answer_client(await self.act(lifecycle.disable_client, client_id))


class ClientEnableHandler(RegistryHandler):
    @_on_one("Let a disabled client get tokens again", json_response("The client.", _CLIENT_CHANGE))
    async def post(self, client_id: str) -> None:
        self.answer_client(await self.act(lifecycle.enable_client, client_id))


class ClientSecretHandler(RegistryHandler):
    @_on_one(
        "A new client secret, shown this once; the old one stops working at once",
        json_response(
            "The client and its new secret.",
            {
                "type": "object",
                "required": ["client_id", "client_secret"],
                "properties": {
                    "client_id": {"type": "string"},
                    "client_secret": {"type": "string"},
                },
            },
        ),
    )
    async def post(self, client_id: str) -> None:
        change = await self.act(lifecycle.rotate_client_secret, client_id)
        self.finish({"client_id": change.client.client_id, "client_secret": change.secret})


def registry_routes() -> list[tuple[str, type[AdminHandler]]]:
    return [
        (r"/admin/users", UsersHandler),
        (rf"/admin/users/{USERNAME}", UserHandler),
        (rf"/admin/users/{USERNAME}/disable", UserDisableHandler),
        (rf"/admin/users/{USERNAME}/enable", UserEnableHandler),
        (rf"/admin/users/{USERNAME}/password", UserPasswordHandler),
        (r"/admin/clients", ClientsHandler),
        (rf"/admin/clients/{CLIENT_ID}", ClientHandler),
        (rf"/admin/clients/{CLIENT_ID}/disable", ClientDisableHandler),
        (rf"/admin/clients/{CLIENT_ID}/enable", ClientEnableHandler),
        (rf"/admin/clients/{CLIENT_ID}/secret", ClientSecretHandler),
    ]
