"""The circuit breaker alone: closed -> open -> half-open -> closed, on a clock we hand it."""

from __future__ import annotations

import pytest

from service.breaker import BreakerState, CircuitBreaker


def state(breaker: CircuitBreaker) -> BreakerState:
    """Read anew (mypy would keep the state an earlier assert narrowed)."""
    return breaker.state


def test_opens_after_consecutive_failures_only() -> None:
    breaker = CircuitBreaker(failure_threshold=3, reset_after_s=10.0)
    for now in (0.0, 1.0):
        assert breaker.allow(now)
        breaker.failure(now)
    assert breaker.allow(2.0)
    breaker.success(2.0)  # a success in between: the count starts again
    for now in (3.0, 4.0):
        breaker.failure(now)
    assert state(breaker) is BreakerState.CLOSED and breaker.failures == 2
    breaker.failure(5.0)
    assert state(breaker) is BreakerState.OPEN and breaker.opened == 1


def test_fails_fast_while_open_then_lets_one_probe_through() -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_after_s=10.0)
    breaker.failure(0.0)
    assert [breaker.allow(t) for t in (0.0, 5.0, 9.99)] == [False, False, False]
    assert breaker.rejected == 3
    assert breaker.retry_in(4.0) == pytest.approx(6.0)
    assert breaker.allow(10.0)  # the probe
    assert state(breaker) is BreakerState.HALF_OPEN
    assert not breaker.allow(10.5)  # one probe at a time
    breaker.success(11.0)
    assert state(breaker) is BreakerState.CLOSED and breaker.failures == 0
    assert all(breaker.allow(t) for t in (11.0, 11.1, 11.2))


def test_a_failed_probe_opens_it_for_another_cool_down() -> None:
    breaker = CircuitBreaker(failure_threshold=2, reset_after_s=10.0)
    breaker.failure(0.0)
    breaker.failure(0.0)
    assert breaker.allow(10.0)
    breaker.failure(10.2)  # one failure in half-open is enough
    assert state(breaker) is BreakerState.OPEN and breaker.opened == 2
    assert not breaker.allow(20.0)
    assert breaker.allow(20.2)


def test_a_probe_that_never_reports_is_given_up_after_a_cool_down() -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_after_s=5.0)
    breaker.failure(0.0)
    assert breaker.allow(5.0)  # the probe's caller is cancelled and never reports
    assert not breaker.allow(9.0)
    assert breaker.allow(10.0)  # a new probe


def test_reports_its_state() -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_after_s=3.0)
    assert breaker.to_dict(0.0)["state"] == "closed"
    breaker.failure(1.0)
    report = breaker.to_dict(2.0)
    assert report["state"] == "open" and report["retry_in_s"] == pytest.approx(2.0)
    assert report["opened"] == 1


def test_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError, match="reset_after_s"):
        CircuitBreaker(reset_after_s=-1.0)
