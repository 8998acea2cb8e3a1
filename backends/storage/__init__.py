"""Storage plumbing shared by the stores, once per driver: URLs, SQLite, MongoDB, files."""
