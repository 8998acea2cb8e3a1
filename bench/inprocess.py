"""What a whole request costs inside the process, with no sockets and no load generator.

Requests go through each application's own routing, handler, ``finish`` and log
exactly as from a connection, but into a connection that only collects the answer.
Under wrk the machine drifts by ±20% between rounds; here the minimum of 11 runs
moves by about 10% from one invocation to the next, and every case is measured in
the same runs, interleaved, so the figure to compare is the gap between jotguard's
routes and Tornado's hello world, and between a Bearer and a DPoP request (a bound
token and a fresh ES256 proof each, signed before the run's clock starts). Prints
microseconds per request (minimum and median of the runs).

    .venv/bin/python -m bench.inprocess [--runs 11] [--requests 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TextIO

import tornado.web
from tornado import httputil
from tornado.concurrent import Future

from backends.dpop import generate_key, jwk_thumbprint
from bench.dpop_targets import DEFAULT_PROOF_LIFETIME, DPoPClient
from bench.targets import UNREACHABLE_LIMITS

ISSUER = "http://127.0.0.1:8899/"


class Collector:
    """The HTTP connection a handler writes to: it keeps the status and nothing else."""

    context = SimpleNamespace(remote_ip="127.0.0.1", protocol="http")

    def __init__(self) -> None:
        self.status = 0

    def set_close_callback(self, callback: Callable[[], None] | None) -> None:
        pass

    def write_headers(
        self, start_line: Any, headers: httputil.HTTPHeaders, chunk: bytes | None = None
    ) -> Future[None]:
        self.status = start_line.code
        return _done()

    def write(self, chunk: bytes) -> Future[None]:
        return _done()

    def finish(self) -> None:
        pass


def _done() -> Future[None]:
    future: Future[None] = Future()
    future.set_result(None)
    return future


Credentials = Sequence[Mapping[str, str]]  # request headers: one for all, or one each


def serve_one(app: tornado.web.Application, path: str, extra: Mapping[str, str]) -> Collector:
    """Hand one GET to ``app`` as its HTTP server would; the answer may still be pending."""
    connection = Collector()
    start = httputil.RequestStartLine("GET", path, "HTTP/1.1")
    headers = httputil.HTTPHeaders({"Host": "127.0.0.1:8899", "User-Agent": "bench", **extra})
    request = httputil.HTTPServerRequest(
        start_line=start,
        headers=headers,
        connection=connection,  # type: ignore[arg-type]
    )
    delegate = app.find_handler(request)
    delegate.headers_received(start, headers)
    delegate.finish()
    return connection


async def per_request(
    app: tornado.web.Application, path: str, credentials: Credentials, requests: int
) -> float:
    """Microseconds per request, one request per loop turn (as a busy server runs them);
    ``credentials`` holds one set of headers for every request, or one per request."""
    headers = list(credentials) * (requests if len(credentials) == 1 else 1)
    if len(headers) < requests:
        raise ValueError(f"{requests} requests, headers for {len(headers)}")
    started = time.perf_counter()
    for n in range(requests):
        serve_one(app, path, headers[n])
        await asyncio.sleep(0)
    return (time.perf_counter() - started) / requests * 1e6


class Hello(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write("This is an unprotected route.")


async def measure(runs: int, requests: int, data_dir: Path, log: TextIO) -> None:
    os.environ.update(
        JOTGUARD_DATA_DIR=str(data_dir),
        JOTGUARD_ENV_FILE=str(data_dir / "absent.env"),
        JOTGUARD_ISSUER=ISSUER,
        **UNREACHABLE_LIMITS,
    )
    from webapp.config.settings import Settings
    from webapp.service.app import make_app
    from webapp.service.datadir import prepared
    from webapp.service.logs import configure_logging
    from webapp.service.services import Services

    # As `jotguard init` would: the server never creates a keyring itself.
    settings, _ = prepared(Settings.load())
    # The access log on, as on the embedded defaults, written where it costs no disk.
    configure_logging(settings.log_level, settings.log_format, log)
    services = await Services.start(settings)
    try:
        token = services.issuer.sign(services.issuer.claims_for("bench-user")).token
        # DPoP (RFC 9449): a token bound to one key, a fresh proof per request, signed
        # before each run (bench.dpop_targets does the same for the load runs).
        key = generate_key("ES256")
        bound = {"cnf": {"jkt": jwk_thumbprint(key)}}
        dpop_token = services.issuer.sign(services.issuer.claims_for("bench-user", extra=bound))
        client = DPoPClient(key, dpop_token.token, "", DEFAULT_PROOF_LIFETIME)
        jotguard = make_app(services)
        hello = tornado.web.Application([(r"/test", Hello)], log_function=lambda _: None)
        bearer = [{"Authorization": f"Bearer {token}"}]
        cases: list[tuple[str, tornado.web.Application, str, Callable[[int], Credentials]]] = [
            ("tornado hello world /test", hello, "/test", lambda n: [{}]),
            ("jotguard /test", jotguard, "/test", lambda n: [{}]),
            ("jotguard /test-auth", jotguard, "/test-auth", lambda n: bearer),
            (
                "jotguard /test-auth DPoP",
                jotguard,
                "/test-auth",
                lambda n: client.per_request("http://127.0.0.1:8899/test-auth", n).entries,
            ),
        ]
        for _, app, path, credentials in cases:
            answer = serve_one(app, path, credentials(1)[0])
            await asyncio.sleep(0.01)
            if answer.status != 200:
                raise SystemExit(f"GET {path} answered {answer.status}, expected 200")
            warm = requests // 10
            await per_request(app, path, credentials(warm), warm)
        timings: dict[str, list[float]] = {name: [] for name, *_ in cases}
        for _ in range(runs):  # interleaved, so drift touches every case alike
            for name, app, path, credentials in cases:
                prepared_headers = credentials(requests)  # signed before the clock starts
                timings[name].append(await per_request(app, path, prepared_headers, requests))
    finally:
        await services.close()
    print(f"{runs} runs of {requests:,} requests each, microseconds per request:")
    print(f"  {'':28} {'min':>7} {'median':>7}")
    for name, values in timings.items():
        print(f"  {name:28} {min(values):7.1f} {statistics.median(values):7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="jotguard-inprocess-") as data_dir,
        open(os.devnull, "w") as log,
    ):
        asyncio.run(measure(args.runs, args.requests, Path(data_dir), log))


if __name__ == "__main__":
    main()
