"""The library a Tornado developer imports: base handlers, scopes, errors, rate limits."""
