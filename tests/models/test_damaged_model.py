"""A damaged model file makes loading fail with an error, never crash the process.

Given a truncated or overwritten model file, LightGBM can abort the process (``terminate
called without an active exception``), crash it (a segmentation fault) or load another
model. ``load_model`` checks the file first: its SHA-256 (recorded in ``classifier.json``)
and its structure (the trees its header lists, at their sizes). Loads run in a child
process here, so that a regression shows as a failed test, not as a crashed test run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.classifier import load_model, save_model
from tests.lifecycle import trained

LOAD = """
import sys
from pathlib import Path
from models.classifier import load_model
for path in sys.argv[1:]:
    try:
        load_model(Path(path))
        print(path, "loaded", flush=True)
    except Exception as e:
        print(path, type(e).__name__, flush=True)
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "model"
    result = trained()
    save_model(result.classifier, path, result.split.test.X[:5])
    return path


def damaged_copy(saved: Path, tmp_path: Path, damage: str, *, checksum: bool = True) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    copy = tmp_path / "model"
    subprocess.run(["cp", "-r", str(saved), str(copy)], check=True)
    if not checksum:  # as models logged before the checksum was recorded
        described = copy / "extra_files" / "classifier.json"
        data = json.loads(described.read_text())
        del data["booster_sha256"]
        described.write_text(json.dumps(data))
    booster = copy / "model.lgb"
    text = booster.read_text()
    tree = text.index("\nTree=5\n")
    if damage == "truncated":  # a partial write
        text = text[: len(text) // 2]
    elif damage == "scribbled":  # same size, inside one tree: it no longer parses
        middle = text.index("\n", text.index("threshold=", tree)) - 20
        text = text[:middle] + "#" * 20 + text[middle + 20 :]
    else:  # "digits": same size, still parses, another model
        line = text.index("leaf_value=", tree) + len("leaf_value=")
        digits = "".join("7" if c.isdigit() else c for c in text[line : line + 12])
        text = text[:line] + digits + text[line + 12 :]
    booster.write_text(text)
    return copy


def test_an_intact_model_loads_the_same_trees(saved: Path) -> None:
    model = load_model(saved)
    result = trained()
    X = result.split.test.X
    np.testing.assert_allclose(
        model.classifier.predict_proba(X), result.classifier.predict_proba(X), rtol=0, atol=0
    )


def load_in_child(paths: list[Path]) -> dict[str, str]:
    """What loading each of ``paths`` gave (``loaded`` or the error's name), in one child."""
    child = subprocess.run(
        [sys.executable, "-c", LOAD, *map(str, paths)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    asked = {str(path) for path in paths}
    said = [line.split(" ", 1) for line in child.stdout.splitlines()]
    outcomes = {words[0]: words[1] for words in said if len(words) == 2 and words[0] in asked}
    crashed = next((str(p) for p in paths if str(p) not in outcomes), None)
    assert child.returncode == 0, f"loading {crashed} crashed (exit {child.returncode})"
    return {Path(path).parent.name: outcome for path, outcome in outcomes.items()}


@pytest.mark.slow
def test_damaged_models_are_refused_and_never_crash(saved: Path, tmp_path: Path) -> None:
    cases = {
        "truncated": {"checksum": True},
        "digits": {"checksum": True},
        "truncated-old": {"checksum": False},
        "scribbled-old": {"checksum": False},
        "digits-old": {"checksum": False},
    }
    paths = [
        damaged_copy(saved, tmp_path / name, name.removesuffix("-old"), **options)
        for name, options in cases.items()
    ]
    outcomes = load_in_child(paths)
    # The checksum catches any damage; without one (models logged before it was recorded),
    # the structure check catches a truncation, and damage inside a tree either fails to
    # parse or goes unnoticed, without a crash.
    assert outcomes["truncated"] == outcomes["digits"] == "ClassifierFormatError"
    assert outcomes["truncated-old"] == "ClassifierFormatError"
    assert outcomes["scribbled-old"] == "LightGBMError"
    assert outcomes["digits-old"] == "loaded"
