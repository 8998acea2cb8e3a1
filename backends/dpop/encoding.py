"""Strict base64url and JSON for proofs: one encoding of each value, UTF-8 only.

A proof is signed bytes; decoding them leniently (padding, stray characters,
UTF-16 JSON, duplicate members, NaN) would let two parsers disagree on what
was signed. Every function raises ``ValueError`` on anything else.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from backends import strict_json

_TO_STANDARD = bytes.maketrans(b"-_", b"+/")


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str) -> bytes:
    """Unpadded base64url in its canonical form (unused trailing bits zero).

    The round trip refuses padding, characters outside the alphabet (which the
    decoder would skip) and non-zero unused bits alike; an impossible length makes
    the decoder raise (``binascii.Error`` is a ``ValueError``).
    """
    encoded = (segment + "=" * (-len(segment) % 4)).encode("ascii")
    raw = binascii.a2b_base64(encoded.translate(_TO_STANDARD))
    if b64url_encode(raw) != segment:
        raise ValueError("not canonical base64url")
    return raw


def json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object from UTF-8 bytes, read by the one strict decoder tokens use too."""
    try:
        value = strict_json.loads(raw)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value
