"""Handlers' collaborators: declared once, set by the one initialize, checked by name."""

from __future__ import annotations

import pytest
from tornado.web import Application, RequestHandler

from backends.auth import Authenticator
from webapp.handlers.basic import HealthHandler, NotFoundHandler
from webapp.handlers.ops import OpenAPIHandler
from webapp.service.app import JotguardApplication
from webapp.service.openapi import operation, text_response
from webapp.web.collaborators import Collaborators, check_route, collaborator
from webapp.web.handler import AuthenticatedHandler, JsonHandler


class Store:
    pass


class Base(Collaborators):
    store: Store = collaborator()
    archive: Store | None = collaborator(None)


class Child(Base):
    archive: Store = collaborator()  # required here
    limit: int = collaborator(10)


def test_the_route_s_keywords_become_attributes_and_defaults_stay():
    store = Store()
    thing = Base()
    thing.initialize(store=store)
    assert thing.store is store
    assert thing.archive is None
    assert Base.collaborators == {"store", "archive"}
    assert Base.required_collaborators == {"store"}


def test_a_subclass_adds_collaborators_and_may_require_an_inherited_one():
    store, archive = Store(), Store()
    child = Child()
    child.initialize(store=store, archive=archive)
    assert (child.store, child.archive, child.limit) == (store, archive, 10)
    assert Child.collaborators == {"store", "archive", "limit"}
    assert Child.required_collaborators == {"store", "archive"}
    with pytest.raises(TypeError, match="Child needs the collaborator 'archive'"):
        Child().initialize(store=store)


def test_an_unknown_keyword_is_refused_with_what_the_handler_takes():
    with pytest.raises(
        TypeError, match=r"Base takes no collaborator 'stor' \(it takes: archive, store\)"
    ):
        Base().initialize(stor=Store())


def test_a_missing_required_keyword_is_refused():
    with pytest.raises(TypeError, match="Base needs the collaborator 'store'"):
        Base().initialize(archive=Store())


def test_a_required_collaborator_is_no_class_attribute():
    # Unset until a route gives it: nothing reads a placeholder by mistake.
    assert not hasattr(Base, "store")
    assert not hasattr(AuthenticatedHandler, "authenticator")
    assert AuthenticatedHandler.dpop is None


def test_the_handlers_declare_what_the_readme_says():
    assert AuthenticatedHandler.required_collaborators == {"authenticator"}
    assert AuthenticatedHandler.collaborators == {"authenticator", "dpop", "rate_limits", "cors"}
    assert JsonHandler.collaborators == {"rate_limits", "cors"}
    assert JsonHandler.required_collaborators == frozenset()


def test_check_route_passes_by_handlers_that_declare_nothing():
    check_route(RequestHandler, {"anything": 1})


class Hello(AuthenticatedHandler):
    pass


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ((r"/hello", Hello, {}), "Hello needs the collaborator 'authenticator'"),
        (
            (r"/hello", Hello, {"authenticator": Authenticator([]), "db": None}),
            "Hello takes no collaborator 'db'",
        ),
        ((r"/healthz", HealthHandler, {"rate_limit": None}), "takes no collaborator 'rate_limit'"),
        ((r"/openapi\.json", OpenAPIHandler, {}), "needs the collaborator 'document'"),
    ],
)
def test_jotguard_s_application_checks_every_route_at_start_up(route, message):
    with pytest.raises(TypeError, match=message):
        JotguardApplication([route])


def test_the_default_handler_s_keywords_are_checked_too():
    with pytest.raises(TypeError, match="NotFoundHandler takes no collaborator 'authenticator'"):
        JotguardApplication(
            [],
            default_handler_class=NotFoundHandler,
            default_handler_args={"authenticator": Authenticator([])},
        )


def test_the_body_too_large_handler_s_keywords_are_checked_too():
    with pytest.raises(TypeError, match="BodyTooLargeHandler takes no collaborator 'dpop'"):
        JotguardApplication([], max_body_bytes=1024, web={"dpop": None})


class OwnInitialize(AuthenticatedHandler):
    """Tornado's own way still works: an initialize that takes its keyword and passes
    the rest on."""

    def initialize(self, *, greeting: str, **rest: object) -> None:
        self.greeting = greeting
        super().initialize(**rest)

    @operation("Greets", responses={200: text_response("Hi.")})
    def get(self) -> None:
        self.write({"greeting": self.greeting, "subject": self.principal.subject})


@pytest.fixture
def app(services):
    return Application(
        [(r"/own", OwnInitialize, {"greeting": "hi", "authenticator": services.authenticator})]
    )


async def test_a_handler_s_own_initialize_still_takes_its_keywords(fetch, services):
    issuer = services.issuer
    token = issuer.sign(issuer.claims_for("alice", scopes=[])).token
    response = await fetch("/own", token=token)
    assert response.code == 200
    assert response.body == b'{"greeting": "hi", "subject": "alice"}'


def test_jotguard_s_application_leaves_an_own_initialize_s_keywords_to_it():
    route = (r"/own", OwnInitialize, {"greeting": "hi", "authenticator": Authenticator([])})
    assert [r.template for r in JotguardApplication([route]).routes] == ["/own"]
