"""``jotguard token issue --dpop-jwk FILE``: the DPoP key a CLI-issued token is bound to."""

from __future__ import annotations

from pathlib import Path

from backends import strict_json
from backends.dpop.jwk import bindable_key
from backends.dpop.policy import DPoPPolicy
from backends.errors import ConfigError
from webapp.config.settings import Settings

MAX_JWK_BYTES = 16 * 1024  # a 4096-bit RSA public JWK is under 1 KiB


def bound_jkt(path: Path, settings: Settings) -> str:
    """The RFC 7638 thumbprint (``cnf.jkt``) of the public JWK in ``path``: a key this
    server would accept proofs by (``JOTGUARD_DPOP_ALGS``), with no private members.

    :raises ConfigError: naming the file and what is wrong with it.
    """
    where = f"--dpop-jwk {path}"
    if settings.dpop == "off":
        raise ConfigError(f"{where}: JOTGUARD_DPOP is off, so no server accepts a bound token")
    try:
        with path.open("rb") as file:
            data = file.read(MAX_JWK_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it ({exc.strerror or exc})") from None
    if len(data) > MAX_JWK_BYTES:
        raise ConfigError(f"{where}: larger than {MAX_JWK_BYTES} bytes; one public JWK is")
    try:
        jwk = strict_json.loads(data)
    except (ValueError, RecursionError):
        raise ConfigError(f"{where}: not a JSON JWK") from None
    algorithms = DPoPPolicy(algorithms=settings.dpop_algs).advertised
    try:
        return bindable_key(jwk, algorithms).jkt
    except ValueError as exc:
        raise ConfigError(f"{where}: the key {exc}; give one public JWK") from None
