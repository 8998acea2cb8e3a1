"""Scope decorators and optional authentication on a library user's handlers."""

from __future__ import annotations

import json

import pytest
from tornado.web import Application

from tests.helpers import BARE_CHALLENGE
from webapp import AuthenticatedHandler, requires_any_scope, requires_scopes
from webapp.service.app import protected


class AllOf(AuthenticatedHandler):
    @requires_scopes("read:x", "write:x")
    def get(self) -> None:
        self.write({"ok": True})


class AnyOf(AuthenticatedHandler):
    @requires_any_scope("read:x", "admin")
    async def get(self) -> None:
        self.write({"ok": True})


class Optional(AuthenticatedHandler):
    auth_required = False

    def get(self) -> None:
        user = self.current_user
        self.write({"subject": user.subject if user else None})


class OptionalUsingPrincipal(AuthenticatedHandler):
    auth_required = False

    def get(self) -> None:
        self.write({"subject": self.principal.subject})


class OptionalScoped(AuthenticatedHandler):
    auth_required = False

    @requires_scopes("read:x")
    def get(self) -> None:
        self.write({"ok": True})


@pytest.fixture
def app(services):
    handlers = [
        (r"/all", AllOf),
        (r"/any", AnyOf),
        (r"/optional", Optional),
        (r"/optional-principal", OptionalUsingPrincipal),
        (r"/scoped", OptionalScoped),
    ]
    return Application([(path, handler, protected(services)) for path, handler in handlers])


@pytest.mark.parametrize(
    ("path", "scopes", "status"),
    [
        ("/all", ["read:x", "write:x"], 200),
        ("/all", ["read:x", "write:x", "more"], 200),
        ("/all", ["read:x"], 403),
        ("/all", [], 403),
        ("/any", ["admin"], 200),
        ("/any", ["read:x"], 200),
        ("/any", ["write:x"], 403),
    ],
)
async def test_scope_decisions(fetch, issue_token, path, scopes, status):
    response = await fetch(path, token=issue_token("alice", scopes=scopes))
    assert response.code == status
    if status == 403:
        assert json.loads(response.body)["error"] == "insufficient_scope"
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


async def test_permissions_claim_counts_as_scopes(fetch, issue_token):
    token = issue_token("alice", extra={"permissions": ["read:x", "write:x"]})
    assert (await fetch("/all", token=token)).code == 200


async def test_optional_auth_admits_anonymous_but_not_bad_tokens(fetch, issue_token):
    assert json.loads((await fetch("/optional")).body) == {"subject": None}
    ok = await fetch("/optional", token=issue_token("alice"))
    assert json.loads(ok.body) == {"subject": "alice"}
    bad = await fetch("/optional", token=issue_token("alice")[:-4])
    assert bad.code == 401


async def test_scoped_method_on_optional_handler_needs_a_token(fetch):
    response = await fetch("/scoped")
    assert response.code == 401
    assert response.headers["WWW-Authenticate"] == BARE_CHALLENGE


def test_decorator_refuses_bad_scope_names():
    with pytest.raises(ValueError, match="scopes"):
        requires_scopes()
    with pytest.raises(ValueError, match="scopes"):
        requires_scopes("a b")


def test_generated_token_ids_are_safe_to_type_into_a_command_line(services):
    # base64url ids start with "-" one time in 64, and `jotguard revoke --jti -x...`
    # then reads the id as a flag.
    for _ in range(200):
        jti = services.issuer.claims_for("alice")["jti"]
        assert jti[0] != "-"
        assert jti.isalnum()


async def test_principal_on_an_anonymous_request_is_the_401_a_protected_route_answers(
    fetch, issue_token
):
    """As the README says beside its example: check current_user before principal."""
    anonymous = await fetch("/optional-principal")
    assert anonymous.code == 401
    assert anonymous.headers["WWW-Authenticate"] == BARE_CHALLENGE
    known = await fetch("/optional-principal", token=issue_token("alice"))
    assert json.loads(known.body) == {"subject": "alice"}
