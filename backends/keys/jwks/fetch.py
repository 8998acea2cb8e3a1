"""Fetching a remote issuer's documents: a bounded JSON GET, and ``jwks_uri`` discovery.

A discovered ``jwks_uri`` must be on the issuer's own origin: a discovery document
cannot send jotguard to fetch from another host (configure ``jwks_uri`` for that).
"""

from __future__ import annotations

import json
from typing import Any

from tornado.httpclient import AsyncHTTPClient

from backends.keys.jwks.keyset import JWKSFetchError
from backends.outbound import UpstreamError, fetch_bounded, same_origin, secure_url


def discovery_urls(issuer: str) -> list[str]:
    """OpenID discovery first (path appended), then RFC 8414 (well-known inserted)."""
    base = issuer.rstrip("/")
    scheme, _, rest = base.partition("://")
    host, slash, path = rest.partition("/")
    urls = [
        f"{base}/.well-known/openid-configuration",
        f"{scheme}://{host}/.well-known/oauth-authorization-server{slash}{path}",
        f"{base}/.well-known/oauth-authorization-server",
    ]
    return list(dict.fromkeys(urls))


async def get_json(client: AsyncHTTPClient, url: str, *, timeout: float) -> Any:
    """The JSON document at ``url``.

    :raises JWKSFetchError: unreachable, too slow or too big, not 200, or not JSON.
    """
    try:
        response = await fetch_bounded(client, url, timeout=timeout)
    except UpstreamError as exc:
        raise JWKSFetchError(f"{url}: {exc}") from None
    if response.code != 200:
        raise JWKSFetchError(f"{url}: answered HTTP {response.code}")
    try:
        return json.loads(response.body)
    except (ValueError, RecursionError):
        kind = response.headers.get("Content-Type", "no content type").split(";")[0]
        raise JWKSFetchError(f"{url}: the response is not JSON ({kind})") from None


async def discover(client: AsyncHTTPClient, issuer: str, *, timeout: float) -> str:
    """The ``jwks_uri`` that ``issuer``'s own metadata names, on the issuer's origin.

    :raises JWKSFetchError: no discovery document gave a usable one; every reason is told.
    """
    errors = []
    for url in discovery_urls(issuer):
        try:
            document = await get_json(client, url, timeout=timeout)
        except JWKSFetchError as exc:
            errors.append(str(exc))
            continue
        if not isinstance(document, dict):
            errors.append(f"{url}: not a JSON object")
            continue
        # RFC 8414 §3.3 / OIDC Discovery §4.3: a document for another issuer is refused.
        if document.get("issuer") != issuer:
            errors.append(f"{url}: names issuer {document.get('issuer')!r}")
            continue
        jwks_uri = document.get("jwks_uri")
        try:
            found = secure_url(jwks_uri) if isinstance(jwks_uri, str) else secure_url("")
        except ValueError as exc:
            errors.append(f"{url}: jwks_uri {exc}")
            continue
        if not same_origin(found, issuer):
            # Else whoever controls the document picks the host jotguard GETs (and
            # retries): a discovered key set stays on the issuer's origin.
            errors.append(
                f"{url}: jwks_uri {found!r} is not on the issuer's origin"
                " (configure jwks_uri explicitly to trust it)"
            )
            continue
        return found
    raise JWKSFetchError("discovery failed: " + "; ".join(errors))
