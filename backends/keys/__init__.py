"""Typed verification keys and the KeySource protocol both backends share."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Protocol

from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from backends.errors import InvalidToken

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
    async def get_key(self, kid: str | None, alg: str) -> VerificationKey:
        """The key for ``kid``; its ``alg`` must equal the token's ``alg``.

        ``kid=None`` (the token names no key, RFC 7515 §4.1.4) is the source's only key
        usable for ``alg``, when it has exactly one: never a guess among several.

        :raises InvalidToken: no such key, or the algorithms differ.
        :raises BackendUnavailable: no key set can be had right now, or the key is
            unknown and the set cannot be refreshed now to tell whether it is new.
        """
        ...


def only_key(candidates: list[VerificationKey], alg: str) -> VerificationKey:
    """The key a token without ``kid`` is verified with: the one key for ``alg``.

    :raises InvalidToken: no key, or several, could verify it.
    """
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        problem = f"and the issuer has no key for {alg}"
    else:
        problem = f"and the issuer has {len(candidates)} keys for {alg}: it must name one"
    raise InvalidToken(f"The token has no key id, {problem}", reason="unknown_key")
