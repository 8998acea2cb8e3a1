"""The revocation settings: defaults and one clear error per bad value."""

from __future__ import annotations

import pytest

from webapp.config.fields import SettingsError
from webapp.config.settings import Settings


def load(**environ: str) -> Settings:
    return Settings.load(environ={"JOTGUARD_ENV_FILE": "/nonexistent/.env", **environ})


def test_default_store_is_an_sqlite_file_in_the_data_dir():
    settings = load(JOTGUARD_DATA_DIR="/srv/jotguard")
    assert settings.revocation_store_url == "sqlite:////srv/jotguard/revocations.sqlite3"
    assert settings.revocation_fail_open is False
    assert settings.admin_scope == "admin"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("JOTGUARD_REVOCATION_STORE", "postgres://db/x"),
        ("JOTGUARD_REVOCATION_STORE", "sqlite://"),
        ("JOTGUARD_REVOCATION_STORE", "sqlite:///"),
        ("JOTGUARD_REVOCATION_STORE", "sqlite://host/file.db"),
        ("JOTGUARD_REVOCATION_STORE", "redis:///0"),
        ("JOTGUARD_REVOCATION_STORE", "mongodb:///jotguard"),
        ("JOTGUARD_REVOCATION_FAIL_OPEN", "sometimes"),
        ("JOTGUARD_ADMIN_SCOPE", ""),
        ("JOTGUARD_ADMIN_SCOPE", "admin root"),
    ],
)
def test_bad_values_name_the_variable(variable, value):
    with pytest.raises(SettingsError) as caught:
        load(**{variable: value})
    assert str(caught.value).startswith(variable + ":")


@pytest.mark.parametrize(
    "url",
    ["memory://", "sqlite:///var/r.db", "redis://127.0.0.1:6379/0", "mongodb://h:27017/jg"],
)
def test_store_urls_accepted(url):
    assert load(JOTGUARD_REVOCATION_STORE=url).revocation_store_url == url
