"""The README's configuration table, rendered from the settings' declarations.

``python -m webapp.config.table`` prints it; tests/test_settings_doc.py checks the
README carries exactly this.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from webapp.config.settings import Settings


def _shown_default(value: Any) -> str:
    if isinstance(value, (tuple, list, frozenset)):
        return ",".join(str(v) for v in value)
    return str(value)


def documented_settings() -> list[tuple[str, str, str, str]]:
    """(variable, flag, default, help) for every setting: the README table's source."""
    rows = []
    for f in dataclasses.fields(Settings):
        flag = "--" + f.name.replace("_", "-") if f.metadata["flag"] else ""
        rows.append((f.metadata["env"], flag, _shown_default(f.default), f.metadata["help"]))
    return rows


def markdown_table() -> str:
    """The README's configuration table; regenerate with ``python -m webapp.config.table``."""
    lines = ["| variable | flag | default | meaning |", "|---|---|---|---|"]
    for env, flag, default, help in documented_settings():
        flag_cell = f"`{flag}`" if flag else ""
        default_cell = f"`{default}`" if default else "(none)"
        lines.append(f"| `{env}` | {flag_cell} | {default_cell} | {help} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
