"""The bench: every policy replayed on the same events, scored by the same code.

A *history* is the user events of one window: a generated workload or a recorded trace
(node events in a trace are dropped: the bench simulates its own nodes). Each policy of
:mod:`simulation.policies` replays the scored history through
:func:`simulation.runner.run` on a virtual clock, against a simulated fleet whose boot
times come from the boot spec and the seed (the same fleet seed for every policy), and is
measured as docs/architecture.md defines it ("Three numbers"): the instant rate and waits
from the policy's ``service.pool.NodePool``, node time from the fleet, user time from the
node API's own accounting. The oracle (:func:`simulation.oracle.oracle`) is scored by the
same metric code.

The ``model`` policy is our engine with a model trained by the training package
(``training.dataset.build_dataset`` and ``training.train.train``: LightGBM, calibrated) on a
*separate* history, never on the events it is scored on:

- ``train_trace``: another trace file;
- ``train_fraction``: the earlier part of the scored trace (the scored part is the rest);
- ``history_hours``: the same users' events in the hours before the scored window of a
  generated workload (the workload is generated from its start for the history and the
  scored hours together, and scored after the history);
- otherwise the same workload under another seed (``seed + TRAIN_SEED_OFFSET``) for
  ``train_hours`` (default: the scored hours).

:func:`check_separate` enforces it: the training events must end before the scored ones
begin, or share no user with them; otherwise :class:`TrainingLeak`. When the training
history is an earlier stretch of the same users (a trace split or ``history_hours``), the
online features of every engine policy (``heuristic`` and ``model``) are first fed with it,
as the live service would have read its event log; no metric counts it.

:func:`run_bench` returns a :class:`BenchResult`; its ``to_dict()`` is the JSON (no wall
times in it, so the same inputs give the same JSON); :func:`render_table` is the human
table and :func:`plot_frontier` the Pareto plot of a sweep (:func:`run_sweep`: the static
pool size and the service-level target of the engine's policies, over grids).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from features.events import UserActivity, UserConnect, UserDisconnect, UserEvent
from features.online import OnlineFeatures
from models.heuristic import HeuristicScorer
from models.scoring import Scorer
from service.config import ServiceConfig
from service.engine import Engine
from simulation.nodes.boot import DEFAULT_BOOT_SPEC, BootTime, parse_boot_time
from simulation.oracle import oracle
from simulation.policies import (
    DEFAULT_POLICIES,
    PolicyKind,
    PolicySpec,
    SeedRulePolicy,
    StaticPolicy,
    parse_policies,
)
from simulation.runner import DecisionCore, run
from simulation.workloads import DEFAULT_START, generate

if TYPE_CHECKING:
    from rich.table import Table

TRAIN_SEED_OFFSET: Final = 1000
"""The model's default training history: the same workload under ``seed + 1000``."""
DEFAULT_MAX_NODES: Final = 500
"""The bench's node budget: large enough not to bind on either workload."""
STATIC_SWEEP_MAX: Final = 30
STATIC_SWEEP_STOP: Final = 0.9995
"""The static sweep grows K until the instant rate reaches this (or K reaches the max)."""
TARGET_SWEEP: Final = (0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999)
"""Service-level targets the sweep gives the heuristic and the model."""
PROGRESS_EVERY: Final = 5000
"""Events between two progress reports."""

Progress = Callable[[str, float, float], None]
"""``progress(label, done, total)``: virtual seconds replayed of a policy run (labelled by
the policy), or steps of the training (``train model``: dataset, then model)."""


class BenchError(ValueError):
    """Input the bench cannot work with (an empty trace, a bad fraction ...)."""


class TrainingLeak(BenchError):
    """The model's training events are not separate from the events it is scored on."""


# -- histories -----------------------------------------------------------------------------


@dataclass(frozen=True)
class History:
    """User events in ``[start, end)``, sorted by time."""

    events: tuple[UserEvent, ...]
    start: float
    end: float
    source: str
    """What the events are: ``workload seed, seed 1`` or ``trace week.jsonl``."""

    def __post_init__(self) -> None:
        if not self.end > self.start:
            raise BenchError(f"{self.source}: empty window {self.start} .. {self.end}")

    @property
    def hours(self) -> float:
        return (self.end - self.start) / 3600.0

    @property
    def users(self) -> frozenset[str]:
        return frozenset(e.user_id for e in self.events)

    @property
    def connects(self) -> int:
        return sum(1 for e in self.events if isinstance(e, UserConnect))

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "start": self.start,
            "end": self.end,
            "hours": self.hours,
            "events": len(self.events),
            "users": len(self.users),
            "connects": self.connects,
        }


def workload_history(
    workload: str,
    *,
    hours: float,
    seed: int,
    users: int | None = None,
    start: float = DEFAULT_START,
) -> History:
    """The events of a generated workload."""
    events = tuple(generate(workload, hours=hours, seed=seed, start=start, users=users))
    source = f"workload {workload}, seed {seed}" + (f", {users} users" if users else "")
    return History(events, start, start + hours * 3600.0, source)


def trace_history(path: Path, *, hours: float | None = None, now: float | None = None) -> History:
    """The user events of a trace file (``.jsonl`` or ``.parquet``), from its first event.

    ``hours`` keeps only that many hours from the first event (default: all of it; the
    window then ends one second after the last event). Node events are dropped; lines that
    are not events are skipped (:class:`BenchError` when nothing is left).
    """
    from features.trace import RejectedLine, read_jsonl, read_parquet
    from features.transfer import UnsupportedFormat, trace_format

    try:
        kind = trace_format(path)
    except UnsupportedFormat as e:
        raise BenchError(str(e)) from e
    if not path.is_file():
        raise BenchError(f"no trace file at {path}")
    clock = time.time() if now is None else now
    raw = read_parquet(path) if kind == "parquet" else read_jsonl(path, now=clock)
    events = [
        e
        for e in raw
        if not isinstance(e, RejectedLine)
        and isinstance(e, UserActivity | UserConnect | UserDisconnect)
    ]
    if not events:
        raise BenchError(f"{path}: no user events")
    events.sort(key=lambda e: e.ts)
    start = math.floor(events[0].ts)
    if hours is not None:
        end = start + hours * 3600.0
        events = [e for e in events if e.ts < end]
    else:
        end = math.floor(events[-1].ts) + 1.0
    return History(tuple(events), start, end, f"trace {path.name}")


def split_history(history: History, fraction: float) -> tuple[History, History]:
    """``(earlier, later)``: the first ``fraction`` of the window, and the rest."""
    if not 0.0 < fraction < 1.0:
        raise BenchError(f"the training fraction must be in (0, 1), not {fraction}")
    cut = history.start + fraction * (history.end - history.start)
    return split_at(history, cut, f"{fraction:g}")


def split_at(history: History, cut: float, label: str) -> tuple[History, History]:
    """``(earlier, later)``: the events before ``cut``, and the others."""
    earlier = tuple(e for e in history.events if e.ts < cut)
    later = tuple(e for e in history.events if e.ts >= cut)
    return (
        History(earlier, history.start, cut, f"{history.source} before {label}"),
        History(later, cut, history.end, f"{history.source} from {label}"),
    )


def check_separate(train: History, scored: History) -> None:
    """:class:`TrainingLeak` unless every training event precedes the scored window or no
    user appears in both (so that no scored event can be a training event)."""
    if not train.events:
        raise BenchError(f"{train.source}: no events to train on")
    last_train = max(e.ts for e in train.events)
    if last_train < scored.start:
        return
    shared = train.users & scored.users
    if shared:
        raise TrainingLeak(
            f"the training events ({train.source}, up to {last_train}) reach into the scored "
            f"window ({scored.source}, from {scored.start}) and share {len(shared)} users: "
            "the model would be scored on events it was trained on"
        )


def is_prefix(train: History, scored: History) -> bool:
    """True when ``train`` is an earlier stretch of the same users' events."""
    return bool(train.events) and train.end <= scored.start and bool(train.users & scored.users)


# -- the model -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainedModel:
    scorer: Scorer
    info: dict[str, Any]
    """What the JSON says of the model (no wall time: the JSON is deterministic)."""
    history: History = field(repr=False)
    seconds: float = field(default=0.0, compare=False)
    """Wall time of building the dataset and training."""


def train_model(
    history: History,
    *,
    horizon_s: float,
    progress: Progress | None = None,
) -> TrainedModel:
    """Build the point-in-time dataset of ``history`` and train the calibrated LightGBM on
    it; the scorer is the one the service serves (``models.model_scorer.ModelScorer``)."""
    from features.table import EventTable
    from models.model_scorer import ModelScorer
    from models.registry import LoadedModel
    from training.dataset import DatasetSpec, build_dataset
    from training.train import BadTrainingData, TrainConfig, train

    report = progress or (lambda label, done, total: None)
    label = "train model"
    report(label, 0.0, 3.0)
    started = time.perf_counter()
    dataset = build_dataset(
        EventTable.from_events(history.events), DatasetSpec(horizon_s=horizon_s)
    )
    report(label, 1.0, 3.0)
    try:
        result = train(dataset, TrainConfig())
    except BadTrainingData as e:
        raise BenchError(f"cannot train the model on {history.source}: {e}") from e
    report(label, 3.0, 3.0)
    digest = dataset.digest()
    loaded = LoadedModel(
        name="bench",
        version=f"bench-{digest[:12]}",
        classifier=result.classifier,
        input_example=dataset.X[:8],
    )
    metrics = result.metrics["model"]
    info = {
        "trained_on": history.describe(),
        "rows": len(dataset),
        "positives": dataset.positives,
        "horizon_s": dataset.spec.horizon_s,
        "trees": result.trees,
        "version": loaded.version,
        "test_metrics": {
            name: value for name, value in asdict(metrics).items() if isinstance(value, float | int)
        },
    }
    return TrainedModel(ModelScorer(loaded), info, history, time.perf_counter() - started)


# -- running -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PolicyResult:
    policy: str
    connects: int
    instant_rate: float
    mean_wait_s: float
    p95_wait_s: float
    efficiency: float
    node_seconds: float
    user_seconds: float
    nodes_created: int
    nodes_per_connect: float
    idle_share: float
    """Share of node time in which a node served no user (``service.metrics``)."""
    knob: float | None = None
    """``static``: K; ``heuristic`` / ``model``: the service-level target; else None."""
    refused_needs: int | None = None
    """``heuristic`` / ``model``: needs the scaler refused (``service.scaler``); else None."""
    wall_s: float = field(default=0.0, compare=False)
    """Wall time of the run (not in the JSON: the JSON is deterministic)."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["wall_s"]
        return data


@dataclass(frozen=True)
class BenchSetup:
    """Everything a policy run needs besides its spec."""

    scored: History
    boot: BootTime
    seed: int
    config: ServiceConfig
    model: TrainedModel | None = None
    warmup: History | None = None
    """Events that precede the scored window (fed to the engine's features only)."""


def run_policy(
    spec: PolicySpec, setup: BenchSetup, *, progress: Progress | None = None
) -> PolicyResult:
    """Replay ``setup.scored`` under one policy; scored as docs/architecture.md says
    ("Three numbers")."""
    scored = setup.scored
    started = time.perf_counter()
    knob: float | None = None
    if spec.kind is PolicyKind.ORACLE:
        report = oracle(scored.events, end=scored.end, boot=setup.boot, seed=setup.seed)
        if progress is not None:
            progress(spec.name, scored.end - scored.start, scored.end - scored.start)
        return PolicyResult(
            policy=spec.name,
            connects=report.connects,
            instant_rate=report.instant_rate,
            mean_wait_s=report.mean_wait_s,
            p95_wait_s=report.p95_wait_s,
            efficiency=report.efficiency,
            node_seconds=report.node_seconds,
            user_seconds=report.user_seconds,
            nodes_created=report.nodes_created,
            nodes_per_connect=report.nodes_per_connect,
            idle_share=report.idle_share,
            wall_s=time.perf_counter() - started,
        )
    core: DecisionCore
    engine: Engine | None = None
    if spec.kind is PolicyKind.STATIC:
        assert spec.k is not None
        core, knob = StaticPolicy(spec.k, setup.config), float(spec.k)
    elif spec.kind is PolicyKind.SEED_RULE:
        core = SeedRulePolicy(setup.config)
    else:
        config = setup.config
        if spec.target is not None:
            config = replace(config, target_instant_rate=spec.target)
        knob = config.target_instant_rate
        core = engine = Engine(_scorer(spec, setup, config), config, features=_warm_features(setup))
    events: Iterable[UserEvent] = scored.events
    if progress is not None:
        events = _reporting(scored, spec.name, progress)
    result = run(
        events,
        core,
        start=scored.start,
        end=scored.end,
        boot=setup.boot,
        seed=setup.seed,
    )
    return PolicyResult(
        policy=spec.name,
        connects=result.connects,
        instant_rate=result.instant_rate,
        mean_wait_s=result.mean_wait_s,
        p95_wait_s=result.p95_wait_s,
        efficiency=result.efficiency,
        node_seconds=result.node_seconds,
        user_seconds=result.user_seconds,
        nodes_created=result.nodes_created,
        nodes_per_connect=result.nodes_per_connect,
        idle_share=result.idle_share,
        knob=knob,
        refused_needs=None if engine is None else sum(engine.refusals.values()),
        wall_s=time.perf_counter() - started,
    )


def _scorer(spec: PolicySpec, setup: BenchSetup, config: ServiceConfig) -> Scorer:
    if spec.kind is PolicyKind.HEURISTIC:
        return HeuristicScorer(horizon_s=config.lead_time_s)
    if setup.model is None:
        raise BenchError("the model policy needs a trained model")
    return setup.model.scorer


def _warm_features(setup: BenchSetup) -> OnlineFeatures | None:
    if setup.warmup is None:
        return None
    features = OnlineFeatures()
    features.update_many(setup.warmup.events)
    return features


def _reporting(history: History, label: str, progress: Progress) -> Iterator[UserEvent]:
    total = history.end - history.start
    progress(label, 0.0, total)
    for n, event in enumerate(history.events, start=1):
        if n % PROGRESS_EVERY == 0:
            progress(label, event.ts - history.start, total)
        yield event
    progress(label, total, total)


# -- the whole bench -----------------------------------------------------------------------


def parse_override(text: str) -> tuple[str, float | int | bool]:
    """``KEY=VALUE`` for a field of ``ServiceConfig`` (``max_idle_s=60``), typed as the field."""
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    kinds = {f.name: str(f.type) for f in fields(ServiceConfig)}
    if not sep or key not in kinds:
        raise BenchError(f"{text!r}: expected KEY=VALUE with KEY one of {', '.join(kinds)}")
    kind = kinds[key]
    try:
        if kind == "bool":
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(raw)
            return key, raw.lower() in ("true", "1")
        if kind == "int":
            return key, int(raw)
        return key, float(raw)
    except ValueError as e:
        raise BenchError(f"{text!r}: {raw!r} is not a {kind}") from e


@dataclass(frozen=True)
class BenchRequest:
    workload: str = "seed"
    trace: Path | None = None
    hours: float | None = None
    """Scored hours (default: 24 for a workload, the whole trace for a trace)."""
    seed: int = 1
    users: int | None = None
    boot: str = DEFAULT_BOOT_SPEC
    policies: tuple[PolicySpec, ...] = field(
        default_factory=lambda: parse_policies(DEFAULT_POLICIES)
    )
    train_trace: Path | None = None
    train_fraction: float | None = None
    train_hours: float | None = None
    """Hours of the generated training history (default: the scored hours)."""
    history_hours: float | None = None
    """Hours of the same users' events before the scored window of a generated workload:
    the model trains on them and every engine's features are fed with them first."""
    target: float | None = None
    """Service-level target of ``heuristic`` / ``model`` without one of their own."""
    max_nodes: int = DEFAULT_MAX_NODES
    overrides: tuple[tuple[str, float | int | bool], ...] = ()
    """Other ``ServiceConfig`` fields for the engine and the baselines (:func:`parse_override`)."""

    def __post_init__(self) -> None:
        problems: list[str] = []
        try:
            self.config()
        except (TypeError, ValueError) as e:
            problems.append(f"bad service config: {e}")
        if self.hours is not None and not (math.isfinite(self.hours) and self.hours > 0):
            problems.append(f"hours must be > 0, not {self.hours}")
        if self.train_hours is not None and not (
            math.isfinite(self.train_hours) and self.train_hours > 0
        ):
            problems.append(f"train hours must be > 0, not {self.train_hours}")
        if self.history_hours is not None:
            if not (math.isfinite(self.history_hours) and self.history_hours > 0):
                problems.append(f"history hours must be > 0, not {self.history_hours}")
            others = (self.trace, self.train_trace, self.train_fraction, self.train_hours)
            if any(other is not None for other in others):
                problems.append(
                    "a history (--history) only applies to a generated workload, without a "
                    "trace, training trace, training fraction or training hours"
                )
        if self.train_fraction is not None:
            if self.trace is None:
                problems.append("a training fraction needs a trace (--trace) to split")
            if self.train_trace is not None:
                problems.append("give a training trace or a training fraction, not both")
            if not 0.0 < self.train_fraction < 1.0:
                problems.append(f"the training fraction must be in (0, 1): {self.train_fraction}")
        if (
            self.trace is not None
            and self.wants_model
            and self.train_trace is None
            and self.train_fraction is None
        ):
            problems.append(
                "the model policy on a trace needs a training trace or a training fraction "
                "(--train-trace or --train-fraction)"
            )
        if self.trace is not None and self.users is not None:
            problems.append("users only applies to a generated workload, not to a trace")
        if not self.policies:
            problems.append("no policy to run")
        if problems:
            raise BenchError("; ".join(problems))

    @property
    def wants_model(self) -> bool:
        return any(p.kind is PolicyKind.MODEL for p in self.policies)

    def config(self) -> ServiceConfig:
        settings: dict[str, Any] = {"max_nodes": self.max_nodes, **dict(self.overrides)}
        base = ServiceConfig(**settings)
        return base if self.target is None else replace(base, target_instant_rate=self.target)


@dataclass(frozen=True)
class BenchResult:
    request: BenchRequest
    setup: BenchSetup
    policies: tuple[PolicyResult, ...]
    sweep: tuple[PolicyResult, ...] = ()
    seconds: float = field(default=0.0, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON of the bench: deterministic for the same inputs (no wall times)."""
        request = self.request
        data: dict[str, Any] = {
            "workload": "trace" if request.trace is not None else request.workload,
            "seed": request.seed,
            "hours": self.setup.scored.hours,
            "boot": str(self.setup.boot),
            "policies": [p.to_dict() for p in self.policies],
            "scored": self.setup.scored.describe(),
            "config": self.setup.config.to_dict(),
        }
        if self.setup.warmup is not None:
            data["history"] = self.setup.warmup.describe()
        if self.setup.model is not None:
            data["model"] = self.setup.model.info
        if self.sweep:
            data["sweep"] = [p.to_dict() for p in self.sweep]
            data["frontier"] = {
                family: [p.to_dict() for p in points]
                for family, points in frontiers(self.sweep).items()
            }
        return data


def prepare(request: BenchRequest, *, progress: Progress | None = None) -> BenchSetup:
    """Load (or generate) the scored history, and train the model when a policy needs it."""
    try:
        boot = parse_boot_time(request.boot)
    except ValueError as e:
        raise BenchError(str(e)) from e
    config = request.config()
    train: History | None = None
    if request.trace is not None:
        scored = trace_history(request.trace, hours=request.hours)
        if request.train_fraction is not None:
            train, scored = split_history(scored, request.train_fraction)
    else:
        hours = 24.0 if request.hours is None else request.hours
        history = request.history_hours or 0.0
        try:
            scored = workload_history(
                request.workload, hours=history + hours, seed=request.seed, users=request.users
            )
        except ValueError as e:
            raise BenchError(str(e)) from e
        if history:
            train, scored = split_at(scored, scored.start + history * 3600.0, f"{history:g} h")
    model: TrainedModel | None = None
    if request.wants_model:
        if train is None and request.train_trace is not None:
            train = trace_history(request.train_trace, hours=request.train_hours)
        if train is None:
            train = workload_history(
                request.workload,
                hours=request.train_hours if request.train_hours is not None else scored.hours,
                seed=request.seed + TRAIN_SEED_OFFSET,
                users=request.users,
                start=scored.start,
            )
        check_separate(train, scored)
        model = train_model(train, horizon_s=config.lead_time_s, progress=progress)
    warmup = train if train is not None and is_prefix(train, scored) else None
    return BenchSetup(scored, boot, request.seed, config, model, warmup)


def run_bench(
    request: BenchRequest, *, sweep: bool = False, progress: Progress | None = None
) -> BenchResult:
    """Every policy of ``request`` on the same history (and the sweep when asked)."""
    started = time.perf_counter()
    setup = prepare(request, progress=progress)
    results = tuple(run_policy(spec, setup, progress=progress) for spec in request.policies)
    swept = run_sweep(request.policies, setup, results, progress=progress) if sweep else ()
    return BenchResult(request, setup, results, swept, time.perf_counter() - started)


# -- the sweep -----------------------------------------------------------------------------


def run_sweep(
    policies: Sequence[PolicySpec],
    setup: BenchSetup,
    done: Sequence[PolicyResult] = (),
    *,
    targets: Sequence[float] = TARGET_SWEEP,
    static_max: int = STATIC_SWEEP_MAX,
    progress: Progress | None = None,
) -> tuple[PolicyResult, ...]:
    """Each policy family over its knob: ``static`` K = 0, 1, ... until the instant rate
    reaches ``STATIC_SWEEP_STOP`` (or ``static_max``); ``heuristic`` and ``model`` over
    ``targets``; ``seed-rule`` and ``oracle`` (no knob) once. Runs already ``done`` are
    reused."""
    known = {p.policy: p for p in done}
    kinds = list(dict.fromkeys(p.kind for p in policies))
    out: list[PolicyResult] = []

    def measured(spec: PolicySpec) -> PolicyResult:
        result = known.get(spec.name)
        if result is None:
            result = run_policy(spec, setup, progress=progress)
            known[spec.name] = result
        return result

    for kind in kinds:
        if kind is PolicyKind.STATIC:
            for k in range(static_max + 1):
                result = measured(PolicySpec(kind, k=k))
                out.append(result)
                if result.instant_rate >= STATIC_SWEEP_STOP:
                    break
        elif kind in (PolicyKind.HEURISTIC, PolicyKind.MODEL):
            default = setup.config.target_instant_rate
            for target in sorted({*targets, default}):
                spec = PolicySpec(kind, target=target)
                if target == default and kind.value in known:
                    result = replace(known[kind.value], policy=spec.name)
                else:
                    result = measured(spec)
                out.append(result)
        else:
            out.append(measured(PolicySpec(kind)))
    return tuple(out)


def family(result: PolicyResult) -> str:
    """``static:4`` -> ``static``; ``model:0.99`` -> ``model``."""
    return result.policy.split(":", 1)[0]


def frontiers(results: Iterable[PolicyResult]) -> dict[str, list[PolicyResult]]:
    """Per policy family, the points no other point of the family beats on both the instant
    rate and the efficiency, by increasing instant rate."""
    families: dict[str, list[PolicyResult]] = {}
    for result in results:
        families.setdefault(family(result), []).append(result)
    out: dict[str, list[PolicyResult]] = {}
    for name, points in families.items():
        ordered = sorted(points, key=lambda p: (-p.instant_rate, -p.efficiency))
        kept: list[PolicyResult] = []
        best = -math.inf
        for point in ordered:
            if point.efficiency > best:
                kept.append(point)
                best = point.efficiency
        out[name] = kept[::-1]
    return out


def best_at(results: Iterable[PolicyResult], name: str, instant_rate: float) -> PolicyResult | None:
    """The most efficient run of family ``name`` with at least ``instant_rate``."""
    eligible = [r for r in results if family(r) == name and r.instant_rate >= instant_rate]
    return max(eligible, key=lambda r: r.efficiency, default=None)


# -- output --------------------------------------------------------------------------------


def render_table(results: Sequence[PolicyResult], *, title: str | None = None) -> Table:
    """The human table of a bench (rich)."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("policy", no_wrap=True)
    for name in ("connects", "instant", "mean wait", "p95 wait", "efficiency"):
        table.add_column(name, justify="right", no_wrap=True)
    for name in ("node h", "user h", "nodes", "per connect", "idle", "wall s"):
        table.add_column(name, justify="right", no_wrap=True)
    for r in results:
        table.add_row(
            r.policy,
            f"{r.connects}",
            f"{r.instant_rate:.4f}",
            f"{r.mean_wait_s:.1f} s",
            f"{r.p95_wait_s:.1f} s",
            f"{r.efficiency:.3f}",
            f"{r.node_seconds / 3600:.1f}",
            f"{r.user_seconds / 3600:.1f}",
            f"{r.nodes_created}",
            f"{r.nodes_per_connect:.2f}",
            f"{r.idle_share:.3f}",
            f"{r.wall_s:.1f}",
        )
    return table


def plot_frontier(
    results: Sequence[PolicyResult], path: Path, *, title: str = "Instant rate vs efficiency"
) -> None:
    """Instant rate (logit axis) against efficiency: each family's points and its Pareto
    frontier, the oracle as a line (it serves every connect at once). Points at an instant
    rate of 0 or 1 cannot sit on a logit axis and are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    markers = {"static": "s", "seed-rule": "D", "heuristic": "o", "model": "^"}
    colors = {"static": "C0", "seed-rule": "C1", "heuristic": "C2", "model": "C3"}
    lowest, highest = 0.9, 0.999
    for name, points in frontiers(results).items():
        if name == PolicyKind.ORACLE.value:
            continue
        everything = [r for r in results if family(r) == name]
        shown = [r for r in everything if 0.0 < r.instant_rate < 1.0]
        if not shown:
            continue
        lowest = min(lowest, *(r.instant_rate for r in shown))
        highest = max(highest, *(r.instant_rate for r in shown))
        marker = markers.get(name, "o")
        line = ax.plot(
            [r.instant_rate for r in points if 0.0 < r.instant_rate < 1.0],
            [r.efficiency for r in points if 0.0 < r.instant_rate < 1.0],
            marker=marker,
            label=name,
            color=colors.get(name),
        )[0]
        ax.scatter(
            [r.instant_rate for r in shown],
            [r.efficiency for r in shown],
            marker=marker,
            facecolors="none",
            edgecolors=line.get_color(),
            alpha=0.6,
        )
        for r in points:
            if r.knob is not None and 0.0 < r.instant_rate < 1.0:
                knob = f"{r.knob:g}"
                ax.annotate(
                    knob,
                    (r.instant_rate, r.efficiency),
                    fontsize=7,
                    xytext=(3, 3),
                    textcoords="offset points",
                    color=line.get_color(),
                )
    for r in results:
        if family(r) == PolicyKind.ORACLE.value:
            ax.axhline(r.efficiency, color="black", linestyle="--", linewidth=1)
            ax.annotate(
                f"oracle {r.efficiency:.3f} (100% instant)",
                (0.02, r.efficiency),
                xycoords=("axes fraction", "data"),
                xytext=(0, 4),
                textcoords="offset points",
                fontsize=8,
            )
    ax.set_xscale("logit")
    left, right = max(1e-4, lowest * 0.98), min(1 - 1e-5, 1 - (1 - highest) * 0.5)
    ax.set_xlim(left, right)
    ticks = [t for t in (0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999) if left < t < right]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("instant rate (connects served at once)")
    ax.set_ylabel("efficiency (user-seconds / node-seconds)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
