"""``jotguard`` as on a system without ``prctl(PR_SET_PDEATHSIG)``: workers learn that
their parent died only by watching its pid. ``python -m tests.workers_without_prctl serve``."""

from __future__ import annotations

from webapp.cli.main import main
from webapp.service import workers


def _unavailable(signum: int) -> bool:
    return False


workers._parent_death_signal = _unavailable

if __name__ == "__main__":
    raise SystemExit(main())
