"""The kinds of connect model a training job can make and the registry can serve."""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class ModelType(StrEnum):
    CLASSIFIER = "classifier"
    """One probability: a connect within the horizon (``models.classifier``)."""
    CURVE = "curve"
    """A time-to-connect curve, the hazard kind (``models.connect_curve``)."""


DEFAULT_MODEL_TYPE: Final = ModelType.CLASSIFIER
