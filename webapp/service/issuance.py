"""The token-issuance part of a running jotguard: stores, hasher, grants, demo data.

Built from settings by the server (``Services``) and by the CLI alike, so both
reach the same stores the same way.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, field

from backends.auth.local import LocalIssuer
from backends.catchphrases.base import CatchphraseStore
from backends.catchphrases.factory import open_catchphrase_store
from backends.issuance.base import Client, IssuanceStore
from backends.issuance.client_secrets import KEY_FILE, ClientSecrets
from backends.issuance.exchange import LocalTokenExchange
from backends.issuance.factory import open_issuance_store
from backends.issuance.grants import TokenService
from backends.issuance.passwords import PasswordHasher
from backends.revocation.base import RevocationStore
from backends.tasks import cancel_all
from webapp.config.checks import check_get_token
from webapp.config.settings import Settings

log = logging.getLogger("jotguard.issuance")

PURGE_INTERVAL_SECONDS = 3600.0
FIRST_PURGE_DELAY_SECONDS = 60.0


def password_hasher(settings: Settings) -> PasswordHasher:
    return PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_kib=settings.argon2_memory_kib,
        workers=settings.password_hash_workers or None,
        per_source=settings.password_hash_per_address or None,
    )


def client_secrets(settings: Settings, hasher: PasswordHasher) -> ClientSecrets:
    return ClientSecrets(settings.data_dir / KEY_FILE, hasher)


async def new_client(
    client_secrets: ClientSecrets, name: str, scopes: frozenset[str], grants: frozenset[str]
) -> tuple[Client, str]:
    """A client record and its plain secret (shown once; only its keyed hash is kept)."""
    secret, secret_hash = await client_secrets.new_secret()
    client = Client(
        client_id=secrets.token_hex(16),  # never starts with "-": it is typed into CLIs
        name=name,
        secret_hash=secret_hash,
        grant_types=grants,
        scopes=scopes,
        created_at=time.time(),
    )
    return client, secret


@dataclass
class Issuance:
    store: IssuanceStore
    hasher: PasswordHasher
    tokens: TokenService
    catchphrases: CatchphraseStore
    get_token_local: LocalTokenExchange | None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def open(
        cls, settings: Settings, issuer: LocalIssuer, revocations: RevocationStore
    ) -> Issuance:
        """Build everything; stores connect lazily, so a store that is down does not stop it.

        :raises SettingsError: an inconsistent combination of settings.
        """
        check_get_token(settings)
        store = open_issuance_store(settings.issuance_store_url("issuance"))
        hasher = password_hasher(settings)
        tokens = TokenService(
            store,
            hasher,
            issuer,
            revocations,
            client_secrets=client_secrets(settings, hasher),
            refresh_ttl=settings.refresh_token_ttl,
            reuse_interval=settings.refresh_reuse_interval,
            leeway=settings.leeway,
        )
        exchange = None
        if settings.get_token_client_id:
            exchange = LocalTokenExchange(
                tokens, settings.get_token_client_id, settings.get_token_client_secret
            )
        return cls(
            store=store,
            hasher=hasher,
            tokens=tokens,
            catchphrases=open_catchphrase_store(settings.issuance_store_url("catchphrases")),
            get_token_local=exchange,
        )

    async def load_keys(self) -> None:
        """The server's client-secret key, read (or made) before it serves.

        :raises ConfigError: the key file is damaged: no client could authenticate.
        """
        await self.tokens.client_secrets.key()

    def start_background(self) -> None:
        """The server's housekeeping: the dummy hash made early, expired tokens purged."""
        if not self.store.durable:
            log.warning(
                "CLIENTS AND USERS ARE NOT DURABLE: JOTGUARD_ISSUANCE_STORE=memory:// keeps them"
                " in this process only; `jotguard clients/users` cannot reach it. Use sqlite:///"
                " or mongodb:// outside tests."
            )
        if self.hasher.weak:
            log.warning(
                "argon2id parameters are below OWASP's minimum (19 MiB, 2 passes):"
                " fine for tests, not for production"
            )
        self._tasks.append(asyncio.create_task(self.hasher.warm_up()))
        self._tasks.append(asyncio.create_task(self._purge_periodically()))
        if self.get_token_local is not None:
            log.warning("GET /get-token hands out tokens to anyone who asks: not for production")

    async def _purge_periodically(self) -> None:
        await asyncio.sleep(FIRST_PURGE_DELAY_SECONDS)  # start-up has better things to do
        while True:
            try:
                purged = await self.store.purge_expired(now=time.time())
                if purged:
                    log.info("purged %d expired refresh tokens and families", purged)
            except Exception:
                log.exception("purging expired refresh tokens failed; retrying later")
            await asyncio.sleep(PURGE_INTERVAL_SECONDS)

    async def close(self) -> None:
        await cancel_all(self._tasks, ignore_errors=True)
        self._tasks.clear()
        self.hasher.close()
        await self.store.close()
        await self.catchphrases.close()
