"""Secret settings never show in a repr or str, and no credential-like setting is left unmarked."""

from __future__ import annotations

import dataclasses
import inspect
import os
from pathlib import Path
from typing import Any

from webapp.config.settings import Settings

SENTINEL = "sentinel-5e1f0c"
FIELDS = dataclasses.fields(Settings)

# Words whose presence in a variable's name makes its setting presumed a credential.
CREDENTIAL_WORDS = ("SECRET", "TOKEN", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL", "PRIVATE")
CREDENTIAL_WORDS += ("NONCE", "SIGNING", "SALT", "PEPPER", "AUTH_", "COOKIE", "SESSION")
# URLs with a password; a URL setting that keeps one is presumed to hold credentials.
CREDENTIAL_URLS = (
    f"redis://user:{SENTINEL}@127.0.0.1:6379/0",
    f"mongodb://user:{SENTINEL}@127.0.0.1/db",
    f"https://user:{SENTINEL}@example.com/",
    f"http://user:{SENTINEL}@127.0.0.1/",
)

# Settings presumed credentials above that are not, each with why.
NOT_SECRET = {
    "JOTGUARD_ACCESS_TOKEN_TTL": "a lifetime in seconds",
    "JOTGUARD_MAX_TOKEN_TTL": "a lifetime in seconds",
    "JOTGUARD_SIGNING_ALG": "an algorithm name; the keys are in the keyring file",
    "JOTGUARD_KEY_PUBLISH_AHEAD": "a duration in seconds",
    "AUTH0_TOKEN_URL": "a public endpoint (credentials in it are refused)",
    "AUTH0_TOKEN_TIMEOUT": "a duration in seconds",
    "JOTGUARD_ADMIN_ISSUERS": "iss values, public in every token they issue",
    "JOTGUARD_TOKEN_CACHE_SIZE": "a count",
    "JOTGUARD_REFRESH_TOKEN_TTL": "a lifetime in seconds",
    "JOTGUARD_PASSWORD_HASH_WORKERS": "a thread count",
    "JOTGUARD_PASSWORD_HASH_PER_ADDRESS": "a count",
    "JOTGUARD_GET_TOKEN_CLIENT_ID": "a client id names the client; its secret authenticates",
    "JOTGUARD_RATELIMIT_KEY_PREFIX": "a Redis key prefix",
    "JOTGUARD_DPOP_KEY_PREFIX": "a Redis key prefix",
    "JOTGUARD_DPOP_NONCE": "on or off; the nonces' secret is JOTGUARD_DPOP_NONCE_SECRET",
    "JOTGUARD_RATELIMIT_MAX_KEYS": "a count",
    "JOTGUARD_RATELIMIT_TOKEN": "rate limits",
    "JOTGUARD_RATELIMIT_PASSWORD": "rate limits",
    "JOTGUARD_RATELIMIT_PASSWORD_IP": "rate limits",
}

# Secrets that a bare sentinel would not parse as: each set to a value carrying it.
SECRET_VALUES = {
    "JOTGUARD_REVOCATION_STORE": f"redis://:{SENTINEL}@127.0.0.1:6379/0",
    "JOTGUARD_ISSUANCE_STORE": f"mongodb://jotguard:{SENTINEL}@127.0.0.1/jotguard",
    "JOTGUARD_RATELIMIT_STORAGE": f"rediss://:{SENTINEL}@127.0.0.1:6380/0",
    "JOTGUARD_DPOP_NONCE_SECRET": SENTINEL * 4,
}
# What the secrets need beside them for the settings to be consistent.
COMPANIONS = {
    "JOTGUARD_ENV_FILE": os.devnull,
    "AUTH0_DOMAIN": "example.eu.auth0.com",
    "AUTH0_AUDIENCE": "https://api.example",
    "AUTH0_CLIENT_ID": "abc123",
}


def secret(f: dataclasses.Field[Any]) -> bool:
    return bool(f.metadata["secret"])


def keeps_a_credential_url(f: dataclasses.Field[Any]) -> bool:
    """A URL setting (no plain word passes) that accepts a URL with a password in it."""
    parse = f.metadata["parse"]
    try:
        parse("plain-word")
    except ValueError:
        pass
    else:
        return False
    for url in CREDENTIAL_URLS:
        try:
            value = parse(url)
        except ValueError:
            continue
        if SENTINEL in repr(value):
            return True
    return False


def credential_like(f: dataclasses.Field[Any]) -> str | None:
    env = f.metadata["env"]
    words = [word for word in CREDENTIAL_WORDS if word in env]
    if words:
        return f"its name has {words[0]}"
    if keeps_a_credential_url(f):
        return "it accepts a URL with a password"
    return None


def test_the_secret_mark_is_what_keeps_a_value_out_of_repr():
    for f in FIELDS:
        assert f.repr is not secret(f), f.metadata["env"]


def test_every_credential_like_setting_is_marked_secret():
    unmarked = [
        f"{f.metadata['env']} ({why})"
        for f in FIELDS
        if (why := credential_like(f)) and not secret(f) and f.metadata["env"] not in NOT_SECRET
    ]
    assert not unmarked, (
        "declare these with secret=True, or list them in NOT_SECRET with why they are not:"
        f" {', '.join(unmarked)}"
    )


def test_not_secret_names_only_unmarked_credential_like_settings():
    by_env = {f.metadata["env"]: f for f in FIELDS}
    for env in NOT_SECRET:
        assert env in by_env, f"{env} is no setting"
        assert not secret(by_env[env]), f"{env} is marked secret"
        assert credential_like(by_env[env]), f"{env} does not look like a credential"


def test_the_known_credentials_are_marked_secret():
    marked = {f.metadata["env"] for f in FIELDS if secret(f)}
    assert marked >= {
        "AUTH0_CLIENT_SECRET",
        "JOTGUARD_GET_TOKEN_CLIENT_SECRET",
        "JOTGUARD_REVOCATION_STORE",
        "JOTGUARD_ISSUANCE_STORE",
        "JOTGUARD_RATELIMIT_STORAGE",
    }


def shown_values(settings: Settings) -> list[Any]:
    """Every field and property value that is an object of its own (strings are the values)."""
    names = [f.name for f in FIELDS]
    names += [name for name, _ in inspect.getmembers(Settings, lambda a: isinstance(a, property))]
    values = [getattr(settings, name) for name in names]
    return [v for v in values if not isinstance(v, (str, Path))]


def test_no_secret_shows_in_the_repr_or_str_of_settings_or_what_they_hold():
    # An unmarked credential-like setting is set too, so that it fails here as well.
    secrets = [
        f
        for f in FIELDS
        if secret(f) or (credential_like(f) and f.metadata["env"] not in NOT_SECRET)
    ]
    environ = dict(COMPANIONS)
    for f in secrets:
        environ[f.metadata["env"]] = SECRET_VALUES.get(f.metadata["env"], SENTINEL)
    settings = Settings.load(environ=environ)
    for f in secrets:  # otherwise the test below would prove nothing
        assert SENTINEL in getattr(settings, f.name), f.metadata["env"]
    assert settings.auth0_client_credentials is not None  # an object holding a secret
    for shown in (settings, *shown_values(settings)):
        assert SENTINEL not in repr(shown), repr(shown)
        assert SENTINEL not in str(shown), str(shown)
