"""Typed verification keys and the KeySource protocol both backends share."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Protocol

from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

# RFC 9864 deprecates the polymorphic "EdDSA" name, but it is what deployed verifiers
# understand; jotguard offers it by choice, so the per-token warning is noise.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)

JoseKey = RSAKey | ECKey | OKPKey | OctKey

# The algorithm families jotguard signs and verifies with; each maps to one key type.
ALGORITHM_KEY_TYPES: dict[str, str] = {
    "RS256": "RSA",
    "RS384": "RSA",
    "RS512": "RSA",
    "PS256": "RSA",
    "ES256": "EC",
    "ES384": "EC",
    "EdDSA": "OKP",
    "HS256": "oct",
}


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A key bound to exactly one algorithm: the token header never chooses it."""

    kid: str
    alg: str
    key: JoseKey


class KeySource(Protocol):
    async def get_key(self, kid: str, alg: str) -> VerificationKey:
        """The key for ``kid``; its ``alg`` must equal the token's ``alg``.

        :raises InvalidToken: no such key, or the algorithms differ.
        :raises BackendUnavailable: no key set can be had right now.
        """
        ...
