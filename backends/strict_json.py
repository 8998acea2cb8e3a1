"""JSON from bytes as RFC 8259 requires of exchanged text, so no other parser reads it otherwise.

Python's ``json.loads`` is lenient where other parsers are not: given bytes it guesses
UTF-16 or UTF-32 and skips a byte-order mark (RFC 8259 §8.1: UTF-8 only, no BOM); it
reads ``NaN`` and ``Infinity``, which are not JSON, and turns ``1e400`` into infinity;
a repeated member name silently keeps the last value; an escaped lone surrogate
becomes a string no UTF-8 encoder accepts (§8.2). A token read leniently here and
strictly by another verifier (or the other way round) is a parser differential: every
one of these is refused instead.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, NoReturn

_LONE_SURROGATE_HINT = re.compile(r"\\u[dD][89a-fA-F]")


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is out of range")
    return value


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("an object repeats a member name")
    return members


_DECODER = json.JSONDecoder(
    object_pairs_hook=_unique_members,
    parse_constant=_refuse_constant,
    parse_float=_finite_float,
)


def _check_strings(value: Any) -> None:
    if isinstance(value, str):
        value.encode("utf-8")  # a lone surrogate raises UnicodeEncodeError, a ValueError
    elif isinstance(value, dict):
        for name, member in value.items():
            _check_strings(name)
            _check_strings(member)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)


def loads(data: bytes) -> Any:
    """The JSON value in ``data``.

    :raises ValueError: not UTF-8, a byte-order mark, not JSON, a non-finite number,
        a repeated member name or a lone surrogate. (Deep nesting raises RecursionError.)
    """
    text = data.decode("utf-8")  # strict: UnicodeDecodeError is a ValueError
    if text.startswith("\ufeff"):
        raise ValueError("JSON text must not start with a byte-order mark")
    value = _DECODER.decode(text)
    # Only an escape can make a lone surrogate (the bytes were valid UTF-8): walk the
    # value only when one may be present, which no ordinary token has.
    if _LONE_SURROGATE_HINT.search(text):
        _check_strings(value)
    return value
