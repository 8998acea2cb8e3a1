"""Stateless server nonces (RFC 9449 §8-9): an HMAC of a time step, nothing stored.

Every instance with the same secret issues and accepts the same nonces, so a
nonce one worker handed out is good at any other. A nonce names the step it was
issued in; the step before and the one after are accepted too, so a nonce stays
good for at least one full step (and at most three), and instances whose clocks
differ by less than a step agree. Nonces cannot be made without the secret, so
accepting the next step's gives nothing away.
"""

from __future__ import annotations

import hmac
import math

from backends.dpop.encoding import b64url_encode
from backends.errors import ConfigError

MIN_SECRET_BYTES = 32
DEFAULT_STEP = 120
_CONTEXT = b"jotguard dpop nonce v1\x00"
_NONCE_CHARS = 43  # base64url of 32 bytes


class StatelessNonces:
    """Issue and check nonces for ``secret``; ``step`` is in seconds."""

    def __init__(self, secret: bytes, *, step: int = DEFAULT_STEP) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(f"the DPoP nonce secret needs at least {MIN_SECRET_BYTES} bytes")
        if step <= 0:
            raise ConfigError("the DPoP nonce step must be positive")
        self._secret = secret
        self.step = step
        self._cached: tuple[int, tuple[str, str, str]] | None = None

    def _nonce(self, step: int) -> str:
        mac = hmac.new(self._secret, _CONTEXT + step.to_bytes(8, "big", signed=True), "sha256")
        return b64url_encode(mac.digest())

    def _window(self, now: float) -> tuple[str, str, str]:
        step = math.floor(now / self.step)
        cached = self._cached
        if cached is None or cached[0] != step:
            values = (self._nonce(step), self._nonce(step - 1), self._nonce(step + 1))
            cached = self._cached = (step, values)
        return cached[1]

    def issue(self, now: float) -> str:
        """The nonce of the current step: for ``DPoP-Nonce`` on errors and successes."""
        return self._window(now)[0]

    def check(self, nonce: str, now: float) -> bool:
        """True for a nonce of the current, previous or next step (constant-time)."""
        if len(nonce) != _NONCE_CHARS:
            return False
        given = nonce.encode("ascii", "replace")
        matched = False
        for value in self._window(now):
            matched |= hmac.compare_digest(given, value.encode())
        return matched
