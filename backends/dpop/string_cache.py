"""An LRU cache for work on a string a client sends, with a ceiling on its memory.

A client repeats most of what its proofs carry (the header with its key, ``htu``, the
token ``ath`` hashes), so the work done on each is worth remembering, by the exact
string. What a client sends is also its choice, so the cache holds at most ``maxsize``
entries and keys of at most ``max_chars`` characters: a longer string is worked on
every time, never stored. Only results are cached; a call that raises is repeated.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar, cast

P = ParamSpec("P")
R = TypeVar("R")


def string_cache(
    maxsize: int, max_chars: int
) -> Callable[[Callable[Concatenate[str, P], R]], Callable[Concatenate[str, P], R]]:
    """Cache a function by its first argument, a string, and the rest (all hashable)."""

    def decorate(function: Callable[Concatenate[str, P], R]) -> Callable[Concatenate[str, P], R]:
        wrapper = functools.lru_cache(maxsize=maxsize)(function)
        # The function's own signature: lru_cache types its arguments only as Hashable.
        cached = cast(Callable[Concatenate[str, P], R], wrapper)

        @functools.wraps(function)
        def lookup(value: str, /, *args: P.args, **kwargs: P.kwargs) -> R:
            if len(value) > max_chars:
                return function(value, *args, **kwargs)
            return cached(value, *args, **kwargs)

        lookup.cache_clear = wrapper.cache_clear  # type: ignore[attr-defined]
        lookup.cache_info = wrapper.cache_info  # type: ignore[attr-defined]
        return lookup

    return decorate
