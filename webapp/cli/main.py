"""The ``jotguard`` command: serve, issue tokens, manage keys."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.metadata
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from backends.errors import BackendUnavailable, ConfigError
from backends.issuance.cutoffs import refuse_if_covered
from backends.keys.keyring import Keyring, StoredKey
from webapp.cli.dpop_key import bound_jkt
from webapp.cli.registry import add_issuance_commands, run_issuance_command
from webapp.config.checks import check_workers
from webapp.config.fields import SettingsError
from webapp.config.settings import Settings
from webapp.service import datadir
from webapp.service.logs import configure_logging
from webapp.service.services import local_issuer, local_keyring, revocation_store

EXIT_FAILED = 1
EXIT_USAGE = 2
READ_STDIN = "-"

log = logging.getLogger("jotguard")


def _version() -> str:
    try:
        return importlib.metadata.version("jotguard")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return "(not installed)"


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
    parser.add_argument("--version", action="version", version=f"jotguard {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser(
        "serve", parents=[common], help="run the service (creates the data directory if need be)"
    )
    commands.add_parser(
        "init", parents=[common], help="create the data directory: issuer record and keyring"
    )

    token = commands.add_parser("token", help="issue tokens from the local issuer")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    issue = token_commands.add_parser("issue", parents=[common], help="print one access token")
    issue.add_argument("--sub", required=True, help="subject (user or client id)")
    issue.add_argument("--scope", default="", help='space-separated scopes, e.g. "a b"')
    issue.add_argument("--ttl", type=int, help="lifetime in seconds")
    issue.add_argument("--aud", help="audience (default: the configured audience)")
    issue.add_argument("--client-id", help="client_id claim (default: the subject)")
    issue.add_argument(
        "--dpop-jwk",
        type=Path,
        metavar="FILE",
        help="bind the token to this public JWK (RFC 9449 cnf.jkt): a DPoP token",
    )

    keys = commands.add_parser("keys", help="manage the local signing keyring")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    key_commands.add_parser("generate", parents=[common], help="create the keyring if empty")
    rotate = key_commands.add_parser(
        "rotate",
        parents=[common],
        help="publish a new key now; it signs after JOTGUARD_KEY_PUBLISH_AHEAD seconds",
    )
    rotate.add_argument(
        "--now", action="store_true", help="sign with the new key at once (a compromised key)"
    )
    remove = key_commands.add_parser(
        "remove", parents=[common], help="stop accepting a retired or next key (a leaked one)"
    )
    remove.add_argument("kid")
    key_commands.add_parser("list", parents=[common], help="list keys: next, current, retired")

    revoke = commands.add_parser(
        "revoke", parents=[common], help="revoke a token, subject or client in the store"
    )
    target = revoke.add_mutually_exclusive_group(required=True)
    target.add_argument("--jti", help="one token, by its id (issuer: --iss or the local issuer)")
    target.add_argument("--sub", help="every token of this subject issued until now")
    target.add_argument("--client", help="every token of this client issued until now")
    target.add_argument("--token", help="one whole token, verified first ('-' reads stdin)")
    target.add_argument(
        "--username", help="every token of this local user (its refresh tokens too)"
    )
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
    jkt = bound_jkt(args.dpop_jwk, settings) if args.dpop_jwk is not None else None
    keyring = local_keyring(settings)
    keyring.load()  # never created here: a second keyring would sign tokens nobody accepts
    issuer = local_issuer(settings, keyring)
    claims = issuer.claims_for(
        args.sub,
        scopes=args.scope.split(),
        client_id=args.client_id,
        audience=args.aud,
        ttl=ttl,
        jkt=jkt,
    )
    signed = issuer.sign(claims)
    try:
        asyncio.run(_refuse_if_covered(settings, claims))
    except BackendUnavailable as exc:
        print(f"jotguard token issue: no token: {exc.description}.", file=sys.stderr)
        return 1
    print(signed.token)
    if jkt is not None:
        # stdout stays the token alone, for $(jotguard token issue ...).
        print(
            f"token_type DPoP: bound to the key {jkt}; send it as 'Authorization: DPoP'"
            " with a fresh proof by that key",
            file=sys.stderr,
        )
    return 0


async def _refuse_if_covered(settings: Settings, claims: dict[str, Any]) -> None:
    # The server would refuse a token that a cutoff moments old covers: say so instead.
    store = revocation_store(settings)
    try:
        await refuse_if_covered(store, claims, leeway=settings.leeway)
    finally:
        await store.close()


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _key_line(keyring: Keyring, key: StoredKey) -> str:
    state = keyring.state(key)
    if state == "next":
        when = f"published since {_utc(key.created_at)}, signs from {_utc(key.activates_at)}"
    elif state == "current":
        when = f"signing since {_utc(key.activates_at)}"
        if key.retired_at is not None:
            when += f", until {_utc(key.retired_at)}"
    else:
        retired = key.retired_at if key.retired_at is not None else key.activates_at
        when = f"since {_utc(retired)}, accepted until {_utc(retired + keyring.retention)}"
    return f"{key.kid}\t{key.alg}\t{state}\t{when}"


def _rotate(keyring: Keyring, settings: Settings, now: bool) -> None:
    keyring.load()
    try:
        old = keyring.current.kid
    except ConfigError:  # no key of JOTGUARD_SIGNING_ALG yet: this one is the first
        old = "no key"
    ahead = 0 if now else settings.key_publish_ahead
    fresh = keyring.rotate(ahead=ahead)
    print(fresh.kid)
    if ahead:
        print(
            f"published {fresh.kid} in the JWKS; it signs from {_utc(fresh.activates_at)}"
            f" (JOTGUARD_KEY_PUBLISH_AHEAD={ahead} s), {old} until then. For a"
            " compromised key: jotguard keys rotate --now",
            file=sys.stderr,
        )
        return
    until = _utc(fresh.activates_at + keyring.retention)
    print(
        f"{fresh.kid} signs from now on. {old} stays accepted until {until} for the"
        f" tokens it signed; if it leaked, refuse them now: jotguard keys remove -- {old}"
        " (their holders get 401 and must refresh or log in again; refresh tokens do not"
        " depend on the key)",
        file=sys.stderr,
    )


def _keys(args: argparse.Namespace, settings: Settings) -> int:
    keyring = local_keyring(settings)
    if args.keys_command == "generate":
        created = keyring.ensure()
        print(("created " if created else "kept ") + keyring.current.kid)
    elif args.keys_command == "rotate":
        _rotate(keyring, settings, args.now)
    elif args.keys_command == "remove":
        try:
            removed = keyring.remove(args.kid)
        except KeyError:
            print(f"jotguard: the keyring has no key {args.kid}", file=sys.stderr)
            return EXIT_FAILED
        print(f"removed {removed.kid}: tokens it signed are refused once servers reload (2 s)")
    else:
        keyring.load()
        for key in keyring.all_keys():
            print(_key_line(keyring, key))
    return 0


def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    from webapp.service.revoking import revoke_from_cli

    # A token on the command line lands in shell history and `ps`: '-' reads it from stdin.
    token = sys.stdin.read().strip() if args.token == READ_STDIN else args.token
    fields = {
        "jti": args.jti,
        "sub": args.sub,
        "client_id": args.client,
        "token": token,
        "username": args.username,
        "reason": args.reason,
        "iss": args.iss,
        "exp": args.exp,
    }
    return asyncio.run(revoke_from_cli(settings, fields))


def _serve(settings: Settings) -> int:
    from webapp.service.server import ListenError, run_service
    from webapp.service.workers import serve_workers

    if settings.workers > 1:
        check_workers(settings)  # before anything is created
    settings, created = datadir.prepared(settings)
    for what in created:
        log.info("created %s", what)
    datadir.warn_if_wildcard(settings)
    try:
        if settings.workers > 1:
            return serve_workers(settings)
        run_service(settings)
    except ListenError as exc:
        print(f"jotguard: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _init(settings: Settings) -> int:
    settings, created = datadir.prepared(settings)
    for what in created:
        print(f"created {what}")
    if not created:
        print(f"kept {settings.data_dir.absolute()}: it has its issuer and keyring already")
    print(f"issuer: {settings.issuer_url}")
    datadir.warn_if_wildcard(settings)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _load_settings(args)
        configure_logging(settings.log_level, settings.log_format)
        if args.command == "serve":
            return _serve(settings)
        if args.command == "init":
            return _init(settings)
        if args.command == "keys":
            datadir.require_existing(settings)  # keys need no issuer
            return _keys(args, settings)
        # Every other command acts on the server's data directory and issuer, or not at all.
        settings = datadir.opened(settings)
        if args.command == "token":
            return _issue(args, settings)
        if args.command == "revoke":
            return _revoke(args, settings)
        return run_issuance_command(args, settings)
    except (SettingsError, ConfigError) as exc:
        print(f"jotguard: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
