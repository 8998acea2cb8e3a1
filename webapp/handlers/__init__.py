"""Request handlers of the jotguard service, one module per area."""
