"""Labels: does a user connect within the horizon after a cutoff?

The horizon H is the time a warm node must be requested ahead of a connect: the slowest
boot plus one decision interval. It is stored with every model trained on these labels.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from features.batch import BatchHistory
from features.definitions import NEVER


def connects_within(
    history: BatchHistory, users: npt.ArrayLike, t_ms: npt.ArrayLike, horizon_ms: int
) -> npt.NDArray[np.bool_]:
    """True where ``users[i]`` connects in ``(t_ms[i], t_ms[i] + horizon_ms]``."""
    if horizon_ms <= 0:
        raise ValueError(f"horizon must be positive, not {horizon_ms} ms")
    t = np.asarray(t_ms, dtype=np.int64)
    upcoming = history.next_connect(users, t)
    within: npt.NDArray[np.bool_] = (upcoming != NEVER) & (upcoming <= t + horizon_ms)
    return within
