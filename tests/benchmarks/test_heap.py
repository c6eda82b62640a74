"""``benchmarks/heap.py``'s garbage census: what a full collection finds in reference
cycles, by type, and the numpy buffers they held."""

from __future__ import annotations

import gc
from collections import Counter

import numpy as np

from benchmarks.heap import collect_garbage


class Holder:
    def __init__(self, size: int) -> None:
        self.buffer = np.ones(size)
        self.me = self  # a cycle: only a collection frees it


def test_the_census_counts_cycles_and_their_buffers() -> None:
    gc.collect()
    census: Counter[str] = Counter()
    for _ in range(3):
        Holder(1_000_000)  # 8 MB each, unreachable once made
    found = collect_garbage(census)
    assert census["Holder"] == 3
    assert found["garbage_objects"] >= 3
    assert found["garbage_numpy_mb"] == 24.0
    assert not gc.garbage and not gc.get_debug()  # as it was: nothing kept, no debug flag
    assert collect_garbage(census)["garbage_objects"] == 0
