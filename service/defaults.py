"""The live service's defaults, in a module light enough for the settings to import."""

from __future__ import annotations

from typing import Final

DEFAULT_WARM_HISTORY_S: Final = 7 * 86_400.0
DEFAULT_MODEL_CHECK_S: Final = 30.0
"""How often the service looks for a new champion."""
DEFAULT_LIVE_LOG_S: Final = 300.0
"""How often (clock seconds) the leader logs the live evidence of the champion and the
challenger to their MLflow runs."""
DEFAULT_RELEASE_MEMORY_S: Final = 60.0
"""How often (wall seconds) the live service gives the memory it freed back to the system
(``service.allocator``)."""
