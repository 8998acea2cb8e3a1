"""The shape issue 19 gave the tree, held: small modules, a grouped backends/, no writes
into Tornado's private state. A change that breaks one says so here, not in a review."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("webapp", "backends")
MAX_LINES = 400
MAX_TOP_LEVEL_BACKENDS = 8
# Tornado's own attributes: reading or writing them ties jotguard to one Tornado version.
PRIVATE_STATE = re.compile(r"\._headers\b|\._write_buffer\b|\._status_code\s*=(?!=)")


def sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in sources()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these by what they do: {long}"


def test_backends_keeps_at_most_eight_top_level_modules() -> None:
    top = sorted(p.name for p in (ROOT / "backends").glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_BACKENDS, f"group these into packages: {top}"


def test_nothing_touches_tornados_private_state() -> None:
    touching = [
        f"{p.relative_to(ROOT)}:{number}"
        for p in sources()
        for number, line in enumerate(p.read_text().splitlines(), 1)
        if PRIVATE_STATE.search(line)
    ]
    assert not touching, touching


def test_every_module_opens_with_what_it_is_for() -> None:
    silent = [
        str(p.relative_to(ROOT))
        for p in sources()
        if p.stat().st_size and not p.read_text().lstrip().startswith(('"""', 'r"""'))
    ]
    assert not silent, f"give these a docstring saying what they are for: {silent}"
