"""The data directory as the one truth the server and the CLI share: it must exist, and it
records the local issuer's URL.

``jotguard init`` and ``jotguard serve`` create it; every other command refuses to run
without it, so an operator in the wrong working directory gets an error rather than a
fresh, empty ``./var`` the server never reads. The issuer URL is written into it when it
is first prepared and read back by every later command, so a CLI without ``--port``
issues and revokes for the issuer the server uses. ``JOTGUARD_ISSUER`` set explicitly
replaces the recorded one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from urllib.parse import urlsplit

from backends.errors import ConfigError
from backends.storage.files import write_atomic
from webapp.config.settings import Settings
from webapp.service.services import local_keyring

log = logging.getLogger("jotguard")

ISSUER_FILE = "issuer.json"
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::"})  # noqa: S104 - names them, binds nothing


def issuer_file(settings: Settings) -> Path:
    return settings.data_dir / ISSUER_FILE


def recorded_issuer(settings: Settings) -> str | None:
    """The issuer URL recorded in the data directory, or None if none is."""
    path = issuer_file(settings)
    try:
        document = json.loads(path.read_bytes())
        issuer = document["issuer"]
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is unreadable ({exc}): fix it or set JOTGUARD_ISSUER") from None
    if not isinstance(issuer, str) or urlsplit(issuer).scheme not in {"http", "https"}:
        raise ConfigError(f"{path} records no http(s) issuer URL: fix it or set JOTGUARD_ISSUER")
    return issuer


def require_existing(settings: Settings) -> None:
    """:raises ConfigError: the data directory does not exist (nothing is created)."""
    if not settings.data_dir.is_dir():
        raise ConfigError(
            f"no data directory at {settings.data_dir.absolute()} (JOTGUARD_DATA_DIR):"
            " point JOTGUARD_DATA_DIR or --data-dir at the server's, or create one with"
            " `jotguard init`"
        )


def _with_issuer(settings: Settings, recorded: str | None) -> Settings:
    if settings.issuer:
        if recorded is not None and recorded != settings.issuer:
            log.info(
                "JOTGUARD_ISSUER %s replaces the issuer recorded in %s (%s)",
                settings.issuer,
                issuer_file(settings),
                recorded,
            )
        return settings
    if recorded is None:
        raise ConfigError(
            f"{settings.data_dir.absolute()} records no issuer URL (made by an older jotguard?):"
            " start `jotguard serve` on it once with its usual settings, or set JOTGUARD_ISSUER"
        )
    return dataclasses.replace(settings, issuer=recorded)


def opened(settings: Settings) -> Settings:
    """``settings`` for a command on an existing data directory, with its issuer.

    :raises ConfigError: no data directory, or no issuer recorded and none set.
    """
    require_existing(settings)
    return _with_issuer(settings, recorded_issuer(settings))


def prepared(settings: Settings) -> tuple[Settings, list[str]]:
    """Create what is missing (the directory, the issuer record, the keyring), for
    ``serve`` and ``init``; the settings with the issuer, and what was created.

    RSA key generation takes a while: call this before any event loop runs.
    """
    created: list[str] = []
    if not settings.data_dir.is_dir():
        settings.data_dir.mkdir(mode=0o700, parents=True)
        created.append(f"data directory {settings.data_dir.absolute()}")
    recorded = recorded_issuer(settings)
    if recorded is None:
        # An explicit JOTGUARD_ISSUER is the issuer in use: it is what gets recorded.
        recorded = settings.issuer_url
        write_atomic(issuer_file(settings), json.dumps({"issuer": recorded}).encode() + b"\n")
        created.append(f"issuer {recorded}")
    settings = _with_issuer(settings, recorded)
    keyring = local_keyring(settings)
    if keyring.ensure():
        created.append(f"keyring {keyring.path} (key {keyring.current.kid})")
    return settings, created


def warn_if_wildcard(settings: Settings) -> None:
    """A wildcard listen address makes a useless default issuer: say so at start."""
    host = urlsplit(settings.issuer_url).hostname or ""
    if host in WILDCARD_HOSTS:
        log.warning(
            "the issuer %s names a wildcard address no client reaches this server by: tokens"
            " will carry it as iss; set JOTGUARD_ISSUER to the URL clients use",
            settings.issuer_url,
        )
