"""Client secrets: made here, stored as HMAC-SHA-256 under a server key, checked in microseconds.

A client secret is 256 random bits that nobody chose, so nothing can be guessed
from its hash: the slow hash that protects passwords (argon2id, 0.2-0.6 s of CPU
a check) buys nothing here and let every caller of ``/oauth/token``,
``/oauth/introspect`` or ``/oauth/revoke`` burn that much of the server's CPU.
The hash is keyed (HMAC with a 256-bit key in the data directory, mode 0600)
rather than a bare SHA-256 so that a copy of the client registry alone (a
database dump, a backup) cannot even confirm a secret; the key sits beside the
keyring, which every process of one issuer shares anyway. Compared in constant
time.

Stored as ``hmac-sha256$<hex>``. Hashes older versions made with argon2id keep
working (checked on the password hasher's pool) and are replaced by the keyed hash
on their first successful use.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from pathlib import Path
from typing import NamedTuple

from backends.errors import ConfigError
from backends.issuance.passwords import PasswordHasher
from backends.storage.files import exclusive_lock, write_atomic

log = logging.getLogger("jotguard.issuance")

KEY_FILE = "client-secret.key"
SECRET_BYTES = 32
KEY_BYTES = 32
SCHEME = "hmac-sha256"
_PREFIX = SCHEME + "$"
_LEGACY_PREFIX = "$argon2"


class SecretCheck(NamedTuple):
    matched: bool
    upgraded: str | None = None
    """The keyed hash to store instead of the argon2id one that just matched."""


def read_or_create_key(path: Path) -> bytes:
    """The key at ``path``, made (mode 0600, atomically, once across processes) if absent.

    :raises ConfigError: the file is not a key this module wrote.
    """
    with exclusive_lock(path):
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            key = secrets.token_bytes(KEY_BYTES)
            write_atomic(path, key.hex().encode() + b"\n")
            log.info("created the client-secret key %s (back it up with the keyring)", path)
            return key
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise ConfigError(f"{path} is not a client-secret key ({KEY_BYTES} bytes in hex)")
    return key


class ClientSecrets:
    """Makes client secrets and checks them; one instance per issuer.

    The key is read from ``key_path`` on first use, off the event loop (and created
    then if the data directory has none yet).
    """

    def __init__(self, key_path: Path, hasher: PasswordHasher) -> None:
        self.key_path = key_path
        self.hasher = hasher
        self._key: bytes | None = None
        self._loading: asyncio.Future[bytes] | None = None

    async def key(self) -> bytes:
        if self._key is None:
            if self._loading is None:
                self._loading = asyncio.ensure_future(
                    asyncio.to_thread(read_or_create_key, self.key_path)
                )
            try:
                self._key = await asyncio.shield(self._loading)
            except BaseException:
                self._loading = None  # the next call tries again
                raise
        return self._key

    def _digest(self, key: bytes, secret: str) -> str:
        return hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()

    async def new_secret(self) -> tuple[str, str]:
        """A fresh secret (shown once) and the value to store for it: made here only."""
        secret = secrets.token_urlsafe(SECRET_BYTES)
        return secret, _PREFIX + self._digest(await self.key(), secret)

    async def verify(self, stored: str | None, secret: str) -> SecretCheck:
        """Does ``secret`` match ``stored``? ``None`` (no such client) never matches, in
        the time a keyed hash takes; an argon2id hash matches on the hasher's pool."""
        key = await self.key()
        if stored is not None and stored.startswith(_LEGACY_PREFIX):
            if not await self.hasher.verify(stored, secret):
                return SecretCheck(False)
            return SecretCheck(True, _PREFIX + self._digest(key, secret))
        digest = self._digest(key, secret)
        if stored is None or not stored.startswith(_PREFIX):
            if stored is not None:
                log.error("a stored client secret hash has an unknown format")
            hmac.compare_digest(digest, digest)  # the same work as a real comparison
            return SecretCheck(False)
        return SecretCheck(hmac.compare_digest(stored[len(_PREFIX) :].encode(), digest.encode()))
