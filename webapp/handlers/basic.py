"""The tutorial's two routes, liveness (and the base of the other probes), and the
answers no route gives: an unknown path, a body over the size limit."""

from __future__ import annotations

from tornado.web import HTTPError, stream_request_body

from webapp.service.openapi import json_response, operation, text_response
from webapp.web.collaborators import collaborator
from webapp.web.errors import RequestTooLarge
from webapp.web.handler import AuthenticatedHandler, JsonHandler


class UnprotectedHandler(JsonHandler):
    @operation(
        "An unprotected route (the tutorial's)",
        responses={200: text_response("Always.", {"const": "This is an unprotected route."})},
        tags=["demo"],
    )
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.write("This is an unprotected route.")


class ProtectedHandler(AuthenticatedHandler):
    @operation(
        "A protected route (the tutorial's): any valid token",
        responses={
            200: text_response("The token is valid.", {"const": "This is a protected route."})
        },
        tags=["demo"],
    )
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.write("This is a protected route.")


class ProbeHandler(JsonHandler):
    """A route machines poll every few seconds (liveness, readiness, metrics): never rate
    limited, and its successes logged at DEBUG only."""

    quiet_access_log = True
    rate_limit = None


class HealthHandler(ProbeHandler):
    """Liveness: the process answers. No I/O, so it never flaps with a dependency."""

    @operation(
        "Liveness: the process answers (no I/O)",
        responses={
            200: json_response(
                "Alive.",
                {
                    "type": "object",
                    "required": ["status"],
                    "properties": {"status": {"const": "ok"}},
                },
            )
        },
        tags=["operations"],
    )
    def get(self) -> None:
        self.write({"status": "ok"})


class NotFoundHandler(JsonHandler):
    async def prepare(self) -> None:
        # Charged like any route, so probing for paths is limited too.
        await self.limit_request(authenticating=False)
        raise HTTPError(404)


@stream_request_body
class BodyTooLargeHandler(JsonHandler):
    """413 for a request whose Content-Length is over ``max_body_bytes``, sent once the
    headers are read: Tornado discards the body while it goes out, then closes."""

    max_body_bytes: int = collaborator()

    async def prepare(self) -> None:
        await self.limit_request(authenticating=False)
        limit = self.max_body_bytes
        raise RequestTooLarge(f"The body is larger than the {limit} bytes accepted")

    def data_received(self, chunk: bytes) -> None:
        pass  # never called: prepare always refuses
