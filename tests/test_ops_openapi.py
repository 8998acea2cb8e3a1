"""GET /openapi.json: a valid OpenAPI 3.1 document of exactly the routes Tornado serves."""

from __future__ import annotations

import json
import re

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from backends.auth import Authenticator
from tests.dpop_http import DPoPClient, bound_token
from tests.dpop_support import key_for
from tests.helpers import ScopedHandler, app_with
from webapp.service.app import JotguardApplication
from webapp.service.openapi import form_body, operation, text_response
from webapp.service.routing import app_routes, route_template
from webapp.web.handler import AuthenticatedHandler, JsonHandler, requires_scopes
from webapp.web.methods import handler_methods


@pytest.fixture
def app(services):
    return app_with(services, (r"/notes/(?P<note_id>[^/]+)", ScopedHandler))


async def document_of(fetch) -> dict:
    response = await fetch("/openapi.json")
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    return json.loads(response.body)


async def test_the_document_is_valid_openapi_3_1(fetch):
    document = await document_of(fetch)
    assert document["openapi"] == "3.1.0"
    OpenAPIV31SpecValidator(document).validate()


async def test_every_route_and_method_is_documented_and_nothing_else(fetch, app):
    document = await document_of(fetch)

    served = {
        route.template: {m.lower() for m in handler_methods(route.handler)}
        for route in app_routes(app)
    }
    documented = {
        path: {k for k in item if k != "parameters"} for path, item in document["paths"].items()
    }
    assert documented == served
    assert {"/metrics", "/readyz", "/openapi.json", "/healthz"} <= set(served)


@pytest.mark.parametrize("settings_overrides", [{"JOTGUARD_METRICS": "off"}])
async def test_a_route_that_is_off_is_not_documented(fetch):
    assert "/metrics" not in (await document_of(fetch))["paths"]


async def test_security_follows_the_handler_and_its_scope_decorators(fetch):
    paths = (await document_of(fetch))["paths"]

    # JOTGUARD_DPOP=allowed (the default): Bearer or DPoP, each with the scopes.
    assert "security" not in paths["/test"]["get"]
    assert paths["/test-auth"]["get"]["security"] == [{"bearerAuth": []}, {"dpopAuth": []}]
    notes = paths["/notes/{note_id}"]
    assert notes["get"]["security"] == [
        {"bearerAuth": ["read:notes"]},
        {"dpopAuth": ["read:notes"]},
    ]
    # any one of the scopes: alternatives
    assert notes["post"]["security"] == [
        {"bearerAuth": ["write:notes"]},
        {"dpopAuth": ["write:notes"]},
        {"bearerAuth": ["admin"]},
        {"dpopAuth": ["admin"]},
    ]
    assert notes["parameters"] == [
        {"name": "note_id", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    # The proof's header is a parameter of every operation that takes DPoP.
    assert {"$ref": "#/components/parameters/DPoPProof"} in paths["/test-auth"]["get"]["parameters"]
    assert len(paths["/test"]["get"]["parameters"]) == 1


# What a protected route takes, for applications built only for their document: an
# authenticator that trusts no issuer.
PROTECTED = {"authenticator": Authenticator([])}


class DPoPOnly(AuthenticatedHandler):
    dpop_required = True

    @operation("DPoP only", responses={200: text_response("Yes.")})
    def get(self) -> None:
        pass


class Optional(AuthenticatedHandler):
    auth_required = False

    @operation("Anyone", responses={200: text_response("Yes.")})
    def get(self) -> None:
        pass


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("off", [{"bearerAuth": []}]),
        ("allowed", [{"bearerAuth": []}, {"dpopAuth": []}]),
        ("required", [{"dpopAuth": []}]),
    ],
)
def test_the_dpop_mode_decides_the_schemes(mode, expected):
    app = JotguardApplication(
        [
            (r"/a", ScopedHandler, PROTECTED),
            (r"/b", DPoPOnly, PROTECTED),
            (r"/c", Optional, PROTECTED),
        ],
        dpop=mode,
    )
    document = app.openapi
    OpenAPIV31SpecValidator(document).validate()
    paths, components = document["paths"], document["components"]
    assert paths["/a"]["get"]["security"] == [{k: ["read:notes"]} for d in expected for k in d]
    assert paths["/b"]["get"]["security"] == [{"dpopAuth": []}]  # whatever the mode
    assert paths["/c"]["get"]["security"] == [{}, *expected]
    schemes = components["securitySchemes"]
    assert schemes["dpopAuth"] == {
        "type": "http",
        "scheme": "DPoP",
        "description": schemes["dpopAuth"]["description"],
    }
    unauthorized = components["responses"]["Unauthorized"]
    codes = unauthorized["content"]["application/json"]["schema"]["properties"]["error"]["enum"]
    assert {"invalid_dpop_proof", "use_dpop_nonce"} <= set(codes)
    assert unauthorized["headers"]["DPoP-Nonce"]["required"] is False


def test_without_dpop_the_document_names_none():
    document = JotguardApplication([(r"/a", ScopedHandler, PROTECTED)]).openapi
    assert set(document["components"]["securitySchemes"]) == {"bearerAuth"}
    assert "DPoPProof" not in document["components"]["parameters"]
    unauthorized = document["components"]["responses"]["Unauthorized"]
    assert "DPoP-Nonce" not in unauthorized["headers"]
    assert document["components"]["headers"]["WWW-Authenticate"]["schema"]["pattern"] == "^Bearer "


async def test_error_responses_are_listed_with_their_schema_and_headers(fetch):
    document = await document_of(fetch)
    paths, components = document["paths"], document["components"]

    # Every route here is rate-limited (the default policy), so each may answer 429; every
    # route refuses a declared body over JOTGUARD_MAX_BODY_BYTES with 413.
    assert set(paths["/test"]["get"]["responses"]) == {"200", "413", "429"}
    assert set(paths["/test-auth"]["get"]["responses"]) == {
        "200",
        "400",
        "401",
        "413",
        "429",
        "503",
    }
    assert set(paths["/notes/{note_id}"]["get"]["responses"]) == {
        "200",
        "400",
        "401",
        "403",
        "413",
        "429",
        "503",
    }
    # probes are never limited
    assert set(paths["/healthz"]["get"]["responses"]) == {"200", "413"}
    for item in paths.values():
        for name, op in item.items():
            if name != "parameters":
                assert "413" in op["responses"], name
    unauthorized = components["responses"]["Unauthorized"]
    assert unauthorized["headers"]["WWW-Authenticate"] == {
        "$ref": "#/components/headers/WWW-Authenticate"
    }
    schema = unauthorized["content"]["application/json"]["schema"]
    assert schema["required"] == ["error", "error_description"]
    assert schema["properties"]["error"]["enum"] == [
        "unauthorized",
        "invalid_token",
        "invalid_dpop_proof",
        "use_dpop_nonce",
    ]
    assert components["responses"]["Unavailable"]["headers"]["Retry-After"]["$ref"]
    # every response, success or error, promises X-Request-ID
    for item in paths.values():
        for name, op in item.items():
            if name == "parameters":
                continue
            for response in op["responses"].values():
                if "$ref" not in response:
                    assert "X-Request-ID" in response["headers"]


async def test_actual_error_bodies_match_the_documented_codes(fetch, issue_token, services):
    document = await document_of(fetch)
    responses = document["components"]["responses"]
    cases = [
        ("BadRequest", {"headers": {"Authorization": "Bearer a b"}}),
        ("Unauthorized", {}),
        ("Unauthorized", {"token": issue_token(ttl=-3600)}),
    ]
    for name, kwargs in cases:
        response = await fetch("/test-auth", **kwargs)
        body = json.loads(response.body)
        enum = responses[name]["content"]["application/json"]["schema"]["properties"]["error"]
        assert body["error"] in enum["enum"]
    too_large = await fetch(
        "/test", method="POST", body=b"x" * (services.settings.max_body_bytes + 1)
    )
    assert too_large.code == 413
    enum = responses["TooLarge"]["content"]["application/json"]["schema"]["properties"]["error"]
    assert json.loads(too_large.body)["error"] in enum["enum"]


async def test_dpop_refusals_match_the_documented_codes_and_challenge(fetch, services, base_url):
    document = await document_of(fetch)
    components = document["components"]
    unauthorized = components["responses"]["Unauthorized"]["content"]["application/json"]
    codes = unauthorized["schema"]["properties"]["error"]["enum"]
    pattern = re.compile(components["headers"]["WWW-Authenticate"]["schema"]["pattern"])
    client = DPoPClient(fetch, base_url, key_for("ES256"))
    token = bound_token(services, client.key)
    thief = DPoPClient(fetch, base_url, key_for("EdDSA"))
    for response in (
        await fetch("/test-auth"),
        await thief.send("/test-auth", token),
        await fetch("/test-auth", token=token),
    ):
        assert response.code == 401
        assert json.loads(response.body)["error"] in codes
        assert pattern.match(response.headers["WWW-Authenticate"])


def test_request_bodies_and_extra_errors_are_documented(services):
    class Revoke(AuthenticatedHandler):
        @operation(
            "Revoke a token (RFC 7009)",
            request_body=form_body(
                {
                    "type": "object",
                    "required": ["token"],
                    "properties": {"token": {"type": "string"}},
                }
            ),
            responses={200: text_response("Revoked, or never valid.")},
            errors=[404],
        )
        @requires_scopes("revoke")
        def post(self) -> None:
            pass

    class Limited(Revoke):
        rate_limit = "token"

    app = JotguardApplication([(r"/revoke", Revoke, PROTECTED), (r"/limited", Limited, PROTECTED)])
    document = app.openapi
    OpenAPIV31SpecValidator(document).validate()
    post = document["paths"]["/revoke"]["post"]
    assert post["requestBody"]["required"] is True
    assert "application/x-www-form-urlencoded" in post["requestBody"]["content"]
    assert set(post["responses"]) == {"200", "400", "401", "403", "404", "413", "429", "503"}
    limited = document["paths"]["/limited"]["post"]
    assert limited["responses"]["429"] == {"$ref": "#/components/responses/TooManyRequests"}


def test_an_undocumented_handler_method_stops_the_application(services):
    class Undocumented(AuthenticatedHandler):
        def delete(self) -> None:
            pass

    with pytest.raises(ValueError, match=r"Undocumented\.delete serves DELETE /things"):
        JotguardApplication([(r"/things", Undocumented, PROTECTED)])


def test_an_error_status_without_a_shared_response_is_refused(services):
    class Teapot(JsonHandler):
        @operation("Brew", responses={200: text_response("Tea.")}, errors=[418])
        def get(self) -> None:
            pass

    with pytest.raises(ValueError, match="418"):
        JotguardApplication([(r"/tea", Teapot)])


@pytest.mark.parametrize(
    ("pattern", "template"),
    [
        (r"/test$", "/test"),
        (r"/\.well-known/jwks\.json$", "/.well-known/jwks.json"),
        (r"/admin/revocations/(?P<id>[^/]+)$", "/admin/revocations/{id}"),
        (r"/a/([0-9]+)/b/(\w+)$", "/a/{arg1}/b/{arg2}"),
    ],
)
def test_route_templates(pattern, template):
    assert route_template(pattern) == template


@pytest.mark.parametrize("pattern", [r"/x/?$", r"/\d+$", r"/a|/b$", r"/files/.*$"])
def test_a_pattern_that_no_template_can_name_is_refused(pattern):
    with pytest.raises(ValueError, match="literal path"):
        route_template(pattern)
