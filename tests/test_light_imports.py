"""``import webapp, backends`` loads no store driver: each backend imports its own when built."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DRIVERS = ("redis", "pymongo", "limits", "motor")

PROBE = f"""
import sys
drivers = {DRIVERS!r}
import webapp, backends
print(" ".join(sorted(m for m in drivers if m in sys.modules)) or "-")
import backends.ratelimit.limits  # the Redis backend: it does load its drivers
print(" ".join(sorted(m for m in drivers if m in sys.modules)) or "-")
"""


def test_importing_the_library_loads_no_store_driver():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT, env=env, check=True
    )
    library, with_redis_backend = result.stdout.split("\n")[:2]
    assert library == "-"
    assert with_redis_backend == "limits redis"  # so the probe sees drivers when they load
