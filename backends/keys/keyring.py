"""The local issuer's keyring: signing keys persisted in the data directory.

One JSON file (mode 0600), rewritten atomically so a CLI rotation and a running
server never see half a key. A key is *next* (published, not signing yet), *current*
(signing) or *retired* (published and accepted until every token it could have signed
has expired). A staged rotation adds a next key that becomes current at a time written
in the file, so verifiers that cache the JWKS learn of it before any token carries it;
every process reading the file (servers, the CLI) follows the same schedule from the
times alone, without a restart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey, import_key

from backends.errors import ConfigError, InvalidToken
from backends.keys import ALGORITHM_KEY_TYPES, JoseKey, VerificationKey, only_key
from backends.storage.files import exclusive_lock, write_atomic
from backends.telemetry import Sample

KEYRING_FILE = "keyring.json"


KeyState = Literal["next", "current", "retired"]


@dataclass(frozen=True, slots=True)
class StoredKey:
    """``activates_at``: when it starts signing; ``retired_at``: when it stops (the
    activation of its successor, possibly still to come), None while it has none."""

    kid: str
    alg: str
    created_at: int
    retired_at: int | None
    key: JoseKey
    activates_at: int = 0

    def as_record(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "alg": self.alg,
            "created_at": self.created_at,
            "activates_at": self.activates_at,
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
    created = now or int(time.time())
    return StoredKey(kid, alg, created, None, key, created)


def _load_record(record: dict[str, Any]) -> StoredKey:
    key = import_key(record["jwk"])
    alg = record["alg"]
    if ALGORITHM_KEY_TYPES.get(alg) != key.key_type:
        raise ConfigError(f"keyring key {record['kid']!r} does not fit algorithm {alg!r}")
    created = record["created_at"]
    # Keyrings written before staged rotation: every key signed from its creation.
    activates = record.get("activates_at", created)
    return StoredKey(record["kid"], alg, created, record["retired_at"], key, activates)


# Keyrings parsed in this process, by the SHA-256 of the file's bytes: importing an RSA
# private key validates it (tens of ms), and the same bytes always give the same keys.
# A few entries: one per keyring file version a process meets.
_PARSED: dict[bytes, tuple[StoredKey, ...]] = {}
_PARSED_MAX = 8


def read_keys(path: Path) -> list[StoredKey]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    digest = hashlib.sha256(raw).digest()
    parsed = _PARSED.get(digest)
    if parsed is None:
        try:
            parsed = tuple(_load_record(record) for record in json.loads(raw)["keys"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"keyring {path} is unreadable: {exc}") from None
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[digest] = parsed
    return list(parsed)


def _write_keys(path: Path, keys: list[StoredKey]) -> None:
    document = {"keys": [k.as_record() for k in keys]}
    write_atomic(path, json.dumps(document, indent=1).encode())


class Keyring:
    """Signing and verification keys of one algorithm, backed by a keyring file.

    :param retention: seconds a retired key stays valid: the longest token
        lifetime plus clock leeway.
    """

    def __init__(
        self, path: Path, alg: str, *, retention: int, clock: Callable[[], float] = time.time
    ) -> None:
        if alg not in ALGORITHM_KEY_TYPES:
            raise ConfigError(f"unsupported signing algorithm {alg!r}")
        self.path = path
        self.alg = alg
        self.retention = retention
        self.clock = clock
        self._keys: list[StoredKey] = []
        self._public: dict[str, VerificationKey] = {}
        self._stamp: tuple[int, int, int] | None = None

    # -- writers (CLI, first start) -------------------------------------------------

    def ensure(self) -> bool:
        """Create the keyring with one key if it has no usable key; True if it did."""
        with exclusive_lock(self.path):
            stamp = self._file_stamp()
            keys = read_keys(self.path)
            if any(k.alg == self.alg and k.retired_at is None for k in keys):
                # Parsed once: importing an RSA private key validates it (tens of ms).
                self._install(keys, stamp)
                return False
            self._add(keys, ahead=0)
            return True

    def rotate(self, *, ahead: int = 0) -> StoredKey:
        """Add a key that signs from ``ahead`` seconds on (published at once); the keys
        signing until then retire at that moment. Keys past retention are dropped, and so
        is a next key of an earlier rotation that would now never sign.
        """
        with exclusive_lock(self.path):
            keys = read_keys(self.path)
            return self._add(keys, ahead=ahead)

    def remove(self, kid: str) -> StoredKey:
        """Stop publishing and accepting ``kid`` (a leaked key): every token it signed is
        refused from the next reload on.

        :raises KeyError: no such key.
        :raises ConfigError: it is the current key (rotate with ``ahead=0`` first).
        """
        with exclusive_lock(self.path):
            keys = read_keys(self.path)
            found = next((k for k in keys if k.kid == kid), None)
            if found is None:
                raise KeyError(kid)
            now = int(self.clock())
            if self.state(found, now) == "current":
                raise ConfigError(f"key {kid} signs tokens now: rotate it out first")
            _write_keys(self.path, self._rescheduled([k for k in keys if k.kid != kid], now))
            self._load()
            return found

    @staticmethod
    def _rescheduled(keys: list[StoredKey], now: int) -> list[StoredKey]:
        """Keys not retired yet retire when the next remaining key of their algorithm
        activates (never, if none does): a removed next key leaves no gap in the signing."""

        def successor(key: StoredKey) -> int | None:
            later = [k.activates_at for k in keys if k.alg == key.alg]
            return min((at for at in later if at > key.activates_at), default=None)

        return [
            k
            if k.retired_at is not None and k.retired_at <= now
            else dataclasses.replace(k, retired_at=successor(k))
            for k in keys
        ]

    def _add(self, keys: list[StoredKey], *, ahead: int) -> StoredKey:
        now = int(self.clock())
        activation = now + ahead
        fresh = dataclasses.replace(generate_key(self.alg, now=now), activates_at=activation)
        kept = [
            dataclasses.replace(k, retired_at=min(k.retired_at or activation, activation))
            for k in keys
            if not self._expired(k, now) and not self._never_signs(k, now, activation)
        ]
        _write_keys(self.path, [*kept, fresh])
        self._install([*kept, fresh], self._file_stamp())
        return fresh

    # -- readers (server) -------------------------------------------------------------

    @staticmethod
    def _never_signs(key: StoredKey, now: int, activation: int) -> bool:
        # A next key not yet active whose successor activates no later: nothing it signed
        # can exist, so it goes rather than linger in the JWKS.
        return now < key.activates_at and activation <= key.activates_at

    def _expired(self, key: StoredKey, now: float) -> bool:
        return key.retired_at is not None and key.retired_at + self.retention < now

    def state(self, key: StoredKey, now: float | None = None) -> KeyState:
        """Where ``key`` stands at ``now`` (default: the clock) on the schedule."""
        at = self.clock() if now is None else now
        if key.activates_at > at:
            return "next"
        if key.retired_at is not None and key.retired_at <= at:
            return "retired"
        return "current"

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _load(self) -> None:
        stamp = self._file_stamp()  # before reading: a replacement in between reloads again
        self._install(read_keys(self.path), stamp)

    def _install(self, keys: list[StoredKey], stamp: tuple[int, int, int] | None) -> None:
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
            raise ConfigError(
                f"keyring {self.path} has no keys: create it with `jotguard init`"
                " (or `jotguard keys generate`)"
            )

    async def reload_if_changed(self) -> bool:
        """Re-read the file when another process (the CLI) replaced it."""
        if self._file_stamp() == self._stamp:
            return False
        await asyncio.to_thread(self._load)
        return True

    def all_keys(self) -> list[StoredKey]:
        return list(self._keys)

    def live_keys(self) -> list[StoredKey]:
        """Every key published and accepted now: next, current and retired."""
        now = self.clock()
        return [k for k in self._keys if k.alg == self.alg and not self._expired(k, now)]

    @property
    def current(self) -> StoredKey:
        """The key that signs now (the latest activated, should two overlap)."""
        now = self.clock()
        signing = [k for k in self._keys if k.alg == self.alg and self.state(k, now) == "current"]
        if not signing:
            raise ConfigError(f"keyring {self.path} has no current {self.alg} key")
        return max(reversed(signing), key=lambda k: k.activates_at)

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
        now = self.clock()
        states = [self.state(k, now) for k in self.live_keys()]
        for state in ("next", "current", "retired"):
            yield Sample(
                "signing_keys",
                "gauge",
                "Published keys of the local issuer, by state (next keys sign later).",
                states.count(state),
                {"state": state},
            )
        if "current" in states:
            yield Sample(
                "signing_key_created_timestamp_seconds",
                "gauge",
                "When the local issuer's current signing key was made (Unix time).",
                self.current.created_at,
            )
