"""The headers every answer carries, and JsonHandler.clear() kept in step with Tornado's."""

from __future__ import annotations

import email.utils
import time
from types import SimpleNamespace
from typing import Any

import pytest
import tornado.web
from tornado import httputil

import webapp.handler
from webapp.handler import JsonHandler


def _handler(cls: type[tornado.web.RequestHandler]) -> tornado.web.RequestHandler:
    connection = SimpleNamespace(
        context=SimpleNamespace(remote_ip="127.0.0.1", protocol="http"),
        set_close_callback=lambda callback: None,
    )
    request = httputil.HTTPServerRequest(
        start_line=httputil.RequestStartLine("GET", "/", "HTTP/1.1"),
        headers=httputil.HTTPHeaders({"Host": "127.0.0.1"}),
        connection=connection,
    )
    return cls(tornado.web.Application(), request)


def _state(handler: tornado.web.RequestHandler) -> dict[str, Any]:
    """What clear() resets: every attribute Tornado's own clear() sets, and the headers."""
    return {
        "headers": dict(handler._headers.get_all()),
        "write_buffer": handler._write_buffer,
        "status": handler._status_code,
        "reason": handler._reason,
    }


def test_clear_leaves_tornados_state_without_the_server_header():
    handler = _handler(JsonHandler)
    handler.set_status(418)
    handler.write(b"partial")
    ours = JsonHandler.clear
    ours(handler)
    after_ours = _state(handler)
    tornado.web.RequestHandler.clear(handler)  # Tornado's, then our set_default_headers
    after_tornados = _state(handler)
    assert after_tornados["headers"].pop("Server").startswith("TornadoServer/")
    for state in (after_ours, after_tornados):
        state["headers"].pop("Date")
    assert after_ours == after_tornados
    assert after_ours["status"] == 200
    assert after_ours["write_buffer"] == []
    # Tornado's clear() sets no attribute that ours does not.
    assert set(vars(_handler(tornado.web.RequestHandler))) <= set(vars(_handler(JsonHandler)))


def test_date_is_formatted_anew_each_second(monkeypatch):
    now = [1_800_000_000.2]
    monkeypatch.setattr(webapp.handler.time, "time", lambda: now[0])
    monkeypatch.setattr(webapp.handler, "_HTTP_DATE", webapp.handler._HttpDate())
    seen = []
    for step in (0.0, 0.7, 0.9, 1.5, 3600.0):
        now[0] = 1_800_000_000.2 + step
        seen.append(_handler(JsonHandler)._headers["Date"])
        assert seen[-1] == email.utils.formatdate(now[0], usegmt=True)
    assert seen[0] == seen[1]
    assert seen[1] != seen[2]
    assert seen[3] != seen[4]


@pytest.mark.parametrize(
    ("path", "status"),
    [("/test", 200), ("/test-auth", 401), ("/nowhere", 404), ("/healthz", 200)],
)
async def test_every_answer_carries_the_default_headers(fetch, path, status):
    before = time.time()
    response = await fetch(path)
    assert response.code == status
    headers = response.headers
    assert "Server" not in headers
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert len(headers["X-Request-ID"]) == 32
    date = email.utils.parsedate_to_datetime(headers["Date"]).timestamp()
    assert int(before) <= date <= time.time()


async def test_if_none_match_cannot_match_an_answer_without_an_etag(fetch):
    response = await fetch("/test", headers={"If-None-Match": "*"})
    assert response.code == 200
    assert response.body == b"This is an unprotected route."


async def test_the_key_set_still_revalidates(fetch):
    assert (await fetch("/.well-known/jwks.json", headers={"If-None-Match": "*"})).code == 304
