"""Remote issuers' JSON Web Key Sets: the key source that fetches, caches and refreshes one.

:mod:`~backends.jwks.source` decides when to fetch and what a miss means,
:mod:`~backends.jwks.keyset` which published keys are usable, and
:mod:`~backends.jwks.fetch` how documents are fetched and ``jwks_uri`` discovered.
"""

from backends.jwks.keyset import SUPPORTED_ALGORITHMS
from backends.jwks.source import JWKSKeySource, JWKSPolicy, JWKSStatus

__all__ = ["SUPPORTED_ALGORITHMS", "JWKSKeySource", "JWKSPolicy", "JWKSStatus"]
