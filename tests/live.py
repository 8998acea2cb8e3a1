"""A real ``jotguard serve`` process on a free 127.0.0.1 port, for end-to-end checks."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.cli import CHEAP_ARGON2

START_TIMEOUT = 30.0
_ADDRESS = re.compile(r"(?P<what>listening on|metrics on) (?P<url>http://127\.0\.0\.1:\d+/)")


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[str]
    metrics_url: str | None = None
    lines: list[str] = field(default_factory=list)


def _pump(stream: object, into: queue.Queue[str | None]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.put(line)
    into.put(None)


@contextlib.contextmanager
def live_jotguard(data_dir: Path, env: Mapping[str, str] | None = None) -> Iterator[LiveServer]:
    """Start ``jotguard serve`` (port 0, ES256 keys: fast to make, argon2id at its cheapest)
    and stop it on exit.

    Every stderr line the server wrote is in ``server.lines`` once the block ends.
    """
    environ = {
        **os.environ,
        "JOTGUARD_DATA_DIR": str(data_dir),
        "JOTGUARD_ENV_FILE": str(data_dir / "absent.env"),
        "JOTGUARD_HOST": "127.0.0.1",
        "JOTGUARD_PORT": "0",
        "JOTGUARD_SIGNING_ALG": "ES256",
        **CHEAP_ARGON2,
        **(env or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "webapp", "serve"],
        env=environ,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(process.stderr, lines), daemon=True).start()
    server: LiveServer | None = None
    seen: list[str] = []
    want_metrics = environ.get("JOTGUARD_METRICS", "same") not in {"same", "off"}
    try:
        deadline = time.monotonic() + START_TIMEOUT
        url = metrics_url = None
        while url is None or (want_metrics and metrics_url is None):
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                raise RuntimeError("jotguard exited during start-up:\n" + "".join(seen))
            seen.append(line)
            match = _ADDRESS.search(line)
            if match and match.group("what") == "listening on":
                url = match.group("url")
            elif match:
                metrics_url = match.group("url") + "metrics"
        server = LiveServer(url, process, metrics_url, seen)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        while True:
            try:
                line = lines.get(timeout=2)
            except queue.Empty:
                break
            if line is None:
                break
            seen.append(line)
