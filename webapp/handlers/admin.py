"""The admin API: ``/admin/revocations`` (revoke, list, un-revoke) and ``/admin/audit``.

Every route needs a bearer token carrying the admin scope (``JOTGUARD_ADMIN_SCOPE``)
from an issuer trusted with admin rights: the local issuer, and those
``JOTGUARD_ADMIN_ISSUERS`` names. A remote issuer's scopes are its tenants' to grant
(an Auth0 RBAC permission named ``admin``), not jotguard's operators'. The audit log
records the token's subject as the actor of every change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import asdict
from typing import Any, TypeVar

from backends import strict_json
from backends.errors import InsufficientScope, InvalidInput, NotFound
from backends.revocation.base import RevocationStore
from webapp.service.openapi import json_body, json_response, operation
from webapp.service.revoking import (
    MAX_REASON_LENGTH,
    Revoker,
    apply_request,
    checked_text,
    entry_json,
)
from webapp.service.revoking import parse_request as parse_revocation
from webapp.web.collaborators import collaborator
from webapp.web.handler import AuthenticatedHandler, require_json_media_type

DEFAULT_PAGE = 50

P = TypeVar("P")


def json_object(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object (UTF-8, RFC 8259), or a 400 saying what is wrong."""
    try:
        value = strict_json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidInput("The body must be a JSON object") from None
    if not isinstance(value, dict):
        raise InvalidInput("The body must be a JSON object")
    return value


_ENTRY = {
    "type": "object",
    "required": ["id", "kind", "value", "expires_at", "created_at"],
    "properties": {
        "id": {"type": "string"},
        "kind": {"enum": ["jti", "sub", "client"]},
        "value": {"type": "string"},
        "iss": {"type": ["string", "null"]},
        "cutoff": {"type": ["number", "null"]},
        "expires_at": {"type": "number"},
        "created_at": {"type": "number"},
        "reason": {"type": ["string", "null"]},
        "actor": {"type": ["string", "null"]},
    },
}
_REVOKE_REQUEST = {
    "type": "object",
    "description": "Exactly one of jti, sub, client_id, token or username.",
    "properties": {
        "jti": {"type": "string"},
        "exp": {"type": "integer", "description": "The token's exp, for a jti entry."},
        "iss": {"type": "string"},
        "sub": {"type": "string"},
        "client_id": {"type": "string"},
        "token": {"type": "string", "description": "The whole token; verified first."},
        "username": {
            "type": "string",
            "description": "A local user: its refresh tokens and (by its user id) access tokens.",
        },
        "reason": {"type": "string"},
    },
}


def _page_of(key: str, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [key, "next_cursor"],
        "properties": {
            key: {"type": "array", "items": item},
            "next_cursor": {"type": ["string", "null"]},
        },
    }


class AdminHandler(AuthenticatedHandler):
    """Authenticated, then refused with 403 unless the token has the admin scope."""

    openapi_scopes = ("admin",)  # the default JOTGUARD_ADMIN_SCOPE
    rate_limit = "admin"

    admin_scope: str = collaborator()
    admin_issuers: Collection[str] = collaborator()

    async def prepare(self) -> None:
        await super().prepare()
        if self.request.method == "OPTIONS":
            return
        scope = self.admin_scope
        if self.principal.issuer not in self.admin_issuers:
            self.refuse(
                InsufficientScope(
                    (scope,),
                    description="Admin rights are not accepted from this token's issuer",
                )
            )
        if not self.principal.has_scopes([scope]):
            self.refuse(InsufficientScope((scope,)))

    def single_argument(self, name: str) -> str | None:
        values = self.get_query_arguments(name)
        if len(values) > 1:
            raise InvalidInput(f"Send the '{name}' parameter at most once")
        return values[0] if values else None

    async def read_page(self, read: Callable[..., Awaitable[P]]) -> P:
        """The page ``read(limit=, cursor=)`` returns for this request's ``limit`` and
        ``cursor``; 400 for a cursor the store did not hand out."""
        raw = self.single_argument("limit")
        limit = DEFAULT_PAGE
        if raw is not None:
            if not raw.isdigit() or not 1 <= int(raw) <= 500:
                raise InvalidInput("'limit' must be a whole number from 1 to 500")
            limit = int(raw)
        cursor = self.single_argument("cursor")
        try:
            return await read(limit=limit, cursor=cursor)
        except ValueError as exc:
            raise InvalidInput(f"'cursor': {exc}") from None


class RevocationHandlerBase(AdminHandler):
    """An admin route over the revocation store."""

    revocations: RevocationStore = collaborator()


class RevocationsHandler(RevocationHandlerBase):
    revoker: Revoker = collaborator()

    @operation(
        "Revoke a token (jti or whole token), a subject, a client or a local user",
        request_body=json_body(_REVOKE_REQUEST),
        responses={201: json_response("The revocation, acknowledged once durable.", _ENTRY)},
        errors=[415],
        tags=["admin"],
    )
    async def post(self) -> None:
        require_json_media_type(self.request)
        request = parse_revocation(json_object(self.request.body))
        entry = await apply_request(self.revoker, request, actor=self.principal.subject)
        self.set_status(201)
        self.set_header("Location", f"/admin/revocations/{entry.id}")
        self.finish(entry_json(entry))

    @operation(
        "List live revocations, newest first",
        responses={200: json_response("One page.", _page_of("revocations", _ENTRY))},
        tags=["admin"],
    )
    async def get(self) -> None:
        page = await self.read_page(self.revocations.list_entries)
        self.finish(
            {
                "revocations": [entry_json(e) for e in page.entries],
                "next_cursor": page.next_cursor,
            }
        )


class RevocationHandler(RevocationHandlerBase):
    @operation(
        "Un-revoke: remove a revocation entry (to undo a mistake)",
        responses={204: {"description": "Removed."}},
        errors=[404],
        tags=["admin"],
    )
    async def delete(self, entry_id: str) -> None:
        reason = self.single_argument("reason")
        if reason is not None:
            reason = checked_text("reason", reason, MAX_REASON_LENGTH)
        removed = await self.revocations.unrevoke(
            entry_id, reason=reason, actor=self.principal.subject
        )
        if removed is None:
            raise NotFound("No live revocation has this id")
        self.set_status(204)
        self.finish()


class AuditHandler(RevocationHandlerBase):
    @operation(
        "The audit log of admin actions, newest first",
        responses={200: json_response("One page.", _page_of("audit", {"type": "object"}))},
        tags=["admin"],
    )
    async def get(self) -> None:
        page = await self.read_page(self.revocations.audit_log)
        records = []
        for record in page.records:
            fields = asdict(record)
            fields["iss"] = fields.pop("issuer")
            records.append(fields)
        self.finish({"audit": records, "next_cursor": page.next_cursor})
