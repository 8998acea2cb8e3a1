"""Auth0 / remote-issuer settings: the tutorial's .env works, bad values stop start-up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backends.auth.remote import RemoteIssuer
from webapp.cli import main as cli
from webapp.config.fields import SettingsError
from webapp.config.settings import Settings


def load(tmp_path: Path, **environ: str) -> Settings:
    return Settings.load(environ={"JOTGUARD_ENV_FILE": str(tmp_path / "absent.env"), **environ})


def test_the_tutorials_env_file_configures_auth0(tmp_path):
    env = tmp_path / ".env"
    env.write_text(
        "AUTH0_DOMAIN=example.eu.auth0.com\n"
        "AUTH0_AUDIENCE=https://catchphrases.example\n"
        "AUTH0_CLIENT_ID=abc123\n"
        "AUTH0_CLIENT_SECRET=very-secret\n"
    )
    settings = Settings.load(environ={"JOTGUARD_ENV_FILE": str(env)})
    assert settings.auth0_remote_issuer == RemoteIssuer(
        issuer="https://example.eu.auth0.com/",
        audiences=("https://catchphrases.example",),
        jwks_uri="https://example.eu.auth0.com/.well-known/jwks.json",
        algorithms=("RS256",),
    )
    credentials = settings.auth0_client_credentials
    assert credentials is not None
    assert credentials.token_url == "https://example.eu.auth0.com/oauth/token"
    assert credentials.audience == "https://catchphrases.example"
    assert "very-secret" not in repr(settings)
    assert "very-secret" not in repr(credentials)


def test_auth0_is_off_unless_configured(tmp_path):
    settings = load(tmp_path)
    assert settings.remote_issuer_configs == []
    assert settings.auth0_client_credentials is None


def test_issuer_and_jwks_overrides(tmp_path):
    settings = load(
        tmp_path,
        AUTH0_ISSUER="http://127.0.0.1:9000/",
        AUTH0_AUDIENCE="api",
        AUTH0_ALGORITHMS="RS256, PS256",
    )
    issuer = settings.auth0_remote_issuer
    assert issuer is not None
    assert issuer.issuer == "http://127.0.0.1:9000/"
    assert issuer.jwks_uri is None  # discovered
    assert issuer.algorithms == ("RS256", "PS256")


def test_several_remote_issuers(tmp_path):
    remote = [
        {"issuer": "https://a.example/", "audience": "api-a"},
        {
            "issuer": "https://b.example/",
            "audience": ["api-b", "api-b2"],
            "jwks_uri": "https://b.example/keys",
            "algorithms": ["ES256"],
        },
    ]
    settings = load(
        tmp_path,
        AUTH0_DOMAIN="t.auth0.com",
        AUTH0_AUDIENCE="api",
        JOTGUARD_REMOTE_ISSUERS=json.dumps(remote),
    )
    assert [i.issuer for i in settings.remote_issuer_configs] == [
        "https://t.auth0.com/",
        "https://a.example/",
        "https://b.example/",
    ]
    assert settings.remote_issuers[1].audiences == ("api-b", "api-b2")
    assert settings.remote_issuers[1].algorithms == ("ES256",)
    assert not any(issuer.rfc9068 for issuer in settings.remote_issuer_configs)


def test_rfc9068_is_a_per_issuer_option(tmp_path):
    remote = [
        {"issuer": "https://a.example/", "audience": "api-a", "rfc9068": True},
        {"issuer": "https://b.example/", "audience": "api-b", "rfc9068": False},
    ]
    settings = load(tmp_path, JOTGUARD_REMOTE_ISSUERS=json.dumps(remote))
    assert [issuer.rfc9068 for issuer in settings.remote_issuers] == [True, False]


def test_admin_rights_come_from_the_local_issuer_unless_others_are_named(tmp_path):
    local = "https://me.example/"
    settings = load(tmp_path, JOTGUARD_ISSUER=local, AUTH0_DOMAIN="t.auth0.com", AUTH0_AUDIENCE="a")
    assert settings.admin_issuer_urls == {local}
    settings = load(
        tmp_path,
        JOTGUARD_ISSUER=local,
        AUTH0_DOMAIN="t.auth0.com",
        AUTH0_AUDIENCE="a",
        JOTGUARD_ADMIN_ISSUERS=" https://t.auth0.com/ ,",
    )
    assert settings.admin_issuer_urls == {local, "https://t.auth0.com/"}


BAD_VALUES = [
    ({"AUTH0_DOMAIN": "https://t.auth0.com/"}, "AUTH0_DOMAIN", "no scheme"),
    ({"AUTH0_DOMAIN": "t.auth0.com", "AUTH0_AUDIENCE": ""}, "AUTH0_AUDIENCE", "required"),
    ({"AUTH0_ISSUER": "http://idp.example/", "AUTH0_AUDIENCE": "a"}, "AUTH0_ISSUER", "https"),
    ({"AUTH0_ISSUER": "idp.example", "AUTH0_AUDIENCE": "a"}, "AUTH0_ISSUER", "https URL"),
    (
        {"AUTH0_DOMAIN": "t.auth0.com", "AUTH0_AUDIENCE": "a", "AUTH0_JWKS_URI": "http://x/k"},
        "AUTH0_JWKS_URI",
        "https",
    ),
    ({"AUTH0_JWKS_URI": "https://x.example/k"}, "AUTH0_JWKS_URI", "needs AUTH0_DOMAIN"),
    ({"AUTH0_ALGORITHMS": "HS256"}, "AUTH0_ALGORITHMS", "must list algorithms"),
    ({"AUTH0_ALGORITHMS": ""}, "AUTH0_ALGORITHMS", "must list algorithms"),
    ({"AUTH0_CLIENT_ID": "id", "AUTH0_AUDIENCE": "a"}, "AUTH0_CLIENT_SECRET", "required"),
    ({"AUTH0_CLIENT_SECRET": "s", "AUTH0_AUDIENCE": "a"}, "AUTH0_CLIENT_ID", "required"),
    (
        {"AUTH0_CLIENT_ID": "id", "AUTH0_CLIENT_SECRET": "s", "AUTH0_AUDIENCE": "a"},
        "AUTH0_TOKEN_URL",
        "required",
    ),
    (
        {"AUTH0_CLIENT_ID": "id", "AUTH0_CLIENT_SECRET": "s", "AUTH0_DOMAIN": "t.auth0.com"},
        "AUTH0_AUDIENCE",
        "required",
    ),
    ({"AUTH0_TOKEN_URL": "http://t.example/oauth/token"}, "AUTH0_TOKEN_URL", "https"),
    ({"AUTH0_TOKEN_TIMEOUT": "0"}, "AUTH0_TOKEN_TIMEOUT", "seconds"),
    ({"JOTGUARD_JWKS_MAX_AGE": "soon"}, "JOTGUARD_JWKS_MAX_AGE", "seconds"),
    ({"JOTGUARD_JWKS_MAX_AGE": "0"}, "JOTGUARD_JWKS_MAX_AGE", "seconds"),
    ({"JOTGUARD_JWKS_MAX_STALE": "-1"}, "JOTGUARD_JWKS_MAX_STALE", "seconds"),
    ({"JOTGUARD_JWKS_TIMEOUT": "600"}, "JOTGUARD_JWKS_TIMEOUT", "seconds"),
    ({"JOTGUARD_JWKS_REQUESTS_PER_MINUTE": "-1"}, "JOTGUARD_JWKS_REQUESTS_PER_MINUTE", "whole"),
    ({"JOTGUARD_JWKS_REQUESTS_PER_MINUTE": "2.5"}, "JOTGUARD_JWKS_REQUESTS_PER_MINUTE", "whole"),
    ({"JOTGUARD_REMOTE_ISSUERS": "https://a.example/"}, "JOTGUARD_REMOTE_ISSUERS", "JSON list"),
    ({"JOTGUARD_REMOTE_ISSUERS": '{"issuer": "x"}'}, "JOTGUARD_REMOTE_ISSUERS", "JSON list"),
    ({"JOTGUARD_REMOTE_ISSUERS": '["x"]'}, "JOTGUARD_REMOTE_ISSUERS", "entry 1: must be"),
    (
        {"JOTGUARD_REMOTE_ISSUERS": '[{"issuer": "https://a.example/"}]'},
        "JOTGUARD_REMOTE_ISSUERS",
        "entry 1: 'audience'",
    ),
    (
        {"JOTGUARD_REMOTE_ISSUERS": '[{"issuer": "https://a.example/", "audience": []}]'},
        "JOTGUARD_REMOTE_ISSUERS",
        "entry 1: 'audience'",
    ),
    (
        {"JOTGUARD_REMOTE_ISSUERS": '[{"audience": "a"}]'},
        "JOTGUARD_REMOTE_ISSUERS",
        "entry 1: 'issuer' is required",
    ),
    (
        {"JOTGUARD_REMOTE_ISSUERS": '[{"issuer": "http://a.example/", "audience": "a"}]'},
        "JOTGUARD_REMOTE_ISSUERS",
        "entry 1: URL must be https",
    ),
    (
        {"JOTGUARD_REMOTE_ISSUERS": '[{"issuer": "https://a.example/", "audiance": "a"}]'},
        "JOTGUARD_REMOTE_ISSUERS",
        "unknown key 'audiance'",
    ),
    (
        {
            "JOTGUARD_REMOTE_ISSUERS": json.dumps(
                [{"issuer": "https://a.example/", "audience": "a", "algorithms": ["none"]}]
            )
        },
        "JOTGUARD_REMOTE_ISSUERS",
        "entry 1: must list algorithms",
    ),
    (
        {
            "JOTGUARD_REMOTE_ISSUERS": json.dumps(
                [{"issuer": "https://a.example/", "audience": "a"}] * 2
            )
        },
        "JOTGUARD_REMOTE_ISSUERS",
        "listed twice",
    ),
    (
        {
            "AUTH0_DOMAIN": "t.auth0.com",
            "AUTH0_AUDIENCE": "a",
            "JOTGUARD_REMOTE_ISSUERS": '[{"issuer": "https://t.auth0.com/", "audience": "b"}]',
        },
        "JOTGUARD_REMOTE_ISSUERS",
        "already the Auth0 issuer",
    ),
    (
        {
            "JOTGUARD_ISSUER": "https://me.example/",
            "AUTH0_ISSUER": "https://me.example/",
            "AUTH0_AUDIENCE": "a",
        },
        "AUTH0_ISSUER",
        "already the local issuer",
    ),
    (
        {
            "JOTGUARD_REMOTE_ISSUERS": '[{"issuer": "https://a.example/", "audience": "a",'
            ' "rfc9068": "yes"}]'
        },
        "JOTGUARD_REMOTE_ISSUERS",
        "'rfc9068' must be true or false",
    ),
    ({"JOTGUARD_ADMIN_ISSUERS": "t.auth0.com"}, "JOTGUARD_ADMIN_ISSUERS", "issuer URLs"),
    (
        {"JOTGUARD_ADMIN_ISSUERS": "https://t.auth0.com/"},
        "JOTGUARD_ADMIN_ISSUERS",
        "no setting configures",
    ),
    (
        # Exactly as the tokens' iss: without its trailing slash it is another issuer.
        {
            "AUTH0_DOMAIN": "t.auth0.com",
            "AUTH0_AUDIENCE": "a",
            "JOTGUARD_ADMIN_ISSUERS": "https://t.auth0.com",
        },
        "JOTGUARD_ADMIN_ISSUERS",
        "no setting configures",
    ),
]


@pytest.mark.parametrize(("environ", "name", "problem"), BAD_VALUES)
def test_bad_values_name_the_variable(tmp_path, environ, name, problem):
    with pytest.raises(SettingsError) as caught:
        load(tmp_path, **environ)
    assert caught.value.name == name
    message = str(caught.value)
    assert message.startswith(f"{name}: ")
    assert problem in message
    assert "\n" not in message


def test_http_is_accepted_for_loopback_hosts_only(tmp_path):
    for host in ("127.0.0.1:8080", "localhost", "[::1]:9000"):
        settings = load(tmp_path, AUTH0_ISSUER=f"http://{host}/", AUTH0_AUDIENCE="a")
        assert settings.auth0_remote_issuer is not None
    with pytest.raises(SettingsError):
        load(tmp_path, AUTH0_ISSUER="http://127.0.0.1.example.com/", AUTH0_AUDIENCE="a")


def test_a_bad_value_stops_the_cli_with_one_line_and_status_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AUTH0_DOMAIN", "https://t.auth0.com")
    monkeypatch.setenv("JOTGUARD_ENV_FILE", str(tmp_path / "absent.env"))
    code = cli.main(["keys", "list", "--data-dir", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("jotguard: AUTH0_DOMAIN: ")
    assert "\n" not in err


def test_the_client_secret_has_no_cli_flag():
    parser = cli.build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--auth0-client-secret", "x"])
