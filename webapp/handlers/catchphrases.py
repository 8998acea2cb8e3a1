"""The demo API: ``/api/catchphrases`` guarded by read, write and delete scopes.

The scope decorators run before the handler body, so a caller without the scope
gets 403 before any lookup: it learns nothing about which ids exist.
"""

from __future__ import annotations

import json
import time

from backends.catchphrases.base import (
    MAX_PAGE,
    CatchphraseFields,
    CatchphraseStore,
    make_catchphrase,
    parse_fields,
)
from backends.errors import InvalidInput, NotFound
from webapp.service.openapi import json_body, json_response, operation
from webapp.web.collaborators import collaborator
from webapp.web.errors import RequestTooLarge
from webapp.web.handler import AuthenticatedHandler, require_json_media_type, requires_scopes

READ = "read:catchphrases"
WRITE = "write:catchphrases"
DELETE = "delete:catchphrases"
DEMO_SCOPES = (READ, WRITE, DELETE)

MAX_BODY_BYTES = 16 * 1024
DEFAULT_PAGE = 50


_ITEM = {
    "type": "object",
    "required": ["id", "catchphrase", "created_by", "created_at"],
    "properties": {
        "id": {"type": "string"},
        "catchphrase": {"type": "string"},
        "movie": {"type": ["string", "null"]},
        "context": {"type": ["string", "null"]},
        "created_by": {"type": "string"},
        "created_at": {"type": "number"},
        "updated_at": {"type": ["number", "null"]},
    },
}
_FIELDS_BODY = json_body(
    {
        "type": "object",
        "required": ["catchphrase"],
        "additionalProperties": False,
        "properties": {
            "catchphrase": {"type": "string", "minLength": 1, "pattern": "\\S"},
            "movie": {"type": ["string", "null"]},
            "context": {"type": ["string", "null"]},
        },
    }
)
_PAGE = {
    "type": "object",
    "required": ["catchphrases", "next"],
    "properties": {
        "catchphrases": {"type": "array", "items": _ITEM},
        "next": {"type": ["string", "null"]},
    },
}


_NOT_FOUND = "No catchphrase has this id"


class CatchphraseBase(AuthenticatedHandler):
    rate_limit = "api"

    catchphrases: CatchphraseStore = collaborator()

    def _json_fields(self) -> CatchphraseFields:
        require_json_media_type(self.request)
        if len(self.request.body) > MAX_BODY_BYTES:
            raise RequestTooLarge("The body is larger than 16 KiB")
        try:
            payload = json.loads(self.request.body)
        except (ValueError, RecursionError):
            raise InvalidInput("The body is not valid JSON") from None
        return parse_fields(payload)


class CatchphrasesHandler(CatchphraseBase):
    @operation(
        "List catchphrases (paged with ?limit= and ?after=)",
        responses={200: json_response("One page.", _PAGE)},
        tags=["demo"],
    )
    @requires_scopes(READ)
    async def get(self) -> None:
        raw_limit = self.get_query_argument("limit", str(DEFAULT_PAGE))
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_PAGE:
            raise InvalidInput(f"limit must be a whole number from 1 to {MAX_PAGE}")
        limit = int(raw_limit)
        after = self.get_query_argument("after", None)
        items = await self.catchphrases.list(limit=limit + 1, after=after)
        page = items[:limit]
        self.write(
            {
                "catchphrases": [item.as_json() for item in page],
                "next": page[-1].id if len(items) > limit else None,
            }
        )

    @operation(
        "Add a catchphrase",
        request_body=_FIELDS_BODY,
        responses={201: json_response("Created.", _ITEM)},
        errors=[413, 415],
        tags=["demo"],
    )
    @requires_scopes(WRITE)
    async def post(self) -> None:
        fields = self._json_fields()
        item = make_catchphrase(fields, self.principal.subject, time.time())
        await self.catchphrases.add(item)
        self.set_status(201)
        self.set_header("Location", f"/api/catchphrases/{item.id}")
        self.write(item.as_json())


class CatchphraseHandler(CatchphraseBase):
    @operation(
        "Read one catchphrase",
        responses={200: json_response("The catchphrase.", _ITEM)},
        errors=[404],
        tags=["demo"],
    )
    @requires_scopes(READ)
    async def get(self, item_id: str) -> None:
        item = await self.catchphrases.get(item_id)
        if item is None:
            raise NotFound(_NOT_FOUND)
        self.write(item.as_json())

    @operation(
        "Replace a catchphrase",
        request_body=_FIELDS_BODY,
        responses={200: json_response("The new version.", _ITEM)},
        errors=[404, 413, 415],
        tags=["demo"],
    )
    @requires_scopes(WRITE)
    async def put(self, item_id: str) -> None:
        fields = self._json_fields()
        item = await self.catchphrases.replace(item_id, fields, now=time.time())
        if item is None:
            raise NotFound(_NOT_FOUND)
        self.write(item.as_json())

    @operation(
        "Delete a catchphrase",
        responses={204: {"description": "Deleted."}},
        errors=[404],
        tags=["demo"],
    )
    @requires_scopes(DELETE)
    async def delete(self, item_id: str) -> None:
        if not await self.catchphrases.delete(item_id):
            raise NotFound(_NOT_FOUND)
        self.set_status(204)
