"""One call for a request's DPoP proof: :func:`verify_proof`, the nonce, the replay cache."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from backends.dpop.errors import InvalidDPoPProof, dpop_challenge
from backends.dpop.nonce import StatelessNonces
from backends.dpop.policy import DPoPPolicy
from backends.dpop.proof import VerifiedProof, single_proof, verify_proof
from backends.dpop.replay import MemoryReplayCache, ReplayCache
from backends.errors import AuthError


class DPoPVerifier:
    """Checks proofs with one policy, one replay cache and (optionally) server nonces.

    :param replay: shared across instances in Redis (``RedisReplayCache``), across
        one machine's processes in SQLite (``SQLiteReplayCache``); by default one
        process's memory, sized for the policy's replay window.
    :param nonces: when given, every proof must carry a recent nonce of theirs.
    :param clock: epoch seconds; injectable so tests move time instead of sleeping.
    """

    def __init__(
        self,
        policy: DPoPPolicy | None = None,
        *,
        replay: ReplayCache | None = None,
        nonces: StatelessNonces | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy or DPoPPolicy()
        self.replay = replay or MemoryReplayCache(self.policy.replay_window)
        self.nonces = nonces
        self.clock = clock

    async def verify(
        self,
        proofs: Sequence[str],
        *,
        method: str,
        url: str,
        access_token: str | None = None,
        expected_jkt: str | None = None,
    ) -> VerifiedProof:
        """Check the request's ``DPoP`` header values and spend the proof.

        Call it once the presented token is verified (its ``cnf.jkt`` is
        ``expected_jkt``), so only proofs bound to a genuine token take room in the
        replay cache.

        :raises InvalidDPoPProof: refused, including a replay.
        :raises DPoPKeyMismatch, UseDPoPNonce: see :func:`verify_proof`.
        :raises BackendUnavailable: the replay cache cannot answer.
        """
        now = self.clock()
        proof = verify_proof(
            single_proof(proofs),
            method=method,
            url=url,
            policy=self.policy,
            now=now,
            access_token=access_token,
            expected_jkt=expected_jkt,
            nonces=self.nonces,
        )
        if not await self.replay.first_use(
            proof.jkt, proof.jti, expires_at=proof.expires_at, now=now
        ):
            raise InvalidDPoPProof("The DPoP proof was used before", reason="dpop_replay")
        return proof

    def fresh_nonce(self, proof: VerifiedProof) -> str | None:
        """A newer nonce to send in ``DPoP-Nonce`` with a success, if the proof's is aging."""
        if self.nonces is None:
            return None
        current = self.nonces.issue(self.clock())
        return None if proof.nonce == current else current

    def challenge(self, exc: AuthError | None = None) -> str:
        """The ``WWW-Authenticate: DPoP ...`` value, with this policy's ``algs``."""
        return dpop_challenge(self.policy.advertised, exc)
