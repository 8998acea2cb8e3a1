"""Token issuance: the client registry, the user store, refresh-token families and the grants."""
