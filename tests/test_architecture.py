"""The architecture of docs/architecture.md, checked on the source: the decision core is
pure, and the packages import one another one way only.

Imports are read with ``ast`` from every ``import`` statement of a module, those inside
functions and ``TYPE_CHECKING`` blocks included, without importing anything.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Final

import pytest

ROOT = Path(__file__).resolve().parents[1]

CORE: Final = (
    "service/core.py",
    "service/engine.py",
    "service/user_table.py",
    "service/efficiency.py",
    "service/pool.py",
    "service/demand.py",
    "service/scaler.py",
    "service/calibration.py",
    "service/commands.py",
    "service/config.py",
    "service/pool_history.py",
    "service/sessions.py",
    "service/feedback.py",
    "service/reconcile.py",
    "service/service_level.py",
    "service/wait_histogram.py",
    "service/connect_windows.py",
    "service/breaker.py",
    "service/model_health.py",
    "features/events.py",
    "features/definitions.py",
    "features/online.py",
    "features/batch.py",
    "features/table.py",
    "features/labels.py",
    "features/boot_times.py",
    "features/partitions.py",
    "models/scoring.py",
    "models/heuristic.py",
    "models/connect_curve.py",
    "models/horizon.py",
)
"""The pure modules: events and ``now`` in, decisions (or features, or scores) out."""

IMPURE: Final = frozenset({"redis", "asyncio", "time", "random"})
"""What the core never imports: a server, an event loop, a clock, a source of chance."""

LAYERS: Final = ("features", "models", "training", "service", "simulation", "provisioner")

MAY_NOT_IMPORT: Final = {
    "features": frozenset(LAYERS[1:]),
    "models": frozenset(LAYERS[2:]),
    "training": frozenset({"service", "simulation", "provisioner"}),
    "service": frozenset({"training", "simulation", "provisioner"}),
    "simulation": frozenset({"provisioner"}),
}
"""Each package and the packages of ours it must not import (docs/architecture.md,
"Packages and their imports")."""


def imported(source: str, package: tuple[str, ...]) -> list[tuple[int, str]]:
    """``(line, module)`` for every import of ``source``, a module of ``package``, in line
    order; relative imports are resolved against ``package``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            assert node.module is not None
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1]
            if node.module is not None:
                found.append((node.lineno, ".".join([*base, node.module])))
            else:
                found += [(node.lineno, ".".join([*base, alias.name])) for alias in node.names]
    return sorted(found)


def imports_of(path: Path) -> list[tuple[int, str]]:
    return imported(path.read_text(encoding="utf-8"), path.relative_to(ROOT).parent.parts)


def top(module: str) -> str:
    return module.partition(".")[0]


@pytest.mark.parametrize("module", CORE)
def test_the_core_imports_no_io_clock_or_chance(module: str) -> None:
    path = ROOT / module
    found = [
        f"{module}:{line} imports {name}" for line, name in imports_of(path) if top(name) in IMPURE
    ]
    assert not found, found


@pytest.mark.parametrize("package", sorted(MAY_NOT_IMPORT))
def test_packages_import_one_way(package: str) -> None:
    modules = sorted((ROOT / package).rglob("*.py"))
    assert modules, f"no modules in {package}/"
    forbidden = MAY_NOT_IMPORT[package]
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in modules
        for line, name in imports_of(path)
        if top(name) in forbidden
    ]
    assert not found, found


def test_the_checks_see_what_they_look_for() -> None:
    """Imports in functions and type-checking blocks count, relative ones are resolved, and
    the shells' I/O is seen."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import redis.asyncio\n"
        "def f() -> None:\n    from time import monotonic\n"
        "from . import fleet, boot\n"
        "from ..workloads.base import Day\n"
    )
    assert imported(source, ("simulation", "nodes")) == [
        (1, "typing"),
        (3, "redis.asyncio"),
        (5, "time"),
        (6, "simulation.nodes.boot"),
        (6, "simulation.nodes.fleet"),
        (7, "simulation.workloads.base"),
    ]
    live = {top(name) for _, name in imports_of(ROOT / "service" / "live.py")}
    assert live >= IMPURE, "the live shell does its I/O: the check must see it"
