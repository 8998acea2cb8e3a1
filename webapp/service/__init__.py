"""`jotguard serve`: builds the product its settings ask for and runs it."""
