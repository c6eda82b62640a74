"""Small, real pieces of the model lifecycle shared by the training, models and CLI tests.

A few hours of the seed workload make a dataset that trains in a second or two with few
trees; results are cached per process, since every test may reuse them read-only.

The tracking store is a real MLflow store: SQLite by default; a test marked
:data:`BOTH_STORES` runs against SQLite and against a PostgreSQL backend store, a database
of this session's own on the server at ``POSTGRES_URL`` (default: 127.0.0.1:5432, user
``postgres``, trust auth as on CI), dropped at the end. That variant skips, saying why,
when the server does not answer.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import random
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import pytest
import sqlalchemy

from features.events import Event, NodeStatus, NodeStatusChanged
from features.table import EventTable
from models.classifier import SigmoidCalibration
from models.registry import ModelRegistry
from simulation.nodes.boot import parse_boot_time
from simulation.nodes.fleet import NodeFleet
from simulation.workloads import generate
from training.dataset import Dataset, DatasetSpec, build_dataset
from training.evaluate import evaluate
from training.gates import Tolerances
from training.retrain import RetrainOutcome, retrain
from training.sources import EventSource
from training.tracking import LoggedRun, TrackingConfig, log_training
from training.train import TrainConfig, TrainResult, train
from training.train_curve import CurveTrainResult, JobResult, train_curve

POSTGRES_ADMIN_URL: Final = "postgresql://postgres@127.0.0.1:5432/postgres"
"""Where the PostgreSQL variant creates its database (``POSTGRES_URL`` overrides it)."""
STORES: Final = ("sqlite", "postgresql")
BOTH_STORES = pytest.mark.parametrize("tracking", STORES, indirect=True)
"""Runs a test that uses ``tracking`` (or ``registry``) against each backend store; its
folder's conftest imports :func:`postgres_store`."""

HOURS = 3.0
FAST = TrainConfig(max_trees=40, early_stopping_rounds=10)
"""Few trees: enough to beat the heuristic and the baseline on a few hours of the seed."""


@functools.cache
def seed_table(hours: float = HOURS, seed: int = 1) -> EventTable:
    return EventTable.from_events(generate("seed", hours=hours, seed=seed))


@functools.cache
def seed_dataset(hours: float = HOURS, seed: int = 1) -> Dataset:
    return build_dataset(seed_table(hours, seed), DatasetSpec())


@functools.cache
def trained(hours: float = HOURS, seed: int = 1) -> TrainResult:
    return train(seed_dataset(hours, seed), FAST)


@functools.cache
def trained_curve(hours: float = HOURS, seed: int = 1) -> CurveTrainResult:
    """The hazard time-to-connect model on the same rows as :func:`trained`."""
    return train_curve(seed_dataset(hours, seed), FAST)


@functools.cache
def worse() -> TrainResult:
    """The same booster with a deliberately bad calibration: worse log loss and Brier."""
    good = trained()
    bad = dataclasses.replace(good.classifier, calibration=SigmoidCalibration(0.25, -2.5))
    test = good.split.test
    probability = bad.predict_proba(test.X)
    return dataclasses.replace(
        good,
        classifier=bad,
        metrics={**good.metrics, "model": evaluate(test.y, probability, test.w)},
        test_probability={**good.test_probability, "model": probability},
    )


def trace_source(hours: float = HOURS, seed: int = 1) -> EventSource:
    return EventSource(seed_table(hours, seed), "trace", f"/nonexistent/seed-{hours}h.jsonl")


@dataclasses.dataclass(frozen=True)
class FleetBoots:
    """Node events of a simulated fleet, and the boots they hold (in ready order)."""

    events: list[NodeStatusChanged]
    boots: list[float]
    """Seconds from create to ready of each node that became ready, in the order it did."""


def fleet_boots(boot: str, created_at: Sequence[float], seed: int = 7) -> FleetBoots:
    """The ``node:status`` events of the simulated fleet (``simulation.nodes.fleet``) when a
    node is created at each of ``created_at``: ``booting`` then ``ready`` after the boot
    time drawn from ``boot``. Every other node is terminated 10 s after its creation when
    it is still booting then (it gives no boot)."""
    fleet = NodeFleet(parse_boot_time(boot), random.Random(seed))
    timeline: list[tuple[float, int, NodeStatusChanged]] = []
    boots: list[tuple[float, float]] = []
    for k, at in enumerate(sorted(created_at)):
        node = fleet.create(at)
        timeline.append((at, 0, NodeStatusChanged(at, node.id, NodeStatus.BOOTING)))
        if k % 2 and node.boot_s > 10:
            fleet.terminate(node.id, at + 10)
            gone = NodeStatusChanged(at + 10, node.id, NodeStatus.TERMINATED)
            timeline.append((at + 10, 1, gone))
    for ready in fleet.advance(float("inf")):
        timeline.append((ready.at, 1, NodeStatusChanged(ready.at, ready.node_id, ready.status)))
        booted = fleet.get(ready.node_id)
        assert booted is not None
        boots.append((ready.at, booted.boot_s))
    timeline.sort(key=lambda item: (item[0], item[1]))
    return FleetBoots([e for _, _, e in timeline], [s for _, s in sorted(boots)])


def merged(*streams: Iterable[Event]) -> list[Event]:
    """Events of several streams in one time order (as a log or a trace holds them)."""
    return sorted((e for stream in streams for e in stream), key=lambda e: e.ts)


def sqlite_tracking(root: Path, model_name: str) -> TrackingConfig:
    return store_tracking(f"sqlite:///{root / 'mlflow.db'}", root, model_name)


def store_tracking(tracking_uri: str, root: Path, model_name: str) -> TrackingConfig:
    """A model (and experiment) of its own in the store at ``tracking_uri``; artifacts
    under ``root``."""
    return TrackingConfig(
        tracking_uri=tracking_uri,
        experiment=f"exp-{model_name}",
        model_name=model_name,
        artifact_location=(root / "mlartifacts").as_uri(),
    )


def register(tracking: TrackingConfig, result: JobResult | None = None) -> LoggedRun:
    """Log ``result`` (default: the cached small model) as a new version."""
    return log_training(result or trained(), seed_dataset(), trace_source(), tracking)


def retrain_seed(
    tracking: TrackingConfig, registry: ModelRegistry, **options: Any
) -> RetrainOutcome:
    """``retrain`` as cron runs it, on the seed's trace with :data:`FAST` and the default
    tolerances; ``options`` (``dry_run``, ``progress``, ``model_type``, ...) passed on."""
    return retrain(
        trace_source(),
        DatasetSpec(),
        FAST,
        tracking,
        registry,
        tolerances=Tolerances(),
        actor="cron",
        **options,
    )


# -- fixtures (imported by the conftest of each test folder that needs a store) --------------


@pytest.fixture(scope="session")
def mlflow_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real SQLite tracking store for the whole session (creating its tables takes
    seconds); every folder's conftest that imports this fixture gets the same one."""
    root = tmp_path_factory.getbasetemp() / "mlflow-store"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="session")
def postgres_store() -> Iterator[str]:
    """The tracking URI of a PostgreSQL database made for this session (CREATE DATABASE
    with a unique name; dropped afterwards); skips when the server does not answer."""
    admin_url = os.environ.get("POSTGRES_URL") or POSTGRES_ADMIN_URL
    admin = sqlalchemy.create_engine(
        admin_url,
        isolation_level="AUTOCOMMIT",
        poolclass=sqlalchemy.NullPool,
        connect_args={"connect_timeout": 3},
    )
    name = f"mlflow_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    except sqlalchemy.exc.OperationalError as e:
        admin.dispose()
        reason = str(e.orig).strip().splitlines()[0] if e.orig else str(e)
        pytest.skip(f"no PostgreSQL at {admin.url.render_as_string()}: {reason}")
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def tracking(mlflow_root: Path, request: pytest.FixtureRequest) -> TrackingConfig:
    """A registered model (and experiment) of its own for each test, in the SQLite store
    unless the test is marked :data:`BOTH_STORES`."""
    store = getattr(request, "param", "sqlite")
    model_name = f"model-{uuid.uuid4().hex[:10]}"
    if store == "postgresql":
        uri: str = request.getfixturevalue("postgres_store")
        return store_tracking(uri, mlflow_root, model_name)
    assert store == "sqlite", store
    return sqlite_tracking(mlflow_root, model_name)


@pytest.fixture
def registry(tracking: TrackingConfig) -> ModelRegistry:
    return ModelRegistry(tracking.tracking_uri, tracking.model_name)
