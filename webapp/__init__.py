"""The Tornado side of jotguard.

- ``web``: the library a Tornado developer imports (base handlers, scopes, the error
  table, rate limits); what this package exports comes from there;
- ``handlers``: the service's routes;
- ``service``: ``jotguard serve``, the wiring that builds what its settings ask for;
- ``config``: the settings, their parsers and cross-checks;
- ``cli``: the ``jotguard`` command.
"""

from webapp.web.collaborators import collaborator
from webapp.web.handler import (
    AuthenticatedHandler,
    JsonHandler,
    requires_any_scope,
    requires_scopes,
)

__all__ = [
    "AuthenticatedHandler",
    "JsonHandler",
    "collaborator",
    "requires_any_scope",
    "requires_scopes",
]
