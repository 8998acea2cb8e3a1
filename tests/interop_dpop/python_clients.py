"""Python DPoP libraries of others, run in their own process for tests/interop_dpop/.

``flow``: a client of a live server, doing its own HTTP (requests): a client_credentials
token request with a DPoP proof, then GETs of a protected resource with the DPoP token,
each library handling the servers' ``use_dpop_nonce`` answers its own way.
requests-oauth2client (ES256, EdDSA, PS256, RS256) is the whole client (its
``OAuth2Client`` and ``DPoPToken``); pydpop (ES256) signs each request through its
``DPoPAuth``. Every exchange on the wire is recorded, the proof sent with it included.
``verify``: jotguard's proofs checked by each library's verifier. JSON on stdin and
stdout; jotguard is not imported.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from typing import Any

import pydpop
import requests
from pydpop.integrations.requests import DPoPAuth
from requests.adapters import HTTPAdapter
from requests_oauth2client import OAuth2Client
from requests_oauth2client.dpop import validate_dpop_proof


def _ath(token: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()


class Recorder(HTTPAdapter):
    """Every request the libraries send, their own retries included, and its answer."""

    def __init__(self) -> None:
        super().__init__()
        self.exchanges: list[dict[str, Any]] = []

    def send(self, request: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        response = super().send(request, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = response.text
        self.exchanges.append(
            {
                "method": request.method,
                "url": request.url,
                "status": response.status_code,
                "body": body,
                "challenge": response.headers.get("WWW-Authenticate"),
                "dpopNonce": response.headers.get("DPoP-Nonce"),
                "proof": request.headers.get("DPoP"),
            }
        )
        return response


def _requests_oauth2client(request: dict, session: requests.Session) -> dict:
    client = OAuth2Client(
        token_endpoint=request["tokenUrl"],
        client_id=request["clientId"],
        client_secret=request["clientSecret"],
        session=session,
        dpop_alg=request["alg"],
        testing=True,  # the endpoint checks only: they refuse http://, and loopback is http
    )
    token = client.client_credentials(dpop=True)
    for _ in range(request.get("calls", 1)):
        session.get(request["resourceUrl"], auth=token, timeout=10)
    return {
        "tokenType": token.token_type,
        "token": token.access_token,
        "jkt": token.dpop_key.dpop_jkt,
    }


def _pydpop(request: dict, session: requests.Session) -> dict:
    key = pydpop.generate_key()
    form = {
        "grant_type": "client_credentials",
        "client_id": request["clientId"],
        "client_secret": request["clientSecret"],
    }
    body = session.post(request["tokenUrl"], data=form, auth=DPoPAuth(key), timeout=10).json()
    token = body["access_token"]
    resource_auth = DPoPAuth(key, access_token=token)  # its own nonce: the resource server's
    for _ in range(request.get("calls", 1)):
        session.get(
            request["resourceUrl"],
            headers={"Authorization": f"DPoP {token}"},
            auth=resource_auth,
            timeout=10,
        )
    jkt = pydpop.jwk.jwk_thumbprint(pydpop.jwk.public_jwk(key))
    return {"tokenType": body["token_type"], "token": token, "jkt": jkt}


def flow(request: dict) -> dict:
    session = requests.Session()
    recorder = Recorder()
    session.mount("http://", recorder)
    run = _requests_oauth2client if request["lib"] == "requests-oauth2client" else _pydpop
    result = run(request, session)
    return {**result, "exchanges": recorder.exchanges}


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
    json.dump(flow(payload) if command == "flow" else verify(payload), sys.stdout)
