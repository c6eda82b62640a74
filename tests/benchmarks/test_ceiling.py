"""benchmarks/ceiling.py: the engine's scaler given a scorer that knows who connects when."""

from __future__ import annotations

from benchmarks.ceiling import ceiling
from simulation.bench.request import BenchRequest
from simulation.bench.run import run_bench
from simulation.policies import parse_policies


def test_knowing_who_connects_when_beats_the_heuristic_on_the_same_engine() -> None:
    request = BenchRequest(
        hours=2, boot="uniform:60:180", policies=parse_policies("heuristic:0.99")
    )
    (known,) = ceiling(request, [0.99])
    (heuristic,) = run_bench(request).policies
    assert known["connects"] == heuristic.run.connects
    assert known["efficiency"] > heuristic.run.efficiency + 0.1
    assert known["nodes_created"] < heuristic.run.nodes_created
