"""Everything pluggable behind jotguard: auth backends, key sources and stores.

Nothing here imports Tornado's web layer; ``webapp`` depends on this package,
never the reverse.
"""
