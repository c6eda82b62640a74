"""Labels: does a user connect within the horizon after a cutoff, and how long after?

The horizon H is the time a warm node must be requested ahead of a connect: the slowest
boot plus one decision interval. It is stored with every model trained on these labels.
The time-to-connect model learns the wait itself (:func:`waits_within`), censored at H.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from features.batch import BatchHistory
from features.definitions import NEVER


def waits_within(
    history: BatchHistory, users: npt.ArrayLike, t_ms: npt.ArrayLike, horizon_ms: int
) -> npt.NDArray[np.float64]:
    """Seconds from ``t_ms[i]`` to ``users[i]``'s next connect when it falls in
    ``(t_ms[i], t_ms[i] + horizon_ms]``, infinity otherwise (censored at the horizon)."""
    if horizon_ms <= 0:
        raise ValueError(f"horizon must be positive, not {horizon_ms} ms")
    t = np.asarray(t_ms, dtype=np.int64)
    upcoming = history.next_connect(users, t)
    within = (upcoming != NEVER) & (upcoming <= t + horizon_ms)
    wait: npt.NDArray[np.float64] = np.where(within, (upcoming - t) / 1000.0, np.inf)
    return wait


def connects_within(
    history: BatchHistory, users: npt.ArrayLike, t_ms: npt.ArrayLike, horizon_ms: int
) -> npt.NDArray[np.bool_]:
    """True where ``users[i]`` connects in ``(t_ms[i], t_ms[i] + horizon_ms]``."""
    within: npt.NDArray[np.bool_] = np.isfinite(waits_within(history, users, t_ms, horizon_ms))
    return within
