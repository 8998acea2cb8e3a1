"""What a DPoP proof may be: its algorithms, lifetime, leeway and size limits."""

from __future__ import annotations

from dataclasses import dataclass, field

from backends.errors import ConfigError

# Asymmetric signature algorithms a proof may use, with the key type and the curves
# each demands. Never "none", never HS*: a proof proves possession of a private key.
PROOF_ALGORITHMS: dict[str, tuple[str, frozenset[str]]] = {
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
    "Ed25519": ("OKP", frozenset({"Ed25519"})),
    "Ed448": ("OKP", frozenset({"Ed448"})),
    "PS256": ("RSA", frozenset()),
    "PS384": ("RSA", frozenset()),
    "PS512": ("RSA", frozenset()),
    "RS256": ("RSA", frozenset()),
    "RS384": ("RSA", frozenset()),
    "RS512": ("RSA", frozenset()),
}
DEFAULT_ALGORITHMS = ("ES256", "EdDSA", "PS256", "RS256")

# RFC 9864 names EdDSA with one curve "Ed25519"/"Ed448"; current clients (panva's dpop
# 2.x) send those. Allowing "EdDSA" allows its fully specified names too.
_EDDSA_NAMES = ("Ed25519", "Ed448")


@dataclass(frozen=True, slots=True)
class DPoPPolicy:
    """Limits every proof is checked against.

    A proof is accepted while ``now - proof_lifetime - leeway <= iat <= now + leeway``:
    the lifetime bounds its age, the leeway absorbs clock skew both ways.
    """

    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    proof_lifetime: int = 60
    leeway: int = 30
    max_proof_bytes: int = 8 * 1024
    max_jti_chars: int = 256
    # Derived from ``algorithms`` once: every proof is checked against them.
    accepted_algorithms: frozenset[str] = field(init=False, repr=False, compare=False)
    advertised: tuple[str, ...] = field(init=False, repr=False, compare=False)
    """For ``algs=`` and ``dpop_signing_alg_values_supported``: configured order first."""

    def __post_init__(self) -> None:
        if not self.algorithms:
            raise ConfigError("DPoP needs at least one proof algorithm")
        unknown = [alg for alg in self.algorithms if alg not in PROOF_ALGORITHMS]
        if unknown:
            supported = ", ".join(PROOF_ALGORITHMS)
            raise ConfigError(
                f"DPoP proof algorithm(s) {', '.join(unknown)} not accepted (one of {supported})"
            )
        if self.proof_lifetime <= 0 or self.leeway < 0:
            raise ConfigError("DPoP proof lifetime must be positive and leeway not negative")
        if self.max_proof_bytes < 512 or self.max_jti_chars < 1:
            raise ConfigError("DPoP size limits are too small")
        accepted = set(self.algorithms)
        if "EdDSA" in accepted:
            accepted.update(_EDDSA_NAMES)
        extra = sorted(accepted.difference(self.algorithms))
        # Frozen: set the way dataclasses' own __init__ sets the other fields.
        object.__setattr__(self, "accepted_algorithms", frozenset(accepted))
        object.__setattr__(self, "advertised", (*self.algorithms, *extra))

    @property
    def replay_window(self) -> int:
        """How long a jti must be remembered: the longest a proof stays acceptable."""
        return self.proof_lifetime + 2 * self.leeway
