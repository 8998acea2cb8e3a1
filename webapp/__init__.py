"""The Tornado side of jotguard: base handler, app factory, settings and CLI."""

from webapp.handler import AuthenticatedHandler, JsonHandler, requires_any_scope, requires_scopes

__all__ = ["AuthenticatedHandler", "JsonHandler", "requires_any_scope", "requires_scopes"]
