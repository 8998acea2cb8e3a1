"""Malformed credentials are a 400 or 401 with the right challenge, never a 500, on every
route that reads them: sent as raw bytes, as a hostile client would."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from tests.helpers import BARE_CHALLENGE

OAUTH_ROUTES = {
    "/oauth/token": b"grant_type=client_credentials",
    "/oauth/revoke": b"token=x",
    "/oauth/introspect": b"token=x",
}
BEARER_ROUTES = ["/test-auth", "/api/catchphrases", "/admin/revocations"]
BASIC_CHALLENGE = 'Basic realm="jotguard", charset="UTF-8"'


def b64(raw: bytes) -> bytes:
    return base64.b64encode(raw)


MALFORMED_BASIC = {
    "non-ASCII byte": b"Basic \xe9",
    "UTF-8 bytes": b"Basic \xc3\xa9t\xc3\xa9",
    "bad base64": b"Basic !!!",
    "unpadded base64": b"Basic dGVzdA",
    "no colon": b"Basic " + b64(b"client-without-secret"),
    "empty id": b"Basic " + b64(b":secret"),
    "empty secret": b"Basic " + b64(b"client:"),
    "both empty": b"Basic " + b64(b":"),
    "no credentials": b"Basic",
    "not UTF-8": b"Basic " + b64(b"\xff\xfe:secret"),
    "percent-encoding not UTF-8": b"Basic " + b64(b"%ff%fe:secret"),
    "non-ASCII inside base64": b"Basic " + b64(b"client:secret")[:4] + b"\xe9",
}


async def raw_request(base_url: str, path: str, authorization: bytes, body: bytes = b""):
    host, port = base_url.rsplit("/", 1)[-1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    method = b"POST" if body else b"GET"
    head = (
        method + b" " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: " + authorization + b"\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    try:
        writer.write(head + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    head_bytes, _, payload = answer.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, json.loads(payload)


@pytest.mark.parametrize("route", list(OAUTH_ROUTES))
@pytest.mark.parametrize("shape", list(MALFORMED_BASIC))
async def test_malformed_basic_credentials_are_invalid_client(base_url, route, shape, caplog):
    status, headers, answer = await raw_request(
        base_url, route, MALFORMED_BASIC[shape], OAUTH_ROUTES[route]
    )
    assert status == 401
    assert answer["error"] == "invalid_client"
    assert headers["www-authenticate"] == BASIC_CHALLENGE
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize("route", BEARER_ROUTES)
@pytest.mark.parametrize("shape", list(MALFORMED_BASIC))
async def test_basic_of_any_shape_on_a_bearer_route_offers_no_bearer_credentials(
    base_url, route, shape, caplog
):
    status, headers, answer = await raw_request(base_url, route, MALFORMED_BASIC[shape])
    assert status == 401
    assert headers["www-authenticate"] == BARE_CHALLENGE
    assert answer["error"] == "unauthorized"
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize("route", BEARER_ROUTES)
@pytest.mark.parametrize(
    "authorization",
    [b"Bearer \xe9", b"Bearer \xc3\xa9", b"Bearer a\xe9b.c.d", b"\xe9 token", b"Bearer"],
)
async def test_malformed_bearer_credentials_are_invalid_request(
    base_url, route, authorization, caplog
):
    status, headers, answer = await raw_request(base_url, route, authorization)
    assert status == 400
    assert answer["error"] == "invalid_request"
    assert 'error="invalid_request"' in headers["www-authenticate"]
    assert "Traceback" not in caplog.text
