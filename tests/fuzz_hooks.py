"""schemathesis hooks for ``tests/fuzz.py``: the run's tokens stay usable to its end, and
in the DPoP pass every request to an operation that takes DPoP carries a fresh proof.

schemathesis loads this file from ``SCHEMATHESIS_HOOKS``. ``JOTGUARD_FUZZ_KEEP`` holds a
JSON list of the values that identify the fuzz tokens (their ``sub``, ``client_id``,
``jti`` and the tokens themselves). schemathesis learns the subject from the audit log's
``actor`` and sends it back, for example ``POST /admin/revocations {"client_id": "fuzz"}``:
from then on every authenticated case would get 401 and test nothing behind
authentication.

``JOTGUARD_FUZZ_DPOP`` (the DPoP pass only) holds ``{"token", "jwk"}``: the DPoP-bound
token the command line sends as ``Authorization: DPoP <token>``, and the private JWK it
is bound to. A proof is good for one request (jotguard refuses a replayed ``jti``) and
names the method and URL: it is made here, just before each call, for exactly the
request schemathesis is about to send, with the token's ``ath``
(``tests/fuzz_dpop.py``; ``tests/fuzz.py`` puts the tree on ``PYTHONPATH``).
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis

from tests.fuzz_dpop import takes_dpop, with_proof

_KEEP = frozenset(json.loads(os.environ.get("JOTGUARD_FUZZ_KEEP", "[]")))
_DPOP: dict[str, Any] | None = json.loads(os.environ.get("JOTGUARD_FUZZ_DPOP", "null"))


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    # Aimed at a decoy instead: the request still takes the same code path, with a value
    # that names nobody.
    if isinstance(case.body, dict):
        for key, value in case.body.items():
            if isinstance(value, str) and value in _KEEP:
                case.body[key] = value + "-decoy"
    if _DPOP is not None and takes_dpop(case.operation.definition.raw):
        # The URL schemathesis sends to: its base URL and the path, parameters encoded.
        url = case.as_transport_kwargs()["url"]
        case.headers = with_proof(case.headers, case.method, url, _DPOP["token"], _DPOP["jwk"])
