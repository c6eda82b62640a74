"""The Prometheus alert rules of docs/alerts/: valid (``promtool check rules``), each alert
firing on series that burn the budget and silent on healthy ones (``promtool test rules``
on provisioner-rules.test.yml), on metrics and windows the service exports, and explained
in docs/alerts.md.

``promtool`` is Debian's ``prometheus`` package; ``.ci/run`` installs it when missing. On a
machine without it the two promtool tests skip, saying so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML (MLflow depends on it) has no stubs here

from service.connect_windows import WINDOWS_S, ConnectWindows, window_label
from service.telemetry import Telemetry

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "docs" / "alerts"
RULES = ALERTS / "provisioner-rules.yml"
UNIT_TESTS = ALERTS / "provisioner-rules.test.yml"
PAGE = ROOT / "docs" / "alerts.md"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip(
            "promtool is not installed: it comes with Debian's prometheus package "
            "(apt-get install --no-install-recommends prometheus; .ci/run installs it)"
        )
    return found


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"] if "alert" in rule]


def test_promtool_finds_the_rules_valid() -> None:
    done = subprocess.run(
        [promtool(), "check", "rules", str(RULES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


def test_promtool_unit_tests_pass() -> None:
    done = subprocess.run(
        [promtool(), "test", "rules", UNIT_TESTS.name],
        cwd=ALERTS,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_each_alert_is_tested_firing_and_silent() -> None:
    tests = yaml.safe_load(UNIT_TESTS.read_text(encoding="utf-8"))["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names)) >= 4
    for name in names:
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in mine), f"{name} is never shown firing"
        assert any(not case["exp_alerts"] for case in mine), f"{name} is never shown silent"
    assert {case["alertname"] for case in cases} <= set(names)


def test_the_rules_read_metrics_and_windows_the_service_exports() -> None:
    telemetry = Telemetry()
    telemetry.observe_model(True)  # registered once a registry is watched
    telemetry.observe_service_level(ConnectWindows().service_level(0.0, 0.99))
    exported = {family.name for family in telemetry.registry.collect()}
    labels = {window_label(seconds) for seconds in WINDOWS_S}
    for rule in rules():
        expr = rule["expr"]
        used = set(re.findall(r"\bprovisioner_\w+", expr))
        assert used and used <= exported, (rule["alert"], used - exported)
        windows = set(re.findall(r'window="([^"]+)"', expr))
        assert windows <= labels, (rule["alert"], windows - labels)


def test_the_page_explains_each_alert_where_its_runbook_points() -> None:
    page = PAGE.read_text(encoding="utf-8")
    headings = set(re.findall(r"^### (\w+)$", page, re.M))
    for rule in rules():
        name = rule["alert"]
        assert name in headings, f"docs/alerts.md has no section for {name}"
        assert rule["annotations"]["runbook"] == f"docs/alerts.md#{name.lower()}"
        assert rule["labels"]["severity"] in ("page", "ticket")
