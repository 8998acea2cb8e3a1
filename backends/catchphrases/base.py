"""A catchphrase, the validation of what a client may send, and the store protocol."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from backends.errors import InvalidInput

MAX_CATCHPHRASE = 280
MAX_MOVIE = 200
MAX_CONTEXT = 1000
MAX_PAGE = 100

_FIELDS = {"catchphrase": MAX_CATCHPHRASE, "movie": MAX_MOVIE, "context": MAX_CONTEXT}


class InvalidCatchphrase(InvalidInput):
    """The payload is not an acceptable catchphrase; the message says why, for the client."""


@dataclass(frozen=True, slots=True)
class CatchphraseFields:
    catchphrase: str
    movie: str | None = None
    context: str | None = None


@dataclass(frozen=True, slots=True)
class Catchphrase:
    id: str
    catchphrase: str
    movie: str | None
    context: str | None
    created_by: str
    created_at: float
    updated_at: float

    def as_json(self) -> dict[str, Any]:
        return asdict(self)  # every field, as the API shows it


def parse_fields(payload: object) -> CatchphraseFields:
    """What a POST or PUT body may set: ``catchphrase`` (required), ``movie``, ``context``.

    :raises InvalidCatchphrase: not an object, unknown or missing field, wrong type or length.
    """
    if not isinstance(payload, Mapping):
        raise InvalidCatchphrase("The body must be a JSON object")
    unknown = sorted(str(k) for k in payload if k not in _FIELDS)
    if unknown:
        raise InvalidCatchphrase(
            f"Unknown field {unknown[0][:40]!r}; allowed: {', '.join(_FIELDS)}"
        )
    values: dict[str, str | None] = {}
    for name, limit in _FIELDS.items():
        value = payload.get(name)
        if value is None:
            if name == "catchphrase":
                raise InvalidCatchphrase("The field 'catchphrase' is required")
            values[name] = None
            continue
        if not isinstance(value, str):
            raise InvalidCatchphrase(f"The field {name!r} must be a string")
        value = value.strip()
        if name == "catchphrase" and not value:
            raise InvalidCatchphrase("The field 'catchphrase' must not be empty")
        if len(value) > limit:
            raise InvalidCatchphrase(f"The field {name!r} is longer than {limit} characters")
        values[name] = value or None
    catchphrase = values["catchphrase"]
    assert catchphrase is not None
    return CatchphraseFields(catchphrase, values["movie"], values["context"])


def new_id(now: float | None = None) -> str:
    """Sortable by creation time, so the id is also the list cursor."""
    millis = int((now if now is not None else time.time()) * 1000)
    return f"{millis:012x}{secrets.token_hex(4)}"


def make_catchphrase(fields: CatchphraseFields, created_by: str, now: float) -> Catchphrase:
    return Catchphrase(
        new_id(now), fields.catchphrase, fields.movie, fields.context, created_by, now, now
    )


class CatchphraseStore(Protocol):
    """Raises ``BackendUnavailable`` when it cannot answer; writes return once durable."""

    async def add(self, item: Catchphrase) -> None: ...

    async def get(self, item_id: str) -> Catchphrase | None: ...

    async def list(self, *, limit: int, after: str | None = None) -> list[Catchphrase]:
        """Up to ``limit`` items in id (creation) order, those after ``after``."""
        ...

    async def replace(
        self, item_id: str, fields: CatchphraseFields, *, now: float
    ) -> Catchphrase | None:
        """The updated item, or None when there is no such id."""
        ...

    async def delete(self, item_id: str) -> bool: ...

    async def close(self) -> None: ...
