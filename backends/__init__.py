"""Everything pluggable behind jotguard: auth backends, key sources and stores.

- ``auth``: the backend protocol, the authenticator, token parsing and verification,
  the local and remote (Auth0, any JWKS issuer) backends;
- ``keys``: typed verification keys, the local keyring and remote JWKS key sources;
- ``dpop``: sender-constrained tokens (RFC 9449);
- ``revocation``, ``issuance``, ``catchphrases``: the stores, one protocol each;
- ``ratelimit``: rate-limit policies and their storage;
- ``storage``: store URLs and the SQLite, MongoDB and file plumbing the stores share;
- beside them: ``errors``, ``principal``, ``telemetry``, ``outage``, ``strict_json``,
  ``outbound`` (HTTP to issuers) and ``token_exchange`` (the tutorial's ``/get-token``).

Nothing here imports Tornado's web layer; ``webapp`` depends on this package,
never the reverse.
"""
