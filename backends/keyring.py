"""The local issuer's keyring: signing keys persisted in the data directory.

One JSON file (mode 0600), rewritten atomically so a CLI rotation and a running
server never see half a key. Rotation makes a new current key; retired keys stay
published and accepted until every token they could have signed has expired.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey, import_key

from backends.errors import ConfigError, InvalidToken
from backends.files import exclusive_lock, write_atomic
from backends.keys import ALGORITHM_KEY_TYPES, JoseKey, VerificationKey, only_key
from backends.telemetry import Sample

KEYRING_FILE = "keyring.json"


@dataclass(frozen=True, slots=True)
class StoredKey:
    kid: str
    alg: str
    created_at: int
    retired_at: int | None
    key: JoseKey

    def as_record(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "alg": self.alg,
            "created_at": self.created_at,
            "retired_at": self.retired_at,
            "jwk": self.key.as_dict(private=True),
        }

    def public_jwk(self) -> dict[str, Any]:
        jwk = self.key.as_dict(private=False)
        jwk.update(kid=self.kid, alg=self.alg, use="sig")
        return jwk


def generate_key(alg: str, *, now: int | None = None) -> StoredKey:
    """A fresh key for ``alg``, its kid the RFC 7638 thumbprint. CPU-heavy for RSA."""
    kty = ALGORITHM_KEY_TYPES.get(alg)
    key: JoseKey
    if kty == "RSA":
        key = RSAKey.generate_key(2048, private=True)
    elif kty == "EC":
        key = ECKey.generate_key("P-256" if alg == "ES256" else "P-384", private=True)
    elif kty == "OKP":
        key = OKPKey.generate_key("Ed25519", private=True)
    elif kty == "oct":
        key = OctKey.generate_key(256, private=True)
    else:
        raise ConfigError(f"unsupported signing algorithm {alg!r}")
    kid = key.thumbprint()
    return StoredKey(kid, alg, now or int(time.time()), None, key)


def _load_record(record: dict[str, Any]) -> StoredKey:
    key = import_key(record["jwk"])
    alg = record["alg"]
    if ALGORITHM_KEY_TYPES.get(alg) != key.key_type:
        raise ConfigError(f"keyring key {record['kid']!r} does not fit algorithm {alg!r}")
    return StoredKey(record["kid"], alg, record["created_at"], record["retired_at"], key)


def read_keys(path: Path) -> list[StoredKey]:
    try:
        document = json.loads(path.read_bytes())
        return [_load_record(record) for record in document["keys"]]
    except FileNotFoundError:
        return []
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"keyring {path} is unreadable: {exc}") from None


def _write_keys(path: Path, keys: list[StoredKey]) -> None:
    document = {"keys": [k.as_record() for k in keys]}
    write_atomic(path, json.dumps(document, indent=1).encode())


class Keyring:
    """Signing and verification keys of one algorithm, backed by a keyring file.

    :param retention: seconds a retired key stays valid: the longest token
        lifetime plus clock leeway.
    """

    def __init__(self, path: Path, alg: str, *, retention: int) -> None:
        if alg not in ALGORITHM_KEY_TYPES:
            raise ConfigError(f"unsupported signing algorithm {alg!r}")
        self.path = path
        self.alg = alg
        self.retention = retention
        self._keys: list[StoredKey] = []
        self._public: dict[str, VerificationKey] = {}
        self._stamp: tuple[int, int, int] | None = None

    # -- writers (CLI, first start) -------------------------------------------------

    def ensure(self) -> bool:
        """Create the keyring with one key if it has no usable key; True if it did."""
        with exclusive_lock(self.path):
            keys = read_keys(self.path)
            if any(k.alg == self.alg and k.retired_at is None for k in keys):
                self._load()
                return False
            self._add_current(keys)
            return True

    def rotate(self) -> StoredKey:
        """Retire the current key, make a new one current, drop keys past retention."""
        with exclusive_lock(self.path):
            keys = read_keys(self.path)
            return self._add_current(keys)

    def _add_current(self, keys: list[StoredKey]) -> StoredKey:
        now = int(time.time())
        fresh = generate_key(self.alg, now=now)
        kept = [
            StoredKey(k.kid, k.alg, k.created_at, k.retired_at or now, k.key)
            for k in keys
            if not self._expired(k, now)
        ]
        _write_keys(self.path, [*kept, fresh])
        self._load()
        return fresh

    # -- readers (server) -------------------------------------------------------------

    def _expired(self, key: StoredKey, now: float) -> bool:
        return key.retired_at is not None and key.retired_at + self.retention < now

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _load(self) -> None:
        stamp = self._file_stamp()
        keys = read_keys(self.path)
        # Verify with public halves: cheaper, and private material stays out of the hot path.
        self._public = {
            k.kid: VerificationKey(
                k.kid, k.alg, k.key if k.key.key_type == "oct" else import_key(k.public_jwk())
            )
            for k in keys
        }
        self._keys = keys
        self._stamp = stamp

    def load(self) -> None:
        self._load()
        if not self._keys:
            raise ConfigError(f"keyring {self.path} has no keys: run `jotguard keys generate`")

    async def reload_if_changed(self) -> bool:
        """Re-read the file when another process (the CLI) replaced it."""
        if self._file_stamp() == self._stamp:
            return False
        await asyncio.to_thread(self._load)
        return True

    def all_keys(self) -> list[StoredKey]:
        return list(self._keys)

    def live_keys(self) -> list[StoredKey]:
        now = time.time()
        return [k for k in self._keys if k.alg == self.alg and not self._expired(k, now)]

    @property
    def current(self) -> StoredKey:
        for key in reversed(self._keys):
            if key.alg == self.alg and key.retired_at is None:
                return key
        raise ConfigError(f"keyring {self.path} has no current {self.alg} key")

    def public_jwks(self) -> dict[str, Any]:
        # Symmetric secrets are never published.
        return {"keys": [k.public_jwk() for k in self.live_keys() if k.key.key_type != "oct"]}

    def _find(self, kid: str) -> VerificationKey | None:
        for key in self.live_keys():
            if key.kid == kid:
                return self._public[kid]
        return None

    async def get_key(self, kid: str | None, alg: str) -> VerificationKey:
        if kid is None:
            return only_key([self._public[k.kid] for k in self.live_keys() if k.alg == alg], alg)
        found = self._find(kid)
        if found is None and await self.reload_if_changed():
            found = self._find(kid)
        if found is None:
            raise InvalidToken("The token was signed by an unknown key", reason="unknown_key")
        return found

    def telemetry(self) -> Iterator[Sample]:
        """Key counts and the current key's age, so an operator can alert on a stale key."""
        live = self.live_keys()
        current = [k for k in live if k.retired_at is None]
        for state, count in (("current", len(current)), ("retired", len(live) - len(current))):
            yield Sample(
                "signing_keys",
                "gauge",
                "Accepted keys of the local issuer.",
                count,
                {"state": state},
            )
        if current:
            yield Sample(
                "signing_key_created_timestamp_seconds",
                "gauge",
                "When the local issuer's current signing key was made (Unix time).",
                current[-1].created_at,
            )
