"""Remote issuers' JSON Web Key Sets: the key source that fetches, caches and refreshes one.

:mod:`~backends.keys.jwks.source` decides when to fetch and what a miss means,
:mod:`~backends.keys.jwks.keyset` which published keys are usable, and
:mod:`~backends.keys.jwks.fetch` how documents are fetched and ``jwks_uri`` discovered.
"""

from backends.keys.jwks.keyset import SUPPORTED_ALGORITHMS
from backends.keys.jwks.source import JWKSKeySource, JWKSPolicy, JWKSStatus

__all__ = ["SUPPORTED_ALGORITHMS", "JWKSKeySource", "JWKSPolicy", "JWKSStatus"]
