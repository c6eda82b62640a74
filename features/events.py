"""Typed events for the four channels of the seed system, and their validation.

The payloads are exactly those the original Go publishers send (DESIGN.md):

- ``user:activity``   ``{"user_id": str, "timestamp": int}`` (unix seconds)
- ``user:connect``    ``{"user_id": str}``
- ``user:disconnect`` ``{"user_id": str}``
- ``node:status``     ``{"node_id": str, "status": "booting"|"ready"|"terminated"}``

Every event carries ``ts``, the time it is logged with: the payload's own ``timestamp``
where it has one, else the time it arrived. Anything that is not one of these payloads
raises :class:`BadEvent` with a :class:`Rejection` reason; callers dead-letter it.
Unknown extra payload fields are accepted and dropped.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, TypeVar


class Channel(StrEnum):
    ACTIVITY = "user:activity"
    CONNECT = "user:connect"
    DISCONNECT = "user:disconnect"
    NODE_STATUS = "node:status"


class NodeStatus(StrEnum):
    BOOTING = "booting"
    READY = "ready"
    TERMINATED = "terminated"


@dataclass(frozen=True, slots=True)
class UserActivity:
    ts: float
    user_id: str
    timestamp: int | None = None
    """The payload's own ``timestamp`` field, kept so the payload round-trips exactly."""

    @property
    def channel(self) -> Channel:
        return Channel.ACTIVITY

    def payload(self) -> dict[str, Any]:
        if self.timestamp is None:
            return {"user_id": self.user_id}
        return {"user_id": self.user_id, "timestamp": self.timestamp}


@dataclass(frozen=True, slots=True)
class UserConnect:
    ts: float
    user_id: str

    @property
    def channel(self) -> Channel:
        return Channel.CONNECT

    def payload(self) -> dict[str, Any]:
        return {"user_id": self.user_id}


@dataclass(frozen=True, slots=True)
class UserDisconnect:
    ts: float
    user_id: str

    @property
    def channel(self) -> Channel:
        return Channel.DISCONNECT

    def payload(self) -> dict[str, Any]:
        return {"user_id": self.user_id}


@dataclass(frozen=True, slots=True)
class NodeStatusChanged:
    ts: float
    node_id: str
    status: NodeStatus

    @property
    def channel(self) -> Channel:
        return Channel.NODE_STATUS

    def payload(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "status": self.status.value}


Event = UserActivity | UserConnect | UserDisconnect | NodeStatusChanged
UserEvent = UserActivity | UserConnect | UserDisconnect


class Rejection(StrEnum):
    """Why a message was dead-lettered. Stable strings: they label metrics."""

    UNKNOWN_CHANNEL = "unknown_channel"
    TOO_LARGE = "too_large"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    EMPTY_FIELD = "empty_field"
    FIELD_TOO_LONG = "field_too_long"
    UNKNOWN_STATUS = "unknown_status"
    BAD_TIMESTAMP = "bad_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"


class BadEvent(ValueError):
    """A message that is not a valid event; ``reason`` says which rule it broke."""

    def __init__(self, reason: Rejection, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Limits:
    """What an incoming message may look like before it is rejected."""

    max_payload_bytes: int = 4096
    max_id_length: int = 256
    max_future_skew_s: float = 300.0


DEFAULT_LIMITS: Final = Limits()
_CHANNELS: Final = {c.value: c for c in Channel}
_STATUSES: Final = {s.value: s for s in NodeStatus}
_T = TypeVar("_T")


def encode_payload(event: Event) -> str:
    """The payload as the Go publishers write it: compact JSON, fields in contract order."""
    return json.dumps(event.payload(), separators=(",", ":"))


def trace_record(event: Event) -> dict[str, Any]:
    """One line of a trace file (DESIGN.md): ``{"ts", "channel", "payload"}``."""
    return {"ts": event.ts, "channel": event.channel.value, "payload": event.payload()}


def parse_channel(name: str) -> Channel:
    channel = _CHANNELS.get(name)
    if channel is None:
        raise BadEvent(Rejection.UNKNOWN_CHANNEL, f"channel {name[:64]!r} is not one of ours")
    return channel


def parse_message(
    channel: str,
    data: bytes | str,
    *,
    now: float,
    ts: float | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Event:
    """Validate a raw pub/sub or stream message.

    ``ts`` is the time the message was logged with, when it has one (stream entries);
    otherwise the payload's ``timestamp`` or, failing that, ``now`` (arrival) is used.
    """
    kind = parse_channel(channel)
    if len(data) > limits.max_payload_bytes:
        raise BadEvent(Rejection.TOO_LARGE, f"{len(data)} bytes > limit {limits.max_payload_bytes}")
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadEvent(Rejection.NOT_UTF8, str(e)) from e
    else:
        text = data
    try:
        payload = json.loads(text)
    except ValueError as e:
        raise BadEvent(Rejection.NOT_JSON, str(e)) from e
    return event_from_payload(kind, payload, now=now, ts=ts, limits=limits)


def event_from_payload(
    channel: Channel,
    payload: object,
    *,
    now: float,
    ts: float | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Event:
    """Build an event from an already decoded payload (see :func:`parse_message`)."""
    if not isinstance(payload, dict):
        raise BadEvent(Rejection.NOT_OBJECT, f"payload is {type(payload).__name__}, not an object")
    if ts is not None:
        ts = check_timestamp(ts, "ts", now=now, limits=limits)
    if channel is Channel.NODE_STATUS:
        node_id = _identifier(payload, "node_id", limits)
        raw_status = _field(payload, "status", str)
        status = _STATUSES.get(raw_status)
        if status is None:
            raise BadEvent(Rejection.UNKNOWN_STATUS, f"status {raw_status[:32]!r}")
        return NodeStatusChanged(now if ts is None else ts, node_id, status)
    user_id = _identifier(payload, "user_id", limits)
    if channel is Channel.ACTIVITY:
        stamp: int | None = None
        if "timestamp" in payload:
            stamp = _field(payload, "timestamp", int)
            check_timestamp(stamp, "timestamp", now=now, limits=limits)
        if ts is None:
            ts = now if stamp is None else float(stamp)
        return UserActivity(ts, user_id, stamp)
    at = now if ts is None else ts
    if channel is Channel.CONNECT:
        return UserConnect(at, user_id)
    return UserDisconnect(at, user_id)


def parse_trace_record(record: object, *, now: float, limits: Limits = DEFAULT_LIMITS) -> Event:
    """Validate one decoded trace-file line ``{"ts", "channel", "payload"}``."""
    if not isinstance(record, dict):
        raise BadEvent(Rejection.NOT_OBJECT, f"line is {type(record).__name__}, not an object")
    ts = _field(record, "ts", float)
    channel = parse_channel(_field(record, "channel", str))
    return event_from_payload(channel, record.get("payload"), now=now, ts=ts, limits=limits)


def check_timestamp(value: float, name: str, *, now: float, limits: Limits) -> float:
    if not math.isfinite(value) or value < 0:
        raise BadEvent(Rejection.BAD_TIMESTAMP, f"{name}={value!r} is not a time")
    if value > now + limits.max_future_skew_s:
        raise BadEvent(
            Rejection.FUTURE_TIMESTAMP,
            f"{name}={value} is {value - now:.0f} s ahead of the clock "
            f"(limit {limits.max_future_skew_s:.0f} s)",
        )
    return float(value)


def _field(obj: dict[str, Any], name: str, kind: type[_T]) -> _T:
    if name not in obj:
        raise BadEvent(Rejection.MISSING_FIELD, f"no {name!r}")
    value = obj[name]
    if isinstance(value, bool) or not _is_kind(value, kind):
        raise BadEvent(
            Rejection.WRONG_TYPE, f"{name!r} is {type(value).__name__}, not {kind.__name__}"
        )
    if kind is float:
        return float(value)  # type: ignore[return-value]
    return value  # type: ignore[no-any-return]


def _is_kind(value: object, kind: type) -> bool:
    if kind is float:
        return isinstance(value, int | float)
    return isinstance(value, kind)


def _identifier(obj: dict[str, Any], name: str, limits: Limits) -> str:
    value = _field(obj, name, str)
    if not value:
        raise BadEvent(Rejection.EMPTY_FIELD, f"{name!r} is empty")
    if len(value) > limits.max_id_length:
        raise BadEvent(
            Rejection.FIELD_TOO_LONG, f"{name!r} has {len(value)} chars > {limits.max_id_length}"
        )
    return value
