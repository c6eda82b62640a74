"""Fuzz: random and adversarial entries at the consumer, on real Redis (hypothesis).

Each example writes a random interleaving of valid events and bad messages to a fresh
event log, both ways messages arrive: appended to the stream directly (``XADD``, also
with arbitrary fields) and through the bridge's ``handle`` (pub/sub). The consumer then
reads everything. It must never raise; every bad message must be dead-lettered once with
the reason this test expects (an oracle written from the event contract, not from the
parser), and be acknowledged; the valid events must come out complete and in order.
"""

from __future__ import annotations

import itertools
import math
import string
import time
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.bridge import Bridge
from features.eventlog import EventLog, LogKeys
from features.events import (
    Channel,
    Event,
    NodeStatus,
    NodeStatusChanged,
    Rejection,
    UserActivity,
    UserConnect,
    UserDisconnect,
    encode_payload,
)
from service.consumer import StreamConsumer

MAX_PAYLOAD = 4096  # the default Limits
MAX_ID = 256
NOW = time.time()
CHANNELS = [c.value for c in Channel]


@dataclass(frozen=True)
class Good:
    event: Event
    via_bridge: bool


@dataclass(frozen=True)
class Bad:
    """A message that is not an event, and the reason it must be refused for."""

    fields: tuple[tuple[bytes, bytes], ...]
    """Stream entry fields (direct XADD); for the bridge, ``(channel, data)`` once."""
    reason: Rejection
    via_bridge: bool


Item = Good | Bad

# -- valid events ---------------------------------------------------------------------------

user_ids = st.one_of(
    st.text(min_size=1, max_size=12),
    st.text(string.ascii_letters, min_size=MAX_ID, max_size=MAX_ID),  # at the limit
)
times = st.floats(NOW - 10 * 86_400, NOW, allow_nan=False)


@st.composite
def events(draw: st.DrawFn) -> Event:
    ts = draw(times)
    kind = draw(st.sampled_from(Channel))
    if kind is Channel.NODE_STATUS:
        return NodeStatusChanged(ts, draw(user_ids), draw(st.sampled_from(NodeStatus)))
    user = draw(user_ids)
    if kind is Channel.ACTIVITY:
        return UserActivity(ts, user, int(ts))
    return UserConnect(ts, user) if kind is Channel.CONNECT else UserDisconnect(ts, user)


good_items = st.builds(Good, events(), st.booleans())

# -- bad messages, each with the reason the contract gives it -------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)
not_strings = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(json_scalars, max_size=3),
    st.dictionaries(st.text(max_size=4), json_scalars, max_size=2),
)


def _id_field(channel: Channel) -> str:
    return "node_id" if channel is Channel.NODE_STATUS else "user_id"


def _valid_rest(channel: Channel) -> dict[str, Any]:
    """The other fields a payload of ``channel`` needs, all valid."""
    if channel is Channel.NODE_STATUS:
        return {"status": "ready"}
    if channel is Channel.ACTIVITY:
        return {"timestamp": int(NOW)}
    return {}


@st.composite
def near_valid(draw: st.DrawFn) -> tuple[str, bytes, Rejection]:
    """A payload one rule away from valid: ``(channel, payload, reason)``."""
    channel = draw(st.sampled_from(Channel))
    key = _id_field(channel)
    rest = _valid_rest(channel)
    rule = draw(
        st.sampled_from(
            [
                "not_object",
                "missing",
                "wrong_type",
                "empty",
                "too_long",
                "too_large",
                "status",
                "timestamp",
            ]
        )
    )
    payload: Any
    if rule == "not_object":
        payload = draw(st.one_of(json_scalars, st.lists(json_values, max_size=4)))
        reason = Rejection.NOT_OBJECT
    elif rule == "missing":
        extra = draw(st.dictionaries(st.text(max_size=8), json_scalars, max_size=3))
        payload = {k: v for k, v in extra.items() if k != key} | rest
        reason = Rejection.MISSING_FIELD
    elif rule == "wrong_type":
        payload = {key: draw(not_strings)} | rest
        reason = Rejection.WRONG_TYPE
    elif rule == "empty":
        payload = {key: ""} | rest
        reason = Rejection.EMPTY_FIELD
    elif rule == "too_long":
        length = draw(st.integers(MAX_ID + 1, 1000))
        payload = {key: "x" * length} | rest
        reason = Rejection.FIELD_TOO_LONG
    elif rule == "too_large":
        payload = {key: "u1", "pad": "p" * draw(st.integers(MAX_PAYLOAD, 3 * MAX_PAYLOAD))} | rest
        reason = Rejection.TOO_LARGE
    elif rule == "status":
        channel = Channel.NODE_STATUS
        status = draw(st.one_of(st.text(max_size=12), not_strings))
        if isinstance(status, str) and status in {s.value for s in NodeStatus}:
            status = "rebooting"
        payload = {"node_id": "node-1", "status": status}
        reason = Rejection.UNKNOWN_STATUS if isinstance(status, str) else Rejection.WRONG_TYPE
        if status is None:
            reason = Rejection.WRONG_TYPE
    else:
        channel = Channel.ACTIVITY
        stamp = draw(
            st.one_of(
                st.integers(-(2**63), -1),
                st.integers(int(NOW) + 10**6, 2**62),
                st.floats(allow_nan=False),
                st.text(max_size=8),
                st.booleans(),
                st.none(),
            )
        )
        payload = {"user_id": "u1", "timestamp": stamp}
        if type(stamp) is not int:
            reason = Rejection.WRONG_TYPE
        else:
            reason = Rejection.BAD_TIMESTAMP if stamp < 0 else Rejection.FUTURE_TIMESTAMP
    return channel.value, orjson.dumps(payload), reason


def chaos_reason(data: bytes) -> Rejection | None:
    """The reason for arbitrary bytes as a payload; None if they happen to be an object."""
    if len(data) > MAX_PAYLOAD:
        return Rejection.TOO_LARGE
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return Rejection.NOT_UTF8
        return Rejection.NOT_JSON
    return None if isinstance(value, dict) else Rejection.NOT_OBJECT


chaos_bytes = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64).map(str.encode),
    st.binary(min_size=MAX_PAYLOAD + 1, max_size=MAX_PAYLOAD + 64),
    st.sampled_from([b"", b"{", b"null", b"[]", b'"x"', b"\xff\xfe", b"NaN", b"1e999"]),
)


@st.composite
def chaos(draw: st.DrawFn) -> tuple[str, bytes, Rejection]:
    """Arbitrary bytes on a valid channel, or anything on a channel that is not ours."""
    if draw(st.booleans()):
        name = draw(st.text(max_size=20).filter(lambda n: n not in CHANNELS))
        return name, draw(chaos_bytes), Rejection.UNKNOWN_CHANNEL
    data = draw(chaos_bytes)
    reason = chaos_reason(data)
    if reason is None:  # arbitrary bytes that decode to an object: make it not one
        data, reason = b"[" + data, chaos_reason(b"[" + data) or Rejection.NOT_JSON
    return draw(st.sampled_from(CHANNELS)), data, reason


@st.composite
def bad_items(draw: st.DrawFn) -> Bad:
    via_bridge = draw(st.booleans())
    if not via_bridge and draw(st.integers(0, 5)) == 0:
        return draw(odd_entries())
    channel, payload, reason = draw(st.one_of(near_valid(), chaos()))
    fields: tuple[tuple[bytes, bytes], ...] = (
        (b"channel", channel.encode()),
        (b"payload", payload),
    )
    if not via_bridge and draw(st.booleans()):
        fields = ((b"ts", repr(NOW - 1).encode()), *fields)
    return Bad(fields, reason, via_bridge)


@st.composite
def odd_entries(draw: st.DrawFn) -> Bad:
    """Stream entries written by someone else: stray fields, bad ``ts`` values."""
    if draw(st.booleans()):
        names = st.binary(min_size=1, max_size=10).filter(
            lambda n: n not in (b"channel", b"payload")
        )
        extra = draw(st.lists(st.tuples(names, st.binary(max_size=20)), min_size=1, max_size=4))
        keep = draw(st.sampled_from([(), ((b"channel", b"user:connect"),), ((b"payload", b"{}"),)]))
        return Bad((*extra, *keep), Rejection.MISSING_FIELD, False)
    raw_ts = draw(
        st.one_of(
            st.sampled_from([b"nan", b"inf", b"-inf", b"-1", b"abc", b"", b"\xff", b"1e999"]),
            st.text(string.ascii_letters, min_size=1, max_size=8).map(str.encode),
        )
    )
    try:
        value = float(raw_ts)
    except ValueError:
        value = math.nan
    reason = Rejection.BAD_TIMESTAMP
    if math.isfinite(value) and value >= 0:  # e.g. "Infinity" spelled otherwise: skip it
        raw_ts, value = b"-5", -5.0
    valid = orjson.dumps({"user_id": "u1"})
    fields = ((b"ts", raw_ts), (b"channel", b"user:connect"), (b"payload", valid))
    return Bad(fields, reason, False)


# -- the test ------------------------------------------------------------------------------

_examples = itertools.count()


def _write(client: redis.Redis, log: EventLog, bridge: Bridge, items: list[Item]) -> list[str]:
    """Write the items in order (consecutive bridge items as one batch); the stream IDs
    of the bad direct entries, in order."""
    bad_ids: list[str] = []
    for via_bridge, group in itertools.groupby(items, key=lambda item: item.via_bridge):
        batch = list(group)
        if via_bridge:
            bridge.handle([_message(log.keys.prefix, item) for item in batch])
            continue
        for item in batch:
            if isinstance(item, Good):
                event = item.event
                flat: list[bytes | str] = [
                    "ts",
                    repr(event.ts),
                    "channel",
                    event.channel.value,
                    "payload",
                    encode_payload(event),
                ]
            else:
                flat = [part for pair in item.fields for part in pair]
            entry_id = client.execute_command("XADD", log.keys.stream, "*", *flat)  # type: ignore[no-untyped-call]
            if isinstance(item, Bad):
                bad_ids.append(entry_id.decode() if isinstance(entry_id, bytes) else entry_id)
    return bad_ids


def _message(prefix: str, item: Item) -> dict[str, Any]:
    if isinstance(item, Good):
        channel, data = item.event.channel.value, encode_payload(item.event).encode()
    else:
        channel, data = item.fields[0][1].decode("utf-8", "replace"), item.fields[1][1]
    return {
        "type": "message",
        "pattern": None,
        "channel": (prefix + channel).encode(),
        "data": data,
    }


def _content(event: Event) -> tuple[str, dict[str, Any]]:
    return event.channel.value, event.payload()


@pytest.mark.slow
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(st.one_of(good_items, bad_items()), min_size=1, max_size=40))
def test_bad_entries_are_dead_lettered_and_good_ones_come_through_in_order(
    redis_client: redis.Redis, key_prefix: str, items: list[Item]
) -> None:
    prefix = f"{key_prefix}{next(_examples)}:"
    log = EventLog(redis_client, LogKeys(prefix))
    consumer = StreamConsumer(log, "service", "c1", count=7)  # several reads per example
    consumer.ensure_group("0")
    bridge = Bridge(redis_client, log, channel_prefix=prefix)
    bad_stream_ids = _write(redis_client, log, bridge, items)

    applied: list[Event] = []
    dead_ids: list[str] = []
    while len(delivery := consumer.read(block_ms=None)):
        applied += delivery.events
        dead_ids += delivery.dead
        consumer.ack(delivery.all_ids)

    good = [item.event for item in items if isinstance(item, Good)]
    assert [_content(e) for e in applied] == [_content(e) for e in good]
    goods = [item for item in items if isinstance(item, Good)]
    for item, event in zip(goods, applied, strict=True):
        if not item.via_bridge:
            assert event.ts == item.event.ts  # a stream entry's ts is kept exactly
    assert consumer.pending() == 0  # the dead entries are acknowledged too
    assert dead_ids == bad_stream_ids

    letters = list(reversed(log.dead_letters(count=10_000)))  # oldest first
    bad = [item for item in items if isinstance(item, Bad)]
    assert len(letters) == len(bad)
    stream_letters = {
        letter.source.removeprefix("stream:"): letter.reason
        for letter in letters
        if letter.source.startswith("stream:")
    }
    expected_stream = [item.reason for item in bad if not item.via_bridge]
    assert [stream_letters[i] for i in bad_stream_ids] == expected_stream
    bridged = [letter for letter in letters if letter.source.startswith("pubsub:")]
    assert [letter.reason for letter in bridged] == [item.reason for item in bad if item.via_bridge]
    for letter in letters:
        assert letter.detail  # a reason says what is wrong
    stats = log.stats()
    for reason in {item.reason for item in bad}:
        assert stats[f"dead:{reason.value}"] == sum(item.reason is reason for item in bad)


# Known-nasty payloads, always sent (hypothesis may not draw each of them in a CI-sized run).
CORPUS: list[tuple[str, bytes, Rejection]] = [
    ("node:status", b'{"node_id": "n1", "status": []}', Rejection.WRONG_TYPE),  # unhashable
    ("node:status", b'{"node_id": "n1", "status": {"a": 1}}', Rejection.WRONG_TYPE),
    ("node:status", b'{"node_id": ["n1"], "status": "ready"}', Rejection.WRONG_TYPE),
    ("node:status", b'{"node_id": "n1", "status": "READY"}', Rejection.UNKNOWN_STATUS),
    ("user:connect", b'{"user_id": {"$ne": null}}', Rejection.WRONG_TYPE),
    ("user:connect", b'{"user_id": true}', Rejection.WRONG_TYPE),
    ("user:connect", b'{"user_id": null}', Rejection.WRONG_TYPE),
    ("user:connect", b'{"user_id": ""}', Rejection.EMPTY_FIELD),
    ("user:connect", b'{"uid": "u1"}', Rejection.MISSING_FIELD),
    ("user:connect", b"[]", Rejection.NOT_OBJECT),
    ("user:connect", b"null", Rejection.NOT_OBJECT),
    ("user:connect", b'"u1"', Rejection.NOT_OBJECT),
    ("user:connect", b"", Rejection.NOT_JSON),
    ("user:connect", b'{"user_id": "u1"', Rejection.NOT_JSON),
    ("user:connect", b'{"user_id": NaN}', Rejection.NOT_JSON),
    ("user:connect", b'{"user_id": "\xff"}', Rejection.NOT_UTF8),
    ("user:connect", b"[" * 5000, Rejection.TOO_LARGE),
    ("user:connect", b"[" * 1000 + b"]" * 1000, Rejection.NOT_OBJECT),  # deep nesting
    ("user:activity", b'{"user_id": "u1", "timestamp": 1.5}', Rejection.WRONG_TYPE),
    ("user:activity", b'{"user_id": "u1", "timestamp": "1732800000"}', Rejection.WRONG_TYPE),
    ("user:activity", b'{"user_id": "u1", "timestamp": -1}', Rejection.BAD_TIMESTAMP),
    (
        "user:activity",
        b'{"user_id": "u1", "timestamp": 99999999999999}',
        Rejection.FUTURE_TIMESTAMP,
    ),
    ("user:activity", b'{"user_id": "u1", "timestamp": 1e400}', Rejection.NOT_JSON),
    (
        "user:activity",
        b'{"user_id": "u1", "timestamp": 18446744073709551616}',
        Rejection.WRONG_TYPE,
    ),
    ("user:dance", b'{"user_id": "u1"}', Rejection.UNKNOWN_CHANNEL),
    ("", b"", Rejection.UNKNOWN_CHANNEL),
]


def test_a_corpus_of_known_nasty_payloads(redis_client: redis.Redis, key_prefix: str) -> None:
    ok = Good(UserConnect(NOW, "u-ok"), False)
    items: list[Item] = [ok]
    for via_bridge in (False, True):
        for channel, payload, reason in CORPUS:
            fields = ((b"channel", channel.encode()), (b"payload", payload))
            items += [Bad(fields, reason, via_bridge), ok]
    log = EventLog(redis_client, LogKeys(key_prefix))
    consumer = StreamConsumer(log, "service", "c1")
    consumer.ensure_group("0")
    bridge = Bridge(redis_client, log, channel_prefix=key_prefix)
    _write(redis_client, log, bridge, items)
    delivery = consumer.read(block_ms=None)
    consumer.ack(delivery.all_ids)
    assert [_content(e) for e in delivery.events] == [_content(ok.event)] * (2 * len(CORPUS) + 1)
    letters = list(reversed(log.dead_letters(count=1000)))
    assert [letter.reason for letter in letters] == [reason for _, _, reason in CORPUS] * 2
    assert consumer.pending() == 0
