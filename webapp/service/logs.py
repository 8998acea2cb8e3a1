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
        if record.exc_info or record.exc_text or record.stack_info:
            return redact(super().format(record))
        # What Formatter.format makes of a line without a traceback, minus its checks for
        # one: the access log writes a line per request.
        record.message = record.getMessage()
        return redact(self.formatMessage(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a record's ``fields`` (the access log's) become keys,
    and so do ``tags`` (a worker's number and pid) on every line."""

    def __init__(self, tags: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.tags = dict(tags or {})

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            **self.tags,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """jotguard's own handler, the one :func:`configure_logging` installs.

    A record emitted on a running event loop is formatted at once and queued, and the
    queue is written in one ``write`` once the loop has run its current callbacks: the
    access log writes a line per request, and a write and flush per line cost more than
    the rest of the line's work. A record emitted off the loop (another thread, a CLI
    command) writes the queue first, then itself, so lines keep their order.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._flush_scheduled_on: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            super().emit(record)
            return
        try:
            line = self.format(record)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
            return
        # logging.Handler.handle holds self.lock around emit().
        self._pending.append(line)
        # A loop closed before its flush ran (a test's) must not strand the next lines.
        if self._flush_scheduled_on is not loop:
            self._flush_scheduled_on = loop
            loop.call_soon(self.flush)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._flush_scheduled_on = None
            if self._pending:
                end = self.terminator
                text = end.join(self._pending) + end
                self._pending = []
                with contextlib.suppress(OSError, ValueError):
                    self.stream.write(text)
            super().flush()


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
