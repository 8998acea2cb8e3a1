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
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_PADDING = (b"", b"===", b"==", b"=")  # by the length modulo 4


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str) -> bytes:
    """Unpadded base64url in its canonical form (unused trailing bits zero).

    The round trip refuses padding, characters outside the alphabet (which the
    decoder would skip) and non-zero unused bits alike; an impossible length makes
    the decoder raise (``binascii.Error`` is a ``ValueError``, as is the
    ``UnicodeEncodeError`` of a character outside ASCII). ``binascii`` throughout:
    every proof decodes two or three segments.
    """
    encoded = segment.encode("ascii")
    raw = binascii.a2b_base64(encoded.translate(_TO_STANDARD) + _PADDING[len(encoded) % 4])
    if binascii.b2a_base64(raw, newline=False).translate(_TO_URLSAFE).rstrip(b"=") != encoded:
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
