"""Two writers at once on one PostgreSQL-backed store: a retrain (register, promote) and an
operator rolling back and forward again, as two processes (``tests.models.registry_writers``).

Afterwards the aliases must tell one story: the decisions both applied, in some order that
interleaves each writer's own, form a chain (each moved the champion away from the version
the one before moved it to), ending at the champion; ``audit.last`` is the last of them,
and ``previous`` and the version's tags say what it did.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from models.registry import CHAMPION, PREVIOUS, ModelNotFound, ModelRegistry
from tests.lifecycle import register, trained
from training.promote import load_candidate, promote
from training.tracking import TrackingConfig

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("retrain", "rollback")
WRITERS_TIMEOUT_S = 240.0

Entry = dict[str, Any]


def chain_orders(
    first: Sequence[Entry], second: Sequence[Entry], start: str
) -> set[tuple[int, int, str, int]]:
    """Every way to interleave the two writers' decisions (each in its own order) as a
    chain from ``start``: the end states (all of ``first``, all of ``second``, the champion,
    which writer's decision came last: 0 or 1)."""
    states: set[tuple[int, int, str, int]] = {(0, 0, start, -1)}
    frontier = list(states)
    while frontier:
        i, j, champion, _ = frontier.pop()
        steps = []
        if i < len(first) and first[i]["from"] == champion:
            steps.append((i + 1, j, str(first[i]["to"]), 0))
        if j < len(second) and second[j]["from"] == champion:
            steps.append((i, j + 1, str(second[j]["to"]), 1))
        for state in steps:
            if state not in states:
                states.add(state)
                frontier.append(state)
    return {s for s in states if s[0] == len(first) and s[1] == len(second)}


def run_writers(tracking: TrackingConfig, root: Path) -> dict[str, list[Entry]]:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    env.pop("MLFLOW_TRACKING_URI", None)
    outs = {role: root / f"{role}.jsonl" for role in ROLES}
    processes = {
        role: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.models.registry_writers",
                role,
                tracking.tracking_uri,
                tracking.model_name,
                str(root),
                str(outs[role]),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for role in ROLES
    }
    try:
        deadline = time.monotonic() + WRITERS_TIMEOUT_S
        while not all((root / f"ready-{role}").exists() for role in ROLES):
            failed = {r: p.returncode for r, p in processes.items() if p.poll() is not None}
            assert not failed, f"a writer exited before the start: {failed}"
            assert time.monotonic() < deadline, "the writers did not get ready"
            time.sleep(0.05)
        (root / "go").touch()
        for role, process in processes.items():
            output, _ = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert process.returncode == 0, f"{role} writer failed:\n{output.decode()[-4000:]}"
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return {
        role: [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
        for role, out in outs.items()
    }


def test_chains_are_found_only_when_the_decisions_connect() -> None:
    a = [{"from": "2", "to": "3"}, {"from": "4", "to": "3"}]
    b = [{"from": "3", "to": "4"}]
    assert chain_orders(a, b, "2") == {(2, 1, "3", 0)}
    stale = [{"from": "2", "to": "3"}]  # decided against 2 after the rollback moved it
    assert chain_orders(stale, [{"from": "2", "to": "1"}], "2") == set()


@pytest.mark.slow
@pytest.mark.parametrize("tracking", ["postgresql"], indirect=True)
def test_a_retrain_and_a_rollback_at_once_leave_the_aliases_consistent(
    registry: ModelRegistry, tracking: TrackingConfig, tmp_path: Path
) -> None:
    holdout = trained().split.test
    for _ in range(2):
        register(tracking)
        assert promote(registry, load_candidate(registry), holdout, actor="setup").promote
    assert registry.aliases() == {CHAMPION: "2", PREVIOUS: "1"}

    applied = run_writers(tracking, tmp_path)
    retrains, operator = applied["retrain"], applied["rollback"]
    assert retrains and operator, f"no overlap to speak of: {applied}"
    assert any(e["action"] == "rollback" for e in operator)

    aliases = registry.aliases()
    champion, previous = aliases[CHAMPION], aliases.get(PREVIOUS)
    for version in filter(None, (champion, previous)):
        try:
            registry.version_info(version)
        except ModelNotFound:
            pytest.fail(f"an alias names version {version}, which does not exist: {aliases}")
    assert previous != champion, aliases

    ends = chain_orders(retrains, operator, "2")
    assert ends, f"the decisions applied do not form one chain from version 2: {applied}"
    assert {end[2] for end in ends} == {champion}, (aliases, applied)

    model = registry.client.get_registered_model(registry.model_name)
    last = json.loads(model.tags["audit.last"])
    last_entries = [(retrains, operator)[end[3]][-1] for end in ends]
    assert any(
        (e["action"], e["to"], e["from"]) == (last["action"], last["version"], last["from"])
        for e in last_entries
    ), (last, applied)
    tags = registry.version_info(champion).tags
    if last["action"] == "promote":
        assert previous == last["from"], (aliases, last)
        assert tags["promotion.decision"] == "promoted" and tags["promotion.from"] == last["from"]
    else:
        assert last["action"] == "rollback", last
        assert tags["rollback.from"] == last["from"]
        assert any(e["previous"] == previous for e in last_entries), (aliases, last)
