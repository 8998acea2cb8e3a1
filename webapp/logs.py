"""Log output: text or JSON lines, with credentials masked as a last line of defence.

jotguard's own lines never carry a token (they log the ``jti``), but a library
can: Tornado logs a malformed header's value, ``Authorization`` included. Every
formatted line therefore passes through :func:`redact` before it is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

_CREDENTIALS = re.compile(
    # an Authorization value (RFC 6750 b64token; short words such as realm= are left alone)
    r"(?i)\b(?P<scheme>bearer|basic|dpop)(?P<sep>\s+)[A-Za-z0-9\-._~+/]{12,}=*"
    # a JWS or JWE: its base64url header starts with {" -> eyJ
    r"|eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_.-]*"
    # the password in a URL such as redis://user:secret@host
    r"|(?P<userinfo>[a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s/@]+(?=@)"
    # secrets in a query string or form body
    r"|\b(?P<param>access_token|refresh_token|id_token|client_secret|password|token)="
    r"[^&\s'\"]+"
)

REDACTED = "[redacted]"


def _mask(match: re.Match[str]) -> str:
    if match.group("scheme"):
        return match.group("scheme") + match.group("sep") + REDACTED
    if match.group("userinfo"):
        return match.group("userinfo") + REDACTED
    if match.group("param"):
        return match.group("param") + "=" + REDACTED
    return REDACTED


# Every alternative above needs one of these (the pattern ignores case). An ASCII line
# without any cannot match, and skips the regex: its scan of long alphanumeric runs
# (request ids, jtis) made it the dearest step of an access-log line, and of a request.
_TRIGGERS = ("bearer", "basic", "dpop", "eyj", "://", "token=", "password=", "client_secret=")


def may_hold_credentials(text: str) -> bool:
    """False only when :func:`redact` would leave ``text`` as it is."""
    if not text.isascii():
        return True
    lowered = text.lower()
    for trigger in _TRIGGERS:  # noqa: SIM110 - any() over a generator costs a third more
        if trigger in lowered:
            return True
    return False


def redact(text: str) -> str:
    """``text`` with bearer credentials, JWTs and secret parameters masked."""
    if not may_hold_credentials(text):
        return text
    return _CREDENTIALS.sub(_mask, text)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message``; ``tag`` (a worker's) goes before the logger name."""

    def __init__(self, tag: str = "") -> None:
        super().__init__()
        self._tag = f"{tag} " if tag else ""
        self._second = -1
        self._second_text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self._stamp(record.created, record.msecs)

    def _stamp(self, created: float, msecs: float) -> str:
        # One strftime per second, not per line: the access log writes a line per request.
        second = int(created)
        if second != self._second:
            self._second_text = time.strftime(self.default_time_format, self.converter(second))
            self._second = second
        return f"{self._second_text},{int(msecs):03d}"

    def formatMessage(self, record: logging.LogRecord) -> str:
        stamp = self._stamp(record.created, record.msecs)
        return f"{stamp} {record.levelname} {self._tag}{record.name}: {record.message}"

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))

    def render(
        self, created: float, level: int, name: str, message: str, fields: Mapping[str, Any]
    ) -> str:
        """The line :meth:`format` writes for such a record, without building the record,
        before :func:`redact` (the caller's to apply)."""
        stamp = self._stamp(created, (created - int(created)) * 1000)
        return f"{stamp} {logging.getLevelName(level)} {self._tag}{name}: {message}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a record's ``fields`` (the access log's) become keys,
    and so do ``tags`` (a worker's number and pid) on every line."""

    def __init__(self, tags: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.tags = dict(tags or {})

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        exception = self.formatException(record.exc_info) if record.exc_info else None
        line = self._line(
            record.created,
            record.levelname,
            record.name,
            record.getMessage(),
            fields if isinstance(fields, Mapping) else None,
            exception,
        )
        return redact(line)

    def render(
        self, created: float, level: int, name: str, message: str, fields: Mapping[str, Any]
    ) -> str:
        """The line :meth:`format` writes for such a record, without building the record,
        before :func:`redact` (the caller's to apply)."""
        return self._line(created, logging.getLevelName(level), name, message, fields, None)

    def _line(
        self,
        created: float,
        levelname: str,
        name: str,
        message: str,
        fields: Mapping[str, Any] | None,
        exception: str | None,
    ) -> str:
        entry: dict[str, Any] = {
            "time": _utc(created),
            "level": levelname,
            "logger": name,
            **self.tags,
            "message": message,
        }
        if fields is not None:
            entry.update(fields)
        if exception is not None:
            entry["exception"] = exception
        return json.dumps(entry, default=str, ensure_ascii=False)


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """jotguard's own handler, the one :func:`configure_logging` installs.

    It can :meth:`write_line` a line without a ``LogRecord``: the access log writes
    one per request, and building the record, passing it down the logger tree and
    formatting it cost more than the rest of the line's work. On the event loop
    those lines are written together once the loop's current callbacks have run,
    one write for many requests; every other record first writes what is pending,
    so lines keep their order. A batch is searched for anything :func:`redact`
    would mask once, and its lines are redacted one by one only if it finds some.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending: list[str] = []

    def write_line(self, level: int, name: str, message: str, fields: Mapping[str, Any]) -> bool:
        """Write the line a record would become; False when it must go through ``logging``."""
        formatter = self.formatter
        if not isinstance(formatter, TextFormatter | JsonFormatter):
            return False
        line = formatter.render(time.time(), level, name, message, fields)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self.lock:  # type: ignore[union-attr]
            if loop is not None:
                if not self._pending:
                    loop.call_soon(self.flush)
                self._pending.append(line)
                return True
            try:
                self.stream.write(redact(line) + self.terminator)
                super().flush()
            except (OSError, ValueError):
                return False  # logging reports the failure its own way
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.flush()
        super().emit(record)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self._pending:
                lines, self._pending = self._pending, []
                end = self.terminator
                text = end.join(lines) + end
                if may_hold_credentials(text):
                    text = end.join([redact(line) for line in lines]) + end
                with contextlib.suppress(OSError, ValueError):
                    self.stream.write(text)
            super().flush()


def sole_handler(logger: logging.Logger, level: int) -> LineHandler | None:
    """The jotguard handler a ``level`` record of ``logger`` would reach, if it is the only
    thing that would see it: no filter, no other handler on the way to the root.

    Checked on each call, so a handler or filter added at any time (pytest's caplog,
    an embedding application's own) is honoured through ``logging`` as usual.
    """
    current: logging.Logger | None = logger
    while current is not None and current.parent is not None:
        if current.handlers or current.filters or current.disabled or not current.propagate:
            return None
        current = current.parent
    if current is None or current.filters or len(current.handlers) != 1:
        return None
    handler = current.handlers[0]
    if type(handler) is not LineHandler or handler.filters or level < handler.level:
        return None
    return handler


def tag_worker(number: int) -> None:
    """Mark every line of this process as worker ``number``'s, in the configured format."""
    pid = os.getpid()
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, JsonFormatter):
            handler.setFormatter(JsonFormatter({"worker": number, "pid": pid}))
        else:
            handler.setFormatter(TextFormatter(f"[worker {number} pid {pid}]"))


def _utc(created: float) -> str:
    millis = int(created * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{millis:03d}Z"


def configure_logging(level: str, fmt: str, stream: TextIO = sys.stderr) -> None:
    """Route every logger to ``stream`` in ``fmt`` ("text" or "json")."""
    handler = LineHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # Neither format shows the caller's file and line, thread or process: the logging
    # HOWTO's "Optimization" switches spare every record (an access line per request)
    # a walk up the stack and three lookups.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
