"""The tutorial's two routes and liveness."""

from __future__ import annotations

from tornado.web import HTTPError

from webapp.handler import AuthenticatedHandler, JsonHandler


class UnprotectedHandler(JsonHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.write("This is an unprotected route.")


class ProtectedHandler(AuthenticatedHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.write("This is a protected route.")


class HealthHandler(JsonHandler):
    """Liveness: the process answers. No I/O, so it never flaps with a dependency."""

    rate_limit = None  # probes are never limited

    def get(self) -> None:
        self.write({"status": "ok"})


class NotFoundHandler(JsonHandler):
    def prepare(self) -> None:
        raise HTTPError(404)
