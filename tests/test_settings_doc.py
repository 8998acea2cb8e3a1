"""README's configuration table is the settings declaration, not a copy that drifts."""

from pathlib import Path

from webapp.config.table import markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_configuration_table_matches_the_settings():
    text = README.read_text()
    start = text.index("<!-- settings-table")
    start = text.index("\n", start) + 1
    end = text.index("<!-- /settings-table -->")
    assert text[start:end].strip() == markdown_table(), (
        "README configuration table is stale: regenerate it with `python -m webapp.config.table`"
    )
