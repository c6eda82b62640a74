"""The training reference of a model's features: per-feature bins and the share of the
training rows in each, for measuring how far the live feature rows drift from them.

Bins come from the quantiles of the training matrix (``bins`` of them per feature, fewer
when a feature takes fewer distinct values): the cut points are the distinct quantiles at
``1/bins, 2/bins, ...`` (taken on observed values, so a discrete feature's values keep
bins of their own), and a value ``v`` falls in the first bin whose cut point is ``>= v``,
or in the bin beyond the last cut point. A constant feature has one cut point: its value's
bin and the bin of anything larger. Missing values (NaN) have a bin of their own, the
last; infinities fall in the outermost bins. A feature without a finite training value
has no cut point (one bin for every value) and its NaN bin.

The population stability index of observed rows against the reference, per feature:

    PSI = sum over bins of (observed_share - training_share) * ln(observed_share / training_share)

with both shares floored at :data:`PSI_FLOOR` (an empty bin would give an infinite term).
The usual reading: below 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 drifted.

Serialised as JSON-safe dicts (:meth:`FeatureReference.to_dict`), stored with each model
version as ``reference.json`` (``models.classifier``, written and read there for either model
type).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]

REFERENCE_FILE: Final = "reference.json"
"""Name of the reference's file beside the booster (under ``extra_files/``) and in the run."""
FORMAT: Final = 1
"""Version of the ``reference.json`` layout."""
DEFAULT_BINS: Final = 10
PSI_FLOOR: Final = 1e-4
"""Smallest share a bin counts with in the PSI (both sides): an empty bin stays finite."""
PSI_STABLE: Final = 0.1
"""Below this PSI a feature is usually read as stable."""
PSI_DRIFTED: Final = 0.25
"""Above this PSI a feature is usually read as drifted (between the two: a moderate shift)."""
_SHARE_SLACK: Final = 1e-6


@dataclass(frozen=True)
class FeatureReference:
    """Per-feature bin cut points and training shares (see the module docstring)."""

    feature_names: tuple[str, ...]
    edges: tuple[tuple[float, ...], ...]
    """Per feature, the increasing cut points: ``len(edges[j]) + 1`` value bins."""
    shares: tuple[tuple[float, ...], ...]
    """Per feature, the training share of each value bin, then of the NaN bin
    (``len(edges[j]) + 2`` shares summing to 1)."""
    rows: int
    """Training rows the reference was made from."""

    def __post_init__(self) -> None:
        if not self.feature_names:
            raise ValueError("a feature reference needs at least one feature")
        if len(set(self.feature_names)) != len(self.feature_names):
            raise ValueError("feature names must be distinct")
        if len(self.edges) != len(self.feature_names) or len(self.shares) != len(
            self.feature_names
        ):
            raise ValueError(
                f"{len(self.feature_names)} features need as many edge and share lists, "
                f"got {len(self.edges)} and {len(self.shares)}"
            )
        if isinstance(self.rows, bool) or not isinstance(self.rows, int) or self.rows < 1:
            raise ValueError(f"rows must be a positive integer, not {self.rows!r}")
        for name, cuts, shares in zip(self.feature_names, self.edges, self.shares, strict=True):
            if not all(math.isfinite(c) for c in cuts) or any(
                b <= a for a, b in itertools.pairwise(cuts)
            ):
                raise ValueError(f"{name}: cut points must be finite and increasing")
            if len(shares) != len(cuts) + 2:
                raise ValueError(
                    f"{name}: {len(cuts)} cut points need {len(cuts) + 2} shares, got {len(shares)}"
                )
            if not all(math.isfinite(s) and s >= 0 for s in shares):
                raise ValueError(f"{name}: shares must be finite and >= 0")
            if abs(sum(shares) - 1.0) > _SHARE_SLACK:
                raise ValueError(f"{name}: shares must sum to 1, not {sum(shares)}")

    @property
    def n_bins(self) -> int:
        """Columns of :meth:`counts`: the most bins (the NaN bin included) of any feature."""
        return max(len(s) for s in self.shares)

    @classmethod
    def fit(
        cls,
        matrix: Floats,
        feature_names: Sequence[str],
        bins: int = DEFAULT_BINS,
        *,
        weights: Floats | None = None,
    ) -> FeatureReference:
        """The reference of a training ``matrix`` (rows x features); ``weights`` per row
        (e.g. the dataset's sampling weights) make the shares those of the full grid."""
        if bins < 1:
            raise ValueError(f"bins must be >= 1, not {bins}")
        data = _matrix(matrix, len(feature_names))
        if not len(data):
            raise ValueError("a feature reference needs at least one row")
        w = np.ones(len(data)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (len(data),) or not np.all(np.isfinite(w) & (w >= 0)) or w.sum() <= 0:
            raise ValueError("weights must be one finite, non-negative weight per row, not all 0")
        levels = np.arange(1, bins) / bins if bins > 1 else np.ones(1)
        edges: list[tuple[float, ...]] = []
        shares: list[tuple[float, ...]] = []
        for column in data.T:
            finite = np.isfinite(column)
            cuts = _quantiles(column[finite], w[finite], levels)
            mass = np.bincount(_bin_of(column, cuts), weights=w, minlength=len(cuts) + 2)
            edges.append(tuple(float(c) for c in cuts))
            shares.append(tuple(float(m) for m in mass / mass.sum()))
        return cls(tuple(str(n) for n in feature_names), tuple(edges), tuple(shares), len(data))

    def counts(self, matrix: Floats) -> Floats:
        """Rows of ``matrix`` per bin: shape ``(features, n_bins)``, each feature's bins in
        its first ``len(edges[j]) + 2`` columns (value bins, then NaN), zeros beyond."""
        data = _matrix(matrix, len(self.feature_names))
        out = np.zeros((len(self.feature_names), self.n_bins), dtype=np.float64)
        for j, cuts in enumerate(self.edges):
            found = np.bincount(_bin_of(data[:, j], np.asarray(cuts)), minlength=len(cuts) + 2)
            out[j, : len(found)] = found
        return out

    def psi(self, counts: Floats) -> Floats:
        """Per feature, the PSI of ``counts`` (as :meth:`counts` gives them) against the
        training shares; NaN for a feature without observed rows."""
        observed = np.asarray(counts, dtype=np.float64)
        if observed.shape != (len(self.feature_names), self.n_bins):
            raise ValueError(
                f"expected counts of shape {(len(self.feature_names), self.n_bins)}, "
                f"got {observed.shape}"
            )
        if not np.all(np.isfinite(observed) & (observed >= 0)):
            raise ValueError("counts must be finite and >= 0")
        out = np.full(len(self.feature_names), np.nan)
        for j, expected in enumerate(self.shares):
            row = observed[j, : len(expected)]
            total = row.sum()
            if total <= 0:
                continue
            o = np.maximum(row / total, PSI_FLOOR)
            e = np.maximum(np.asarray(expected), PSI_FLOOR)
            out[j] = float(np.sum((o - e) * np.log(o / e)))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "feature_names": list(self.feature_names),
            "edges": [list(c) for c in self.edges],
            "shares": [list(s) for s in self.shares],
            "rows": self.rows,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureReference:
        """The reference :meth:`to_dict` wrote; ValueError saying what is wrong otherwise."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a feature reference is a mapping, not {type(data).__name__}")
        if data.get("format") != FORMAT:
            raise ValueError(f"feature reference format {data.get('format')!r}, expected {FORMAT}")
        try:
            names = tuple(_strings(data["feature_names"]))
            edges = tuple(tuple(_floats(c)) for c in _lists(data["edges"]))
            shares = tuple(tuple(_floats(s)) for s in _lists(data["shares"]))
            rows = data["rows"]
        except KeyError as e:
            raise ValueError(f"feature reference without {e.args[0]!r}") from e
        if isinstance(rows, bool) or not isinstance(rows, int):
            raise ValueError(f"rows must be an integer, not {rows!r}")
        return cls(names, edges, shares, rows)


def _quantiles(values: Floats, weights: Floats, levels: Floats) -> Floats:
    """The distinct weighted quantiles of ``values`` at ``levels``, each an observed value:
    the smallest whose cumulative weight reaches the level (none without weight)."""
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    if not len(cumulative) or cumulative[-1] <= 0:
        return np.empty(0)
    at = np.searchsorted(cumulative, levels * cumulative[-1], side="left")
    return np.unique(values[order][np.minimum(at, len(order) - 1)])


def _bin_of(column: Floats, cuts: Floats) -> npt.NDArray[np.intp]:
    """The bin of each value: the first cut point ``>= v`` (past the last: ``len(cuts)``);
    NaN in bin ``len(cuts) + 1``."""
    index = np.searchsorted(cuts, column, side="left")
    index[np.isnan(column)] = len(cuts) + 1
    return index


def _matrix(matrix: Floats, features: int) -> Floats:
    data = np.asarray(matrix, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] != features:
        raise ValueError(f"expected a (rows, {features}) feature matrix, got shape {data.shape}")
    return data


def _lists(value: Any) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"expected a list, not {type(value).__name__}")
    return list(value)


def _strings(value: Any) -> list[str]:
    items = _lists(value)
    if not all(isinstance(item, str) for item in items):
        raise ValueError("feature names must be strings")
    return items


def _floats(value: Any) -> list[float]:
    items = _lists(value)
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in items):
        raise ValueError("cut points and shares must be numbers")
    return [float(x) for x in items]
