"""The served scorer: the registry's champion, with the heuristic behind it, per call.

For every call, rows the model cannot answer are scored by the fallback (the original
heuristic) instead, and counted by reason:

- ``no_model``: no version is loaded (none registered, or no ``champion`` yet);
- ``registry_unavailable``: no version is loaded and the registry cannot be reached;
- ``load_failed``: the last load failed (corrupt or unreadable artifacts, a model that
  cannot score its own input example) and no earlier model is held;
- ``bad_features``: the matrix does not have the model's columns (all rows), the model was
  trained on other features (all rows), or a row holds NaN or infinity (that row);
- ``predict_error``: the model raised (all rows of the call);
- ``not_finite``: the model gave a value that is not a probability (that row).

Nothing the model does makes :meth:`ModelScorer.score` raise. :meth:`ModelScorer.swap`
replaces the model atomically (a hot reload); a call in flight finishes with the model it
started with.
"""

from __future__ import annotations

import threading
from collections import Counter
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from features.definitions import FEATURE_NAMES
from models.connect_curve import carried_curve
from models.defaults import DEFAULT_HORIZON_S
from models.heuristic import HeuristicScorer
from models.registry import (
    CHAMPION,
    LoadedModel,
    ModelNotFound,
    ModelRegistry,
    RegistryError,
    RegistryUnavailable,
)
from models.scoring import Bools, Floats, Scorer, Scores, clean_probabilities

if TYPE_CHECKING:
    from collections.abc import Sequence


class FallbackReason(StrEnum):
    NO_MODEL = "no_model"
    REGISTRY_UNAVAILABLE = "registry_unavailable"
    LOAD_FAILED = "load_failed"
    BAD_FEATURES = "bad_features"
    PREDICT_ERROR = "predict_error"
    NOT_FINITE = "not_finite"


class _State(NamedTuple):
    model: LoadedModel | None
    missing: FallbackReason
    """Why there is no model (only read when ``model`` is None)."""
    error: str | None


class ModelScorer:
    """A :class:`~models.scoring.Scorer` over a loaded model, falling back row by row."""

    def __init__(
        self,
        model: LoadedModel | None = None,
        *,
        fallback: Scorer | None = None,
        horizon_s: float = DEFAULT_HORIZON_S,
        feature_names: Sequence[str] = FEATURE_NAMES,
    ) -> None:
        self._default_horizon_s = model.horizon_s if model is not None else horizon_s
        self._fallback: Scorer = fallback or HeuristicScorer(horizon_s=self._default_horizon_s)
        self._feature_names = tuple(feature_names)
        self._state = _State(model, FallbackReason.NO_MODEL, None)
        self._lock = threading.Lock()
        self._rows: Counter[FallbackReason] = Counter()
        self._calls: Counter[FallbackReason] = Counter()

    @classmethod
    def from_registry(
        cls,
        registry: ModelRegistry,
        alias: str = CHAMPION,
        *,
        fallback: Scorer | None = None,
        horizon_s: float = DEFAULT_HORIZON_S,
    ) -> ModelScorer:
        """A scorer over ``alias`` of ``registry``; without a model when it cannot load one."""
        scorer = cls(fallback=fallback, horizon_s=horizon_s)
        scorer.reload(registry, alias)
        return scorer

    # -- the model -----------------------------------------------------------------------

    @property
    def model(self) -> LoadedModel | None:
        return self._state.model

    @property
    def model_version(self) -> str | None:
        model = self._state.model
        return model.version if model is not None else None

    @property
    def last_error(self) -> str | None:
        """Why the last load failed (None after a successful load or a swap)."""
        return self._state.error

    @property
    def fallback_reason(self) -> FallbackReason | None:
        """Why every call falls back now (None while a model is held)."""
        state = self._state
        return state.missing if state.model is None else None

    @property
    def horizon_s(self) -> float:
        model = self._state.model
        return model.horizon_s if model is not None else self._default_horizon_s

    def swap(self, model: LoadedModel | None) -> LoadedModel | None:
        """Serve ``model`` from the next call on (None: the fallback only); returns the old."""
        with self._lock:
            old = self._state.model
            self._state = _State(model, FallbackReason.NO_MODEL, None)
        return old

    def reload(self, registry: ModelRegistry, alias: str = CHAMPION) -> bool:
        """Load ``alias`` and swap it in; True on success.

        On failure the current model (if any) stays in service; without one, calls fall
        back with reason ``no_model`` (nothing registered under ``alias``),
        ``registry_unavailable`` (the store did not answer) or ``load_failed`` (anything
        else), and :attr:`last_error` says why.
        """
        try:
            model = registry.load_alias(alias)
        except ModelNotFound as e:
            self._failed(FallbackReason.NO_MODEL, str(e))
            return False
        except RegistryUnavailable as e:
            self._failed(FallbackReason.REGISTRY_UNAVAILABLE, str(e))
            return False
        except RegistryError as e:
            self._failed(FallbackReason.LOAD_FAILED, str(e))
            return False
        self.swap(model)
        return True

    def note_failure(self, reason: FallbackReason, error: str) -> None:
        """Record why no model could be had (a watcher that could not even resolve the
        alias); the model held, if any, stays in service."""
        self._failed(reason, error)

    def _failed(self, reason: FallbackReason, error: str) -> None:
        with self._lock:
            current = self._state.model
            self._state = _State(current, reason, error)

    # -- scoring -------------------------------------------------------------------------

    def score(self, features: Floats) -> Scores:
        state = self._state  # one read: a concurrent swap does not mix two models in a call
        matrix = np.asarray(features)
        rows = len(matrix) if matrix.ndim >= 1 else 0
        model = state.model
        if model is None:
            return self._fall_back(matrix, np.ones(rows, dtype=bool), state.missing, None)
        if (
            matrix.ndim != 2
            or matrix.shape[1] != len(self._feature_names)
            or model.feature_names != self._feature_names
        ):
            return self._fall_back(
                matrix, np.ones(rows, dtype=bool), FallbackReason.BAD_FEATURES, None
            )

        usable: Bools = np.asarray(np.isfinite(matrix).all(axis=1), dtype=bool)
        probability = np.zeros(rows, dtype=np.float64)
        timed = model.curve_model
        curves = None if timed is None else np.zeros((rows, len(timed.grid)))
        from_model = usable.copy()
        reasons: list[tuple[FallbackReason, Bools]] = []
        if not usable.all():
            reasons.append((FallbackReason.BAD_FEATURES, ~usable))
        if usable.any():
            try:
                scored = matrix[usable].astype(np.float64, copy=False)
                if curves is None or timed is None:
                    predicted = np.asarray(model.predict_proba(scored), dtype=np.float64)
                else:
                    curve = timed.curve(scored)
                    curves[usable] = curve
                    predicted = curve[:, -1]
                if predicted.shape != (int(usable.sum()),):
                    raise ValueError(f"{predicted.shape} predictions for {usable.sum()} rows")
            except Exception:
                return self._fall_back(
                    matrix, np.ones(rows, dtype=bool), FallbackReason.PREDICT_ERROR, None
                )
            valid = np.isfinite(predicted) & (predicted >= 0.0) & (predicted <= 1.0)
            probability[usable] = np.where(valid, predicted, 0.0)
            if not valid.all():
                bad = np.zeros(rows, dtype=bool)
                bad[np.flatnonzero(usable)[~valid]] = True
                from_model &= ~bad
                reasons.append((FallbackReason.NOT_FINITE, bad))
        if reasons:
            fallback_rows = ~from_model
            fallback = self._fallback.score(matrix[fallback_rows])
            probability[fallback_rows] = fallback.probability
            if curves is not None and timed is not None:
                curves[fallback_rows] = carried_curve(
                    clean_probabilities(fallback.probability), fallback.horizon_s, timed.grid
                )
            self._count(reasons)
        return Scores(
            probability=probability,
            from_model=from_model,
            model_version=model.version if from_model.any() or not rows else None,
            horizon_s=model.horizon_s,
            reference=model.reference,
            curves=None if curves is None or timed is None else (timed.grid, curves),
        )

    def _fall_back(
        self, matrix: Floats, rows: Bools, reason: FallbackReason, version: str | None
    ) -> Scores:
        self._count([(reason, rows)])
        try:
            probability = self._fallback.score(matrix).probability
        except (IndexError, ValueError, TypeError) as e:
            raise ValueError(
                f"features of shape {np.shape(matrix)} are not a feature matrix: {e}"
            ) from e
        return Scores(
            probability=probability,
            from_model=np.zeros(len(rows), dtype=bool),
            model_version=version,
            horizon_s=self.horizon_s,
        )

    def _count(self, reasons: list[tuple[FallbackReason, Bools]]) -> None:
        with self._lock:
            for reason, rows in reasons:
                self._calls[reason] += 1
                self._rows[reason] += int(rows.sum())

    # -- counters ------------------------------------------------------------------------

    def fallback_rows(self) -> dict[str, int]:
        """Rows scored by the fallback so far, by reason (every reason listed)."""
        with self._lock:
            return {reason.value: self._rows[reason] for reason in FallbackReason}

    def fallback_calls(self) -> dict[str, int]:
        """Calls in which at least one row fell back, by reason (every reason listed)."""
        with self._lock:
            return {reason.value: self._calls[reason] for reason in FallbackReason}
