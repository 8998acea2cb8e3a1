"""Run the service until SIGINT/SIGTERM, then shut down cleanly."""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import socket
from typing import Any

import uvloop
from tornado.netutil import bind_sockets

from backends.storage.urls import redact
from webapp.config.settings import Settings
from webapp.service.app import make_app, make_metrics_app
from webapp.service.bootstrap import bootstrap_admin_client
from webapp.service.connections import ConnectionServer, connection_cap, raise_open_file_limit
from webapp.service.services import Services

log = logging.getLogger("jotguard")

SHUTDOWN_GRACE_SECONDS = 4.0
METRICS_HOST = "127.0.0.1"
METRICS_CONNECTIONS = 32  # scrapers only


class ListenError(Exception):
    """The address cannot be listened on; ``str()`` is the one line to print."""


def listen(host: str, port: int) -> list[socket.socket]:
    """Bound listening sockets for ``host``:``port``.

    :raises ListenError: ``cannot listen on 127.0.0.1:8888: address already in use``.
    """
    try:
        return bind_sockets(port, host)
    except OSError as exc:  # socket.gaierror included: a host name that does not resolve
        shown = f"[{host}]" if ":" in host else host
        reason = (exc.strerror or str(exc)).lower()
        raise ListenError(f"cannot listen on {shown}:{port}: {reason}") from None


def run_service(settings: Settings, *, sockets: list[socket.socket] | None = None) -> None:
    """:func:`serve` on uvloop: Tornado re-registers each connection's socket and runs
    several callbacks per request, and uvloop does that in C rather than in Python.

    The port is bound before anything starts, so a busy one stops start-up at once.

    :raises ListenError: the port (or the metrics port) cannot be listened on.
    """
    if sockets is None:
        sockets = listen(settings.host, settings.port)
    uvloop.run(serve(settings, sockets=sockets))


async def serve(settings: Settings, *, sockets: list[socket.socket]) -> None:
    """Serve on ``sockets`` (bound by :func:`run_service`, or a worker's) until SIGINT/SIGTERM."""
    metrics_sockets = None
    if settings.metrics_port is not None:
        metrics_sockets = listen(METRICS_HOST, settings.metrics_port)
    services = await Services.start(settings)
    log.info("revocation store: %s", redact(settings.revocation_store_url))
    log.info("client addresses: %s", services.rate_limits.addresses.describe())
    if not services.revocations.durable:
        log.warning(
            "REVOCATIONS ARE NOT DURABLE: JOTGUARD_REVOCATION_STORE=memory:// keeps them in this"
            " process only; a restart un-revokes every token and `jotguard revoke` cannot reach"
            " this server. Use sqlite:///, redis:// or mongodb:// in production."
        )
    app = make_app(services)
    server = ConnectionServer(
        app, max_connections=max_connections(settings), **connection_limits(settings)
    )
    server.add_sockets(sockets)
    log.info("jotguard listening on %s (issuer %s)", _address(sockets[0]), settings.issuer_url)
    metrics_server = None
    if metrics_sockets is not None:
        metrics_server, address = listen_metrics(services, metrics_sockets)
        log.info("metrics on %smetrics", address)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await bootstrap_admin_client(services, _address(sockets[0]))
    await stop.wait()

    log.info("shutting down: no new connections, finishing requests in flight")
    server.stop()
    if metrics_server is not None:
        metrics_server.stop()
    if not await app.wait_idle(SHUTDOWN_GRACE_SECONDS):
        log.warning(
            "%d requests still in flight after %.0fs", app.in_flight, SHUTDOWN_GRACE_SECONDS
        )
    try:
        await asyncio.wait_for(server.close_all_connections(), timeout=1.0)
    except asyncio.TimeoutError:
        log.warning("some connections did not close in time")
    await services.close()
    log.info("stopped")


def connection_limits(settings: Settings) -> dict[str, Any]:
    """What a connection may hold and for how long; Tornado's defaults are 100 MB and an hour."""
    return {
        # Bodies without a Content-Length (chunked) are cut off here, with Tornado's 400.
        "max_body_size": settings.max_body_bytes,
        "idle_connection_timeout": settings.idle_timeout,
        "body_timeout": settings.body_timeout,
    }


def max_connections(settings: Settings) -> int:
    """JOTGUARD_MAX_CONNECTIONS under this process's open-file limit, raised first to the
    hard limit where allowed; says what it got."""
    before, soft, hard = raise_open_file_limit()
    cap = connection_cap(settings.max_connections, soft)
    raised = f", raised from {before}" if soft != before else ""
    lowered = (
        f" (JOTGUARD_MAX_CONNECTIONS={settings.max_connections} lowered to 3/4 of the"
        " open-file limit)"
        if cap < settings.max_connections
        else ""
    )
    log.info(
        "open-file limit %s%s (hard limit %s): at most %d connections%s",
        _limit(soft),
        raised,
        _limit(hard),
        cap,
        lowered,
    )
    return cap


def _limit(value: int) -> str:
    return "unlimited" if value == resource.RLIM_INFINITY else str(value)


def listen_metrics(
    services: Services, sockets: list[socket.socket]
) -> tuple[ConnectionServer, str]:
    """Serve ``/metrics`` alone on ``sockets`` (127.0.0.1): scrapers only, never the public."""
    server = ConnectionServer(
        make_metrics_app(services),
        max_connections=METRICS_CONNECTIONS,
        **connection_limits(services.settings),
    )
    server.add_sockets(sockets)
    return server, _address(sockets[0])


def _address(sock: object) -> str:
    host, port = sock.getsockname()[:2]  # type: ignore[attr-defined]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"
