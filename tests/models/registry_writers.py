"""One writer of the registry as a process of its own (``test_concurrent_writers.py``).

    python -m tests.models.registry_writers ROLE TRACKING_URI MODEL ROOT OUT

``retrain`` registers a new version and promotes it, :data:`ROUNDS` times; ``rollback``
rolls the champion back and forward again (promotes the version it rolled back from) until
the retrain writer is done. Both wait for ``ROOT/go`` before their first write, so that they
overlap; each appends one JSON line per decision it applied to ``OUT``:
``{"action", "from", "to", "previous"}`` (``from``: the champion the decision was made
against; ``previous``: what ``previous`` should name afterwards, for a rollback).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Final

from models.registry import ModelRegistry
from tests.lifecycle import register, store_tracking, trained
from training.promote import NothingToRollBack, load_candidate, promote, rollback

ROUNDS: Final = 4
MAX_ROLLBACKS: Final = 30
START_WAIT_S: Final = 120.0


def main(role: str, tracking_uri: str, model_name: str, root: Path, out: Path) -> None:
    tracking = store_tracking(tracking_uri, root, model_name)
    registry = ModelRegistry(tracking_uri, model_name)
    holdout = trained().split.test  # trained before the start: the writes overlap
    registry.aliases()
    (root / f"ready-{role}").touch()
    deadline = time.monotonic() + START_WAIT_S
    while not (root / "go").exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{role}: no go after {START_WAIT_S} s")
        time.sleep(0.01)

    def record(entry: dict[str, Any]) -> None:
        with out.open("a") as file:
            file.write(json.dumps(entry) + "\n")

    if role == "retrain":
        for _ in range(ROUNDS):
            version = register(tracking).version
            decision = promote(
                registry, load_candidate(registry, version), holdout, actor="retrain"
            )
            if decision.promote and decision.applied:
                record({"action": "promote", "from": decision.champion, "to": version})
        (root / "retrain-done").touch()
    elif role == "rollback":
        for _ in range(MAX_ROLLBACKS):
            if (root / "retrain-done").exists():
                break
            try:
                back = rollback(registry, actor="operator")
            except NothingToRollBack:
                time.sleep(0.05)
                continue
            record(
                {
                    "action": "rollback",
                    "from": back.from_version,
                    "to": back.to_version,
                    "previous": back.previous,
                }
            )
            candidate = load_candidate(registry, back.from_version)
            decision = promote(registry, candidate, holdout, actor="operator")
            if decision.promote and decision.applied:
                record({"action": "promote", "from": decision.champion, "to": back.from_version})
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    role, uri, name, root, out = sys.argv[1:]
    main(role, uri, name, Path(root), Path(out))
