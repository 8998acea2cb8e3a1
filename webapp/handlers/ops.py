"""Readiness, metrics and the API description: unauthenticated, for operators and tools."""

from __future__ import annotations

from typing import Any

from webapp.handlers.basic import ProbeHandler
from webapp.service.metrics import Metrics
from webapp.service.openapi import json_response, operation
from webapp.service.readiness import OK, Readiness
from webapp.web.collaborators import collaborator
from webapp.web.handler import JsonHandler

READY_RETRY_AFTER = 5

_CHECKS_SCHEMA = {
    "type": "object",
    "description": 'Each check: "ok", or what went wrong.',
    "additionalProperties": {"type": "string"},
}
_NOTES_SCHEMA = {
    "type": "object",
    "description": "What an operator should know that does not make the service unready"
    " (a store that lost its data and was reloaded); present only when there is some.",
    "additionalProperties": {"type": "string"},
}


class ReadinessHandler(ProbeHandler):
    readiness: Readiness = collaborator()

    @operation(
        "Readiness: every dependency a request may need answers",
        description="Runs every registered check at once, each with JOTGUARD_READY_TIMEOUT.",
        responses={
            200: json_response(
                "Ready.",
                {
                    "type": "object",
                    "required": ["status", "checks"],
                    "properties": {
                        "status": {"const": "ready"},
                        "checks": _CHECKS_SCHEMA,
                        "notes": _NOTES_SCHEMA,
                    },
                },
            ),
            503: {
                **json_response(
                    "Not ready; error_description and checks name what is down.",
                    {
                        "type": "object",
                        "required": ["status", "checks", "error", "error_description"],
                        "properties": {
                            "status": {"const": "unavailable"},
                            "checks": _CHECKS_SCHEMA,
                            "notes": _NOTES_SCHEMA,
                            "error": {"const": "temporarily_unavailable"},
                            "error_description": {"type": "string"},
                        },
                    },
                ),
                "headers": {"Retry-After": {"$ref": "#/components/headers/Retry-After"}},
            },
        },
        tags=["operations"],
    )
    async def get(self) -> None:
        checks = await self.readiness.run()
        down = [name for name, result in checks.items() if result != OK]
        body: dict[str, Any] = {"status": "ready", "checks": checks}
        if down:
            self.set_status(503)
            self.set_header("Retry-After", str(READY_RETRY_AFTER))
            self.error_code = "temporarily_unavailable"
            body = {
                "status": "unavailable",
                "error": self.error_code,
                "error_description": "Not ready: " + ", ".join(down),
                "checks": checks,
            }
        notes = self.readiness.notes()
        if notes:
            body["notes"] = notes
        self.write(body)


class MetricsHandler(ProbeHandler):
    metrics: Metrics = collaborator()

    @operation(
        "Prometheus metrics",
        description="The Prometheus text format, or OpenMetrics when the Accept header asks "
        "for it. Served here when JOTGUARD_METRICS=same.",
        responses={
            200: {
                "description": "The current metrics.",
                "content": {
                    "text/plain": {"schema": {"type": "string"}},
                    "application/openmetrics-text": {"schema": {"type": "string"}},
                },
            }
        },
        tags=["operations"],
    )
    def get(self) -> None:
        body, content_type = self.metrics.exposition(self.request.headers.get("Accept", ""))
        self.set_header("Content-Type", content_type)
        self.write(body)


class OpenAPIHandler(JsonHandler):
    document: dict[str, Any] = collaborator()

    @operation(
        "This document",
        responses={
            200: json_response(
                "The OpenAPI 3.1 description of every route.",
                {"type": "object", "required": ["openapi", "info", "paths"]},
            )
        },
        tags=["operations"],
    )
    def get(self) -> None:
        self.write(self.document)
