"""Typed events for the four channels of the seed system, and their validation.

The payloads are exactly those the original Go publishers send (docs/architecture.md,
"Events and trace lines"):

- ``user:activity``   ``{"user_id": str, "timestamp": int}`` (unix seconds)
- ``user:connect``    ``{"user_id": str}``
- ``user:disconnect`` ``{"user_id": str}``
- ``node:status``     ``{"node_id": str, "status": "booting"|"ready"|"terminated"}``

Every event carries ``ts``, the time it is logged with: the payload's own ``timestamp``
where it has one, else the time it arrived. The ``timestamp`` is whole seconds: on arrival
(:func:`parse_message` without ``ts``), one equal to the arrival's whole second (its floor)
gives way to the arrival time itself, since it says nothing the arrival does not and would
log the event up to a second before the events that arrived just ahead of it (against the
original programs, 185 of 3,325 entries of a live log were out of time order). A
``timestamp`` of another second (the publisher's clock, or a message delayed across a
second's boundary) is kept.
Anything that is not one of these payloads raises :class:`BadEvent` with a
:class:`Rejection` reason; callers dead-letter it.
Unknown extra payload fields are accepted and dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Final, NoReturn, TypeVar

import orjson


class Channel(StrEnum):
    ACTIVITY = "user:activity"
    CONNECT = "user:connect"
    DISCONNECT = "user:disconnect"
    NODE_STATUS = "node:status"


class NodeStatus(StrEnum):
    BOOTING = "booting"
    READY = "ready"
    TERMINATED = "terminated"


# Events are values: treat them as immutable. They are not frozen dataclasses only because
# frozen ones take three times as long to build, and the consumer builds 100k a second.


@dataclass(slots=True)
class UserActivity:
    ts: float
    user_id: str
    timestamp: int | None = None
    """The payload's own ``timestamp`` field, kept so the payload round-trips exactly."""

    channel: ClassVar[Channel] = Channel.ACTIVITY

    def payload(self) -> dict[str, Any]:
        if self.timestamp is None:
            return {"user_id": self.user_id}
        return {"user_id": self.user_id, "timestamp": self.timestamp}


@dataclass(slots=True)
class UserConnect:
    ts: float
    user_id: str

    channel: ClassVar[Channel] = Channel.CONNECT

    def payload(self) -> dict[str, Any]:
        return {"user_id": self.user_id}


@dataclass(slots=True)
class UserDisconnect:
    ts: float
    user_id: str

    channel: ClassVar[Channel] = Channel.DISCONNECT

    def payload(self) -> dict[str, Any]:
        return {"user_id": self.user_id}


@dataclass(slots=True)
class NodeStatusChanged:
    ts: float
    node_id: str
    status: NodeStatus

    channel: ClassVar[Channel] = Channel.NODE_STATUS

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
CHANNELS_BY_BYTES: Final = {c.value.encode(): c for c in Channel}
_ACTIVITY, _CONNECT, _NODE_STATUS = Channel.ACTIVITY, Channel.CONNECT, Channel.NODE_STATUS
_STATUSES: Final = {s.value: s for s in NodeStatus}
_T = TypeVar("_T")


def encode_payload(event: Event) -> str:
    """The payload as the Go publishers write it: compact JSON, fields in contract order."""
    return orjson.dumps(event.payload()).decode()


def trace_record(event: Event) -> dict[str, Any]:
    """One line of a trace file: ``{"ts", "channel", "payload"}`` (docs/architecture.md,
    "Events and trace lines")."""
    return {"ts": event.ts, "channel": event.channel.value, "payload": event.payload()}


def parse_channel(name: str) -> Channel:
    channel = _CHANNELS.get(name)
    if channel is None:
        raise BadEvent(Rejection.UNKNOWN_CHANNEL, f"channel {name[:64]!r} is not one of ours")
    return channel


def decode_json(data: bytes | str) -> object:
    """Decode JSON, raising :class:`BadEvent` (``not_utf8`` or ``not_json``)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        if isinstance(data, bytes):
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as bad:
                raise BadEvent(Rejection.NOT_UTF8, str(bad)) from e
        raise BadEvent(Rejection.NOT_JSON, str(e)) from e


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
    otherwise the payload's ``timestamp`` (``now`` itself when the ``timestamp`` is ``now``'s
    whole second) or, failing that, ``now`` (arrival) is used.
    """
    kind = parse_channel(channel)
    return event_from_payload(kind, decode_payload(data, limits), now=now, ts=ts, limits=limits)


def decode_payload(data: bytes | str, limits: Limits = DEFAULT_LIMITS) -> object:
    """A raw payload within the size limit, decoded (see :func:`decode_json`)."""
    if len(data) > limits.max_payload_bytes:
        raise BadEvent(Rejection.TOO_LARGE, f"{len(data)} bytes > limit {limits.max_payload_bytes}")
    return decode_json(data)


def event_from_payload(
    channel: Channel,
    payload: object,
    *,
    now: float,
    ts: float | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Event:
    """Build an event from an already decoded payload (see :func:`parse_message`).

    The common, valid case takes the short path; any doubt goes through the checks
    that name the broken rule.
    """
    if type(payload) is not dict:
        raise BadEvent(Rejection.NOT_OBJECT, f"payload is {type(payload).__name__}, not an object")
    latest = now + limits.max_future_skew_s
    if ts is not None and not 0 <= ts <= latest:  # NaN fails too
        ts = check_timestamp(ts, "ts", now=now, limits=limits)
    if channel is _NODE_STATUS:
        node_id = _identifier(payload, "node_id", limits)
        raw = payload.get("status")
        status = _STATUSES.get(raw) if type(raw) is str else None  # a list is unhashable
        if status is None:
            raw_status = _field(payload, "status", str)
            raise BadEvent(Rejection.UNKNOWN_STATUS, f"status {raw_status[:32]!r}")
        return NodeStatusChanged(now if ts is None else ts, node_id, status)
    user_id = payload.get("user_id")
    if type(user_id) is not str or not 0 < len(user_id) <= limits.max_id_length:
        user_id = _identifier(payload, "user_id", limits)
    if channel is _ACTIVITY:
        stamp = payload.get("timestamp")
        if type(stamp) is int and 0 <= stamp <= latest:
            if ts is None:  # on arrival: see the module doc
                ts = now if stamp == int(now) else float(stamp)
            return UserActivity(ts, user_id, stamp)
        if stamp is None and "timestamp" not in payload:
            return UserActivity(now if ts is None else ts, user_id, None)
        _reject_timestamp(payload, now, limits)
    if channel is _CONNECT:
        return UserConnect(now if ts is None else ts, user_id)
    return UserDisconnect(now if ts is None else ts, user_id)


def parse_trace_record(record: object, *, now: float, limits: Limits = DEFAULT_LIMITS) -> Event:
    """Validate one decoded trace-file line ``{"ts", "channel", "payload"}``."""
    if type(record) is not dict:
        raise BadEvent(Rejection.NOT_OBJECT, f"line is {type(record).__name__}, not an object")
    ts = record.get("ts")
    if type(ts) is not float:
        ts = _field(record, "ts", float)
    raw_channel = record.get("channel")
    channel = _CHANNELS.get(raw_channel) if type(raw_channel) is str else None
    if channel is None:
        channel = parse_channel(_field(record, "channel", str))
    return event_from_payload(channel, record.get("payload"), now=now, ts=ts, limits=limits)


def _reject_timestamp(payload: dict[str, Any], now: float, limits: Limits) -> NoReturn:
    check_timestamp(_field(payload, "timestamp", int), "timestamp", now=now, limits=limits)
    raise AssertionError("a timestamp that fails the fast check fails the full one")


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
