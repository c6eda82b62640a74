"""The training defaults, in a module light enough for the settings to import."""

from __future__ import annotations

from typing import Final

DEFAULT_EVERY_S: Final = 30.0
"""Cutoff spacing: every positive window (the horizon) holds at least one cutoff."""
DEFAULT_QUIET_AFTER_S: Final = 300.0
"""A user with no event for this long counts as quiet."""
DEFAULT_QUIET_STRIDE: Final = 120
"""With 30 s spacing: one quiet row per user and hour, weighing 120."""
DEFAULT_CALIBRATION: Final = "sigmoid"
DEFAULT_TRAIN_SEED: Final = 0
DEFAULT_MIN_POSITIVES: Final = 20
"""Each slice (train, validation, test) must hold at least this many positive rows."""
DEFAULT_LOG_LOSS_TOLERANCE: Final = 0.01
DEFAULT_BRIER_TOLERANCE: Final = 0.01
DEFAULT_AUC_TOLERANCE: Final = 0.005
DEFAULT_EXPERIMENT: Final = "connect-likelihood"
"""The MLflow experiment of the training runs."""
DEFAULT_LIVE_MIN_SETTLED: Final = 500
"""Settled predictions each of the champion and the challenger needs at the compared step
(``promote --live``), and the champion for its health to count (``retrain --when-degraded``)."""
DEFAULT_LIVE_BRIER_TOLERANCE: Final = 0.01
"""Relative live Brier-score increase a challenger may show (its live log loss may show none)."""
DEFAULT_LIVE_MAX_AGE_S: Final = 3600.0
"""Live evidence older than this is stale: ``retrain --when-degraded`` trains."""
DEFAULT_DASK_TIMEOUT_S: Final = 10.0
"""Seconds to wait for a Dask scheduler to answer and to have a worker (``training.cluster``)."""
