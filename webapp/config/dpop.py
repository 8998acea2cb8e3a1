"""The DPoP settings (RFC 9449): when proofs are accepted or required, and what they may be."""

from __future__ import annotations

from dataclasses import dataclass

from backends.dpop.policy import DEFAULT_ALGORITHMS, DPoPPolicy
from backends.errors import ConfigError
from webapp.config import parsers
from webapp.config.fields import setting

DPOP_MODES = ("off", "allowed", "required")


def dpop_algorithms(raw: str) -> tuple[str, ...]:
    algorithms = tuple(a.strip() for a in raw.split(",") if a.strip())
    try:
        DPoPPolicy(algorithms=algorithms)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    return algorithms


def nonce_secret(raw: str) -> str:
    value = raw.strip()
    if value and len(value.encode()) < 32:
        raise ValueError("must be at least 32 bytes (or empty)")
    return value


@dataclass(frozen=True)
class DPoPFields:
    """Sender-constrained tokens: a DPoP-bound token is refused without a fresh proof."""

    dpop: str = setting(
        "JOTGUARD_DPOP",
        "allowed",
        parsers.one_of(DPOP_MODES),
        "DPoP on protected routes and the token endpoint: allowed (Bearer as before; bound"
        " tokens need proofs), required (Bearer tokens refused) or off.",
    )
    dpop_algs: tuple[str, ...] = setting(
        "JOTGUARD_DPOP_ALGS",
        DEFAULT_ALGORITHMS,
        dpop_algorithms,
        "Signature algorithms a DPoP proof may use (comma-separated, asymmetric only).",
    )
    dpop_proof_lifetime: int = setting(
        "JOTGUARD_DPOP_PROOF_LIFETIME",
        60,
        parsers.int_between(1, 3600),
        "Seconds a DPoP proof is accepted after its iat (plus JOTGUARD_LEEWAY both ways).",
    )
    dpop_nonce: bool = setting(
        "JOTGUARD_DPOP_NONCE",
        False,
        parsers.boolean,
        "Require server-issued nonces in DPoP proofs (RFC 9449 §8-9); stateless, shared by"
        " every instance with the same secret.",
    )
    dpop_nonce_secret: str = setting(
        "JOTGUARD_DPOP_NONCE_SECRET",
        "",
        nonce_secret,
        "HMAC secret of DPoP nonces (at least 32 bytes); instances that accept each other's"
        " nonces share it. Default: derived from the local issuer's keyring.",
        secret=True,
    )
    dpop_key_prefix: str = setting(
        "JOTGUARD_DPOP_KEY_PREFIX",
        "jotguard:dpop:",
        parsers.key_prefix,
        "Prefix of the spent-proof keys in Redis (the rate-limit storage's, else the"
        " revocation store's); instances that must refuse each other's replays share it.",
    )
    public_url: str = setting(
        "JOTGUARD_PUBLIC_URL",
        "",
        parsers.http_url,
        "The URL clients reach this service at (behind a proxy); DPoP proofs name it in"
        " htu. Default: the request's own scheme and Host.",
    )
