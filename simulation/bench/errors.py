"""What the bench refuses: input it cannot work with, and a model trained on its test events."""

from __future__ import annotations


class BenchError(ValueError):
    """Input the bench cannot work with (an empty trace, a bad fraction ...)."""


class TrainingLeak(BenchError):
    """The model's training events are not separate from the events it is scored on."""
