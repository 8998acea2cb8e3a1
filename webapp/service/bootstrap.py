"""The first ``jotguard serve`` on an empty client registry creates an admin client.

Its secret is printed once, on standard output (not the log), with a curl line
that uses it; only its keyed hash is stored, so later starts cannot print it
again and print nothing secret.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from backends.errors import BackendUnavailable
from backends.issuance.base import GRANT_TYPES
from webapp.handlers.catchphrases import DEMO_SCOPES
from webapp.service.issuance import new_client
from webapp.service.services import Services

log = logging.getLogger("jotguard.bootstrap")

ADMIN_CLIENT = "admin"


def admin_scopes(services: Services) -> frozenset[str]:
    return frozenset({services.settings.admin_scope, *DEMO_SCOPES})


async def bootstrap_admin_client(
    services: Services, base_url: str, out: TextIO = sys.stdout
) -> bool:
    """Create the admin client if the registry is empty; True if it did."""
    issuance = services.issuance
    try:
        if await issuance.store.list_clients():
            return False
        client, secret = await new_client(
            issuance.tokens.client_secrets,
            ADMIN_CLIENT,
            admin_scopes(services),
            frozenset(GRANT_TYPES),
        )
        # Atomic in the store: of two servers starting at once, one creates it.
        if not await issuance.store.add_first_client(client):
            return False
    except BackendUnavailable as exc:
        log.warning("could not check the client registry for a first start: %s", exc)
        return False
    log.info("created the admin client %s (first start)", client.client_id)
    token_url = base_url.rstrip("/") + "/oauth/token"
    print(
        f"""
jotguard: first start on an empty client registry: created the client "{ADMIN_CLIENT}"
with the scopes "{" ".join(sorted(client.scopes))}".
Its secret is shown this once and never again; store it now.

  client_id:     {client.client_id}
  client_secret: {secret}

Get an access token with it:

  curl -s -u '{client.client_id}:{secret}' -d grant_type=client_credentials {token_url}
""",
        file=out,
        flush=True,
    )
    return True
