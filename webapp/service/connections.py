"""Accepting connections: a cap on how many are open, a back-off when the process runs out
of file descriptors, and a 431 for a request head over the limit.

Tornado's accept loop (``tornado.netutil.add_accept_handler``) lets ``accept()``'s
``EMFILE`` escape; the listening socket stays readable, so it is called again at once:
measured, 100,808 tracebacks in 10 s and a core at 100 %. And a head over
``max_header_size`` closes the connection without a word. :class:`ConnectionServer` is
an ``HTTPServer`` that accepts for itself through the IOLoop's public ``add_handler``,
hands each connection to ``handle_stream`` as ``TCPServer`` would, and counts it until
``on_close`` (both public ``HTTPServer`` methods), so it can refuse what is over the cap
cheaply and pause, instead of spin, when ``accept()`` fails for want of resources. It
writes nothing into Tornado's private state; the 431 works through ``IOStream``'s public
``close``/``close_fd`` (see :class:`_HeadLimitedStream`).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import resource
import socket
import time
from asyncio import Future
from collections.abc import Iterable
from typing import Any, cast

from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream, UnsatisfiableReadError

log = logging.getLogger("jotguard")

MAX_HEADER_BYTES = 64 * 1024  # Tornado's default, named here for the 431's message
# Of the open-file limit, what connections may take; the rest is for stores, logs, SQLite
# and outbound calls.
FILE_SHARE = 0.75
ACCEPTS_PER_WAKE = 128  # as Tornado's accept loop: the listen backlog's default
PAUSE_FIRST, PAUSE_MOST = 0.01, 1.0
LOG_EVERY = 10.0
# A head over the limit is read into nothing while the 431 goes out, up to this much.
DRAIN_BYTES, DRAIN_SECONDS = 16 * 1024 * 1024, 5.0
# Errors a connection already had in the queue; Linux accept(2) says to retry.
_PENDING_NETWORK_ERRORS = frozenset(
    getattr(errno, name)
    for name in (
        "ECONNABORTED", "EPROTO", "ENETDOWN", "ENOPROTOOPT", "EHOSTDOWN", "ENONET",
        "EHOSTUNREACH", "EOPNOTSUPP", "ENETUNREACH", "EPERM",
    )
    if hasattr(errno, name)
)  # fmt: skip


def raise_open_file_limit() -> tuple[int, int, int]:
    """Raise this process's soft open-file limit to its hard limit where allowed:
    (soft before, soft now, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return soft, soft, hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError):
        return soft, soft, hard
    return soft, wanted, hard


def connection_cap(configured: int, open_files: int) -> int:
    """What ``JOTGUARD_MAX_CONNECTIONS`` becomes under an open-file limit of ``open_files``."""
    if open_files == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, int(open_files * FILE_SHARE)))


def _canned(status: str, error: str, description: str, extra: str = "") -> bytes:
    body = json.dumps({"error": error, "error_description": description}).encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n{extra}"
        f"Connection: close\r\nContent-Length: {len(body)}\r\n"
    )
    return head.encode() + b"X-Request-ID: %s\r\n\r\n" + body


_OVER_CAP = _canned(
    "503 Service Unavailable",
    "temporarily_unavailable",
    "The server has as many connections open as it takes; retry",
    "Retry-After: 1\r\n",
)
_HEAD_TOO_LARGE = _canned(
    "431 Request Header Fields Too Large",
    "headers_too_large",
    f"The request line and headers must be at most {MAX_HEADER_BYTES // 1024} KiB",
)


def _answer(template: bytes) -> bytes:
    return template.replace(b"%s", os.urandom(16).hex().encode(), 1)


class _EveryInterval:
    """A log line at most once per ``LOG_EVERY`` seconds, counting what it stands for."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.count = 0
        self.logged_at: float | None = None

    def note(self, *args: object) -> None:
        self.count += 1
        now = time.monotonic()
        if self.logged_at is None or now - self.logged_at >= LOG_EVERY:
            log.warning(self.message, self.count, *args)
            self.count = 0
            self.logged_at = now


class ConnectionServer(HTTPServer):
    """``HTTPServer(app, max_connections=N, **limits)``: at most N connections open; the
    next get a 503 at once and are closed. Not for TLS (``ssl_options``): terminate TLS
    in front of jotguard."""

    def initialize(self, *args: Any, max_connections: int = 10000, **kwargs: Any) -> None:
        if kwargs.get("ssl_options") is not None:
            raise ValueError("ConnectionServer does not terminate TLS")
        kwargs.setdefault("max_header_size", MAX_HEADER_BYTES)
        super().initialize(*args, **kwargs)
        self.max_connections = max_connections
        self.open_connections = 0  # handed to Tornado, not yet closed
        self.draining = 0  # answered 431, reading the rest of the head into nothing
        self._acceptors: list[_Acceptor] = []
        self._over_cap = _EveryInterval(
            "refused %d connections: %d are open, the most this process takes"
            " (JOTGUARD_MAX_CONNECTIONS)"
        )
        self._cannot_accept = _EveryInterval(
            "could not accept connections %d times (%s); pausing accept, up to 1s at a time"
            " (raise the open-file limit, or lower JOTGUARD_MAX_CONNECTIONS)"
        )

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        for sock in sockets:
            acceptor = _Acceptor(self, sock)
            self._acceptors.append(acceptor)
            acceptor.start()

    def stop(self) -> None:
        for acceptor in self._acceptors:
            acceptor.stop()
        self._acceptors.clear()
        super().stop()

    def accepted(self, connection: socket.socket, address: Any) -> None:
        if self.open_connections + self.draining >= self.max_connections:
            _refuse(connection, _answer(_OVER_CAP))
            self._over_cap.note(self.open_connections + self.draining)
            return
        stream = _HeadLimitedStream(
            self, connection, max_buffer_size=self.max_buffer_size,
            read_chunk_size=self.read_chunk_size,
        )  # fmt: skip
        self.open_connections += 1
        self.handle_stream(stream, address)

    def on_close(self, server_conn: object) -> None:
        self.open_connections -= 1
        super().on_close(server_conn)

    def cannot_accept(self, exc: OSError) -> None:
        self._cannot_accept.note(exc.strerror or type(exc).__name__)

    def answer_head_too_large(self, sock: socket.socket) -> None:
        self.draining += 1
        _Drain(self, sock).start(_answer(_HEAD_TOO_LARGE))


def _refuse(connection: socket.socket, answer: bytes) -> None:
    # Read what the client already sent, so closing is a FIN the 503 arrives before,
    # not a reset that may throw it away.
    connection.setblocking(False)
    try:
        connection.send(answer)
        connection.recv(65536)
    except OSError:
        pass
    connection.close()


class _Acceptor:
    """Accepts on one listening socket; pauses when ``accept()`` fails."""

    def __init__(self, server: ConnectionServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.io_loop = IOLoop.current()
        self.pause = PAUSE_FIRST
        self.listening = False
        self.stopped = False

    def start(self) -> None:
        if not self.stopped and not self.listening:
            self.io_loop.add_handler(self.sock, self._ready, IOLoop.READ)
            self.listening = True

    def stop(self) -> None:
        """Stop listening: the socket is closed, as TCPServer.stop closes its own."""
        self.stopped = True
        if self.listening:
            self.io_loop.remove_handler(self.sock)
            self.listening = False
        self.sock.close()

    def _ready(self, fd: Any, events: int) -> None:
        for _ in range(ACCEPTS_PER_WAKE):
            if not self.listening:
                return
            try:
                connection, address = self.sock.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in _PENDING_NETWORK_ERRORS:
                    continue
                # EMFILE, ENFILE, ENOBUFS, ENOMEM...: retrying at once cannot succeed.
                self._pause(exc)
                return
            self.pause = PAUSE_FIRST
            self.server.accepted(connection, address)

    def _pause(self, exc: OSError) -> None:
        self.server.cannot_accept(exc)
        self.io_loop.remove_handler(self.sock)
        self.listening = False
        self.io_loop.call_later(self.pause, self.start)
        self.pause = min(self.pause * 2, PAUSE_MOST)


class _HeadLimitedStream(IOStream):
    """A connection's stream that answers 431 when the request head outgrows the limit.

    Tornado reads a request head with ``read_until_regex(..., max_bytes=max_header_size)``
    and, when the limit is passed, closes the stream with the ``UnsatisfiableReadError``
    and answers nothing. Here that close hands the socket over to :class:`_Drain`
    (``close_fd`` leaves it open) once Tornado has let go of it.
    """

    def __init__(self, server: ConnectionServer, sock: socket.socket, **kwargs: Any) -> None:
        super().__init__(sock, **kwargs)
        self._server = server
        self._reading_head = False
        self._handed_over = False

    def read_until_regex(self, regex: Any, max_bytes: int | None = None) -> Any:
        # Tornado reads a head, and nothing else, this way.
        self._reading_head = True
        future = cast("Future[bytes]", super().read_until_regex(regex, max_bytes))
        future.add_done_callback(self._head_read)
        return future

    def _head_read(self, future: Any) -> None:
        self._reading_head = False

    def close(self, exc_info: Any = False) -> None:
        too_large = isinstance(exc_info, UnsatisfiableReadError) and self._reading_head
        if too_large and not self.closed():
            sock = self.socket
            self._handed_over = True
            super().close(exc_info)
            self._server.answer_head_too_large(sock)
            return
        super().close(exc_info)

    def close_fd(self) -> None:
        if not self._handed_over:
            super().close_fd()


class _Drain:
    """Send the 431, then read the rest of the head into nothing until the client stops
    (bounded), so the client reads the answer instead of a reset."""

    def __init__(self, server: ConnectionServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.io_loop = IOLoop.current()
        self.left = DRAIN_BYTES
        self.deadline: object | None = None

    def start(self, answer: bytes) -> None:
        try:
            self.sock.send(answer)
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._done()
            return
        self.io_loop.add_handler(self.sock, self._readable, IOLoop.READ)
        self.deadline = self.io_loop.call_later(DRAIN_SECONDS, self._done)

    def _readable(self, fd: Any, events: int) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        self.left -= len(data)
        if not data or self.left <= 0:
            self._done()

    def _done(self) -> None:
        if self.sock.fileno() < 0:
            return
        if self.deadline is not None:
            self.io_loop.remove_timeout(self.deadline)
            self.io_loop.remove_handler(self.sock)
        self.sock.close()
        self.server.draining -= 1
