"""The workloads by name: what the CLI and the bench generate from."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final, Protocol

from features.events import UserEvent
from simulation.workloads.base import DEFAULT_START, SimUser
from simulation.workloads.churn import churn_users, churn_workload
from simulation.workloads.habits import habits_workload
from simulation.workloads.personas import habits_population
from simulation.workloads.seed import seed_population, seed_workload
from simulation.workloads.shifts import shifts_users, shifts_workload


class UnknownWorkload(ValueError):
    """A workload name that is not one of :data:`WORKLOADS`."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown workload {name!r}; choose one of: {', '.join(WORKLOADS)}")
        self.name = name


class _Generator(Protocol):
    def __call__(
        self, *, hours: float, seed: int, start: float = ..., users: int | None = ...
    ) -> Iterator[UserEvent]: ...


def _habits_users(seed: int, users: int | None) -> tuple[SimUser, ...]:
    return tuple(persona.user for persona in habits_population(seed, users))


_GENERATORS: Final[dict[str, _Generator]] = {
    "seed": seed_workload,
    "habits": habits_workload,
    "shifts": shifts_workload,
    "churn": churn_workload,
}
_POPULATIONS: Final[dict[str, Callable[[int, int | None], tuple[SimUser, ...]]]] = {
    "seed": seed_population,
    "habits": _habits_users,
    "shifts": shifts_users,
    "churn": churn_users,
}

WORKLOADS: Final = tuple(_GENERATORS)
"""The names :func:`generate` knows."""


def generate(
    name: str,
    *,
    hours: float,
    seed: int,
    start: float = DEFAULT_START,
    users: int | None = None,
) -> Iterator[UserEvent]:
    """The events of workload ``name`` in ``[start, start + hours h)``, lazily, sorted by ``ts``.

    Raises :class:`UnknownWorkload` for a name not in :data:`WORKLOADS` and ValueError for
    an empty window or population, before any event is generated.
    """
    generator = _GENERATORS.get(name)
    if generator is None:
        raise UnknownWorkload(name)
    return generator(hours=hours, seed=seed, start=start, users=users)


def population(name: str, *, seed: int, users: int | None = None) -> tuple[SimUser, ...]:
    """The users (id and kind) that :func:`generate` simulates for the same arguments."""
    draw = _POPULATIONS.get(name)
    if draw is None:
        raise UnknownWorkload(name)
    return draw(seed, users)
