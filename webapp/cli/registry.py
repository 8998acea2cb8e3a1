"""``jotguard clients ...`` and ``jotguard users ...``: the registry, edited in place.

They write to the configured stores directly: the server need not run. A running
server reads clients and users from the store on every grant, and its revocation
mirror takes the entries written here within milliseconds (SQLite, Redis) or its poll
interval plus MongoDB's settle time.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

from backends.errors import BackendUnavailable
from backends.issuance.base import (
    AlreadyExists,
    User,
    check_name,
    parse_grant_types,
    parse_scopes,
    scope_string,
)
from webapp.config.settings import Settings
from webapp.service import lifecycle
from webapp.service.issuance import Issuance, new_client
from webapp.service.revoking import cli_actor
from webapp.service.services import local_issuer, local_keyring, revocation_store

EXIT_FAILED = 1
EXIT_USAGE = 2
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
DEFAULT_GRANTS = "client_credentials"
REVOKED = "its refresh and access tokens are revoked"

USER_ACTIONS = {
    "disable": "disable a user and revoke its tokens",
    "enable": "let a disabled user log in again",
    "delete": "delete a user and revoke its tokens",
    "passwd": "change a user's password (prompted, or --password-stdin) and revoke its tokens",
}
CLIENT_ACTIONS = {
    "disable": "disable a client and revoke its tokens (every user's logins through it)",
    "enable": "let a disabled client get tokens again",
    "delete": "delete a client and revoke its tokens",
    "rotate-secret": "make a new secret, printed once (JSON); the old one stops working",
}
# Actions that write revocations, which a process-local store would keep to itself.
REVOKING = {("users", "disable"), ("users", "delete"), ("users", "passwd")} | {
    ("clients", "disable"),
    ("clients", "delete"),
}


class CommandError(Exception):
    """Print the message and exit with ``status``."""

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


def _type(parse: Callable[[str], object]) -> Callable[[str], object]:
    def convert(raw: str) -> object:
        try:
            return parse(raw)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def add_issuance_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    clients = commands.add_parser("clients", help="manage OAuth clients")
    client_commands = clients.add_subparsers(dest="clients_command", required=True)
    add = client_commands.add_parser(
        "add", parents=[common], help="register a client; prints its id and secret once (JSON)"
    )
    add.add_argument("name", type=_type(lambda s: check_name(s, "NAME")))
    add.add_argument("--scope", type=_type(parse_scopes), default=frozenset(), help="scopes")
    add.add_argument(
        "--grant",
        type=_type(parse_grant_types),
        default=parse_grant_types(DEFAULT_GRANTS),
        help="comma-separated grant types (default: client_credentials)",
    )
    client_commands.add_parser(
        "list", parents=[common], help="list clients: id, name, active|disabled, grants, scopes"
    )
    for verb, text in CLIENT_ACTIONS.items():
        command = client_commands.add_parser(verb, parents=[common], help=text)
        command.add_argument("client", help="its client_id, or its name")

    users = commands.add_parser("users", help="manage users of the password grant")
    user_commands = users.add_subparsers(dest="users_command", required=True)
    add = user_commands.add_parser("add", parents=[common], help="add a user")
    add.add_argument("name", type=_type(lambda s: check_name(s, "NAME")))
    add.add_argument("--scope", type=_type(parse_scopes), default=frozenset(), help="scopes")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    user_commands.add_parser("list", parents=[common], help="list users")
    for verb, text in USER_ACTIONS.items():
        command = user_commands.add_parser(verb, parents=[common], help=text)
        command.add_argument("name")
        if verb == "passwd":
            command.add_argument(
                "--password-stdin",
                action="store_true",
                help="read the new password from standard input",
            )


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat the password: ") != password:
            raise CommandError("the passwords differ", EXIT_USAGE)
    else:
        raise CommandError("no terminal to prompt on: pass --password-stdin", EXIT_USAGE)
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise CommandError(
            f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters", EXIT_USAGE
        )
    return password


async def _add_client(issuance: Issuance, args: argparse.Namespace) -> None:
    client, secret = await new_client(
        issuance.tokens.client_secrets, args.name, args.scope, args.grant
    )
    await issuance.store.add_client(client)
    print(json.dumps({"client_id": client.client_id, "client_secret": secret}))


async def _list_clients(issuance: Issuance, args: argparse.Namespace) -> None:
    for client in await issuance.store.list_clients():
        grants = ",".join(sorted(client.grant_types))
        state = "disabled" if client.disabled else "active"
        scopes = scope_string(client.scopes)
        print(f"{client.client_id}\t{client.name}\t{state}\t{grants}\t{scopes}")


async def _add_user(issuance: Issuance, args: argparse.Namespace) -> None:
    user = User(
        user_id=uuid.uuid4().hex,
        username=args.name,
        password_hash=await issuance.hasher.hash(args.password),
        scopes=args.scope,
        disabled=False,
        created_at=time.time(),
    )
    await issuance.store.add_user(user)
    print(json.dumps({"user_id": user.user_id, "username": user.username}))


async def _list_users(issuance: Issuance, args: argparse.Namespace) -> None:
    for user in await issuance.store.list_users():
        state = "disabled" if user.disabled else "active"
        print(f"{user.user_id}\t{user.username}\t{state}\t{scope_string(user.scopes)}")


async def _user_action(issuance: Issuance, args: argparse.Namespace) -> None:
    verb, name = args.users_command, args.name
    if verb == "enable":
        change = await lifecycle.enable_user(issuance, name, actor=cli_actor())
        print(f"enabled {change.user.username}")
    elif verb == "disable":
        change = await lifecycle.disable_user(issuance, name, actor=cli_actor())
        print(f"disabled {change.user.username}; {REVOKED}")
    elif verb == "delete":
        change = await lifecycle.delete_user(issuance, name, actor=cli_actor())
        print(f"deleted {change.user.username}; {REVOKED}")
    else:
        change = await lifecycle.set_password(issuance, name, args.password, actor=cli_actor())
        print(f"changed the password of {change.user.username}; {REVOKED}")


async def _client_action(issuance: Issuance, args: argparse.Namespace) -> None:
    client = await lifecycle.find_client(issuance, args.client)
    verb, client_id = args.clients_command, client.client_id
    shown = f"{client.name} ({client_id})"
    if verb == "enable":
        await lifecycle.enable_client(issuance, client_id, actor=cli_actor())
        print(f"enabled {shown}")
    elif verb == "disable":
        await lifecycle.disable_client(issuance, client_id, actor=cli_actor())
        print(f"disabled {shown}; {REVOKED}")
    elif verb == "delete":
        await lifecycle.delete_client(issuance, client_id, actor=cli_actor())
        print(f"deleted {shown}; {REVOKED}")
    else:
        change = await lifecycle.rotate_client_secret(issuance, client_id, actor=cli_actor())
        print(json.dumps({"client_id": client_id, "client_secret": change.secret}))


_COMMANDS: dict[tuple[str, str], Callable[[Issuance, argparse.Namespace], Awaitable[None]]] = {
    ("clients", "add"): _add_client,
    ("clients", "list"): _list_clients,
    ("users", "add"): _add_user,
    ("users", "list"): _list_users,
}


async def _run(settings: Settings, args: argparse.Namespace) -> None:
    revocations = revocation_store(settings)
    issuance = Issuance.open(settings, local_issuer(settings, local_keyring(settings)), revocations)
    try:
        # A process-local store would take the change and reach no server.
        if not issuance.store.durable:
            raise CommandError(
                "JOTGUARD_ISSUANCE_STORE=memory:// lives inside each process: a change made"
                " here would reach no server. Configure sqlite:/// or mongodb://.",
                EXIT_USAGE,
            )
        verb = args.clients_command if args.command == "clients" else args.users_command
        if (args.command, verb) in REVOKING and not revocations.durable:
            raise CommandError(
                "JOTGUARD_REVOCATION_STORE=memory:// lives inside each process: the"
                " tokens could not be revoked on any server. Configure a shared store.",
                EXIT_USAGE,
            )
        # Every other verb (enable, disable, delete, ...) goes to the command's action.
        other = _client_action if args.command == "clients" else _user_action
        await _COMMANDS.get((args.command, verb), other)(issuance, args)
    finally:
        await issuance.close()
        await revocations.close()


def run_issuance_command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        if args.command == "users" and args.users_command in {"add", "passwd"}:
            args.password = _read_password(args.password_stdin)
        asyncio.run(_run(settings, args))
    except CommandError as exc:
        print(f"jotguard: {exc}", file=sys.stderr)
        return exc.status
    except lifecycle.NotFound as exc:
        print(f"jotguard: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except AlreadyExists as exc:
        print(f"jotguard: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except BackendUnavailable as exc:
        print(f"jotguard: {exc.description}; run the command again later", file=sys.stderr)
        return EXIT_FAILED
    return 0
