"""The benchmark's load generators send what they are given: the same headers on every
request, or each prepared per-request entry once (the shape a DPoP target needs), and a
run that outgrows its prepared list is void. Functional checks, never timings."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import bench.load
from bench.load import LoadResult, PerRequest, parse_wrk, run_python_load, run_wrk

WRK = shutil.which("wrk")


class Recorder(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # every generator connection is accepted, however busy the CPU

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), RecordingHandler)
        self.seen: list[str] = []
        self.lock = threading.Lock()

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a generator closing its connections at the deadline is no error here


class RecordingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as both generators expect
    server: Recorder

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.seen.append(self.headers.get("X-Proof", ""))
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(autouse=True)
def few_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """A few connections are enough to show what is sent, and keep a thread-per-connection
    server answering well inside wrk's 2 s timeout on a busy machine."""
    monkeypatch.setattr(bench.load, "CONNECTIONS", 4)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    # shutdown() waits for serve_forever's next poll: 0.5 s by default.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def url(server: Recorder) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/test-auth"


def proofs(count: int) -> PerRequest:
    return PerRequest([{"X-Proof": f"proof-{n}"} for n in range(count)])


def generators() -> list[object]:
    found: list[object] = [pytest.param("python", id="python")]
    found.append(
        pytest.param("wrk", id="wrk", marks=pytest.mark.skipif(WRK is None, reason="no wrk"))
    )
    return found


def run(
    kind: str, server: Recorder, headers: PerRequest | dict[str, str], seconds: float
) -> LoadResult:
    if kind == "wrk":
        assert WRK is not None
        return run_wrk(WRK, url(server), headers, seconds, None)
    return run_python_load(url(server), headers, seconds)


@pytest.mark.parametrize("kind", generators())
def test_each_prepared_entry_is_sent_once_in_order(kind: str, recorder: Recorder) -> None:
    # 100,000: twenty times what this single-threaded recorder answers in a second.
    result = run(kind, recorder, proofs(100_000), 1.0)

    assert result.valid, result.problems()
    assert result.reused == 0
    sent = [value for value in recorder.seen if value]
    assert len(sent) >= result.requests > 0
    assert len(set(sent)) == len(sent), "an entry was sent twice"
    # Handed out in order, none skipped (wrk spends the first on checking its script).
    assert max(int(value.removeprefix("proof-")) for value in sent) <= len(sent)


@pytest.mark.parametrize("kind", generators())
def test_a_run_beyond_its_prepared_entries_is_void(kind: str, recorder: Recorder) -> None:
    result = run(kind, recorder, proofs(5), 1.0)

    assert result.reused > 0
    assert not result.valid
    assert "beyond the prepared headers" in result.problems()


@pytest.mark.parametrize("kind", generators())
def test_fixed_headers_go_on_every_request(kind: str, recorder: Recorder) -> None:
    result = run(kind, recorder, {"X-Proof": "same"}, 1.0)

    assert result.valid, result.problems()
    assert recorder.seen
    assert set(recorder.seen) == {"same"}


def test_per_request_entries_refuse_what_would_break_a_line() -> None:
    with pytest.raises(ValueError, match="line break"):
        PerRequest([{"DPoP": "a\r\nX-Injected: 1"}])
    with pytest.raises(ValueError, match="tab"):
        PerRequest([{"DPoP": "a\tb"}])


WRK_OUTPUT = """Running 1s test @ http://127.0.0.1:1/test-auth
  1 threads and 50 connections
  Latency Distribution
     50%    2.10ms
     75%    3.00ms
     90%    4.00ms
     99%    1.20s
  9000 requests in 1.00s, 1.00MB read
  Non-2xx or 3xx responses: 7
Requests/sec:   9000.00
Transfer/sec:      1.00MB
reused 12
"""


def test_wrk_output_is_read_with_its_units_and_the_reuse_count() -> None:
    result = parse_wrk(WRK_OUTPUT)

    assert result.requests_per_second == 9000.0
    assert result.p50_ms == pytest.approx(2.1)
    assert result.p99_ms == pytest.approx(1200.0)
    assert (result.requests, result.bad_responses, result.reused) == (9000, 7, 12)
    assert not result.valid
