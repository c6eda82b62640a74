"""The service's state in Redis: what a restarted service needs to neither leak nor
double-allocate nodes.

One key per service instance holds, as one JSON document written atomically: the
engine's state (pool, allocations, metrics, calibration) and the watermark, the ID of
the last event-log entry applied. Features are not saved: they are rebuilt from the
event log at start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import redis


@dataclass(frozen=True, slots=True)
class SavedState:
    engine: dict[str, Any]
    watermark: str | None
    saved_at: float


class StateStore:
    def __init__(self, client: redis.Redis, key: str) -> None:
        self.client = client
        self.key = key

    def load(self) -> SavedState | None:
        raw: Any = self.client.get(self.key)
        if raw is None:
            return None
        data = orjson.loads(raw)
        return SavedState(data["engine"], data.get("watermark"), float(data["saved_at"]))

    def save(self, engine: dict[str, Any], watermark: str | None, now: float) -> None:
        document = {"engine": engine, "watermark": watermark, "saved_at": now}
        self.client.set(self.key, orjson.dumps(document))

    def clear(self) -> None:
        self.client.delete(self.key)
