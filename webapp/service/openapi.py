"""The OpenAPI 3.1 document, generated from the route table.

Each handler method describes itself with :func:`operation`, next to its code.
Its security (Bearer and, where DPoP is on, DPoP; scopes) and its authentication
error responses follow from the handler's class, its scope decorators and the DPoP
mode, so they cannot drift from what the code does. A handler method without
``@operation`` stops the application from being built, so a new route cannot go
undocumented.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Literal, NamedTuple, TypeVar

from webapp.service.routing import Route
from webapp.web.handler import AuthenticatedHandler
from webapp.web.methods import handler_methods
from webapp.web.requestid import HEADER as REQUEST_ID_HEADER

Schema = Mapping[str, Any]
F = TypeVar("F", bound=Callable[..., Any])

SECURITY_SCHEME = "bearerAuth"
DPOP_SECURITY_SCHEME = "dpopAuth"
# JOTGUARD_DPOP: which token schemes protected operations take.
DPoPMode = Literal["off", "allowed", "required"]


@dataclass(frozen=True, slots=True)
class Operation:
    summary: str
    responses: Mapping[int, Mapping[str, Any]]
    description: str | None = None
    request_body: Mapping[str, Any] | None = None
    errors: tuple[int, ...] = ()
    tags: tuple[str, ...] = ()


def operation(
    summary: str,
    *,
    responses: Mapping[int, Mapping[str, Any]],
    description: str | None = None,
    request_body: Mapping[str, Any] | None = None,
    errors: Iterable[int] = (),
    tags: Iterable[str] = (),
) -> Callable[[F], F]:
    """Document a handler method.

    :param responses: Response Objects by status: the successes, and any error
        whose body differs from the shared error schema.
    :param errors: further error statuses answered with the shared error schema
        (see :data:`ERROR_RESPONSES`); those of authentication (400, 401, 403,
        503) are added from the handler's class and scope decorators.
    """
    described = Operation(summary, responses, description, request_body, tuple(errors), tuple(tags))

    def decorate(method: F) -> F:
        method.openapi = described  # type: ignore[attr-defined]
        return method

    return decorate


def json_response(description: str, schema: Schema) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def text_response(description: str, schema: Schema | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"text/plain": {"schema": schema or {"type": "string"}}},
    }


def json_body(schema: Schema, *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def form_body(schema: Schema, *, required: bool = True) -> dict[str, Any]:
    """An ``application/x-www-form-urlencoded`` body, as OAuth endpoints take (RFC 6749)."""
    content = {"application/x-www-form-urlencoded": {"schema": schema}}
    return {"required": required, "content": content}


ERROR_SCHEMA: Schema = {
    "type": "object",
    "required": ["error", "error_description"],
    "properties": {
        "error": {"type": "string", "description": "An RFC 6749/6750 error code."},
        "error_description": {"type": "string", "description": "Why, for a developer."},
    },
}


class ErrorResponse(NamedTuple):
    name: str
    description: str
    codes: tuple[str, ...]  # the body's possible "error" values; empty: not pinned here
    headers: Mapping[str, bool]  # header name -> always present


# Add a status here to let any @operation name it in ``errors``.
ERROR_RESPONSES: dict[int, ErrorResponse] = {
    400: ErrorResponse(
        "BadRequest",
        "The request is malformed, for instance its Authorization header.",
        ("invalid_request",),
        {"WWW-Authenticate": False},
    ),
    401: ErrorResponse(
        "Unauthorized",
        "No bearer token (a bare challenge), or a bad, expired or revoked one.",
        ("unauthorized", "invalid_token"),
        {"WWW-Authenticate": True},
    ),
    403: ErrorResponse(
        "Forbidden",
        "The token lacks a scope this operation needs.",
        ("insufficient_scope",),
        {"WWW-Authenticate": True},
    ),
    404: ErrorResponse("NotFound", "No such resource.", ("not_found",), {}),
    413: ErrorResponse(
        "TooLarge",
        "The body is too large: its Content-Length is over JOTGUARD_MAX_BODY_BYTES (any "
        "route, answered before the body is read), or over the route's own limit.",
        ("request_too_large",),
        {},
    ),
    415: ErrorResponse(
        "UnsupportedMediaType",
        "The body has the wrong media type.",
        ("unsupported_media_type",),
        {},
    ),
    429: ErrorResponse(
        "TooManyRequests",
        "Rate limited: retry after Retry-After seconds.",
        (),
        {"Retry-After": True},
    ),
    503: ErrorResponse(
        "Unavailable",
        "A store needed for the decision cannot answer; retry later (never a 401).",
        ("temporarily_unavailable",),
        {"Retry-After": True},
    ),
}

_HEADERS: dict[str, Schema] = {
    REQUEST_ID_HEADER: {
        "description": "The caller's X-Request-ID when it is 1-128 characters of "
        "[A-Za-z0-9._:+/=-], else a generated one; it is in the access log too.",
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:+/=-]{1,128}$"},
    },
    "WWW-Authenticate": {
        "description": "The RFC 6750 Bearer challenge.",
        "schema": {"type": "string", "pattern": "^Bearer "},
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
}

# Where protected operations take DPoP (RFC 9449): what changes in the document.
DPOP_UNAUTHORIZED = ErrorResponse(
    "Unauthorized",
    "No token (a bare challenge offering each scheme taken); a bad, expired or revoked "
    "token (`invalid_token`), also a DPoP-bound token sent as Bearer or a Bearer token "
    "where DPoP is required; a bad DPoP proof (`invalid_dpop_proof`: missing, replayed, "
    "stale, for another method, URL or token, by another key than the token's "
    "`cnf.jkt`); a proof without the server's current nonce (`use_dpop_nonce`, with "
    "`DPoP-Nonce`).",
    ("unauthorized", "invalid_token", "invalid_dpop_proof", "use_dpop_nonce"),
    {"WWW-Authenticate": True, "DPoP-Nonce": False},
)
_DPOP_HEADERS: dict[str, Schema] = {
    "WWW-Authenticate": {
        "description": "The RFC 6750 Bearer or RFC 9449 DPoP challenge (with `algs`).",
        "schema": {"type": "string", "pattern": "^(Bearer|DPoP)( |$)"},
    },
    "DPoP-Nonce": {
        "description": "The nonce the next DPoP proof must carry (RFC 9449 §8-9): with "
        "`use_dpop_nonce`, and on a success whose proof's nonce is aging.",
        "schema": {"type": "string"},
    },
}
_DPOP_PROOF_PARAMETER = {
    "name": "DPoP",
    "in": "header",
    "required": False,
    "description": "One DPoP proof JWT (RFC 9449 §4) for this method, URL and token: "
    "with `Authorization: DPoP <token>`.",
    "schema": {"type": "string"},
}


def _header_ref(name: str, required: bool) -> dict[str, Any]:
    if required:
        return {"$ref": f"#/components/headers/{name}"}
    return {**_HEADERS.get(name, _DPOP_HEADERS.get(name, {})), "required": False}


def _with_request_id(response: Mapping[str, Any]) -> dict[str, Any]:
    headers = {REQUEST_ID_HEADER: _header_ref(REQUEST_ID_HEADER, True)}
    headers.update(response.get("headers", {}))
    return {**response, "headers": headers}


def _error_component(error: ErrorResponse) -> dict[str, Any]:
    schema: dict[str, Any] = dict(ERROR_SCHEMA)
    if error.codes:
        properties = dict(schema["properties"])
        properties["error"] = {**properties["error"], "enum": list(error.codes)}
        schema["properties"] = properties
    response = json_response(error.description, schema)
    response["headers"] = {
        name: _header_ref(name, required) for name, required in error.headers.items()
    }
    return _with_request_id(response)


def _components(dpop: bool) -> dict[str, Any]:
    """The shared parts; ``dpop``: some operation takes DPoP."""
    headers = {name: {**spec, "required": True} for name, spec in _HEADERS.items()}
    errors = dict(ERROR_RESPONSES)
    schemes: dict[str, Any] = {
        SECURITY_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token from this service's issuer or a trusted one "
            "(such as Auth0). Scopes come from its `scope` claim or Auth0 `permissions`.",
        }
    }
    parameters: dict[str, Any] = {
        "RequestId": {
            "name": REQUEST_ID_HEADER,
            "in": "header",
            "required": False,
            "description": "Correlates this request with the logs; echoed back.",
            "schema": {"type": "string"},
        }
    }
    if dpop:
        headers["WWW-Authenticate"] = {**_DPOP_HEADERS["WWW-Authenticate"], "required": True}
        errors[401] = DPOP_UNAUTHORIZED
        schemes[DPOP_SECURITY_SCHEME] = {
            "type": "http",
            "scheme": "DPoP",
            "description": "RFC 9449: an access token bound to the client's key "
            "(`cnf.jkt`), as `Authorization: DPoP <token>`, with a fresh proof signed by "
            "that key in the `DPoP` header.",
        }
        parameters["DPoPProof"] = _DPOP_PROOF_PARAMETER
    return {
        "securitySchemes": schemes,
        "schemas": {"Error": ERROR_SCHEMA},
        "headers": headers,
        "parameters": parameters,
        "responses": {e.name: _error_component(e) for e in errors.values()},
    }


def _token_schemes(handler: type[AuthenticatedHandler], dpop: DPoPMode) -> tuple[str, ...]:
    """The security schemes an operation of ``handler`` takes under ``dpop``."""
    if handler.dpop_required or dpop == "required":
        return (DPOP_SECURITY_SCHEME,)
    if dpop == "allowed":
        return (SECURITY_SCHEME, DPOP_SECURITY_SCHEME)
    return (SECURITY_SCHEME,)


_PATH_PARAM = re.compile(r"\{(\w+)\}")


def _operation_id(method: str, template: str) -> str:
    words = re.sub(r"[^A-Za-z0-9]+", "_", template).strip("_")
    return f"{method.lower()}_{words or 'root'}"


def _operation(route: Route, method: str, dpop: DPoPMode = "off") -> dict[str, Any]:
    handler = route.handler
    function = getattr(handler, method.lower())
    described: Operation | None = getattr(function, "openapi", None)
    if described is None:
        raise ValueError(
            f"{handler.__module__}.{handler.__qualname__}.{method.lower()} serves "
            f"{method} {route.template} but has no @operation (webapp.service.openapi)"
        )
    errors = set(described.errors) | set(getattr(handler, "openapi_errors", ()))
    if getattr(handler, "rate_limit", None) is not None:
        errors.add(429)  # every rate-limited route may answer it
    errors.add(413)  # every route refuses a declared body over JOTGUARD_MAX_BODY_BYTES
    document: dict[str, Any] = {
        "operationId": _operation_id(method, route.template),
        "summary": described.summary,
    }
    if described.description:
        document["description"] = described.description
    if described.tags:
        document["tags"] = list(described.tags)
    document["parameters"] = [{"$ref": "#/components/parameters/RequestId"}]
    if described.request_body is not None:
        document["requestBody"] = dict(described.request_body)
    if issubclass(handler, AuthenticatedHandler):
        # A class may enforce scopes in prepare() (the admin API): it names them here.
        scopes: tuple[str, ...] = getattr(function, "required_scopes", ()) or getattr(
            handler, "openapi_scopes", ()
        )
        names = _token_schemes(handler, dpop)
        if scopes and getattr(function, "any_scope", False):
            document["security"] = [{name: [scope]} for scope in scopes for name in names]
        elif scopes or handler.auth_required:
            document["security"] = [{name: list(scopes)} for name in names]
        else:
            document["security"] = [{}, *({name: []} for name in names)]
        if DPOP_SECURITY_SCHEME in names:
            document["parameters"].append({"$ref": "#/components/parameters/DPoPProof"})
        errors |= {400, 401, 503} | ({403} if scopes else set())
    responses: dict[str, Any] = {
        str(status): _with_request_id(response)
        for status, response in sorted(described.responses.items())
    }
    for status in sorted(errors - set(described.responses)):
        if status not in ERROR_RESPONSES:
            raise ValueError(f"no shared error response for {status} (webapp.service.openapi)")
        responses[str(status)] = {"$ref": f"#/components/responses/{ERROR_RESPONSES[status].name}"}
    document["responses"] = dict(sorted(responses.items()))
    return document


def build_document(routes: Iterable[Route], *, dpop: DPoPMode = "off") -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``; ``dpop`` is JOTGUARD_DPOP (off: no DPoP
    gate is given to the handlers).

    :raises ValueError: a handler method lacks ``@operation``, or two routes
        share a path template.
    """
    paths: dict[str, Any] = {}
    for route in routes:
        if route.template in paths:
            raise ValueError(f"two routes have the path {route.template}")
        item: dict[str, Any] = {}
        names = _PATH_PARAM.findall(route.template)
        if names:
            item["parameters"] = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in names
            ]
        for method in handler_methods(route.handler):
            item[method.lower()] = _operation(route, method, dpop)
        paths[route.template] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "jotguard",
            "version": _version(),
            "summary": "JWT authentication with revocation, token issuance and rate limits.",
            "description": "Errors are JSON `{error, error_description}` (RFC 6749/6750). "
            "Every response carries X-Request-ID. Every route answers OPTIONS without "
            "authentication (CORS preflights, when JOTGUARD_CORS_ORIGINS allows the origin).",
        },
        "paths": paths,
        "components": _components(_takes_dpop(paths)),
    }


def _takes_dpop(paths: Mapping[str, Any]) -> bool:
    return any(
        DPOP_SECURITY_SCHEME in requirement
        for item in paths.values()
        for operation in item.values()
        if isinstance(operation, dict)
        for requirement in operation.get("security", ())
    )


@functools.cache  # the installed version stays put; reading it parses METADATA (1 ms)
def _version() -> str:
    try:
        return metadata.version("jotguard")
    except metadata.PackageNotFoundError:
        return "0+unknown"
