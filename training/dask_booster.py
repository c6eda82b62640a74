"""The booster fitted on a Dask cluster: ``lightgbm.dask.DaskLGBMClassifier``.

The train rows stay where they were built (one chunk per user partition); LightGBM trains
data-parallel on the workers that hold them, with ``TrainConfig``'s parameters, and
``to_local()`` gives the booster back, trimmed to its best iteration like the
single-machine one (``training.train.fit_booster``).

Early stopping: each worker would see only its own validation rows, and workers that
stopped at different trees would hang the others. :class:`SharedEarlyStopping` gives every
worker the whole validation slice instead, so each computes the same weighted log loss of
the same trees and they all stop together, with LightGBM's own rule (stop after
``early_stopping_rounds`` without improvement; keep the best).
"""

from __future__ import annotations

import contextlib
import math
import sys
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from models.classifier import Floats
from training.train import Rows, StageProgress, TrainConfig

if TYPE_CHECKING:
    from distributed import Client, Future

EPSILON = 1e-15
"""Probabilities are clipped this far from 0 and 1 in the log loss (as LightGBM does)."""


@dataclass
class _Progress:
    raw: Floats
    best_loss: float = math.inf
    best_iteration: int = -1


@dataclass(eq=False)  # hashable: LightGBM keeps its callbacks in a set
class SharedEarlyStopping:
    """A LightGBM callback: early stopping on a validation set every worker holds whole.

    Its state is per booster, so that workers sharing one process (threads of a local
    cluster) do not mix their scores.
    """

    X: Floats
    y: Floats
    w: Floats
    rounds: int
    threads: int = 1
    _state: dict[int, _Progress] = field(default_factory=dict, repr=False)

    order: ClassVar[int] = 30
    before_iteration: ClassVar[bool] = False

    def __call__(self, env: Any) -> None:
        from lightgbm.callback import EarlyStopException

        state = self._state.setdefault(id(env.model), _Progress(np.zeros(len(self.y))))
        state.raw = state.raw + env.model.predict(
            self.X,
            raw_score=True,
            start_iteration=env.iteration,
            num_iteration=1,
            num_threads=self.threads,
        )
        loss = weighted_log_loss(state.raw, self.y, self.w)
        if loss < state.best_loss:
            state.best_loss, state.best_iteration = loss, env.iteration
        last = env.iteration == env.end_iteration - 1
        if last or env.iteration - state.best_iteration >= self.rounds:
            del self._state[id(env.model)]
            score = [("validation", "binary_logloss", state.best_loss, False)]
            raise EarlyStopException(state.best_iteration, score)


def weighted_log_loss(raw: Floats, y: Floats, w: Floats) -> float:
    """The weighted binary log loss of raw scores (log odds)."""
    p = np.clip(1.0 / (1.0 + np.exp(-raw)), EPSILON, 1.0 - EPSILON)
    losses = -(y * np.log(p) + (1.0 - y) * np.log(1.0 - p))
    return float(np.sum(w * losses) / np.sum(w))


def _column(rows: Rows, index: int) -> Floats:
    out: Floats = np.asarray(rows[index], dtype=np.float64)
    return out


def fit_dask_booster(
    client: Client,
    parts: list[tuple[Future, int]],
    validation: Rows,
    names: list[str],
    config: TrainConfig,
    *,
    progress: StageProgress,
) -> Any:
    """A booster on the train rows of ``parts`` (each a future of a partition's rows and
    their count), early-stopped on ``validation``; ``progress("lightgbm", trees, max)``."""
    import dask.array as da
    import lightgbm as lgb
    from dask.delayed import delayed
    from lightgbm.dask import DaskLGBMClassifier

    filled = [(future, rows) for future, rows in parts if rows]
    width = len(names)

    def column(index: int, shape: tuple[int, ...], rows: int, future: Future) -> Any:
        return da.from_delayed(
            delayed(_column)(future, index), shape=(rows, *shape), dtype=np.float64
        )

    X = da.concatenate([column(0, (width,), rows, future) for future, rows in filled])
    y = da.concatenate([column(1, (), rows, future) for future, rows in filled])
    w = da.concatenate([column(2, (), rows, future) for future, rows in filled])
    Xv, yv, wv = validation
    stopping = SharedEarlyStopping(
        np.asarray(Xv, dtype=np.float64),
        yv.astype(np.float64),
        np.asarray(wv, dtype=np.float64),
        config.early_stopping_rounds,
        config.threads,
    )
    progress("lightgbm", 0, config.max_trees)
    # Each worker trains with its own threads: LightGBM's num_threads is the worker's.
    params = {k: v for k, v in config.lightgbm_params().items() if k != "num_threads"}
    model = DaskLGBMClassifier(client=client, n_estimators=config.max_trees, **params)
    # lightgbm.dask says where its workers listen on stdout: a command's stdout is its JSON.
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.filterwarnings("ignore", "Parameter (num_threads|n_jobs) will be ignored")
        model.fit(X, y, sample_weight=w, feature_name=names, callbacks=[stopping])
    booster = model.to_local().booster_
    trees = booster.current_iteration()
    progress("lightgbm", trees, trees)
    best = booster.best_iteration or trees
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
