"""The operability settings: each bad value names its variable; start-up exits 2."""

from __future__ import annotations

import os

import pytest

from webapp.cli.main import main
from webapp.config.fields import SettingsError
from webapp.config.settings import Settings

NO_ENV_FILE = {"JOTGUARD_ENV_FILE": os.devnull}


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("JOTGUARD_METRICS", "sometimes"),
        ("JOTGUARD_METRICS", "70000"),
        ("JOTGUARD_METRICS", "-1"),
        ("JOTGUARD_LOG_FORMAT", "xml"),
        ("JOTGUARD_READY_TIMEOUT", "0"),
        ("JOTGUARD_READY_TIMEOUT", "soon"),
        ("JOTGUARD_READY_TIMEOUT", "nan"),
        ("JOTGUARD_READY_TIMEOUT", "31"),
    ],
)
def test_a_bad_value_names_its_variable(variable, raw):
    with pytest.raises(SettingsError, match=variable) as raised:
        Settings.load(environ={**NO_ENV_FILE, variable: raw})
    assert raised.value.name == variable


@pytest.mark.parametrize(
    ("raw", "stored", "port"),
    [("same", "same", None), (" OFF ", "off", None), ("9464", "9464", 9464), ("0", "0", 0)],
)
def test_metrics_exposure(raw, stored, port):
    settings = Settings.load(environ={**NO_ENV_FILE, "JOTGUARD_METRICS": raw})
    assert (settings.metrics, settings.metrics_port) == (stored, port)


def test_defaults():
    settings = Settings.load(
        environ={
            **NO_ENV_FILE,
        }
    )
    assert settings.metrics == "same"
    assert settings.log_format == "text"
    assert settings.ready_timeout == 0.8
    assert settings.cors_origins == ()


def test_serve_with_a_bad_value_exits_2_with_one_line(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("JOTGUARD_ENV_FILE", str(tmp_path / "absent.env"))
    monkeypatch.setenv("JOTGUARD_LOG_FORMAT", "xml")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err == "jotguard: JOTGUARD_LOG_FORMAT: must be text or json (got 'xml')\n"
