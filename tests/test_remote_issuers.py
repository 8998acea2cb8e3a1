"""Auth0 / remote issuers through HTTP: jotguard as a resource server for a fake Auth0.

Configured exactly as a user would (AUTH0_* and JOTGUARD_* variables), except for
the outage tests, which build the backend with a fake clock, as a library user would.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from joserfc import jws, jwt
from tornado.testing import bind_unused_port
from tornado.web import Application

from backends.auth import Authenticator
from backends.auth.remote import RemoteIssuer, RemoteIssuerBackend
from backends.auth.token_cache import VerifiedTokenCache
from backends.keys.jwks import JWKSPolicy
from tests.clock import FakeClock
from tests.fake_issuer import FakeIssuer
from webapp.handlers.basic import ProtectedHandler
from webapp.service.app import make_app, protected
from webapp.service.services import Services
from webapp.web.handler import AuthenticatedHandler, requires_scopes


class DeleteCatchphraseHandler(AuthenticatedHandler):
    @requires_scopes("delete:catchphrases")
    def delete(self) -> None:
        self.write({"deleted": True, "by": self.principal.subject})


EXTRA_ROUTES = [(r"/catchphrase", DeleteCatchphraseHandler)]


@pytest.fixture
def settings_overrides(fake_issuer: FakeIssuer) -> dict[str, str]:
    # No AUTH0_JWKS_URI: the key set is discovered from the issuer, as for a custom domain.
    return {
        "AUTH0_ISSUER": fake_issuer.issuer,
        "AUTH0_AUDIENCE": fake_issuer.audience,
        "JOTGUARD_JWKS_TIMEOUT": "0.5",
    }


@pytest.fixture
def app(services: Services) -> Application:
    application = make_app(services)
    application.add_handlers(r".*", [(path, h, protected(services)) for path, h in EXTRA_ROUTES])
    return application


def error_of(response: Any) -> str:
    return str(json.loads(response.body)["error"])


async def test_a_valid_auth0_token_passes(fetch, fake_issuer):
    response = await fetch("/test-auth", token=fake_issuer.sign())
    assert response.code == 200
    assert response.body == b"This is a protected route."


async def test_local_tokens_still_pass_beside_auth0(fetch, issue_token, fake_issuer):
    assert (await fetch("/test-auth", token=issue_token("alice"))).code == 200
    assert (await fetch("/test-auth", token=fake_issuer.sign())).code == 200


async def test_rotation_is_picked_up_with_exactly_one_extra_fetch(fetch, fake_issuer):
    assert (await fetch("/test-auth", token=fake_issuer.sign())).code == 200
    before = fake_issuer.jwks_fetches
    fake_issuer.rotate()
    for _ in range(5):
        assert (await fetch("/test-auth", token=fake_issuer.sign())).code == 200
    assert fake_issuer.jwks_fetches == before + 1


async def test_a_flood_of_unknown_kids_costs_at_most_the_budget(fetch, fake_issuer):
    assert (await fetch("/test-auth", token=fake_issuer.sign())).code == 200
    assert fake_issuer.jwks_fetches == 1
    answers = []
    for i in range(100):
        response = await fetch("/test-auth", token=fake_issuer.sign(kid=f"random-kid-{i}"))
        answers.append(response.code)
        if response.code == 401:  # looked for in a refresh, and not published
            assert error_of(response) == "invalid_token"
            assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
        else:  # the budget is spent: a new key cannot be told from a bad one yet
            assert response.code == 503
            assert error_of(response) == "temporarily_unavailable"
            assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert answers == [401] * 5 + [503] * 95
    assert fake_issuer.jwks_fetches == 1 + 5


async def test_a_rotated_key_while_the_budget_is_spent_is_503_not_401(fetch, fake_issuer):
    assert (await fetch("/test-auth", token=fake_issuer.sign())).code == 200
    for i in range(20):
        await fetch("/test-auth", token=fake_issuer.sign(kid=f"random-kid-{i}"))
    fake_issuer.rotate()
    response = await fetch("/test-auth", token=fake_issuer.sign())
    assert response.code == 503
    assert error_of(response) == "temporarily_unavailable"
    assert "WWW-Authenticate" not in response.headers
    assert 1 <= int(response.headers["Retry-After"]) <= 60


@pytest.mark.parametrize("typ", ["JWT", "application/jwt", "at+jwt", None])
async def test_a_remote_issuer_accepts_any_jwt_type_by_default(fetch, fake_issuer, typ):
    # RFC 7515 §4.1.9: "application/" may be left out, so JWT and application/jwt are one.
    header = {"typ": typ} if typ else None
    token = fake_issuer.sign(header=header) if typ else unsigned_typ(fake_issuer)
    assert (await fetch("/test-auth", token=token)).code == 200


def unsigned_typ(fake: FakeIssuer) -> str:
    """An issuer token whose header has no typ at all (joserfc would add one)."""
    claims = jwt.decode(fake.sign(), fake.current, algorithms=["RS256"]).claims
    header = {"alg": "RS256", "kid": fake.kid_of(fake.current)}
    signing_input = f"{b64url(json.dumps(header))}.{b64url(json.dumps(claims))}"
    signature = jws.JWSRegistry.algorithms["RS256"].sign(signing_input.encode(), fake.current)
    return f"{signing_input}.{b64url(signature)}"


async def test_a_token_without_kid_passes_against_a_one_key_set(fetch, fake_issuer):
    token = fake_issuer.sign(header={"kid": None})
    assert (await fetch("/test-auth", token=token)).code == 200


async def test_a_token_without_kid_is_401_once_the_set_has_two_keys(fetch, fake_issuer):
    assert (await fetch("/test-auth", token=fake_issuer.sign())).code == 200
    fake_issuer.rotate()
    assert (await fetch("/test-auth", token=fake_issuer.sign())).code == 200  # refreshed
    response = await fetch("/test-auth", token=fake_issuer.sign(header={"kid": None}))
    assert response.code == 401
    assert error_of(response) == "invalid_token"
    assert "must name one" in json.loads(response.body)["error_description"]


async def test_an_auth0_admin_permission_gives_no_admin_rights(fetch, fake_issuer):
    token = fake_issuer.sign(permissions=["admin"])
    for method, body in (("GET", None), ("POST", json.dumps({"sub": "victim"}))):
        headers = {"Content-Type": "application/json"} if body else {}
        response = await fetch(
            "/admin/revocations", method=method, body=body, token=token, headers=headers
        )
        assert response.code == 403, method
        assert error_of(response) == "insufficient_scope"
        challenge = response.headers["WWW-Authenticate"]
        assert 'error="insufficient_scope"' in challenge
        assert "not accepted from this token's issuer" in challenge


async def test_the_local_issuers_admin_scope_still_works(fetch, issue_token):
    response = await fetch("/admin/revocations", token=issue_token("ops", scopes=["admin"]))
    assert response.code == 200


class TestAdminIssuers:
    @pytest.fixture
    def settings_overrides(self, fake_issuer) -> dict[str, str]:
        return {
            "AUTH0_ISSUER": fake_issuer.issuer,
            "AUTH0_AUDIENCE": fake_issuer.audience,
            "JOTGUARD_ADMIN_ISSUERS": fake_issuer.issuer,
        }

    async def test_a_named_issuer_may_grant_admin_rights(self, fetch, fake_issuer, issue_token):
        admin = fake_issuer.sign(permissions=["admin"])
        assert (await fetch("/admin/revocations", token=admin)).code == 200
        response = await fetch("/admin/revocations", token=fake_issuer.sign())
        assert response.code == 403  # still needs the scope
        assert "lacks the required scope" in json.loads(response.body)["error_description"]
        local = issue_token("ops", scopes=["admin"])
        assert (await fetch("/admin/revocations", token=local)).code == 200


class TestRFC9068RemoteIssuer:
    @pytest.fixture
    def settings_overrides(self, fake_issuer) -> dict[str, str]:
        remote = [{"issuer": fake_issuer.issuer, "audience": fake_issuer.audience}]
        remote[0].update(jwks_uri=fake_issuer.jwks_uri, rfc9068=True)
        return {"JOTGUARD_REMOTE_ISSUERS": json.dumps(remote)}

    async def test_the_profile_is_required_when_configured(self, fetch, fake_issuer):
        profiled = {"jti": "j1", "client_id": "c1"}
        token = fake_issuer.sign(header={"typ": "at+jwt"}, **profiled)
        assert (await fetch("/test-auth", token=token)).code == 200
        for token in (
            fake_issuer.sign(**profiled),  # typ: JWT
            fake_issuer.sign(header={"typ": "at+jwt"}, iat=None, **profiled),
            fake_issuer.sign(header={"typ": "at+jwt"}, jti="j2"),  # no client_id
        ):
            response = await fetch("/test-auth", token=token)
            assert response.code == 401
            assert error_of(response) == "invalid_token"


async def test_permissions_grant_scopes(fetch, fake_issuer):
    token = fake_issuer.sign(scope=None, permissions=["delete:catchphrases"])
    response = await fetch("/catchphrase", method="DELETE", token=token)
    assert response.code == 200
    assert json.loads(response.body)["by"] == "test-client@clients"


async def test_missing_permission_is_403(fetch, fake_issuer):
    token = fake_issuer.sign(permissions=["read:catchphrases"])
    response = await fetch("/catchphrase", method="DELETE", token=token)
    assert response.code == 403
    assert error_of(response) == "insufficient_scope"
    assert 'scope="delete:catchphrases"' in response.headers["WWW-Authenticate"]


async def test_an_untrusted_issuer_is_401_without_any_network_call(fetch, fake_issuer, services):
    await fetch("/test-auth", token=fake_issuer.sign())
    fetched = (fake_issuer.jwks_fetches, dict(fake_issuer.discovery_fetches))
    for iss in ("https://evil.example/", fake_issuer.issuer.rstrip("/"), None):
        response = await fetch("/test-auth", token=fake_issuer.sign(iss=iss))
        assert response.code == 401
        assert error_of(response) == "invalid_token"
    assert (fake_issuer.jwks_fetches, fake_issuer.discovery_fetches) == fetched


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"aud": "https://another.api"}, "wrong audience"),
        ({"exp": 1}, "expired"),
        ({"sub": None}, "no subject"),
    ],
)
async def test_bad_claims_are_401(fetch, fake_issuer, claims, why):
    response = await fetch("/test-auth", token=fake_issuer.sign(**claims))
    assert response.code == 401, why
    assert error_of(response) == "invalid_token"


async def test_a_forged_signature_is_401(fetch, fake_issuer, rsa_key_pool):
    # Signed by a key the issuer never published, under the published key's kid.
    forged = fake_issuer.sign(key=rsa_key_pool[-1], kid=fake_issuer.kid_of(fake_issuer.current))
    response = await fetch("/test-auth", token=forged)
    assert response.code == 401
    assert error_of(response) == "invalid_token"


async def test_algorithm_confusion_is_401(fetch, fake_issuer):
    # HS256 "signed" with the issuer's public key as the HMAC secret: the classic attack.
    header = {"alg": "HS256", "typ": "JWT", "kid": fake_issuer.kid_of(fake_issuer.current)}
    claims = jwt.decode(fake_issuer.sign(), fake_issuer.current, algorithms=["RS256"]).claims
    signing_input = f"{b64url(json.dumps(header))}.{b64url(json.dumps(claims))}"
    secret = fake_issuer.current.as_pem(private=False)
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64url(mac)}"
    response = await fetch("/test-auth", token=token)
    assert response.code == 401
    assert error_of(response) == "invalid_token"


def b64url(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def test_the_backend_reports_its_key_set_status(fetch, fake_issuer, services):
    await fetch("/test-auth", token=fake_issuer.sign())
    [backend] = services.remote_backends
    status = backend.status()
    assert status.issuer == fake_issuer.issuer
    assert status.has_keys
    assert status.jwks_uri == fake_issuer.jwks_uri
    assert status.fetches == 1
    assert status.failures == 0


# -- several issuers -----------------------------------------------------------------------


@pytest.fixture
async def second_issuer(rsa_key_pool) -> AsyncIterator[FakeIssuer]:
    other = FakeIssuer(rsa_key_pool[2:], audience="https://api-b.example")
    other.start()
    yield other
    await other.stop()


class TestSeveralIssuers:
    @pytest.fixture
    def settings_overrides(self, fake_issuer, second_issuer) -> dict[str, str]:
        remote = [
            {
                "issuer": second_issuer.issuer,
                "audience": [second_issuer.audience, "https://api-b2.example"],
                "jwks_uri": second_issuer.jwks_uri,
            }
        ]
        return {
            "AUTH0_ISSUER": fake_issuer.issuer,
            "AUTH0_AUDIENCE": fake_issuer.audience,
            "AUTH0_JWKS_URI": fake_issuer.jwks_uri,
            "JOTGUARD_REMOTE_ISSUERS": json.dumps(remote),
        }

    async def test_each_issuer_is_accepted_with_its_own_audience(
        self, fetch, issue_token, fake_issuer, second_issuer
    ):
        assert (await fetch("/test-auth", token=fake_issuer.sign())).code == 200
        assert (await fetch("/test-auth", token=second_issuer.sign())).code == 200
        token = second_issuer.sign(aud="https://api-b2.example")
        assert (await fetch("/test-auth", token=token)).code == 200
        assert (await fetch("/test-auth", token=issue_token("alice"))).code == 200

    async def test_an_issuer_cannot_use_another_issuers_audience(
        self, fetch, fake_issuer, second_issuer
    ):
        token = second_issuer.sign(aud=fake_issuer.audience)
        assert (await fetch("/test-auth", token=token)).code == 401
        token = fake_issuer.sign(aud=second_issuer.audience)
        assert (await fetch("/test-auth", token=token)).code == 401

    async def test_a_token_is_checked_against_its_own_issuers_keys_only(
        self, fetch, fake_issuer, second_issuer
    ):
        # Signed by issuer B's key but claiming issuer A: A's key set does not have it.
        token = second_issuer.sign(iss=fake_issuer.issuer, aud=fake_issuer.audience)
        response = await fetch("/test-auth", token=token)
        assert response.code == 401
        assert second_issuer.jwks_fetches <= 1  # B's own prefetch, nothing for A's token

    async def test_one_issuer_down_does_not_affect_another(self, fetch, fake_issuer, second_issuer):
        await second_issuer.stop()
        assert (await fetch("/test-auth", token=fake_issuer.sign())).code == 200


# -- outages through HTTP ------------------------------------------------------------------


class TestUnreachableFromStart:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        sock, port = bind_unused_port()
        sock.close()  # nothing listens there
        return {
            "AUTH0_ISSUER": f"http://127.0.0.1:{port}/",
            "AUTH0_AUDIENCE": "https://api.example",
            "JOTGUARD_JWKS_TIMEOUT": "0.5",
        }

    async def test_tokens_of_an_issuer_never_reached_get_503_not_500(
        self, fetch, fake_issuer, settings, caplog
    ):
        caplog.set_level(logging.WARNING)
        issuer = settings.auth0_issuer
        for _ in range(10):
            response = await fetch("/test-auth", token=fake_issuer.sign(iss=issuer))
            assert response.code == 503
            assert error_of(response) == "temporarily_unavailable"
            assert int(response.headers["Retry-After"]) >= 1
        jwks_warnings = [r for r in caplog.records if r.name == "jotguard.jwks"]
        assert len(jwks_warnings) == 1  # once per interval, not once per request

    async def test_the_local_issuer_keeps_working(self, fetch, issue_token):
        assert (await fetch("/test-auth", token=issue_token("alice"))).code == 200


class TestHangingFromStart:
    @pytest.fixture
    def settings_overrides(self, fake_issuer) -> dict[str, str]:
        fake_issuer.jwks_mode = "hang"
        return {
            "AUTH0_ISSUER": fake_issuer.issuer,
            "AUTH0_JWKS_URI": fake_issuer.jwks_uri,
            "AUTH0_AUDIENCE": fake_issuer.audience,
            "JOTGUARD_JWKS_TIMEOUT": "0.3",
        }

    async def test_a_hanging_jwks_endpoint_gives_503(self, fetch, fake_issuer):
        response = await fetch("/test-auth", token=fake_issuer.sign())
        assert response.code == 503
        assert "Retry-After" in response.headers


class TestStoppedAfterFirstFetch:
    """A library user's app: the backend built directly, with a clock the test moves."""

    MAX_AGE, MAX_STALE = 600, 86400

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def token_cache(self) -> VerifiedTokenCache | None:
        return None

    @pytest.fixture
    def app(self, fake_issuer, clock, token_cache) -> Application:
        backend = RemoteIssuerBackend(
            RemoteIssuer(issuer=fake_issuer.issuer, audiences=(fake_issuer.audience,)),
            policy=JWKSPolicy(max_age=self.MAX_AGE, max_stale=self.MAX_STALE, timeout=0.5),
            clock=clock,
        )
        deps = {"authenticator": Authenticator([backend], token_cache=token_cache)}
        return Application(
            [(path, h, deps) for path, h in [(r"/test-auth", ProtectedHandler), *EXTRA_ROUTES]]
        )

    async def test_valid_tokens_pass_for_max_stale_then_503(self, fetch, fake_issuer, clock):
        fetched_at = clock()
        assert (await fetch("/test-auth", token=fake_issuer.sign(now=clock()))).code == 200
        await fake_issuer.stop()
        for elapsed in (self.MAX_AGE + 1, 3600, 43200, self.MAX_AGE + self.MAX_STALE - 1):
            clock.now = fetched_at + elapsed
            response = await fetch("/test-auth", token=fake_issuer.sign(now=clock()))
            assert response.code == 200, elapsed
        clock.advance(2)
        response = await fetch("/test-auth", token=fake_issuer.sign(now=clock()))
        assert response.code == 503
        assert error_of(response) == "temporarily_unavailable"
        assert int(response.headers["Retry-After"]) >= 1


class TestStaleKeysWithTheTokenCache(TestStoppedAfterFirstFetch):
    """The verified-token cache answers no longer than the key set that verified."""

    @pytest.fixture
    def token_cache(self, clock) -> VerifiedTokenCache | None:
        return VerifiedTokenCache(100, clock=clock)

    async def test_a_token_verified_before_the_outage_gets_503_past_max_stale(
        self, fetch, fake_issuer, clock
    ):
        fetched_at = clock()
        token = fake_issuer.sign(now=clock(), exp=int(clock()) + 2 * 86400)
        assert (await fetch("/test-auth", token=token)).code == 200
        await fake_issuer.stop()
        clock.now = fetched_at + self.MAX_AGE + self.MAX_STALE - 1
        assert (await fetch("/test-auth", token=token)).code == 200  # cached, keys usable
        clock.advance(2)
        for fresh in (token, fake_issuer.sign(now=clock())):  # the cached one and a new one
            response = await fetch("/test-auth", token=fresh)
            assert response.code == 503
            assert error_of(response) == "temporarily_unavailable"
            assert int(response.headers["Retry-After"]) >= 1


async def test_readiness_and_metrics_report_the_key_set(fetch, fake_issuer, services):
    assert (await fetch("/test-auth", token=fake_issuer.sign())).code == 200
    ready = await fetch("/readyz")
    assert ready.code == 200
    assert f"jwks:{fake_issuer.issuer}" in json.loads(ready.body)["checks"]
    metrics = (await fetch("/metrics")).body.decode()
    assert f'jotguard_jwks_fetches_total{{issuer="{fake_issuer.issuer}"}} 1.0' in metrics
    assert f'jotguard_jwks_keys{{issuer="{fake_issuer.issuer}"}}' in metrics


@pytest.fixture
def issuer_down_from_start(fake_issuer):
    # Requested before `fetch`, so the issuer fails before the services start.
    fake_issuer.jwks_mode = "status500"
    return fake_issuer


async def test_readiness_names_an_issuer_without_keys(issuer_down_from_start, fetch):
    name = f"jwks:{issuer_down_from_start.issuer}"
    ready = await fetch("/readyz")
    assert ready.code == 503
    assert name in json.loads(ready.body)["error_description"]
    assert (await fetch("/healthz")).code == 200
    token = issuer_down_from_start.sign()
    assert (await fetch("/test-auth", token=token)).code == 503
