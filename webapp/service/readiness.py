"""Readiness: named checks of every dependency a request may need.

A feature that needs a store registers a check next to where it builds the
store, e.g. ``services.readiness.add("revocation_store", store.ping)``. A check
is an async callable that returns when the dependency answers and raises (or
hangs) when it does not; ``/readyz`` runs them all at once, each with a timeout.

A note is what an operator should know that does not make the service unready (a
store that lost its data and was reloaded): ``services.readiness.note(name, source)``,
where ``source()`` returns a sentence or None.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("jotguard")

ReadinessCheck = Callable[[], Awaitable[object]]
NoteSource = Callable[[], str | None]

OK = "ok"


class Readiness:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.checks: dict[str, ReadinessCheck] = {}
        self.note_sources: dict[str, NoteSource] = {}
        self._down: set[str] = set()
        self._running: asyncio.Task[dict[str, str]] | None = None

    def add(self, name: str, check: ReadinessCheck) -> None:
        if name in self.checks:
            raise ValueError(f"a readiness check named {name!r} exists already")
        self.checks[name] = check

    def note(self, name: str, source: NoteSource) -> None:
        if name in self.note_sources:
            raise ValueError(f"a readiness note named {name!r} exists already")
        self.note_sources[name] = source

    def notes(self) -> dict[str, str]:
        """``{name: sentence}`` for every note that has something to say now."""
        found = {name: source() for name, source in self.note_sources.items()}
        return {name: text for name, text in found.items() if text}

    async def run(self) -> dict[str, str]:
        """``{name: "ok" or what went wrong}`` for every check.

        Probes that arrive while a run is going share its result, so a flood of
        ``/readyz`` requests cannot multiply the load on the stores.
        """
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._run_all())
        return await asyncio.shield(self._running)

    async def _run_all(self) -> dict[str, str]:
        names = list(self.checks)
        outcomes = await asyncio.gather(*(self._run_one(self.checks[n]) for n in names))
        for name, (_, detail) in zip(names, outcomes, strict=True):
            self._log_change(name, detail)
        return {name: public for name, (public, _) in zip(names, outcomes, strict=True)}

    async def _run_one(self, check: ReadinessCheck) -> tuple[str, str]:
        """(what the public probe is told, what the log is told)."""
        try:
            await asyncio.wait_for(check(), self.timeout)
        except asyncio.TimeoutError:
            problem = f"no answer within {self.timeout:g}s"
            return problem, problem
        except Exception as exc:
            return f"failed: {type(exc).__name__}", f"{type(exc).__name__}: {exc}"
        return OK, OK

    def _log_change(self, name: str, detail: str) -> None:
        # Once per transition, not once per probe: a dead store would flood the log.
        if detail != OK and name not in self._down:
            self._down.add(name)
            log.warning("not ready: %s: %s", name, detail)
        elif detail == OK and name in self._down:
            self._down.discard(name)
            log.info("ready again: %s", name)
