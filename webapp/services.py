"""Everything a running jotguard holds: built from settings inside the loop, closed on exit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from backends.auth import AuthBackend, Authenticator
from backends.keyring import Keyring
from backends.local import LocalIssuer, LocalKeyBackend
from backends.revocation.base import RevocationStore
from backends.revocation.factory import open_store
from webapp.issuance import Issuance
from webapp.settings import Settings

log = logging.getLogger("jotguard")

KEYRING_POLL_SECONDS = 2.0


def local_keyring(settings: Settings) -> Keyring:
    return Keyring(settings.keyring_path, settings.signing_alg, retention=settings.key_retention)


def local_issuer(settings: Settings, keyring: Keyring) -> LocalIssuer:
    return LocalIssuer(
        keyring,
        issuer=settings.issuer_url,
        audience=settings.audience,
        ttl=settings.access_token_ttl,
    )


def revocation_store(settings: Settings) -> RevocationStore:
    """The configured store; it connects lazily, so a store that is down does not stop start-up."""
    return open_store(
        settings.revocation_store_url, leeway=settings.leeway, max_token_ttl=settings.max_token_ttl
    )


@dataclass
class Services:
    settings: Settings
    keyring: Keyring
    issuer: LocalIssuer
    authenticator: Authenticator
    revocations: RevocationStore
    issuance: Issuance
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def start(cls, settings: Settings) -> Services:
        keyring = local_keyring(settings)
        # RSA key generation takes a while: keep it off the loop.
        if await asyncio.to_thread(keyring.ensure):
            log.info("created keyring %s (key %s)", keyring.path, keyring.current.kid)
        backends: list[AuthBackend] = [
            LocalKeyBackend(
                keyring,
                issuer=settings.issuer_url,
                audience=settings.audience,
                leeway=settings.leeway,
            )
        ]
        revocations = revocation_store(settings)
        issuer = local_issuer(settings, keyring)
        issuance = Issuance.open(settings, issuer, revocations)
        services = cls(
            settings=settings,
            keyring=keyring,
            issuer=issuer,
            authenticator=Authenticator(
                backends,
                revocations=revocations,
                fail_open=settings.revocation_fail_open,
                max_token_lifetime=settings.max_token_ttl + settings.leeway,
            ),
            revocations=revocations,
            issuance=issuance,
        )
        services._tasks.append(asyncio.create_task(services._follow_keyring()))
        issuance.start_background()
        return services

    async def _follow_keyring(self) -> None:
        # Picks up `jotguard keys rotate` run beside the server: signing moves to the new key.
        while True:
            await asyncio.sleep(KEYRING_POLL_SECONDS)
            try:
                if await self.keyring.reload_if_changed():
                    log.info("keyring reloaded; current key %s", self.keyring.current.kid)
            except Exception:
                log.exception("keyring reload failed; keeping the keys already loaded")

    def tornado_settings(self) -> dict[str, Any]:
        return {"authenticator": self.authenticator, "services": self}

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.revocations.close()
        await self.issuance.close()
