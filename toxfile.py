"""tox finds every Python 3.10-3.13 pyenv installed, not only those on PATH, and says
which of them it cannot find before it skips their environments.

pyenv's shims answer ``python3.12`` only for the versions selected, so tox would skip
the others as missing and still end "congratulations". Their ``bin`` directories go on
PATH first, as ``.ci/run`` does.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
from typing import Any

from tox.plugin import impl

VERSIONS = ("3.10", "3.11", "3.12", "3.13")


def _pyenv_bins() -> list[str]:
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    return sorted(glob.glob(os.path.join(root, "versions", "3.1[0-9]*", "bin")))


@impl
def tox_add_core_config(core_conf: Any, state: Any) -> None:
    os.environ["PATH"] = os.pathsep.join([*_pyenv_bins(), os.environ.get("PATH", "")])
    missing = [v for v in VERSIONS if shutil.which(f"python{v}") is None]
    if missing:
        print(
            f"toxfile: no Python {', '.join(missing)} on PATH or under pyenv: their"
            " environments are skipped (TOX_SKIP_MISSING_INTERPRETERS=false fails instead)",
            file=sys.stderr,
        )
