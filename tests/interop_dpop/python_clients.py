"""Python DPoP libraries of others, run in their own process for tests/test_dpop_interop.py.

``make``: proofs by requests-oauth2client (ES256, EdDSA, PS256, RS256) and pydpop
(ES256), with each library's own thumbprint of its key. ``verify``: jotguard's proofs
checked by each library's verifier. JSON on stdin and stdout; jotguard is not imported.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys

import pydpop
from requests_oauth2client.dpop import DPoPKey, validate_dpop_proof


def _ath(token: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()


def make(request: dict) -> list[dict]:
    out = []
    ath = _ath(request["accessToken"]) if request.get("accessToken") else None
    for alg in request["algs"]:
        key = DPoPKey.generate(alg=alg)
        proof = key.proof(htm=request["htm"], htu=request["htu"], ath=ath)
        out.append(
            {"lib": "requests-oauth2client", "alg": alg, "proof": str(proof), "jkt": key.dpop_jkt}
        )
    private = pydpop.generate_key()
    proof = pydpop.generate_proof(
        private_key=private,
        htm=request["htm"],
        htu=request["htu"],
        access_token=request.get("accessToken"),
    )
    jkt = pydpop.jwk.jwk_thumbprint(pydpop.jwk.public_jwk(private))
    out.append({"lib": "pydpop", "alg": "ES256", "proof": proof, "jkt": jkt})
    return out


def verify(cases: list[dict]) -> list[dict]:
    out = []
    for case in cases:
        token = case.get("accessToken")
        result: dict = {}
        try:
            validate_dpop_proof(
                case["proof"],
                htm=case["htm"],
                htu=case["htu"],
                ath=_ath(token) if token else None,
                # One alg in a list: with alg= it passes algs=() on, which jwskate reads as
                # "no alg"; with several it stops at the first the key cannot use.
                algs=[case["alg"]],
            )
            result["requests-oauth2client"] = "ok"
        except Exception as exc:
            result["requests-oauth2client"] = f"refused: {exc}"
        if case["alg"] == "ES256":  # pydpop verifies ES256 proofs only
            try:
                verified = pydpop.verify_proof(
                    proof=case["proof"], htm=case["htm"], htu=case["htu"], access_token=token
                )
                result["pydpop"] = "ok"
                result["pydpop_jkt"] = verified["jwk_thumbprint"]
            except Exception as exc:
                result["pydpop"] = f"refused: {exc}"
        out.append(result)
    return out


if __name__ == "__main__":
    command = sys.argv[1]
    payload = json.load(sys.stdin)
    json.dump(make(payload) if command == "make" else verify(payload), sys.stdout)
