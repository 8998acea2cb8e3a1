"""Loading settings from a given environment only, for tests of what a bad value gets."""

from __future__ import annotations

import pytest

from webapp.config.fields import SettingsError
from webapp.config.settings import Settings


def refusal(variable: str, value: str) -> SettingsError:
    """The error ``Settings.load`` raises when only ``variable=value`` is set (no .env)."""
    with pytest.raises(SettingsError) as caught:
        Settings.load(environ={"JOTGUARD_ENV_FILE": "/nonexistent", variable: value})
    return caught.value
