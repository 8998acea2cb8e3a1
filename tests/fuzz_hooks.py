"""schemathesis hooks for ``tests/fuzz.py``: the run's own token stays usable to its end.

schemathesis loads this file from ``SCHEMATHESIS_HOOKS``. ``JOTGUARD_FUZZ_KEEP`` holds a
JSON list of the values that identify the fuzz token (its ``sub``, ``client_id``, ``jti``
and the token itself). schemathesis learns the subject from the audit log's ``actor`` and
sends it back, for example ``POST /admin/revocations {"client_id": "fuzz"}``: from then on
every authenticated case would get 401 and test nothing behind authentication.
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis

_KEEP = frozenset(json.loads(os.environ.get("JOTGUARD_FUZZ_KEEP", "[]")))


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    # Aimed at a decoy instead: the request still takes the same code path, with a value
    # that names nobody.
    if isinstance(case.body, dict):
        for key, value in case.body.items():
            if isinstance(value, str) and value in _KEEP:
                case.body[key] = value + "-decoy"
