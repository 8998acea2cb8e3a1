"""Which HTTP methods a handler class implements: what 405, OPTIONS and OpenAPI list."""

from __future__ import annotations

from tornado.web import RequestHandler


def handler_methods(handler: type[RequestHandler]) -> tuple[str, ...]:
    """The HTTP methods ``handler`` implements, OPTIONS aside (every JsonHandler answers it).

    Cached per class (a class's methods are fixed once defined): protected routes ask
    on every request, before any credential work.
    """
    methods = _METHODS.get(handler)
    if methods is None:
        methods = _METHODS[handler] = tuple(
            method
            for method in RequestHandler.SUPPORTED_METHODS
            if method != "OPTIONS"
            and getattr(handler, method.lower()) is not getattr(RequestHandler, method.lower())
        )
    return methods


_METHODS: dict[type[RequestHandler], tuple[str, ...]] = {}
