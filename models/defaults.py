"""Defaults the layers above share, in a module light enough for the settings to import."""

from __future__ import annotations

from typing import Final

DEFAULT_HORIZON_S: Final = 40.0
"""The slowest boot of the seed's node API (29 s) plus one 10 s decision interval: the
model's label horizon and the time warm nodes must cover."""
DEFAULT_MODEL_NAME: Final = "connect-likelihood"
"""The registered model every training run adds a version to."""
DEFAULT_RECENT_CUTOFF_S: Final = 3600.0
"""The service scores users seen (any user event) within this long; the training reference
of the features is taken over the same users."""
