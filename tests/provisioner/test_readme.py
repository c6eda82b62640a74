from __future__ import annotations

from pathlib import Path

from provisioner.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def env_name(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else f"PROVISIONER_{field.upper()}"


def test_readme_lists_every_setting() -> None:
    text = README.read_text()
    missing = [env_name(f) for f in Settings.model_fields if f"`{env_name(f)}`" not in text]
    assert not missing, f"README's settings table lacks {missing}"


def test_readme_quick_start_is_two_commands() -> None:
    text = README.read_text()
    quick = text.split("## Quick start", 1)[1].split("```", 2)[1]
    assert quick.split() == ["make", "demo", "make", "test"]
