"""Access logs and request ids through HTTP, and the promise that no token is ever logged."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import re
from collections.abc import Iterator
from unittest import mock

import pytest
from tornado.httputil import HTTPHeaders

from tests.helpers import ScopedHandler, app_with, signed
from tests.live import live_jotguard
from webapp.service.logs import REDACTED, JsonFormatter, LineHandler, TextFormatter, tag_worker
from webapp.service.openapi import operation, text_response
from webapp.web.handler import JsonHandler


class CrashHandler(JsonHandler):
    @operation("Fails", responses={200: text_response("Never.")})
    def get(self) -> None:
        # A bug that puts the credentials in an exception message.
        raise RuntimeError("could not use " + self.request.headers.get("Authorization", ""))


@pytest.fixture
def app(services):
    return app_with(services, (r"/notes", ScopedHandler), (r"/crash", CrashHandler))


class Output:
    """Every record, as the text and the JSON formatter would write it."""

    def __init__(self) -> None:
        self.text, self.json = io.StringIO(), io.StringIO()
        self.records: list[logging.LogRecord] = []

    def everything(self) -> str:
        return self.text.getvalue() + self.json.getvalue()

    def access(self) -> list[logging.LogRecord]:
        return [r for r in self.records if r.name == "jotguard.access"]


@pytest.fixture
def output() -> Iterator[Output]:
    captured = Output()

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            captured.records.append(record)

    handlers = [logging.StreamHandler(captured.text), logging.StreamHandler(captured.json), Keep()]
    handlers[0].setFormatter(TextFormatter())
    handlers[1].setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.DEBUG)
    for handler in handlers:
        root.addHandler(handler)
    yield captured
    for handler in handlers:
        root.removeHandler(handler)
    root.setLevel(previous)


async def test_request_id_is_echoed_and_logged_with_the_jti(fetch, services, output):
    issued = services.issuer.sign(services.issuer.claims_for("alice"))

    response = await fetch("/test-auth", token=issued.token, headers={"X-Request-ID": "abc"})

    assert response.code == 200
    assert response.headers["X-Request-ID"] == "abc"
    [line] = output.access()
    assert line.levelno == logging.INFO
    assert line.getMessage().startswith("GET /test-auth 200 ")
    assert f"request_id=abc client=127.0.0.1 auth=success sub=alice jti={issued.jti}" in (
        line.getMessage()
    )
    assert issued.token not in output.everything()


@pytest.mark.parametrize(
    ("path", "status"),
    [("/test-auth", 401), ("/nowhere", 404), ("/crash", 500), ("/openapi.json", 200)],
)
async def test_request_id_is_echoed_on_errors_too(fetch, path, status):
    response = await fetch(path, headers={"X-Request-ID": "req-42"})
    assert response.code == status
    assert response.headers["X-Request-ID"] == "req-42"


async def test_request_id_on_a_method_tornado_refuses(fetch):
    response = await fetch("/test", method="DELETE", headers={"X-Request-ID": "req-43"})
    assert response.code == 405
    assert response.headers["X-Request-ID"] == "req-43"
    assert json.loads(response.body)["error"] == "method_not_allowed"


@pytest.mark.parametrize(
    "offered", ["", "x" * 129, "has space", 'quote"', "semi;colon", "caf\u00e9", "a,b"]
)
async def test_an_insane_request_id_is_replaced(fetch, output, offered):
    response = await fetch("/test", headers={"X-Request-ID": offered})
    generated = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    [line] = output.access()
    assert f"request_id={generated}" in line.getMessage()


async def test_two_request_ids_are_replaced_by_one_of_ours(http_client, base_url):
    offered = HTTPHeaders()
    offered.add("X-Request-ID", "first")
    offered.add("X-Request-ID", "second")
    response = await http_client.fetch(base_url + "/test", headers=offered)
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


async def test_each_request_gets_its_own_id(fetch):
    first = (await fetch("/test")).headers["X-Request-ID"]
    second = (await fetch("/test")).headers["X-Request-ID"]
    assert first != second


async def test_a_refusal_is_one_info_line_with_its_reason(fetch, issue_token, output):
    await fetch("/test-auth", token=issue_token(ttl=-3600))
    await fetch("/notes", token=issue_token("bob"))

    assert [r for r in output.records if r.name.startswith("tornado")] == []
    expired, scope = output.access()
    assert expired.levelno == scope.levelno == logging.INFO
    assert "GET /test-auth 401" in expired.getMessage()
    assert "auth=expired error=invalid_token" in expired.getMessage()
    assert "jti=" not in expired.getMessage()  # only a verified token's ids are logged
    assert "GET /notes 403" in scope.getMessage()
    assert "auth=insufficient_scope sub=bob jti=" in scope.getMessage()


async def test_a_crash_logs_its_traceback_once_and_answers_json(fetch, output):
    response = await fetch("/crash", headers={"X-Request-ID": "boom"})

    assert response.code == 500
    assert json.loads(response.body) == {
        "error": "server_error",
        "error_description": "Internal server error",
    }
    errors = [r for r in output.records if r.levelno >= logging.ERROR]
    assert [r.name for r in errors] == ["tornado.application", "jotguard.access"]
    assert "uncaught exception in GET /crash request_id=boom" in errors[0].getMessage()
    assert errors[0].exc_info is not None


async def test_probes_and_scrapes_log_at_debug(fetch, output):
    for path in ("/healthz", "/readyz", "/metrics"):
        await fetch(path)
    assert {r.levelno for r in output.access()} == {logging.DEBUG}


async def test_json_lines_carry_the_access_fields(fetch, services, output):
    issued = services.issuer.sign(services.issuer.claims_for("alice"))
    await fetch("/test-auth", token=issued.token, headers={"X-Request-ID": "abc"})

    [line] = [json.loads(x) for x in output.json.getvalue().splitlines() if "jotguard.access" in x]

    assert line["logger"] == "jotguard.access"
    assert line["level"] == "INFO"
    assert {k: line[k] for k in ("method", "route", "status", "request_id", "sub", "jti")} == {
        "method": "GET",
        "route": "/test-auth",
        "status": 200,
        "request_id": "abc",
        "sub": "alice",
        "jti": issued.jti,
    }
    assert isinstance(line["duration_ms"], float)


async def test_a_subject_cannot_forge_a_log_line(fetch, services, output):
    claims = services.issuer.claims_for("eve\nGET /admin 200 sub=root")
    await fetch("/test-auth", token=signed(services, claims))
    [line] = output.access()
    assert "\n" not in output.text.getvalue().strip()
    assert 'sub="eve\\nGET /admin 200 sub=root"' in line.getMessage()


async def test_no_log_line_contains_a_token(fetch, services, issue_token, base_url, output):
    good = issue_token("alice", scopes=["read:notes"])
    tokens = {
        "good": good,
        "expired": issue_token("bob", ttl=-3600),
        "forged": good[:-6] + "AAAAAA",
        "foreign": signed(services, {**services.issuer.claims_for("x"), "iss": "https://evil/"}),
        "unscoped": issue_token("carol"),
    }
    for token in tokens.values():
        for path in ("/test-auth", "/notes", "/crash", "/nowhere"):
            await fetch(path, token=token)
        await fetch("/test-auth", headers={"Authorization": f"Bearer {token} extra"})
        await fetch("/test-auth", headers={"Authorization": f"bearer  {token}"})
        await fetch(f"/test-auth?access_token={token}")
        await fetch(f"/{token}")
        await fetch("/test", method="POST", body=f"token={token}")
        # A control character makes Tornado refuse the header and log its value itself.
        reader, writer = await asyncio.open_connection("127.0.0.1", int(base_url.rsplit(":", 1)[1]))
        header = f"Authorization: Bearer {token}\x01"
        writer.write(f"GET /test-auth HTTP/1.1\r\nHost: x\r\n{header}\r\n\r\n".encode())
        await writer.drain()
        await reader.read()
        writer.close()
        await writer.wait_closed()

    written = output.everything()
    assert "Malformed HTTP message" in written  # the raw-socket case did reach the log
    assert "[redacted]" in written
    for name, token in tokens.items():
        signature = token.rsplit(".", 1)[1]
        assert signature not in written, name
        own = [r.getMessage() for r in output.records if r.name.startswith("jotguard")]
        assert not any(signature in message for message in own), name


@pytest.mark.slow
def test_serve_writes_json_lines(tmp_path):
    with live_jotguard(tmp_path / "data", {"JOTGUARD_LOG_FORMAT": "json"}) as server:
        import urllib.request

        urllib.request.urlopen(server.url + "test", timeout=5).read()  # noqa: S310
    entries = [json.loads(line) for line in server.lines]
    assert any(e.get("route") == "/test" and e.get("status") == 200 for e in entries)
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)


def test_text_lines_carry_the_time_to_the_millisecond_as_logging_would():
    formatter = TextFormatter()
    standard = logging.Formatter("%(asctime)s")
    for created in (1_800_000_000.001, 1_800_000_000.999, 1_800_000_001.5, 1_800_000_000.25):
        record = logging.LogRecord("jotguard", logging.INFO, "", 0, "hi", (), None)
        record.created, record.msecs = created, (created - int(created)) * 1000
        assert formatter.formatTime(record) == standard.formatTime(record)


def test_a_text_line_without_a_traceback_is_what_formatter_format_makes():
    formatter = TextFormatter()
    for message, args in (("sub=%s", ("alice",)), ("100% literal", ())):
        record = logging.LogRecord("jotguard", logging.INFO, "", 0, message, args, None)
        assert formatter.format(record) == logging.Formatter.format(formatter, record)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_worker_lines_are_tagged_and_still_redacted(fmt, monkeypatch):
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    monkeypatch.setattr(logging.getLogger(), "handlers", [handler])
    tag_worker(3)
    record = logging.LogRecord(
        "tornado.general", logging.WARNING, "", 0, "bad: Bearer %s", ("a" * 40,), None
    )
    line = handler.format(record)
    assert "a" * 40 not in line
    assert "[redacted]" in line
    if fmt == "json":
        entry = json.loads(line)
        assert (entry["worker"], entry["pid"]) == (3, os.getpid())
    else:
        assert f"[worker 3 pid {os.getpid()}] tornado.general:" in line


# -- jotguard's handler: lines queued on the loop, written once a loop turn ----------------


@contextlib.contextmanager
def on_root(*handlers: logging.Handler) -> Iterator[None]:
    """``handlers`` alone on the root for the block, at DEBUG."""
    root = logging.getLogger()
    with mock.patch.object(root, "handlers", list(handlers)):
        previous = root.level
        root.setLevel(logging.DEBUG)
        try:
            yield
        finally:
            root.setLevel(previous)


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()], ids=["text", "json"])
async def test_queued_lines_are_what_a_plain_stream_handler_writes(fetch, services, formatter):
    issued = services.issuer.sign(services.issuer.claims_for("alice"))
    ours, plain = io.StringIO(), io.StringIO()
    standard = logging.StreamHandler(plain)
    standard.setFormatter(formatter)
    handler = LineHandler(ours)
    handler.setFormatter(formatter)
    with on_root(handler, standard):
        await fetch("/test-auth", token=issued.token)
        await fetch("/test-auth", token="not-a-token")
        handler.flush()
    lines = [line for line in ours.getvalue().splitlines() if "jotguard.access" in line]
    assert len(lines) == 2
    assert "auth=success sub=alice" in lines[0] or '"auth": "success"' in lines[0]
    assert ours.getvalue() == plain.getvalue()


async def test_lines_are_written_once_the_loop_turns_and_keep_their_order():
    stream = io.StringIO()
    handler = LineHandler(stream)
    handler.setFormatter(TextFormatter())
    log = logging.getLogger("jotguard.access")
    with on_root(handler):
        log.info("first")
        logging.getLogger("jotguard").warning("second")
        assert stream.getvalue() == ""  # both wait for the loop's turn
        # Off the loop (a thread pool's worker): what waits is written first, then the line.
        await asyncio.get_running_loop().run_in_executor(None, log.info, "third")
        assert stream.getvalue().count("\n") == 3
        log.info("fourth")
        await asyncio.sleep(0)
        assert stream.getvalue().count("\n") == 4
    messages = [line.rsplit(": ", 1)[1] for line in stream.getvalue().splitlines()]
    assert messages == ["first", "second", "third", "fourth"]


def test_lines_outside_a_loop_are_written_at_once_and_shutdown_writes_the_rest():
    stream = io.StringIO()
    handler = LineHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.INFO)  # asyncio's DEBUG line as a loop starts would flush the queue
    log = logging.getLogger("jotguard.access")

    def statuses() -> list[int]:
        entries = [json.loads(x) for x in stream.getvalue().splitlines()]
        return [e["status"] for e in entries if e["logger"] == "jotguard.access"]

    def queue(status: int) -> None:
        log.info("queued", extra={"fields": {"status": status}})

    def stranded(status: int) -> None:
        """Queued on a loop that stops and closes before its write runs."""
        loop = asyncio.new_event_loop()
        loop.call_soon(lambda: (queue(status), loop.stop()))
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def on_a_loop(status: int) -> None:
        queue(status)

    with on_root(handler):
        queue(200)
        assert statuses() == [200]
        stranded(201)
        assert statuses() == [200]
        # The closed loop's write never runs; the next loop's must, and take it along.
        asyncio.run(on_a_loop(202))
        assert statuses() == [200, 201, 202]
        stranded(203)
        handler.flush()  # what logging.shutdown() does at exit
    assert statuses() == [200, 201, 202, 203]


async def test_a_filter_on_the_access_logger_is_honoured(fetch):
    stream = io.StringIO()
    handler = LineHandler(stream)
    handler.setFormatter(TextFormatter())
    access = logging.getLogger("jotguard.access")
    with on_root(handler):
        access.addFilter(lambda record: "/test " not in record.getMessage())
        try:
            await fetch("/test")
            await fetch("/nowhere")
        finally:
            access.filters.clear()
        handler.flush()
    [line] = [line for line in stream.getvalue().splitlines() if "jotguard.access" in line]
    assert " 404 " in line


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()], ids=["text", "json"])
async def test_queued_lines_are_redacted_line_by_line(formatter):
    # The one line holding a token is masked, its neighbours are written as they are,
    # and nothing is lost.
    stream = io.StringIO()
    handler = LineHandler(stream)
    handler.setFormatter(formatter)
    log = logging.getLogger("jotguard.access")
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl"
    with on_root(handler):
        for message in ("before sub=alice", f"leak sub={token}", "Bearer abcdefghijklmnop"):
            log.info("%s", message, extra={"fields": {"n": 1}})
        log.info("after", extra={"fields": {"sub": token}})
        assert stream.getvalue() == ""
        await asyncio.sleep(0)
    written = stream.getvalue()
    assert token not in written
    assert "abcdefghijklmnop" not in written
    lines = written.splitlines()
    assert len(lines) == 4
    assert "before sub=alice" in lines[0]
    assert f"leak sub={REDACTED}" in lines[1]
    assert f"Bearer {REDACTED}" in lines[2]
    # The token in a field: the JSON line carries fields, the text line only the message.
    expected = REDACTED if isinstance(formatter, JsonFormatter) else "after"
    assert expected in lines[3]
