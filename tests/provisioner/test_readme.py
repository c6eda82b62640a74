from __future__ import annotations

import re
from pathlib import Path

from provisioner.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def env_name(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else f"PROVISIONER_{field.upper()}"


def settings_table() -> dict[str, str]:
    """The default column of the README's settings table, by variable."""
    section = README.read_text().split("## Settings", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \| ([^|]+) \|", section, flags=re.MULTILINE)
    return {name: default.strip() for name, default in rows}


def shown(default: object) -> str:
    """A default as the README's table writes it."""
    if default is None:
        return "unset"
    if default == "":
        return "empty"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, float):
        return f"`{default:g}`"
    if isinstance(default, Path):
        return f"`./{default}`"
    if isinstance(default, tuple):  # comma-separated, as the variable takes it
        return "`" + ",".join(f"{value:g}" for value in default) + "`"
    return f"`{default}`"


def test_readme_lists_every_setting() -> None:
    text = README.read_text()
    missing = [env_name(f) for f in Settings.model_fields if f"`{env_name(f)}`" not in text]
    assert not missing, f"README's settings table lacks {missing}"


def test_readme_defaults_are_the_code_s() -> None:
    table = settings_table()
    wrong = {
        env_name(field): (table.get(env_name(field)), shown(info.default))
        for field, info in Settings.model_fields.items()
        if table.get(env_name(field)) != shown(info.default)
    }
    assert not wrong, f"README's default against the code's: {wrong}"


def test_readme_quick_start_is_two_commands() -> None:
    text = README.read_text()
    quick = text.split("## Quick start", 1)[1].split("```", 2)[1]
    assert quick.split() == ["make", "demo", "make", "test"]
