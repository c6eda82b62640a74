"""The ``--boot`` option through typer's runner: help shown as written, bad schedules refused
before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.text import Text
from typer.testing import CliRunner, Result

from provisioner.cli import app
from provisioner.cli.common import literal_help


def invoke(home: Path, *args: str) -> Result:
    env = {"PROVISIONER_HOME": str(home), "COLUMNS": "200"}
    return CliRunner().invoke(app, list(args), env=env)


def unboxed(text: str) -> str:
    """``text`` without rich's panel borders, its whitespace collapsed."""
    return " ".join(text.replace("\u2502", " ").split())


@pytest.mark.parametrize(
    "text",
    [
        "uniform:A:B, fixed:S or normal:MEAN:SD:MIN:MAX",
        "a :smile: and :a: and :thumbs_up:",
        "SPEC[,SPEC@HOURS...] and [bold]not bold[/bold] and \\[escaped]",
    ],
)
def test_literal_help_renders_as_written_through_rich_markup(text: str) -> None:
    assert Text.from_markup(literal_help(text)).plain == text


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("bench", "Boot times, seconds: SPEC = uniform:A:B, fixed:S or normal:MEAN:SD:MIN:MAX"),
        ("node-api", "Boot time: uniform:A:B, fixed:S or normal:MEAN:SD:MIN:MAX, seconds"),
    ],
)
def test_boot_help_shows_the_forms_literally(home: Path, command: str, expected: str) -> None:
    result = invoke(home, command, "--help")
    assert result.exit_code == 0, result.output
    text = unboxed(result.output)
    assert expected in text
    assert "\U0001f170" not in result.output  # 🅰, the emoji rich made of ":A:"


def test_bench_help_says_where_schedule_hours_count_from(home: Path) -> None:
    text = unboxed(invoke(home, "bench", "--help").output)
    assert "or a schedule SPEC[,SPEC@HOURS...], e.g. uniform:10:29,uniform:60:180@12" in text
    assert "each other from HOURS after the start of the scored window" in text


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("uniform:10:29,uniform:60:180", "part 2 'uniform:60:180' needs @HOURS"),
        ("uniform:10:29,uniform:60:180@0", "HOURS must be a finite number > 0"),
        ("fixed:1,fixed:2@6,fixed:3@3", "part 3 'fixed:3@3': hour 3 is not after the previous"),
        ("uniform:10:29,uniform:60@12", "part 2 'uniform:60@12': boot time spec 'uniform:60'"),
        ("exp:3", "boot time spec 'exp:3': unknown kind 'exp'"),
    ],
)
def test_bench_refuses_a_bad_schedule_before_running(
    home: Path, tmp_path: Path, schedule: str, message: str
) -> None:
    out = tmp_path / "bench.json"
    result = invoke(home, "bench", "--hours", "0.1", "--boot", schedule, "--json", str(out))
    assert result.exit_code == 2, result.output
    text = unboxed(result.output)
    assert "Invalid value for --boot" in text and message in text, text
    assert not out.exists() and "bench " not in result.stdout  # nothing ran
