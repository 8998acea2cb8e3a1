"""What every successful token response carries (RFC 6749 §5.1), checked in one place."""

from __future__ import annotations

import json
from typing import Any


def token_answer(response: Any, expires_in: int) -> dict[str, Any]:
    """The JSON of ``response``, once it is a 200 that may not be cached and hands out a
    Bearer token living ``expires_in`` seconds."""
    assert response.code == 200, response.body
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    answer: dict[str, Any] = json.loads(response.body)
    assert answer["token_type"] == "Bearer"
    assert answer["expires_in"] == expires_in
    return answer
