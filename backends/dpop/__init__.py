"""DPoP (RFC 9449): sender-constrained tokens, so a leaked token is useless without its key.

- :func:`verify_proof` checks one proof against a request (pure, no I/O);
  :class:`DPoPVerifier` adds the server nonce and the replay cache.
- :class:`MemoryReplayCache` (one process),
  ``backends.dpop.replay_sqlite.SQLiteReplayCache`` (the processes of one machine) and
  ``backends.dpop.replay_redis.RedisReplayCache`` (every instance; imported from there,
  so importing this package loads no store driver) remember spent proofs;
  :class:`StatelessNonces` issues and checks server nonces.
- :func:`make_proof`, :func:`generate_key` and :func:`jwk_thumbprint` are for
  clients and tests.
"""

from backends.dpop.client import generate_key, jwk_thumbprint, make_proof, public_jwk
from backends.dpop.errors import (
    DPoPError,
    DPoPKeyMismatch,
    DPoPRequired,
    InvalidDPoPProof,
    UseDPoPNonce,
    dpop_challenge,
)
from backends.dpop.jwk import thumbprint
from backends.dpop.nonce import StatelessNonces
from backends.dpop.policy import DEFAULT_ALGORITHMS, DPoPPolicy
from backends.dpop.proof import VerifiedProof, access_token_hash, single_proof, verify_proof
from backends.dpop.replay import MemoryReplayCache, ReplayCache
from backends.dpop.verifier import DPoPVerifier

__all__ = [
    "DEFAULT_ALGORITHMS",
    "DPoPError",
    "DPoPKeyMismatch",
    "DPoPPolicy",
    "DPoPRequired",
    "DPoPVerifier",
    "InvalidDPoPProof",
    "MemoryReplayCache",
    "ReplayCache",
    "StatelessNonces",
    "UseDPoPNonce",
    "VerifiedProof",
    "access_token_hash",
    "dpop_challenge",
    "generate_key",
    "jwk_thumbprint",
    "make_proof",
    "public_jwk",
    "single_proof",
    "thumbprint",
    "verify_proof",
]
