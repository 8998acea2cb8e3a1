"""``import webapp, backends`` loads no store driver (each backend imports its own when
built), and the library (``webapp.web``) loads neither the service nor its configuration."""

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


LAYERS = """
import sys
import webapp
print(" ".join(sorted(m for m in sys.modules if m.startswith(("webapp.", "dotenv")))))
"""


def test_the_library_imports_neither_the_service_nor_its_configuration():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", LAYERS],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=True,
    )
    loaded = result.stdout.split()
    assert loaded, "the probe saw no webapp module at all"
    assert all(m.startswith("webapp.web") for m in loaded), loaded
