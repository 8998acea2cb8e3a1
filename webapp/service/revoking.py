"""Turning an operator's request (admin API or CLI) into one store write.

Both front ends validate the same way and reach the store the same way, so a
revocation means the same thing whichever door it came through.
"""

from __future__ import annotations

import getpass
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from backends.auth import Authenticator
from backends.errors import AuthError, BackendUnavailable, InvalidInput
from backends.revocation.base import Revocation, RevocationKind, RevocationStore, RevokeRequest
from webapp.config.settings import Settings
from webapp.service.issuance import Issuance
from webapp.service.services import Services

MAX_VALUE_LENGTH = 256
MAX_REASON_LENGTH = 500
TARGET_FIELDS = ("jti", "sub", "client_id", "token", "username")
OPTIONAL_FIELDS = ("reason", "exp", "iss")


class RevocationInputError(InvalidInput):
    """The request cannot be turned into a revocation; the message says why."""


@dataclass(frozen=True, slots=True)
class Revoker:
    """What writing a revocation needs: the store, the verifier of whole tokens, the
    local users, and the settings bounding how long an accepted token lives."""

    settings: Settings
    revocations: RevocationStore
    authenticator: Authenticator
    issuance: Issuance


@dataclass(frozen=True, slots=True)
class RevocationRequest:
    field: str  # one of TARGET_FIELDS
    value: str
    reason: str | None = None
    exp: float | None = None
    issuer: str | None = None


def checked_text(name: str, value: Any, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RevocationInputError(f"'{name}' must be a non-empty string")
    if len(value) > limit:
        raise RevocationInputError(f"'{name}' must be at most {limit} characters")
    if not value.isprintable():
        raise RevocationInputError(f"'{name}' must not contain control characters")
    return value


def parse_request(body: Mapping[str, Any]) -> RevocationRequest:
    """Validate a JSON request body: exactly one target plus optional fields."""
    unknown = sorted(set(body) - set(TARGET_FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        raise RevocationInputError(f"unknown field '{unknown[0]}'")
    targets = [name for name in TARGET_FIELDS if name in body]
    if len(targets) != 1:
        raise RevocationInputError(
            "send exactly one of 'jti', 'sub', 'client_id', 'token' or 'username'"
        )
    field = targets[0]
    limit = 8192 if field == "token" else MAX_VALUE_LENGTH
    value = checked_text(field, body[field], limit)
    reason = body.get("reason")
    if reason is not None:
        reason = checked_text("reason", reason, MAX_REASON_LENGTH)
    exp = body.get("exp")
    if exp is not None:
        if field != "jti":
            raise RevocationInputError("'exp' goes only with 'jti'")
        if isinstance(exp, bool) or not isinstance(exp, (int, float)) or not math.isfinite(exp):
            raise RevocationInputError("'exp' must be a number (seconds since the epoch)")
    issuer = body.get("iss")
    if issuer is not None:
        if field == "token":
            raise RevocationInputError("'iss' is read from the token itself")
        if field == "username":
            raise RevocationInputError("a local user is revoked at the local issuer: no 'iss'")
        issuer = checked_text("iss", issuer, MAX_VALUE_LENGTH)
    return RevocationRequest(field, value, reason, exp, issuer)


async def apply_request(
    revoker: Revoker, request: RevocationRequest, *, actor: str | None
) -> Revocation:
    """Write the revocation; returns once the store confirmed it.

    :raises RevocationInputError: the request cannot be honoured as asked.
    :raises BackendUnavailable: the store (or a key source for ``token``) is down.
    """
    settings = revoker.settings
    store = revoker.revocations
    now = time.time()
    # Nothing accepted lives longer than this (see Authenticator.max_token_lifetime).
    longest = now + settings.max_token_ttl + settings.leeway
    if request.field == "token":
        try:
            principal = await revoker.authenticator.verify(request.value)
        except AuthError as exc:
            raise RevocationInputError(f"the token cannot be verified: {exc.description}") from None
        if principal.token_id is None:
            raise RevocationInputError(
                "the token has no 'jti': revoke its subject or client instead"
            )
        return await store.revoke_token(
            principal.token_id,
            issuer=principal.issuer,
            expires_at=min(principal.expires_at, longest),
            reason=request.reason,
            actor=actor,
        )
    if request.field == "username":
        # A password user's tokens carry its user id as sub, not its name.
        issuance = revoker.issuance
        user = await issuance.store.get_user_by_name(request.value)
        if user is None:
            raise RevocationInputError(f"no local user named {request.value!r}")
        return await issuance.tokens.revoke_user(
            user, reason=request.reason or "user revoked", actor=actor or "admin"
        )
    if request.field == "jti":
        exp = request.exp if request.exp is not None else longest
        if exp + settings.leeway <= now:
            raise RevocationInputError("'exp' is in the past: that token has already expired")
        return await store.revoke_token(
            request.value,
            issuer=request.issuer or settings.issuer_url,
            expires_at=min(exp, longest),
            reason=request.reason,
            actor=actor,
        )
    kind: RevocationKind = "sub" if request.field == "sub" else "client"
    key = (kind, request.issuer, request.value)
    return await store.revoke(RevokeRequest(key, now, request.reason, actor))


def _stamp(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


def entry_json(entry: Revocation) -> dict[str, Any]:
    """An entry as the admin API shows it: times in epoch seconds."""
    return {
        "id": entry.id,
        "kind": entry.kind,
        "value": entry.value,
        "iss": entry.issuer,
        "cutoff": _stamp(entry.cutoff),
        "expires_at": _stamp(entry.expires_at),
        "created_at": _stamp(entry.created_at),
        "reason": entry.reason,
        "actor": entry.actor,
    }


def cli_actor() -> str:
    """The operator running the CLI, as the audit log names them."""
    try:
        return "cli:" + getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. an arbitrary container uid
        return "cli"


async def revoke_from_cli(settings: Settings, fields: Mapping[str, Any]) -> int:
    """``jotguard revoke``: write straight to the configured store (no server needed).

    Exit 0 only once the store confirmed the write; 1 when it cannot be reached;
    2 when the request is invalid.
    """
    try:
        request = parse_request({k: v for k, v in fields.items() if v is not None})
    except RevocationInputError as exc:
        print(f"jotguard revoke: {exc}", file=sys.stderr)
        return 2
    services = await Services.start(settings, mirror=False)
    if not services.revocations.durable:
        await services.close()
        print(
            "jotguard revoke: the memory:// store lives inside each process; a revocation"
            " written here would reach no server. Configure sqlite://, redis:// or mongodb://.",
            file=sys.stderr,
        )
        return 2
    try:
        revoker = Revoker(settings, services.revocations, services.authenticator, services.issuance)
        entry = await apply_request(revoker, request, actor=cli_actor())
    except RevocationInputError as exc:
        print(f"jotguard revoke: {exc}", file=sys.stderr)
        return 2
    except BackendUnavailable as exc:
        print(f"jotguard revoke: revocation store unavailable: {exc.description}", file=sys.stderr)
        return 1
    finally:
        await services.close()
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.expires_at))
    # Name the issuer: a jti is revoked for one issuer, and the local issuer's URL follows
    # --host/--port/JOTGUARD_ISSUER, which must match the server's.
    scope = f"issuer {entry.issuer}" if entry.issuer else "every issuer"
    print(f"revoked {entry.kind} {entry.value} for {scope} (id {entry.id}, kept until {until})")
    return 0
