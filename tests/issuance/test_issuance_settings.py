"""Each issuance setting refuses a bad value, naming the variable; start-up exits 2."""

from __future__ import annotations

import pytest

from webapp.cli.main import main
from webapp.config.fields import SettingsError
from webapp.config.settings import Settings


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("JOTGUARD_ISSUANCE_STORE", "redis://127.0.0.1:6379/0"),
        ("JOTGUARD_ISSUANCE_STORE", "ftp://example.com/db"),
        ("JOTGUARD_ISSUANCE_STORE", "sqlite://relative.db"),
        ("JOTGUARD_ISSUANCE_STORE", "mongodb:///nohost"),
        ("JOTGUARD_REFRESH_TOKEN_TTL", "0"),
        ("JOTGUARD_REFRESH_TOKEN_TTL", "two weeks"),
        ("JOTGUARD_REFRESH_TOKEN_TTL", str(366 * 86400)),
        ("JOTGUARD_ARGON2_TIME_COST", "0"),
        ("JOTGUARD_ARGON2_TIME_COST", "21"),
        ("JOTGUARD_ARGON2_MEMORY_KIB", "8"),
        ("JOTGUARD_ARGON2_MEMORY_KIB", "lots"),
        ("JOTGUARD_PASSWORD_HASH_WORKERS", "-1"),
        ("JOTGUARD_PASSWORD_HASH_WORKERS", "65"),
    ],
)
def test_bad_value_names_the_variable(name, value, tmp_path):
    with pytest.raises(SettingsError) as raised:
        Settings.load(environ={name: value, "JOTGUARD_ENV_FILE": str(tmp_path / "none")})
    assert raised.value.name == name


def test_defaults(tmp_path):
    settings = Settings.load(
        environ={"JOTGUARD_DATA_DIR": str(tmp_path), "JOTGUARD_ENV_FILE": str(tmp_path / "none")}
    )
    assert settings.refresh_token_ttl == 14 * 86400
    assert settings.access_token_ttl == 900
    assert settings.issuance_store_url() == f"sqlite:///{tmp_path}/issuance.sqlite3"
    assert (
        settings.issuance_store_url("catchphrases") == f"sqlite:///{tmp_path}/catchphrases.sqlite3"
    )
    assert settings.get_token_client_id == ""


def test_start_up_prints_one_line_and_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JOTGUARD_ENV_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("JOTGUARD_ARGON2_MEMORY_KIB", "8")
    assert main(["clients", "list"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "JOTGUARD_ARGON2_MEMORY_KIB" in err
