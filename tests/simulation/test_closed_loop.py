"""The closed loop on the bench's own runner: boots slower than the service assumes are learned,
and the realised instant rate steers the sizing, where the open loop missed the target."""

from __future__ import annotations

import pytest

from service.config import ServiceConfig
from simulation.runner import RunResult, run_workload

pytestmark = pytest.mark.slow

SLOW_BOOTS = "uniform:60:180"


def six_hours(config: ServiceConfig) -> RunResult:
    return run_workload("seed", hours=6, seed=4, config=config, boot=SLOW_BOOTS)


def test_the_feedback_lifts_the_realised_rate_when_the_lead_time_is_too_short() -> None:
    open_loop = six_hours(ServiceConfig(lead_time_s=40.0, feedback_gain=0.0))
    closed = six_hours(ServiceConfig(lead_time_s=40.0))
    assert open_loop.instant_rate < 0.96
    assert closed.instant_rate >= open_loop.instant_rate + 0.02


def test_learned_boot_times_hold_the_target_from_a_cold_start() -> None:
    result = six_hours(ServiceConfig())  # no history, no boot seen, the 30 s prior
    assert result.instant_rate >= 0.975
