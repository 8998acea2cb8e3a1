"""A JSON request to the app under test, as the admin API's tests send them."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any


async def json_request(
    fetch: Callable[..., Awaitable[Any]],
    method: str,
    path: str,
    payload: Any = None,
    *,
    token: str | None,
    raw: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """``fetch`` with ``payload`` as the JSON body (or ``raw`` as it is); a POST or PUT
    without either sends an empty body, as Tornado's client requires one."""
    sent = dict(headers or {})
    kwargs = {}
    if payload is not None or raw is not None:
        kwargs["body"] = raw if raw is not None else json.dumps(payload)
        sent.setdefault("Content-Type", "application/json")
    elif method in {"POST", "PUT"}:
        kwargs["body"] = ""
    return await fetch(path, method=method, token=token, headers=sent, **kwargs)
