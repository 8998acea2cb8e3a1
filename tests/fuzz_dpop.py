"""The DPoP pass of ``tox -e fuzz``: which operations take DPoP, and each request's proof.

Apart from ``tests/fuzz_hooks.py`` (which schemathesis loads, and which needs
schemathesis) so that the test suite checks them without schemathesis installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backends.dpop import make_proof

DPOP_SCHEME = "dpopAuth"  # the OpenAPI document's name of the DPoP security scheme


def takes_dpop(operation: Mapping[str, Any]) -> bool:
    """Whether an operation of the document names the DPoP scheme in its security."""
    return any(DPOP_SCHEME in requirement for requirement in operation.get("security", []))


def with_proof(
    headers: Mapping[str, Any] | None, method: str, url: str, token: str, jwk: Mapping[str, Any]
) -> dict[str, Any]:
    """``headers`` with a fresh proof by ``jwk`` for ``method`` and ``url`` (``ath`` of
    ``token``) in ``DPoP``: the document declares that header, so schemathesis may have
    drawn a value for it, under any spelling, and the proof replaces it."""
    kept = {k: v for k, v in (headers or {}).items() if k.lower() != "dpop"}
    kept["DPoP"] = make_proof(jwk, method.upper(), url, access_token=token)
    return kept
