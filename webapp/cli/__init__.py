"""The `jotguard` command line."""
