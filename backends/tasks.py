"""Ending background tasks: each is cancelled, then awaited, so that it has finished
(its ``finally`` blocks run) before the caller closes what it was using."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection
from typing import Any


async def cancel_all(tasks: Collection[asyncio.Task[Any]], *, ignore_errors: bool = False) -> None:
    """Cancel ``tasks`` and wait for every one to end.

    :param ignore_errors: also swallow the error a task had already failed with (else it
        is raised here, after the tasks before it have been awaited).
    """
    for task in tasks:
        task.cancel()
    ignored = (asyncio.CancelledError, Exception) if ignore_errors else (asyncio.CancelledError,)
    for task in tasks:
        with contextlib.suppress(*ignored):
            await task
