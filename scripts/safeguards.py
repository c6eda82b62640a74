"""Remove each reliability safeguard in turn and check that its fault test then fails.

For every entry of ``SAFEGUARDS`` it checks out the current commit into a temporary git
worktree, edits the named lines out (or into something harmless), runs the tests that guard
them, and expects them to fail. Prints one JSON object; exit code 1 when a test still
passes without its safeguard (that test would not catch the regression) or an edit no longer
applies (the code moved: update the entry).

    .venv/bin/python scripts/safeguards.py [NAME ...]   # about 4 minutes for all

Uses ``REDIS_URL`` when set (as ``.ci/run`` does), like the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Safeguard:
    what: str
    edits: tuple[tuple[str, str, str], ...]
    """(file, text to find exactly once, replacement)."""
    tests: tuple[str, ...]


SAFEGUARDS: dict[str, Safeguard] = {
    "no-ticks-while-blind": Safeguard(
        "ticks skipped while the event log cannot be read or does not answer",
        (
            (
                "service/live.py",
                "            if not self.sees_events:\n"
                "                self.telemetry.skipped_ticks",
                "            if False:\n                self.telemetry.skipped_ticks",
            ),
            (
                "service/live.py",
                "            if not self.is_leader() or not await self._log_answers():",
                "            if not self.is_leader():",
            ),
        ),
        ("tests/integration/test_fault_redis.py::test_redis_killed_mid_stream_and_restarted",),
    ),
    "own-pending-first-after-error": Safeguard(
        "after a Redis error the consumer reads its own pending entries before new ones",
        (
            (
                "service/consumer.py",
                "            self._own_pending_done = False  # a reply may have been lost",
                "            pass  # a reply may have been lost",
            ),
        ),
        (
            "tests/integration/test_fault_redis.py"
            "::test_a_lost_read_reply_is_not_overtaken_by_newer_entries",
        ),
    ),
    "take-over-pending-at-start": Safeguard(
        "a restarted service takes over the entries its group left pending",
        (
            (
                "service/restore.py",
                "    taken = await asyncio.to_thread(consumer.take_over)",
                "    taken = 0",
            ),
        ),
        ("tests/integration/test_fault_service_kill.py",),
    ),
    "fail-orphaned-requests": Safeguard(
        "node requests in flight at a kill are failed at restart",
        (
            (
                "service/restore.py",
                "    expired = engine.expire_requests(now)",
                "    expired: list[str] = []",
            ),
        ),
        ("tests/integration/test_fault_service_kill.py",),
    ),
    "circuit-breaker": Safeguard(
        "the node API client stops calling a failing API",
        (
            (
                "service/http_provider.py",
                "            if not breaker.allow(time.monotonic()):",
                "            if False:",
            ),
        ),
        (
            "tests/integration/test_fault_node_api.py"
            "::test_a_failing_api_opens_the_breaker_and_the_pool_converges_after",
        ),
    ),
    "terminate-again": Safeguard(
        "reconciliation terminates again a node whose delete was lost",
        (
            (
                "service/reconcile.py",
                "        elif pool_node.state is NodeState.TERMINATING:\n"
                "            since = pool_node.terminating_at\n"
                "            if since is None or at - since >= grace_s:\n"
                "                result.terminate.append(pool_node.node_id)\n",
                "",
            ),
        ),
        (
            "tests/integration/test_fault_node_api.py"
            "::test_lost_creates_lost_deletes_and_lost_events_converge",
        ),
    ),
    "no-terminate-again-before-the-delete": Safeguard(
        "reconciliation does not terminate again a node whose delete is not sent or answered yet",
        (
            (
                "service/reconcile.py",
                "            if since is None or at - since >= grace_s:\n",
                "            if True:\n",
            ),
        ),
        (
            "tests/service/test_reconcile_race.py",
            "tests/service/test_reconcile.py"
            "::test_a_node_terminated_within_the_grace_before_the_listing_is_not_terminated_again",
        ),
    ),
    "adopt-unknown-nodes": Safeguard(
        "reconciliation adopts a live node the pool does not know",
        (
            (
                "service/reconcile.py",
                "        result.adopt.append((node.id, NodeStatus(node.status)))",
                "        pass",
            ),
        ),
        (
            "tests/integration/test_fault_node_api.py"
            "::test_a_node_nobody_asked_for_is_adopted_after_the_grace",
        ),
    ),
    "non-finite-fallback": Safeguard(
        "a prediction that is not a probability falls back to the heuristic",
        (
            (
                "models/model_scorer.py",
                "            valid = np.isfinite(predicted) & (predicted >= 0.0)",
                "            valid = np.ones(len(predicted), dtype=bool) | (predicted >= 0.0)",
            ),
        ),
        ("tests/integration/test_fault_registry.py::test_damaged_artifacts_and_a_nan_model",),
    ),
    "booster-checks": Safeguard(
        "a damaged booster file is refused before LightGBM parses it",
        (
            (
                "models/classifier.py",
                "    lines = check_booster_text(text)\n",
                '    lines = text.split("\\n")\n',
            ),
            (
                "models/classifier.py",
                "    if isinstance(sha256, str) and hashlib.sha256(raw).hexdigest() != sha256:",
                "    if False:",
            ),
        ),
        ("tests/integration/test_fault_registry.py::test_damaged_artifacts_and_a_nan_model",),
    ),
    "reload-when-back": Safeguard(
        "the champion is loaded again once the registry answers",
        (
            (
                "service/model_watch.py",
                "        if version == self.scorer.model_version:\n",
                "        if version == self.scorer.model_version or not self.scorer.model:\n",
            ),
        ),
        ("tests/integration/test_fault_registry.py::test_registry_unreachable_then_back",),
    ),
    "lease-fencing": Safeguard(
        "every node command checks in Redis that the leader's term is current",
        (
            (
                "service/lease.py",
                "            current = self.lease.guard(fence)",
                "            current = True",
            ),
        ),
        (
            "tests/integration/test_replicas.py",
            "tests/service/test_lease.py",
            "tests/provisioner/test_serving_lease.py",
        ),
    ),
    "only-the-leader-scales": Safeguard(
        "a replica that does not hold the lease sends no node command",
        (
            (
                "service/live.py",
                "        return self.leader is None or self.leader()",
                "        return True",
            ),
        ),
        ("tests/integration/test_replicas.py",),
    ),
}


def check(name: str, guard: Safeguard, tree: Path) -> dict[str, object]:
    subprocess.run(["git", "checkout", "-q", "--", "."], cwd=tree, check=True)
    for file, old, new in guard.edits:
        path = tree / file
        text = path.read_text()
        if text.count(old) != 1:
            return {"name": name, "outcome": "stale", "detail": f"{file}: {old.strip()!r}"}
        path.write_text(text.replace(old, new))
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *guard.tests],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    )
    subprocess.run(["git", "checkout", "-q", "--", "."], cwd=tree, check=True)
    lines = [line for line in run.stdout.splitlines() if line.strip()]
    failure = next((line.strip() for line in lines if line.lstrip().startswith("E ")), None)
    return {
        "name": name,
        "what": guard.what,
        "outcome": "caught"
        if run.returncode == 1
        else f"not caught (pytest exit {run.returncode})",
        "first_error": failure,
        "summary": lines[-1] if lines else "",
        "seconds": round(time.monotonic() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(SAFEGUARDS))
    args = parser.parse_args()
    unknown = [name for name in args.names if name not in SAFEGUARDS]
    if unknown:
        parser.error(f"unknown safeguard {', '.join(unknown)}; known: {', '.join(SAFEGUARDS)}")
    names = args.names or list(SAFEGUARDS)
    results = []
    with tempfile.TemporaryDirectory(prefix="safeguards-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(
            ["git", "worktree", "add", "-q", "--detach", str(tree)], cwd=ROOT, check=True
        )
        try:
            for name in names:
                result = check(name, SAFEGUARDS[name], tree)
                print(f"{name}: {result['outcome']}", file=sys.stderr)
                results.append(result)
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False
            )
    print(
        json.dumps(
            {"safeguards": results, "redis_url": bool(os.environ.get("REDIS_URL"))}, indent=2
        )
    )
    sys.exit(0 if all(r["outcome"] == "caught" for r in results) else 1)


if __name__ == "__main__":
    main()
