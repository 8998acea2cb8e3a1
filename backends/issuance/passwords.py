"""argon2id hashing for user passwords, off the IOLoop.

Hashing runs on a small pool of its own: argon2 is built to be slow and to use
``memory_kib`` per call, so the pool bounds both the CPU it takes from the
event loop and the memory a burst of logins can claim, and it never starves the
default executor that SQLite and token signing share. One client address gets
at most ``per_source`` of the pool at once (see :mod:`backends.issuance.queueing`).
(Client secrets are random, not chosen: a keyed fast hash, in
:mod:`backends.issuance.client_secrets`; older argon2id hashes of them come here.)
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from backends.issuance.queueing import PriorityGate, SourceSlots, current_priority, current_source

T = TypeVar("T")

log = logging.getLogger("jotguard.passwords")

# OWASP's floor for argon2id (m=19 MiB, t=2); below it only tests should go.
OWASP_MIN_MEMORY_KIB = 19456
OWASP_MIN_TIME_COST = 2


# Hashing threads run at a lower CPU priority than the IOLoop thread: when they
# compete for a core, the loop wins, so a burst of logins cannot stall requests.
HASHING_NICENESS = 10


def _lower_thread_priority() -> None:
    # Linux schedules threads individually: a thread id is a valid PRIO_PROCESS target.
    if sys.platform != "linux":
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_NICENESS)
    except OSError:
        log.debug("could not lower the priority of a hashing thread")


def default_workers() -> int:
    """One less than the CPU count, at least one: a core stays free for the loop."""
    return max(1, (os.cpu_count() or 2) - 1)


def default_per_source(workers: int) -> int:
    """Half the pool, at least one thread: no address can take all of it."""
    return max(1, workers // 2)


class PasswordHasher:
    def __init__(
        self,
        *,
        time_cost: int = 3,
        memory_kib: int = 65536,
        parallelism: int = 4,
        workers: int | None = None,
        per_source: int | None = None,
    ) -> None:
        self._argon2 = Argon2Hasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            type=Type.ID,
        )
        self.workers = workers or default_workers()
        self._executor = ThreadPoolExecutor(
            max_workers=self.workers,
            thread_name_prefix="jotguard-argon2",
            initializer=_lower_thread_priority,
        )
        self._gate = PriorityGate(self.workers)
        self.per_source = per_source or default_per_source(self.workers)
        self._sources = SourceSlots(self.per_source)
        self._dummy: asyncio.Future[str] | None = None

    @property
    def weak(self) -> bool:
        params = self._argon2
        return params.memory_cost < OWASP_MIN_MEMORY_KIB or params.time_cost < OWASP_MIN_TIME_COST

    async def _run(self, fn: Callable[..., T], *args: str) -> T:
        # The gate keeps the executor's own FIFO queue empty: waiting happens here, in
        # order of request arrival, at most per_source jobs of one source in that line
        # (see backends.issuance.queueing).
        source = current_source()
        if source is not None:
            await self._sources.acquire(source)
        try:
            await self._gate.acquire(current_priority())
            try:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self._executor, fn, *args)
            finally:
                # The gate first: its slot goes to whoever waits there (another
                # source's job) before this source's next job can join that line.
                self._gate.release()
        finally:
            if source is not None:
                self._sources.release(source)

    async def hash(self, secret: str) -> str:
        return await self._run(self._argon2.hash, secret)

    def _verify(self, encoded: str, secret: str) -> bool:
        try:
            return self._argon2.verify(encoded, secret)
        except VerifyMismatchError:
            return False
        except InvalidHashError:
            log.error("a stored password hash is not a valid argon2 hash")
            return False
        except VerificationError:
            return False

    async def warm_up(self) -> None:
        """Make the dummy hash now, so the first unknown user is not slower than the rest."""
        await self._dummy_hash()

    async def _dummy_hash(self) -> str:
        # Made once with the current parameters, so checking it costs what a real check costs.
        if self._dummy is None:
            self._dummy = asyncio.ensure_future(self.hash(secrets.token_urlsafe(16)))
        return await asyncio.shield(self._dummy)

    async def verify(self, encoded: str | None, secret: str) -> bool:
        """Whether ``secret`` matches ``encoded``.

        ``None`` (no such user or client) still runs a full verification against a
        dummy hash, so "unknown" and "wrong" take about the same time.
        """
        target = encoded if encoded is not None else await self._dummy_hash()
        matched = await self._run(self._verify, target, secret)
        return matched and encoded is not None

    def needs_rehash(self, encoded: str) -> bool:
        try:
            return self._argon2.check_needs_rehash(encoded)
        except InvalidHashError:
            return False

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
