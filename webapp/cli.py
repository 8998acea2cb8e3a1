"""The ``jotguard`` command: serve, issue tokens, manage keys."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from collections.abc import Sequence

from backends.errors import ConfigError
from webapp.cli_issuance import add_issuance_commands, run_issuance_command
from webapp.logs import configure_logging
from webapp.services import local_issuer, local_keyring
from webapp.settings import Settings, SettingsError

EXIT_USAGE = 2
READ_STDIN = "-"


def _settings_flags() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("settings (override JOTGUARD_* variables and .env)")
    for f in dataclasses.fields(Settings):
        if f.metadata["flag"]:
            group.add_argument(
                "--" + f.name.replace("_", "-"),
                dest=f"setting_{f.name}",
                metavar=f.name.upper(),
                help=f"{f.metadata['help']} [{f.metadata['env']}]",
            )
    return parent


def build_parser() -> argparse.ArgumentParser:
    common = _settings_flags()
    parser = argparse.ArgumentParser(prog="jotguard", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("serve", parents=[common], help="run the service")

    token = commands.add_parser("token", help="issue tokens from the local issuer")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    issue = token_commands.add_parser("issue", parents=[common], help="print one access token")
    issue.add_argument("--sub", required=True, help="subject (user or client id)")
    issue.add_argument("--scope", default="", help='space-separated scopes, e.g. "a b"')
    issue.add_argument("--ttl", type=int, help="lifetime in seconds")
    issue.add_argument("--aud", help="audience (default: the configured audience)")
    issue.add_argument("--client-id", help="client_id claim (default: the subject)")

    keys = commands.add_parser("keys", help="manage the local signing keyring")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    key_commands.add_parser("generate", parents=[common], help="create the keyring if empty")
    key_commands.add_parser("rotate", parents=[common], help="make a new current key")
    key_commands.add_parser("list", parents=[common], help="list keys")

    revoke = commands.add_parser(
        "revoke", parents=[common], help="revoke a token, subject or client in the store"
    )
    target = revoke.add_mutually_exclusive_group(required=True)
    target.add_argument("--jti", help="one token, by its id (issuer: --iss or the local issuer)")
    target.add_argument("--sub", help="every token of this subject issued until now")
    target.add_argument("--client", help="every token of this client issued until now")
    target.add_argument("--token", help="one whole token, verified first ('-' reads stdin)")
    revoke.add_argument("--reason", help="why, for the audit log")
    revoke.add_argument("--iss", help="limit --sub/--client to one issuer; the issuer of --jti")
    revoke.add_argument("--exp", type=int, help="the token's exp, with --jti")
    add_issuance_commands(commands, common)
    return parser


def _load_settings(args: argparse.Namespace) -> Settings:
    flags = {
        name.removeprefix("setting_"): value
        for name, value in vars(args).items()
        if name.startswith("setting_") and value is not None
    }
    return Settings.load(flags)


def _issue(args: argparse.Namespace, settings: Settings) -> int:
    ttl = args.ttl if args.ttl is not None else settings.access_token_ttl
    if not 1 <= ttl <= settings.max_token_ttl:
        raise ConfigError(f"--ttl: must be from 1 to {settings.max_token_ttl} seconds")
    keyring = local_keyring(settings)
    keyring.ensure()
    issuer = local_issuer(settings, keyring)
    claims = issuer.claims_for(
        args.sub, scopes=args.scope.split(), client_id=args.client_id, audience=args.aud, ttl=ttl
    )
    print(issuer.sign(claims).token)
    return 0


def _keys(args: argparse.Namespace, settings: Settings) -> int:
    keyring = local_keyring(settings)
    if args.keys_command == "generate":
        created = keyring.ensure()
        print(("created " if created else "kept ") + keyring.current.kid)
    elif args.keys_command == "rotate":
        print(keyring.rotate().kid)
    else:
        keyring.load()
        for key in keyring.all_keys():
            state = "current" if key is keyring.current else "retired"
            if key.retired_at is not None:
                until = time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime(key.retired_at + keyring.retention)
                )
                state += f" (accepted until {until})"
            print(f"{key.kid}\t{key.alg}\t{state}")
    return 0


def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    from webapp.revoking import revoke_from_cli

    # A token on the command line lands in shell history and `ps`: '-' reads it from stdin.
    token = sys.stdin.read().strip() if args.token == READ_STDIN else args.token
    fields = {
        "jti": args.jti,
        "sub": args.sub,
        "client_id": args.client,
        "token": token,
        "reason": args.reason,
        "iss": args.iss,
        "exp": args.exp,
    }
    return asyncio.run(revoke_from_cli(settings, fields))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _load_settings(args)
        configure_logging(settings.log_level, settings.log_format)
        if args.command == "serve":
            from webapp.server import run_service

            if settings.workers > 1:
                from webapp.workers import serve_workers

                return serve_workers(settings)
            run_service(settings)
            return 0
        if args.command == "token":
            return _issue(args, settings)
        if args.command == "revoke":
            return _revoke(args, settings)
        if args.command in {"clients", "users"}:
            return run_issuance_command(args, settings)
        return _keys(args, settings)
    except (SettingsError, ConfigError) as exc:
        print(f"jotguard: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
