"""The HTTP API of the live service (FastAPI; OpenAPI docs at /docs).

Thin routes over :class:`service.live.LiveService`: scoring on demand, the pool, the
model in use, the original node API's efficiency report, health and Prometheus metrics,
and the operator's dashboard at ``/`` (one self-contained page polling ``/v1/pool``,
``/v1/history`` and ``/v1/model``).
Bad requests get a 4xx saying what is wrong: bodies over ``max_body_bytes`` a 413, too
many or malformed user ids a 422, a missing or wrong admin token a 401.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from models.connect_curve import median_wait
from models.scoring import Source
from service.body_limit import BodyLimit
from service.breaker import BreakerState
from service.efficiency import Efficiency
from service.live import LiveService
from service.pool import NodeState

UserId = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Since = Annotated[
    float | None,
    Query(allow_inf_nan=False, description="Only points after this time (unix seconds)."),
]
MAX_PREDICT_USERS = 1000


class PredictRequest(BaseModel):
    user_ids: list[UserId] = Field(min_length=1, max_length=MAX_PREDICT_USERS)
    curve: bool = Field(default=False, description="Also answer each user's time-to-connect curve.")


class ConnectCurve(BaseModel):
    """When a user is likely to connect: the probability of a connect within each horizon.
    A time-to-connect model's curve; from a one-window classifier or the heuristic, their
    probability carried by a constant hazard (``1 - (1-p)^(t/H)``)."""

    horizons_s: list[float] = Field(description="Increasing; the last is the model's horizon.")
    probabilities: list[float] = Field(
        description="Non-decreasing, one per horizon; the last is the prediction's probability."
    )
    median_s: float | None = Field(
        description="Seconds until the curve reaches 0.5 (linear between horizons); null "
        "when it stays below 0.5 within the horizon."
    )


class Prediction(BaseModel):
    user_id: str
    probability: float = Field(ge=0.0, le=1.0)
    source: str
    model_version: str | None
    horizon_s: float
    curve: ConnectCurve | None = Field(default=None, description="Only when asked for.")


class ErrorBody(BaseModel):
    """A 4xx or 503 answer: what is wrong."""

    detail: str


_ERRORS: dict[int, str] = {
    400: "The body is not JSON text (e.g. not UTF-8).",
    401: "A missing or wrong admin bearer token, or no admin token configured.",
    409: "The service runs without a model registry.",
    413: "The request body is over the size limit.",
    503: "The service is starting.",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error answers a route can give besides 422."""
    return {code: {"model": ErrorBody, "description": _ERRORS[code]} for code in codes}


class Answer(BaseModel):
    """A body the service builds: a key the model does not declare is an error, not lost.

    ``<Name>Body`` is the JSON of the service's ``<Name>`` (its ``to_dict``)."""

    model_config = ConfigDict(extra="forbid")


class Health(Answer):
    status: Literal["ok"]


class ReadinessBody(Answer):
    """Ready when the service sees events and the first check of the model registry has
    settled what scores the users; ``reasons`` says why not."""

    ready: bool
    sees_events: bool
    """The last read of the event log succeeded, recently enough, and the consumer runs."""
    model_settled: bool
    """The first check of the model registry has finished (or there is no registry)."""
    model: str
    """What scores the users, or that the first check has not finished."""
    watermark: str | None
    """The ID of the last event log entry applied."""
    reasons: list[str]
    """Why the service is not ready (empty when it is)."""


class UserScoreBody(Answer):
    """A user's score at the last tick."""

    user_id: str
    probability: float
    """What the scorer said (about its own horizon)."""
    source: Source
    model_version: str | None
    demand_probability: float
    """The calibrated probability of a connect within the lead time the scaler used."""


class UserDetail(Answer):
    user_id: str
    known: bool
    connected: bool
    node_id: str | None
    features: dict[str, float]
    probability: float
    source: Source
    model_version: str | None
    horizon_s: float
    last_tick: UserScoreBody | None


class PoolCountsBody(Answer):
    """Nodes by state; ``waiting``: connected users without a node; ``live``: nodes that
    count against the budget; ``warm``: idle ready plus coming, minus the waiting users."""

    requested: int
    booting: int
    ready: int
    allocated: int
    terminating: int
    waiting: int
    live: int
    warm: int


class MetricsReportBody(Answer):
    connects: int
    instant: int
    instant_rate: float
    waited: int
    mean_wait_s: float
    p95_wait_s: float
    abandoned: int
    user_seconds: float
    node_seconds: float
    efficiency: float
    nodes_created: int
    busy_node_seconds: float
    nodes_per_connect: float
    idle_share: float


class PoolNodeBody(Answer):
    node_id: str | None
    token: str | None
    state: NodeState
    created_at: float
    ready_at: float | None
    idle_since: float | None
    user_id: str | None
    allocated_at: float | None
    adopted: bool
    known_at: float | None
    """When the pool learned the node's id (its create answered, or its adoption)."""
    terminating_at: float | None
    """While terminating: when the service decided to terminate it."""


class CircuitBreakerBody(Answer):
    state: BreakerState
    failures: int
    failure_threshold: int
    reset_after_s: float
    retry_in_s: float
    opened: int
    rejected: int


class ProviderHealth(Answer):
    breaker: CircuitBreakerBody | None
    """None: the node provider has no circuit breaker."""
    deletes_in_flight: int
    reconcile_unavailable: str | None
    """Why reconcile cannot run with this provider (it has no node listing); null: it can,
    or has not been tried yet."""


class BootTimesBody(Answer):
    """The boot times the core learned (``features.boot_times.BootTimes.summary``)."""

    seen: int
    kept: int
    prior_s: float
    prior_share: float
    """The prior's share of the weight: near 1 before any boot, near 0 after some dozens."""
    median_s: float
    quantile: float
    quantile_s: float
    last_s: float | None


class FeedbackReportBody(Answer):
    """The service level as feedback (``service.feedback``)."""

    target: float
    target_in_force: float
    window_connects: int
    window_instant: int
    recent_rate: float | None
    reason: str


class WindowLevelBody(Answer):
    """The connects of one window ending now, and what came of them."""

    window: str
    seconds: int
    connects: int
    instant: int
    """Connects served at once."""
    instant_rate: float | None
    """``instant / connects``; null without connects."""
    burn_rate: float | None
    """``(1 - instant_rate) / (1 - target)``: 1 spends the error budget as fast as it
    accrues; null without connects."""


class ServiceLevelBody(Answer):
    """The instant rate per window (5m, 30m, 1h, 6h), against the target."""

    at: float
    target_instant_rate: float
    windows: list[WindowLevelBody]


LiveRole = Literal["champion", "challenger", "fallback", "retired"]


class ReliabilityBinBody(Answer):
    """One bin of the reliability curve: the predictions of about equal weight merged into
    it, their mean and the share of them whose user connected."""

    mean_prediction: float
    observed_rate: float
    weight: float
    """The scored users the bin stands for."""


class LiveWindowBody(Answer):
    """A version's predictions settled in one window (``service.live_metrics``); null where
    nothing settled (``auc``: also when one class only)."""

    n: int
    """Settled predictions (the sample, when ticks were sampled)."""
    weight: float
    """The scored users they stand for."""
    log_loss: float | None
    brier: float | None
    ece: float | None
    """Expected calibration error over the reliability curve's bins."""
    auc: float | None
    base_rate: float | None
    """The share of them whose user connected within the scorer's horizon."""
    mean_prediction: float | None
    reliability: list[ReliabilityBinBody]


class LiveVersionBody(Answer):
    role: LiveRole
    """``champion``: the scorer's version; ``challenger``: the one scored in shadow;
    ``fallback``: the heuristic behind a model; ``retired``: an earlier version."""
    windows: dict[str, LiveWindowBody]
    """By window name (``1h``, ``24h``)."""


class HealthThresholdsBody(Answer):
    psi: float
    """A judged feature's PSI above this is drift."""
    window_s: float
    """Feature rows of this long make the observed distribution."""
    bucket_s: float
    min_rows: int
    min_settled: int
    batch_size: int
    """Settled predictions per value fed to the change detector."""
    delta: float
    """ADWIN's confidence parameter."""
    history: int


class LossChangeBody(Answer):
    """A change of the champion's live loss ratio that ADWIN detected."""

    at: float
    increase: bool
    before: float
    after: float
    before_log_loss: float | None
    after_log_loss: float | None
    batch: int


class ModelHealthBody(Answer):
    """The champion's health (``service.model_health``): feature drift against its training
    reference and a rise of its live loss."""

    at: float
    version: str | None
    degraded: bool
    reasons: list[str]
    notes: list[str]
    """What was not judged, and why."""
    psi: dict[str, float]
    """Per feature, its PSI over the window (calendar and history-length features are
    reported, never judged)."""
    psi_max: float | None
    drifted_features: list[str]
    rows: int
    loss_change: LossChangeBody | None
    loss_ratio: float | None
    """Log loss over the log loss the model expects of its own probabilities (about 1 when
    calibrated), as the change detector holds it."""
    settled: int
    batches: int
    thresholds: HealthThresholdsBody


class LiveMetricsBody(Answer):
    """Predictions against outcomes (``Engine.live``): each tick's scores, settled against
    the connects within the scorer's horizon, per version label (a model version, or
    ``heuristic``) over rolling windows."""

    champion: str | None
    """The label of the scorer that sizes (null before the first scored tick)."""
    challenger: str | None
    """The label of the model scored in shadow (null: none)."""
    bucket_s: float
    windows: list[str]
    pending: int
    """Predictions waiting for their horizon to end."""
    versions: dict[str, LiveVersionBody]
    health: ModelHealthBody


class PoolStatus(Answer):
    at: float
    counts: PoolCountsBody
    decided_at: float | None
    """The time of the tick that decided ``desired_warm``, ``need``, ``reason`` and
    ``expected_demand`` (null before the first tick; old on a replica that does not lead)."""
    desired_warm: int | None
    need: float | None
    reason: str
    expected_demand: float | None
    baseline_per_s: float
    scored_users: int
    tracked_users: int
    forgotten_users: int
    """Users forgotten since the start: not seen for the retention, not connected."""
    metrics: MetricsReportBody
    refused_needs: dict[str, int]
    lead_time_s: float
    """The lead time in force: a tick plus the learned boot quantile, unless configured."""
    boot_times: BootTimesBody
    feedback: FeedbackReportBody
    live: LiveMetricsBody
    """Every version's live metrics (retired ones included, until their windows empty)."""
    service_level: ServiceLevelBody
    nodes: list[PoolNodeBody]
    top_users: list[UserScoreBody]
    provider: ProviderHealth


class WatchedModel(Answer):
    """What a watcher of one registry alias holds (``service.model_watch``)."""

    source: Source
    fallback_reason: str | None
    name: str
    alias: str
    version: str | None
    loaded_at: float | None
    load_seconds: float | None
    horizon_s: float
    registry: str
    last_check: float | None
    last_error: str | None
    reloads: int


class ChallengerInUse(WatchedModel):
    """The registry's ``challenger``: scored in shadow on the same users as the champion,
    never used to decide. ``source`` is ``heuristic`` and ``version`` null while the alias
    names no version (no challenger: nothing is scored in shadow)."""


class ModelInUse(WatchedModel):
    """The registry's model the service watches, what it serves, the challenger, and how
    both do against the connects that followed their scores."""

    fallbacks: dict[str, int]
    challenger: ChallengerInUse | None
    """Null when the service watches no challenger."""
    live: LiveMetricsBody
    """The live metrics of the champion and the challenger (the versions in those roles)."""


class HeuristicOnly(Answer):
    """A service without a model registry: the heuristic, always."""

    source: Literal[Source.HEURISTIC]
    alias: None
    version: None
    fallbacks: dict[str, int]
    challenger: None
    live: LiveMetricsBody
    """The heuristic's live metrics."""


class PoolHistoryPointBody(Answer):
    t: float
    counts: PoolCountsBody
    desired_warm: int | None
    warm: int
    instant_rate: float
    efficiency: float
    expected_demand: float | None
    connects: int


class PoolHistoryBody(Answer):
    window_s: float
    max_points: int
    points: list[PoolHistoryPointBody]
    now: float
    tick_interval_s: float


async def _live(request: Request) -> LiveService:
    service: LiveService = request.app.state.service
    if service.started_at is None:
        raise HTTPException(503, "the service is starting")
    return service


Live = Annotated[LiveService, Depends(_live)]


_bearer = HTTPBearer(auto_error=False, description="The admin token (`admin_token`).")


def token_matches(given: str, expected: str) -> bool:
    """Whether ``given`` is the admin token, in time independent of where they differ."""
    return hmac.compare_digest(given.encode(), expected.encode())


async def _require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    expected: str | None = request.app.state.admin_token
    if expected is None:
        raise HTTPException(401, "admin endpoints are disabled: no admin token is set")
    if credentials is None or not token_matches(credentials.credentials, expected):
        raise HTTPException(
            401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )


def create_app(
    service: LiveService,
    *,
    admin_token: str | None = None,
    max_body_bytes: int = 64 * 1024,
    manage_lifecycle: bool = True,
    on_startup: Sequence[Callable[[], Awaitable[None]]] = (),
    on_shutdown: Sequence[Callable[[], Awaitable[None]]] = (),
) -> FastAPI:
    """The API over ``service``; with ``manage_lifecycle`` the app starts and stops it.

    ``on_startup`` callbacks run before the service starts, ``on_shutdown`` ones after it
    stopped, both in the app's event loop (where the asyncio clients and tasks the
    service uses live: e.g. a leader lease's keeper, clients to close).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for callback in on_startup:
            await callback()
        if manage_lifecycle:
            await service.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                await service.stop()
            for callback in on_shutdown:
                await callback()

    app = FastAPI(
        title="predictive-provisioner",
        summary="Keeps warm nodes ready for users before they connect.",
        version="0.1.0",
        lifespan=lifespan,
    )

    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    app.state.service = service
    app.state.admin_token = admin_token
    # Every route is `async def`: it runs in the event loop that owns the engine, never in
    # a worker thread beside it.

    @app.post("/v1/predict", response_model=list[Prediction], responses=_errors(400, 413, 503))
    async def predict(body: PredictRequest, live: Live) -> list[Prediction]:
        """Probability that each user connects within the horizon, and with ``curve`` the
        probability within each of 8 horizons up to it and the median time to connect;
        unknown users are scored from an empty history."""
        scores, _ = live.score(list(body.user_ids))
        curves: list[ConnectCurve | None] = [None] * len(scores)
        if body.curve:
            grid, values = scores.curve()
            medians = median_wait(values, grid)
            curves = [
                ConnectCurve(
                    horizons_s=list(grid.horizons_s),
                    probabilities=values[i].tolist(),
                    median_s=float(medians[i]) if np.isfinite(medians[i]) else None,
                )
                for i in range(len(scores))
            ]
        return [
            Prediction(
                user_id=user_id,
                probability=float(scores.probability[i]),
                source=scores.source(i).value,
                model_version=scores.model_version if scores.from_model[i] else None,
                horizon_s=scores.horizon_s,
                curve=curves[i],
            )
            for i, user_id in enumerate(body.user_ids)
        ]

    @app.get("/v1/users/{user_id}", responses=_errors(503))
    async def user(user_id: UserId, live: Live) -> UserDetail:
        """A user's features now, score, connection and last tick's score."""
        return UserDetail.model_validate(live.user(user_id))

    @app.get("/v1/pool", responses=_errors(503))
    async def pool(live: Live) -> PoolStatus:
        """Nodes by state, the desired warm nodes, the scaler's last reason, the instant
        rate per window against the target and the node provider's health (its circuit
        breaker)."""
        engine = live.engine
        status = engine.status(live.clock.now()).to_dict()
        status["service_level"] = live.service_level().to_dict()
        status["nodes"] = [node.to_dict() for node in engine.pool.nodes()]
        status["top_users"] = [score.to_dict() for score in engine.last_scores.top(10)]
        status["provider"] = live.provider_status()
        return PoolStatus.model_validate(status)

    @app.get("/v1/model", responses=_errors(503))
    async def model(live: Live) -> ModelInUse | HeuristicOnly:
        """The model in use (alias, version, loaded at), the fallbacks so far, the challenger
        scored in shadow, and the live metrics of both: their predictions settled against the
        connects that followed, per window, with the reliability curve."""
        measured = _in_role(live)
        if live.watcher is None:
            return HeuristicOnly(
                source=Source.HEURISTIC,
                alias=None,
                version=None,
                fallbacks={},
                challenger=None,
                live=measured,
            )
        return _model_in_use(live)

    @app.post(
        "/v1/model/reload",
        dependencies=[Depends(_require_admin)],
        responses=_errors(401, 409, 503),
    )
    async def reload(live: Live) -> ModelInUse:
        """Check the registry now and load a new champion if there is one (admin)."""
        watcher = live.watcher
        if watcher is None:
            raise HTTPException(409, "this service runs without a model registry")
        await watcher.check()
        if live.challenger is not None:
            await live.challenger.check()
        return _model_in_use(live)

    @app.get("/api/efficiency", response_model=Efficiency, responses=_errors(503))
    async def efficiency(live: Live) -> Efficiency:
        """The original node API's efficiency report, from the pool's accounting."""
        engine = live.engine
        report = engine.metrics(live.clock.now())
        return Efficiency.of(
            user_seconds=report.user_seconds,
            node_seconds=report.node_seconds,
            user_count=engine.features.users_ever_connected(),
            node_count=report.nodes_created,
        )

    @app.get("/healthz")
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get(
        "/readyz",
        response_model=ReadinessBody,
        responses={503: {"model": ReadinessBody, "description": "Not ready: `reasons` says why."}},
    )
    async def readyz() -> JSONResponse:
        """Ready when the service sees events (the event log answers, the consumer runs)
        and the first check of the model registry has settled what scores the users: the
        champion loaded, or why the heuristic serves (no registry configured, no champion,
        the registry unreachable, a load that failed)."""
        readiness = service.readiness()
        body = ReadinessBody.model_validate(readiness.to_dict()).model_dump(mode="json")
        return JSONResponse(body, status_code=200 if readiness.ready else 503)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> Response:
        if service.started_at is not None:
            service.refresh_telemetry()
        return Response(generate_latest(service.telemetry.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/history", responses=_errors(503))
    async def history(live: Live, since: Since = None) -> PoolHistoryBody:
        """The pool after each tick (the last two hours of clock time at most), oldest
        first; with ``since``, only the points after it (for incremental polling)."""
        return PoolHistoryBody.model_validate(
            live.history.to_dict(since)
            | {"now": live.clock.now(), "tick_interval_s": live.engine.config.tick_interval_s}
        )

    dashboard = _dashboard_html()

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        """The operator's dashboard (self-contained: no build step, no outside assets)."""
        return HTMLResponse(dashboard, headers={"Cache-Control": "no-cache"})

    return app


def _model_in_use(live: LiveService) -> ModelInUse:
    watcher = live.watcher
    assert watcher is not None
    challenger = None if live.challenger is None else live.challenger.info()
    return ModelInUse.model_validate(
        watcher.info()
        | {"fallbacks": watcher.fallbacks(), "challenger": challenger, "live": _in_role(live)}
    )


def _in_role(live: LiveService) -> LiveMetricsBody:
    """The live metrics of the versions that are the champion or the challenger now."""
    report = live.engine.live(live.clock.now())
    versions = report["versions"]
    report["versions"] = {
        label: versions[label]
        for label in (report["champion"], report["challenger"])
        if label is not None and label in versions
    }
    return LiveMetricsBody.model_validate(report)


def _dashboard_html() -> str:
    return files("service").joinpath("static", "dashboard.html").read_text(encoding="utf-8")
