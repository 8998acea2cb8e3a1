"""One access-log line and one set of metric updates per finished request.

The line names the route pattern, not the path, and the verified token's
``sub`` and ``jti``, never the token. Refusals log at INFO with the reason
(``auth=expired``): they are the caller's problem, and an operator greps for them.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from typing import Any

from tornado.web import RequestHandler

from backends.principal import Principal
from webapp.service.metrics import Metrics

log = logging.getLogger("jotguard.access")

_PLAIN = re.compile(r"[A-Za-z0-9._:@|/+=-]{1,200}")
_MAX_VALUE = 200
_IN_HEAD = frozenset({"method", "route", "status", "duration_ms"})


def method_label(method: str | None) -> str:
    """The method, or OTHER: a client can send any token there, and labels must stay few."""
    return method if method in RequestHandler.SUPPORTED_METHODS else "OTHER"


def _text(value: object) -> str:
    text = str(value)
    if _PLAIN.fullmatch(text):
        return text
    # Quoted and escaped: a subject chosen at sign-up must not forge a log line.
    return json.dumps(text[:_MAX_VALUE])


# Subjects, jtis, client addresses and outcomes recur from request to request.
_recurring_text = functools.lru_cache(maxsize=4096)(_text)


def access_fields(handler: RequestHandler, route: str, seconds: float) -> dict[str, Any]:
    request = handler.request
    fields: dict[str, Any] = {
        "method": method_label(request.method),
        "route": route,
        "status": handler.get_status(),
        "duration_ms": round(seconds * 1000, 2),
        "request_id": getattr(handler, "request_id", None),
        "client": request.remote_ip,
    }
    outcome = getattr(handler, "auth_outcome", None)
    if outcome is not None:
        fields["auth"] = outcome
    principal = handler.current_user
    if isinstance(principal, Principal):
        fields["sub"] = principal.subject[:_MAX_VALUE]
        if principal.token_id is not None:
            fields["jti"] = principal.token_id[:_MAX_VALUE]
    error = getattr(handler, "error_code", None)
    if error is not None:
        fields["error"] = error
    return fields


def record_request(handler: RequestHandler, route: str, metrics: Metrics | None) -> None:
    seconds = handler.request.request_time()
    fields = access_fields(handler, route, seconds)
    status: int = fields["status"]
    if metrics is not None:
        metrics.observe_request(route, fields["method"], status, seconds)
        if "auth" in fields:
            metrics.auth_outcome(fields["auth"])
    if status == 503:
        # A store down: each refusal is expected, and its outage is logged as it starts
        # and ends (backends.outage); an ERROR line per request would bury the rest.
        level = logging.WARNING
    elif status >= 500:
        level = logging.ERROR
    elif status < 400 and getattr(handler, "quiet_access_log", False):
        level = logging.DEBUG  # probes and scrapes every few seconds would drown the rest
    else:
        level = logging.INFO
    if not log.isEnabledFor(level):
        return
    message = f"{fields['method']} {route} {status} {fields['duration_ms']:.1f}ms"
    for key, value in fields.items():  # a loop: a generator and join cost twice as much
        if key == "request_id":  # new on every request: caching would only churn
            message += f" {key}={_text(value)}"
        elif key not in _IN_HEAD:
            message += f" {key}={_recurring_text(value)}"
    # No args: logging applies no %-formatting then (a route or subject may hold a %), and
    # the record skips its one-mapping-argument check.
    log.log(level, message, extra={"fields": fields})
