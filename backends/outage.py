"""A dependency's outage, logged twice: as it starts and as it ends, with what it cost.

Under load an outage refuses thousands of requests; an ERROR line for each buries
everything else. Whoever owns the dependency reports here when it fails, when it
answers again and each request it had to refuse; the log gets one ERROR line as the
outage starts and one as it ends, with its length and how many requests it refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class Outage:
    """:param what: the dependency, as the log names it ("revocation store").
    :param consequence: appended to the first line: what callers see meanwhile."""

    def __init__(
        self,
        what: str,
        logger: logging.Logger,
        *,
        consequence: str = "",
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.logger = logger
        self.consequence = consequence
        self.monotonic = monotonic
        self.since: float | None = None
        self.refusals = 0

    @property
    def ongoing(self) -> bool:
        return self.since is not None

    def failed(self, detail: str) -> None:
        """The dependency did not answer; the first failure starts the outage."""
        if self.since is None:
            self.since = self.monotonic()
            self.refusals = 0
            self.logger.error("%s unavailable: %s%s", self.what, detail, self.consequence)

    def refused(self, detail: str) -> None:
        """A request was refused (503) for want of the dependency."""
        self.failed(detail)
        self.refusals += 1

    def answered(self) -> None:
        """The dependency answered again: the outage, if any, is over."""
        if self.since is None:
            return
        lasted = self.monotonic() - self.since
        self.since = None
        self.logger.error(
            "%s available again after %.1fs; %d requests were refused (503) meanwhile",
            self.what,
            lasted,
            self.refusals,
        )
