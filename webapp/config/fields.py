"""How a setting is declared (variable, default, parser, help, secrecy) and how a bad one fails."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field
from typing import Any


class SettingsError(Exception):
    """A bad value; ``str()`` is the one line start-up prints before exiting 2."""

    def __init__(self, name: str, problem: str, value: str | None) -> None:
        # value=None: a secret's value is never echoed, not even when it is wrong.
        shown = "" if value is None else f" (got {value!r})"
        super().__init__(f"{name}: {problem}{shown}")
        self.name = name


def setting(
    env: str,
    default: Any,
    parse: Callable[[str], Any],
    help: str,
    *,
    flag: bool = True,
    secret: bool = False,
) -> Any:
    """Declare a setting: its variable name, default, parser and one line of help.

    ``secret=True`` keeps the value out of ``repr()`` and ``str()`` (and so out of logs):
    for client secrets, and for store URLs, which may carry a password.
    tests/test_config_secrets.py fails when a credential-like setting lacks it.
    """
    return field(
        default=default,
        repr=not secret,
        metadata={"env": env, "parse": parse, "help": help, "flag": flag, "secret": secret},
    )
