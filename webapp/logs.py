"""Log output: text or JSON lines, with credentials masked as a last line of defence.

jotguard's own lines never carry a token (they log the ``jti``), but a library
can: Tornado logs a malformed header's value, ``Authorization`` included. Every
formatted line therefore passes through :func:`redact` before it is written.
"""

from __future__ import annotations

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


def redact(text: str) -> str:
    """``text`` with bearer credentials, JWTs and secret parameters masked."""
    if text.isascii():
        lowered = text.lower()
        if not any(trigger in lowered for trigger in _TRIGGERS):
            return text
    return _CREDENTIALS.sub(_mask, text)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message``; ``tag`` (a worker's) goes before the logger name."""

    def __init__(self, tag: str = "") -> None:
        tag = tag.replace("%", "%%") + " " if tag else ""
        super().__init__(f"%(asctime)s %(levelname)s {tag}%(name)s: %(message)s")
        self._second = -1
        self._second_text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        # One strftime per second, not per line: the access log writes a line per request.
        second = int(record.created)
        if second != self._second:
            self._second_text = time.strftime(self.default_time_format, self.converter(second))
            self._second = second
        return f"{self._second_text},{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


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
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # Neither format shows the caller's file and line, thread or process: the logging
    # HOWTO's "Optimization" switches spare every record (an access line per request)
    # a walk up the stack and three lookups.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
