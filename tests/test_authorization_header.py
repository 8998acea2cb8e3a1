"""The Authorization header through HTTP: RFC 6750's "Bearer" 1*SP b64token, nothing looser."""

from __future__ import annotations

import asyncio
import json

import pytest


@pytest.mark.parametrize("template", ["Bearer {}", "bearer {}", "BEARER   {}"])
async def test_spaces_separate_the_scheme_from_the_token(fetch, issue_token, template):
    response = await fetch("/test-auth", headers={"Authorization": template.format(issue_token())})
    assert response.code == 200


@pytest.mark.parametrize("separator", ["\t", "\xa0", "\x85"])
async def test_other_whitespace_is_a_malformed_header(issue_token, base_url, separator):
    """Found by the property test: str.split() took TAB, NBSP and NEL for separators."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    header = f"Authorization: Bearer{separator}{issue_token()}"
    writer.write(f"GET /test-auth HTTP/1.1\r\nHost: x\r\n{header}\r\n\r\n".encode("latin-1"))
    await writer.drain()
    status_line = await reader.readline()
    raw = await reader.read(4096)
    writer.close()
    await writer.wait_closed()

    assert status_line.startswith(b"HTTP/1.1 400")
    body = json.loads(raw.split(b"\r\n\r\n", 1)[1])
    assert body["error"] == "invalid_request"
