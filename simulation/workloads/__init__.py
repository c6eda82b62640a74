"""Simulated users: workloads that yield user events in virtual time, and their registry.

``generate(name, hours=..., seed=...)`` yields the ``features.events`` user events of a
named workload (``seed``, ``habits``, ``shifts`` or ``churn``), sorted by ``ts`` and lazily;
:mod:`simulation.workloads.realtime` publishes one on Redis pub/sub as time goes by.
"""

from simulation.workloads.base import DEFAULT_START, SimUser, UserKind
from simulation.workloads.catalog import WORKLOADS, UnknownWorkload, generate, population

__all__ = [
    "DEFAULT_START",
    "WORKLOADS",
    "SimUser",
    "UnknownWorkload",
    "UserKind",
    "generate",
    "population",
]
