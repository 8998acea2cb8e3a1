"""DPoP between jotguard and implementations written by others, each in its own process,
end to end: a live ``jotguard serve`` (tests/live.py) and others' clients, issuer and
resource server talking HTTP (markers ``interop`` and ``slow``).

- panva's ``dpop`` (and ``jose`` for "EdDSA") is a client (``client.mjs``, Node's
  fetch): a DPoP token from jotguard's /oauth/token, GET /test-auth with it, the nonce
  round trips with ``JOTGUARD_DPOP_NONCE=on``, and its proofs replayed or misused.
- ``oidc-provider`` (``provider.mjs``) issues DPoP-bound JWT access tokens (client
  credentials, resource indicators) that the live jotguard takes as a remote issuer's,
  for panva's and jotguard's proofs; with ``"dpop": "required"`` for that issuer its
  unbound tokens are refused. It also verifies jotguard's proofs at its token endpoint.
- requests-oauth2client (ES256, EdDSA, PS256, RS256) and pydpop (ES256) are Python
  clients of the live jotguard (``python_clients.py``), and verify jotguard's proofs;
  ``jose`` verifies them the way oidc-provider does (``verify.mjs``).
- Auth0's express-oauth2-jwt-bearer (``resource_server.mjs``) verifies the DPoP tokens
  the live jotguard issues, with panva's proofs.

The npm and PyPI packages are installed once per test session into pytest's temporary
directory (pinned in package.json and in ``support.PYTHON_CLIENTS``), never into the
tree. Without Node/npm or a registry these tests skip, and fail when
JOTGUARD_REQUIRE_SERVICES=1.
"""
