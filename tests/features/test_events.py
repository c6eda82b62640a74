from __future__ import annotations

import json

import pytest

from features.events import (
    BadEvent,
    Channel,
    Event,
    Limits,
    NodeStatus,
    NodeStatusChanged,
    Rejection,
    UserActivity,
    UserConnect,
    UserDisconnect,
    encode_payload,
    parse_message,
    parse_trace_record,
    trace_record,
)

NOW = 1_732_800_000.0
UID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def test_seed_payloads_parse_exactly() -> None:
    activity = parse_message(
        "user:activity", b'{"user_id":"%s","timestamp":1732799990}' % UID.encode(), now=NOW
    )
    assert activity == UserActivity(1732799990.0, UID, 1732799990)
    connect = parse_message("user:connect", f'{{"user_id":"{UID}"}}', now=NOW)
    assert connect == UserConnect(NOW, UID)
    disconnect = parse_message("user:disconnect", f'{{"user_id":"{UID}"}}', now=NOW)
    assert disconnect == UserDisconnect(NOW, UID)
    for status in NodeStatus:
        node = parse_message(
            "node:status", f'{{"node_id":"node-1a2b3c4d","status":"{status.value}"}}', now=NOW
        )
        assert node == NodeStatusChanged(NOW, "node-1a2b3c4d", status)


def test_activity_without_timestamp_is_stamped_on_arrival() -> None:
    event = parse_message("user:activity", '{"user_id":"u1"}', now=NOW)
    assert event == UserActivity(NOW, "u1", None)


def test_a_timestamp_of_the_arrivals_second_gives_way_to_the_arrival() -> None:
    """A whole-second ``timestamp`` equal to the arrival's second would log
    the event up to a second before events that arrived ahead of it; the arrival keeps the
    order. Another second (a lagging publisher, or a message delayed across a boundary) is
    the publisher's word and is kept."""
    same = parse_message("user:activity", '{"user_id":"u1","timestamp":1732800000}', now=NOW + 0.75)
    assert same == UserActivity(NOW + 0.75, "u1", 1732800000)
    assert same.payload() == {"user_id": "u1", "timestamp": 1732800000}  # round-trips
    earlier = parse_message(
        "user:activity", '{"user_id":"u1","timestamp":1732799999}', now=NOW + 0.01
    )
    assert earlier == UserActivity(1732799999.0, "u1", 1732799999)
    ahead = parse_message("user:activity", '{"user_id":"u1","timestamp":1732800001}', now=NOW + 0.9)
    assert ahead == UserActivity(1732800001.0, "u1", 1732800001)


def test_logged_time_wins_over_payload_timestamp() -> None:
    event = parse_message(
        "user:activity", '{"user_id":"u1","timestamp":1732799990}', now=NOW, ts=1732799990.25
    )
    assert event.ts == 1732799990.25
    assert isinstance(event, UserActivity) and event.timestamp == 1732799990


def test_extra_fields_are_dropped() -> None:
    event = parse_message("user:connect", '{"user_id":"u1","extra":[1,2]}', now=NOW)
    assert event.payload() == {"user_id": "u1"}


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (UserActivity(1.5, "u1", 1), '{"user_id":"u1","timestamp":1}'),
        (UserActivity(1.5, "u1"), '{"user_id":"u1"}'),
        (UserConnect(1.0, "u1"), '{"user_id":"u1"}'),
        (UserDisconnect(1.0, "u1"), '{"user_id":"u1"}'),
        (
            NodeStatusChanged(1.0, "node-1", NodeStatus.READY),
            '{"node_id":"node-1","status":"ready"}',
        ),
    ],
)
def test_payloads_encode_like_the_go_publishers(event: UserActivity, expected: str) -> None:
    assert encode_payload(event) == expected


def test_trace_record_round_trip() -> None:
    events: list[Event] = [
        UserActivity(NOW + 0.25, "u1", int(NOW)),
        UserConnect(NOW + 1.5, "u1"),
        UserDisconnect(NOW + 9.125, "u1"),
        NodeStatusChanged(NOW + 2, "node-x", NodeStatus.BOOTING),
    ]
    for event in events:
        line = json.dumps(trace_record(event))
        assert parse_trace_record(json.loads(line), now=NOW + 10) == event


BAD_MESSAGES = [
    ("user:login", '{"user_id":"u1"}', Rejection.UNKNOWN_CHANNEL),
    ("user:connect", "x" * 5000, Rejection.TOO_LARGE),
    ("user:connect", b'{"user_id":"\xff\xfe"}', Rejection.NOT_UTF8),
    ("user:connect", "{user_id: u1}", Rejection.NOT_JSON),
    ("user:connect", "", Rejection.NOT_JSON),
    ("user:connect", '["u1"]', Rejection.NOT_OBJECT),
    ("user:connect", "null", Rejection.NOT_OBJECT),
    ("user:connect", "{}", Rejection.MISSING_FIELD),
    ("user:connect", '{"user_id":17}', Rejection.WRONG_TYPE),
    ("user:connect", '{"user_id":null}', Rejection.WRONG_TYPE),
    ("user:connect", '{"user_id":""}', Rejection.EMPTY_FIELD),
    ("user:connect", '{"user_id":"%s"}' % ("u" * 300), Rejection.FIELD_TOO_LONG),
    ("user:activity", '{"user_id":"u1","timestamp":"1732800000"}', Rejection.WRONG_TYPE),
    ("user:activity", '{"user_id":"u1","timestamp":1732800000.5}', Rejection.WRONG_TYPE),
    ("user:activity", '{"user_id":"u1","timestamp":true}', Rejection.WRONG_TYPE),
    ("user:activity", '{"user_id":"u1","timestamp":-5}', Rejection.BAD_TIMESTAMP),
    ("user:activity", '{"user_id":"u1","timestamp":1832800000}', Rejection.FUTURE_TIMESTAMP),
    ("node:status", '{"node_id":"node-1","status":"rebooting"}', Rejection.UNKNOWN_STATUS),
    ("node:status", '{"node_id":"node-1"}', Rejection.MISSING_FIELD),
    ("node:status", '{"user_id":"u1","status":"ready"}', Rejection.MISSING_FIELD),
    ("node:status", '{"node_id":"node-1","status":["ready"]}', Rejection.WRONG_TYPE),
    ("node:status", '{"node_id":"node-1","status":{"ready":1}}', Rejection.WRONG_TYPE),
]


@pytest.mark.parametrize(("channel", "data", "reason"), BAD_MESSAGES)
def test_bad_messages_are_rejected_with_their_reason(
    channel: str, data: str | bytes, reason: Rejection
) -> None:
    with pytest.raises(BadEvent) as caught:
        parse_message(channel, data, now=NOW)
    assert caught.value.reason is reason
    assert caught.value.detail


def test_limits_are_configurable() -> None:
    tight = Limits(max_payload_bytes=64, max_id_length=4, max_future_skew_s=0)
    with pytest.raises(BadEvent) as caught:
        parse_message("user:connect", '{"user_id":"u12345"}', now=NOW, limits=tight)
    assert caught.value.reason is Rejection.FIELD_TOO_LONG
    with pytest.raises(BadEvent) as caught:
        parse_message(
            "user:activity", '{"user_id":"u1","timestamp":1732800001}', now=NOW, limits=tight
        )
    assert caught.value.reason is Rejection.FUTURE_TIMESTAMP


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"channel": "user:connect", "payload": {"user_id": "u"}}, Rejection.MISSING_FIELD),
        ({"ts": "soon", "channel": "user:connect", "payload": {}}, Rejection.WRONG_TYPE),
        ({"ts": float("nan"), "channel": "user:connect", "payload": {}}, Rejection.BAD_TIMESTAMP),
        ({"ts": 1.0, "channel": "nope", "payload": {"user_id": "u"}}, Rejection.UNKNOWN_CHANNEL),
        ({"ts": 1.0, "channel": "user:connect", "payload": "u1"}, Rejection.NOT_OBJECT),
        ({"ts": 1.0, "channel": "user:connect"}, Rejection.NOT_OBJECT),
        ([1, 2], Rejection.NOT_OBJECT),
        ({"ts": 1.0, "channel": ["user:connect"], "payload": {}}, Rejection.WRONG_TYPE),
    ],
)
def test_bad_trace_records(record: object, reason: Rejection) -> None:
    with pytest.raises(BadEvent) as caught:
        parse_trace_record(record, now=NOW)
    assert caught.value.reason is reason


def test_channel_names_match_the_contract() -> None:
    assert [c.value for c in Channel] == [
        "user:activity",
        "user:connect",
        "user:disconnect",
        "node:status",
    ]
