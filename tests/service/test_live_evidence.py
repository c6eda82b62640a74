"""Live evidence: ``Engine.live`` mapped to each version's ``live_*`` metrics, and logged to
a real MLflow store (SQLite) through the registry's ``log_live``."""

from __future__ import annotations

import asyncio
import logging
import math

import pytest

from features.events import UserActivity, UserConnect
from models.live_evidence import LIVE_KEYS
from models.registry import ModelRegistry
from service.config import ServiceConfig
from service.engine import Engine
from service.evidence_log import EvidenceLog
from service.live_evidence import evidence
from service.telemetry import Telemetry
from tests.lifecycle import register
from tests.service.test_engine import T0, ModelLike
from training.tracking import TrackingConfig


def played(champion: str = "7", challenger: str = "8") -> Engine:
    """Ten users scored at one tick by the champion (0.2) and the challenger (0.6); one of
    them connects within the horizon; settled by a tick after it."""
    engine = Engine(
        ModelLike(0.2, version=champion),
        ServiceConfig(size_on_first_sight=False),
        shadow=ModelLike(0.6, version=challenger),
    )
    for i in range(10):
        engine.on_event(UserActivity(T0, f"u{i}", int(T0)), T0)
    engine.tick(T0 + 1.0)
    engine.on_event(UserConnect(T0 + 20.0, "u3"), T0 + 20.0)
    engine.tick(T0 + 100.0)
    return engine


def test_evidence_of_the_champion_and_the_challenger_over_a_window() -> None:
    live = played().live(T0 + 100.0)
    found = evidence(live, 3600.0)
    assert set(found) == {"7", "8"}
    champion, challenger = found["7"], found["8"]
    assert set(champion) <= set(LIVE_KEYS)
    assert champion["live_n"] == challenger["live_n"] == 10.0
    assert champion["live_window_s"] == 3600.0
    assert champion["live_base_rate"] == pytest.approx(0.1)
    assert champion["live_brier"] == pytest.approx((0.8**2 + 9 * 0.2**2) / 10)
    assert challenger["live_log_loss"] == pytest.approx(-(math.log(0.6) + 9 * math.log(0.4)) / 10)
    # every figure of the window, as the live report has it
    hour = live["versions"]["8"]["windows"]["1h"]
    for field in ("log_loss", "brier", "ece", "auc", "base_rate"):
        assert challenger[f"live_{field}"] == hour[field]
    # the other window when asked for it; an unknown window is an error
    assert evidence(live, 86_400.0)["7"]["live_window_s"] == 86_400.0
    with pytest.raises(KeyError):
        evidence(live, 60.0)


def test_the_champions_evidence_carries_its_health() -> None:
    live = played().live(T0 + 100.0)
    found = evidence(live, 3600.0)
    # Healthy (too little seen to say otherwise), and no reference: no PSI.
    assert found["7"]["live_degraded"] == 0.0 and "live_psi_max" not in found["7"]
    assert "live_degraded" not in found["8"]  # health is the champion's
    live["health"] |= {"degraded": True, "psi_max": 0.41}
    found = evidence(live, 3600.0)
    assert found["7"]["live_degraded"] == 1.0 and found["7"]["live_psi_max"] == 0.41
    # A report about another version says nothing of this one.
    live["health"]["version"] = "6"
    assert "live_degraded" not in evidence(live, 3600.0)["7"]


def test_figures_a_window_lacks_are_left_out_and_the_heuristic_is_no_version() -> None:
    live = played().live(T0 + 100.0)
    live["versions"]["7"]["windows"]["1h"] |= {"auc": None}
    live["versions"]["heuristic"] = {
        "role": "fallback",
        "windows": live["versions"]["7"]["windows"],
    }
    live["versions"]["5"] = {"role": "retired", "windows": live["versions"]["7"]["windows"]}
    found = evidence(live, 3600.0)
    assert set(found) == {"7", "8"} and "live_auc" not in found["7"]
    # nothing settled within the window: n 0 and nothing else
    later = played().live(T0 + 100.0 + 2 * 3600.0)
    assert later["versions"]["7"]["windows"]["1h"]["n"] == 0
    assert evidence(later, 3600.0)["8"] == {"live_n": 0.0, "live_window_s": 3600.0}
    # the heuristic as the champion is logged nowhere
    heuristic = played().live(T0 + 100.0)
    heuristic["versions"] = {"heuristic": heuristic["versions"]["7"] | {"role": "champion"}}
    assert evidence(heuristic, 3600.0) == {}


def test_logged_to_each_versions_run_in_a_real_store(
    tracking: TrackingConfig, registry: ModelRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = register(tracking).version, register(tracking).version
    live = played(first, second).live(T0 + 100.0)
    telemetry = Telemetry()
    sink = EvidenceLog(registry, telemetry)
    at = T0 + 100.0
    assert asyncio.run(sink.log(live, 3600.0, at)) == 2
    champion, challenger = registry.common_live_evidence(first, second) or (None, None)
    assert champion is not None and challenger is not None
    assert champion.step == challenger.step == int(at)
    assert champion.metrics == pytest.approx(evidence(live, 3600.0)[first])
    assert challenger.metrics == pytest.approx(evidence(live, 3600.0)[second])
    assert telemetry.live_evidence_logged._value.get() == 2

    # A version without a run in the store: counted, logged once, never raised; the other
    # version is still logged.
    unknown = played(first, "999").live(T0 + 100.0)
    with caplog.at_level(logging.WARNING, logger="service.evidence_log"):
        for k in range(3):
            assert asyncio.run(sink.log(unknown, 3600.0, at + 10 * (k + 1))) == 1
    assert telemetry.live_evidence_failures._value.get() == 3
    warnings = [r for r in caplog.records if "999" in r.getMessage()]
    assert len(warnings) == 1
    assert (registry.live_evidence(first) or champion).step == int(at) + 30
