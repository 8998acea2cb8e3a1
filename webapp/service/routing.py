"""The route table as data: each route's regex, its path template and its handler.

The template (``/admin/revocations/{id}``) names a route in logs and metrics, so
their cardinality stays bounded whatever paths clients send, and it is the
route's key in the OpenAPI document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tornado.httputil import HTTPServerRequest
from tornado.routing import PathMatches
from tornado.util import re_unescape
from tornado.web import Application, RequestHandler

from webapp.web.collaborators import check_route

UNMATCHED = "unmatched"

_GROUP = re.compile(r"\((?:\?P<(?P<name>\w+)>)?[^()]*\)")
_REGEX_SYNTAX = re.compile(r"[][(){}*+?|^$]")
_ESCAPED = re.compile(r"\\.")


@dataclass(frozen=True, slots=True)
class Route:
    template: str
    handler: type[RequestHandler]
    matcher: PathMatches


def route_template(pattern: str) -> str:
    """``r"/admin/revocations/(?P<id>[^/]+)"`` -> ``"/admin/revocations/{id}"``.

    Unnamed groups become ``{arg1}``, ``{arg2}``...; name them for a readable API.

    :raises ValueError: the pattern has regex syntax outside its groups, so no
        template can stand for every path it matches.
    """
    body = pattern.removeprefix("^").removesuffix("$")
    pieces: list[str] = []
    last = unnamed = 0
    for group in _GROUP.finditer(body):
        pieces.append(_literal(body[last : group.start()], pattern))
        name = group.group("name")
        if name is None:
            unnamed += 1
            name = f"arg{unnamed}"
        pieces.append("{" + name + "}")
        last = group.end()
    pieces.append(_literal(body[last:], pattern))
    return "".join(pieces)


def _literal(fragment: str, pattern: str) -> str:
    problem = ValueError(f"route {pattern!r} is not a literal path with (?P<name>...) groups")
    if _REGEX_SYNTAX.search(_ESCAPED.sub("", fragment)):
        raise problem
    try:
        return re_unescape(fragment)
    except ValueError:
        raise problem from None


def app_routes(app: Application) -> list[Route]:
    """The application's routes, in matching order.

    :raises ValueError: a route is not a path routed to a handler class.
    :raises TypeError: a route's keywords are not the collaborators its handler takes.
    """
    routes = []
    for rule in app.wildcard_router.rules:
        if not isinstance(rule.matcher, PathMatches) or not (
            isinstance(rule.target, type) and issubclass(rule.target, RequestHandler)
        ):
            raise ValueError(f"route {rule!r} is not a path routed to a RequestHandler")
        check_route(rule.target, rule.target_kwargs)
        routes.append(Route(route_template(rule.matcher.regex.pattern), rule.target, rule.matcher))
    return routes


def templates_by_handler(routes: list[Route]) -> dict[type[RequestHandler], str]:
    """The template of each handler class that serves exactly one route: for those the
    class names the route, with no pattern matched again after the request."""
    seen: dict[type[RequestHandler], list[str]] = {}
    for route in routes:
        seen.setdefault(route.handler, []).append(route.template)
    return {handler: names[0] for handler, names in seen.items() if len(names) == 1}


def route_of(routes: list[Route], request: HTTPServerRequest) -> str:
    """The template of the route ``request`` took, or ``"unmatched"``."""
    for route in routes:
        if route.matcher.match(request) is not None:
            return route.template
    return UNMATCHED
