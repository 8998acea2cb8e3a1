"""Never hand out a token the server would refuse because of a cutoff taken moments ago.

A subject or client revocation covers tokens stamped up to the clock leeway after its
cutoff (:func:`backends.revocation.policy.decide`: a fast issuer clock must not let a
token escape it). So for ``leeway`` seconds after ``jotguard revoke --sub`` or a password
change, a token signed for that subject is dead on arrival. The issuer says so instead:
503 with ``Retry-After`` at the token endpoint, a non-zero exit from the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backends.errors import BackendUnavailable
from backends.principal import Principal
from backends.revocation.base import RevocationStore


async def refuse_if_covered(
    revocations: RevocationStore, claims: Mapping[str, Any], *, leeway: int
) -> None:
    """Raise if the revocation list already covers the token these claims describe.

    :raises BackendUnavailable: covered (``retry_after`` is when it no longer would be),
        or the list cannot be read; either way the token must not be handed out.
    """
    principal = Principal(
        subject=claims["sub"],
        issuer=claims["iss"],
        token_id=claims.get("jti"),
        expires_at=int(claims["exp"]),
        issued_at=claims.get("iat"),
        client_id=claims.get("client_id"),
        leeway=leeway,
    )
    if await revocations.is_revoked(principal) is not None:
        raise BackendUnavailable(
            "A revocation of this subject or client took effect moments ago; a token"
            " issued now would be refused. Retry once the clock leeway has passed",
            retry_after=leeway + 1,
        )
