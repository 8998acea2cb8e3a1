"""The joserfc floor in pyproject.toml is the version tox's joserfc-floor env tests."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_joserfc_floor_is_the_version_the_floor_env_runs():
    pyproject = (ROOT / "pyproject.toml").read_text()
    match = re.search(r'"joserfc>=([0-9.]+),<2"', pyproject)
    assert match, "pyproject.toml no longer pins joserfc as >=X,<2"
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    assert tox["testenv:joserfc-floor"]["deps"].strip() == f"joserfc=={match.group(1)}"
    assert "joserfc-floor" in tox["tox"]["envlist"]
