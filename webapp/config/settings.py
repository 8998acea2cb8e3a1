"""The one settings object, from CLI flags, the process environment and a ``.env`` file.

Precedence, highest first: CLI flag, process environment, ``.env`` file, default.
Every setting is declared once, in the field group of its seam (its variable, default,
parser and help); the CLI flags and the README's configuration table follow from that.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webapp.config import checks
from webapp.config.dpop import DPoPFields
from webapp.config.fields import SettingsError
from webapp.config.ratelimit import RateLimitFields
from webapp.config.remote import RemoteIssuerFields
from webapp.config.service import ServiceFields
from webapp.config.stores import StoreFields


# A dataclass lays out its base classes' fields from the last base to the first, so the
# groups are listed in reverse: the fields (CLI flags, README table) read service first.
@dataclass(frozen=True)
class Settings(DPoPFields, RateLimitFields, StoreFields, RemoteIssuerFields, ServiceFields):
    """Every setting of the service, checked across fields whenever one is built."""

    def __post_init__(self) -> None:
        checks.check(self)

    @property
    def admin_issuer_urls(self) -> frozenset[str]:
        """The issuers whose tokens the admin API accepts the admin scope from."""
        return frozenset({self.issuer_url, *self.admin_issuers})

    @property
    def revocation_store_url(self) -> str:
        if self.revocation_store:
            return self.revocation_store
        return "sqlite:///" + str(self.data_dir / "revocations.sqlite3")

    def issuance_store_url(self, database: str = "issuance") -> str:
        """The store for ``database`` (``issuance`` or ``catchphrases``)."""
        if self.issuance_store:
            return self.issuance_store
        return "sqlite:///" + str(self.data_dir / f"{database}.sqlite3")

    @classmethod
    def load(
        cls,
        flags: Mapping[str, str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Build settings; ``flags`` maps field names to raw CLI values.

        :raises SettingsError: naming the variable (or flag) and what is wrong.
        """
        flags = dict(flags or {})
        environ = dict(os.environ if environ is None else environ)
        env_file = Path(flags.get("env_file") or environ.get("JOTGUARD_ENV_FILE") or ".env")
        # Here, not at the top: a library user importing webapp never reads a .env file.
        from dotenv import dotenv_values

        from_file = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            env = f.metadata["env"]
            if f.name in flags:
                raw, name = flags[f.name], "--" + f.name.replace("_", "-")
            elif env in environ:
                raw, name = environ[env], env
            elif env in from_file:
                raw, name = from_file[env], f"{env} (from {env_file})"
            else:
                continue
            try:
                values[f.name] = f.metadata["parse"](raw)
            except ValueError as exc:
                shown = None if f.metadata["secret"] else raw
                raise SettingsError(name, str(exc), shown) from None
        return cls(**values)
