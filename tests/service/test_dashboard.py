"""The operator's dashboard in a real browser: headless Chromium (Debian's, driven by
Playwright) against a live service on real Redis, served on a real socket.

The browser is required, not optional: when ``/usr/bin/chromium`` is missing the test tries
``scripts/ensure-chromium.sh`` (apt-get, as root) and otherwise fails saying what to do.
The screenshot lands in ``out/dashboard.png``.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest
import redis

from features.boot_times import BootTimes
from features.clock import ScaledClock
from features.eventlog import EventLog, LogKeys
from features.events import Event, UserActivity, UserConnect, UserDisconnect
from models.scoring import Source
from service.app import create_app
from service.connect_windows import ConnectWindows, ServiceLevel
from service.engine import EngineStatus, UserScore
from service.feedback import ServiceLevelFeedback
from service.live import Readiness
from service.pool import PoolCounts
from service.pool_history import PoolHistory
from service.prediction_log import PredictionLog
from service.service_level import MetricsReport
from simulation.nodes.boot import UniformBoot
from simulation.nodes.fleet import NodeFleet
from tests.servers import serve
from tests.service.live_harness import bridged, make_service

pytestmark = pytest.mark.browser

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page, Route

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ENSURE = ROOT / "scripts" / "ensure-chromium.sh"
SCREENSHOT = ROOT / "out" / "dashboard.png"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SPEED = 20.0
"""Clock speed: a tick (10 s) every 0.5 s of wall time, a 3-8 s boot in 0.15-0.4 s."""

READ_DOM = """() => {
  const read = (el) => ({ text: el.textContent.trim(), value: el.dataset.value ?? null });
  const out = { poolAt: document.body.dataset.poolAt ?? null, fields: {}, rows: [], charts: {} };
  for (const el of document.querySelectorAll("[data-testid]")) {
    if (!el.closest("[data-testid=top-user]") && el.dataset.testid !== "top-user") {
      out.fields[el.dataset.testid] = read(el);
    }
  }
  for (const tr of document.querySelectorAll("[data-testid=top-user]")) {
    const cell = (id) => read(tr.querySelector(`[data-testid=${id}]`));
    out.rows.push({ user: cell("top-user-id"), probability: cell("top-user-probability"),
                    demand: cell("top-user-demand"), source: cell("top-user-source") });
  }
  for (const id of ["chart-nodes", "chart-warm", "chart-rates"]) {
    const box = document.querySelector(`[data-testid=${id}]`);
    const paths = box.querySelectorAll("path").length;
    out.charts[id] = { points: Number(box.dataset.points), paths };
  }
  return out;
}"""


def chromium() -> Path:
    """Debian's Chromium, installed now if it is missing and this process may install it."""
    if CHROMIUM.exists():
        return CHROMIUM
    detail = "not running as root with apt-get, so it was not installed"
    if os.geteuid() == 0 and shutil.which("apt-get"):
        done = subprocess.run(
            ["sh", str(ENSURE)], capture_output=True, text=True, timeout=900, check=False
        )
        if CHROMIUM.exists():
            return CHROMIUM
        detail = f"{ENSURE.name} exited {done.returncode}: {done.stderr.strip()[-1500:]}"
    pytest.fail(
        f"the dashboard test needs Debian's Chromium at {CHROMIUM} ({detail}); "
        f"install it with `sudo sh {ENSURE.relative_to(ROOT)}` (apt-get install -y chromium)",
        pytrace=False,
    )


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    executable = chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        pytest.fail(
            f"the dashboard test needs Playwright's Python package ({e}); "
            "install the dev extras: pip install -e '.[dev]'",
            pytrace=False,
        )
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(executable),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 800},
        )
        context.set_default_timeout(10_000)
        try:
            yield context
        finally:
            context.close()


def wait_until(url: str, check: Callable[[Any], bool], what: str, timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        answer = httpx.get(url, timeout=5)
        if answer.status_code == 200 and check(answer.json()):
            return answer.json()
        assert time.monotonic() < deadline, f"{what}: last answer {answer.text[:500]}"
        time.sleep(0.05)


def close(a: float, b: float, tolerance: float) -> bool:
    return math.isclose(a, b, rel_tol=0, abs_tol=tolerance)


def percent_shown(text: str) -> float:
    assert text.endswith("%"), text
    return float(text[:-1]) / 100.0


def check_page_shows(dom: dict[str, Any], pool: dict[str, Any]) -> None:
    """Every number on the page is the one in ``pool`` (the body the page rendered)."""
    fields = dom["fields"]
    metrics, counts = pool["metrics"], pool["counts"]

    def value(testid: str) -> str | None:
        found: str | None = fields[testid]["value"]
        return found

    def text(testid: str) -> str:
        shown: str = fields[testid]["text"]
        return shown

    for testid, expected in (
        ("connects", metrics["connects"]),
        ("instant", metrics["instant"]),
        ("waited", metrics["waited"]),
        ("abandoned", metrics["abandoned"]),
        ("nodes-created", metrics["nodes_created"]),
        ("waiting", counts["waiting"]),
        ("warm", counts["warm"]),
        ("live", counts["live"]),
        ("desired-warm", pool["desired_warm"]),
    ):
        assert text(testid) == str(expected), (testid, text(testid), expected)
        assert value(testid) == str(expected), (testid, value(testid), expected)
    for testid, expected, shown_to in (
        ("instant-rate", metrics["instant_rate"], 0.0005),
        ("efficiency", metrics["efficiency"], 0.0005),
        ("idle-share", metrics["idle_share"], 0.005),  # whole percents: the tile is narrow
    ):
        assert float(value(testid) or "nan") == expected, (testid, value(testid), expected)
        assert close(percent_shown(text(testid)), expected, shown_to + 1e-9), (testid, expected)
    assert float(value("nodes-per-connect") or "nan") == metrics["nodes_per_connect"]
    assert close(float(text("nodes-per-connect")), metrics["nodes_per_connect"], 0.005 + 1e-9)
    assert float(value("expected-demand") or "nan") == pool["expected_demand"]
    assert close(float(text("expected-demand")), pool["expected_demand"], 0.005 + 1e-9)
    assert text("scaler-reason") == pool["reason"]
    assert text("warm-split") == " · ".join(
        str(counts[state]) for state in ("ready", "booting", "requested")
    )
    assert text("busy-split") == f"{counts['allocated']} · {counts['terminating']}"
    assert text("users") == f"{pool['scored_users']} · {pool['tracked_users']}"

    rows = dom["rows"]
    assert len(rows) == len(pool["top_users"]) > 0
    for row, user in zip(rows, pool["top_users"], strict=True):
        assert row["user"]["text"] == user["user_id"]
        assert float(row["probability"]["value"]) == user["probability"]
        assert close(percent_shown(row["probability"]["text"]), user["probability"], 0.0005)
        assert float(row["demand"]["value"]) == user["demand_probability"]
        assert row["source"]["value"] == row["source"]["text"] == user["source"]


def check_model_shown(dom: dict[str, Any], model: dict[str, Any]) -> None:
    fields = dom["fields"]
    assert fields["model-source"]["text"] == model["source"]
    version = model.get("version")
    assert fields["model-version"]["text"] == ("" if version is None else f"v{version}")
    total = sum(model["fallbacks"].values())
    assert fields["fallbacks-total"]["text"] == fields["fallbacks-total"]["value"] == str(total)
    for reason, count in model["fallbacks"].items():
        if count:
            assert fields[f"fallback-{reason}"]["value"] == str(count)
        else:
            assert f"fallback-{reason}" not in fields


DECISION = ("desired_warm", "reason", "expected_demand")
"""What a tick decides, in ``/v1/pool``: unchanged until the next tick."""


def read_aligned(page: Page, base: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The page's next ``/v1/pool`` body, the DOM once it shows that body (read in one go),
    and ``/v1/pool`` fetched by the test right after the page's own request."""
    with page.expect_response(lambda r: r.url.startswith(f"{base}/v1/pool")) as info:
        pass
    rendered: dict[str, Any] = info.value.json()
    fetched: dict[str, Any] = httpx.get(f"{base}/v1/pool", timeout=5).json()
    handle = page.wait_for_function(
        f"at => Number(document.body.dataset.poolAt) === at && ({READ_DOM})()",
        arg=rendered["at"],
    )
    dom: dict[str, Any] = handle.json_value()
    assert float(dom["poolAt"]) == rendered["at"]
    return dom, rendered, fetched


def check_decided_by_last_tick(
    base: str, rendered: dict[str, Any], fetched: dict[str, Any]
) -> None:
    """The decision in the page's body is the one /v1/history recorded at its tick, the last
    tick before the page's read; the test's later read is of that tick or a later one."""
    decided = rendered["decided_at"]
    assert decided is not None and decided <= rendered["at"] <= fetched["at"]
    assert fetched["decided_at"] >= decided
    history = httpx.get(f"{base}/v1/history", timeout=5).json()["points"]
    at_tick = [point for point in history if point["t"] == decided]
    assert len(at_tick) == 1, (decided, [point["t"] for point in history[-5:]])
    assert at_tick[0]["desired_warm"] == rendered["desired_warm"]
    assert at_tick[0]["expected_demand"] == rendered["expected_demand"]
    assert not [point for point in history if decided < point["t"] <= rendered["at"]]


def test_dashboard_shows_the_pool_live(
    redis_url: str, redis_client: redis.Redis, key_prefix: str, browser: BrowserContext
) -> None:
    clock = ScaledClock(anchor=time.time(), speed=SPEED)
    fleet = NodeFleet(UniformBoot(3, 8), random.Random(21))
    log = EventLog(redis_client, LogKeys(key_prefix))
    harness = make_service(redis_url, key_prefix, clock, fleet)
    app = create_app(harness.service, on_shutdown=[harness.close])
    with bridged(redis_client, log, key_prefix), serve(app) as base:
        wait_until(f"{base}/readyz", lambda _: True, "never ready")
        wait_until(f"{base}/v1/pool", lambda p: p["counts"]["ready"] >= 2, "no warm nodes")
        # Users show activity; some connect (two instantly, on the warm nodes, the others
        # after a boot), one leaves again; the rest stay candidates for the next connect.
        users = [f"user-{i:02d}" for i in range(12)]
        now = clock.now()
        events: list[Event] = [
            UserActivity(now + i * 0.01, u, int(now)) for i, u in enumerate(users)
        ]
        events += [UserConnect(now + 1 + i * 0.01, u) for i, u in enumerate(users[:5])]
        log.append_batch(events)
        wait_until(f"{base}/v1/pool", lambda p: p["counts"]["allocated"] == 5, "not all served")
        log.append(UserDisconnect(clock.now(), users[0]))
        log.append_batch([UserActivity(clock.now(), u, int(clock.now())) for u in users[6:9]])
        wait_until(f"{base}/v1/pool", lambda p: p["counts"]["allocated"] == 4, "no disconnect")

        page = browser.new_page()
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{base}/")
        page.wait_for_function(
            "document.querySelector('[data-testid=connects]').textContent === '5'"
            " && document.querySelectorAll('[data-testid=top-user]').length > 0"
            " && Number(document.querySelector('[data-testid=chart-nodes]').dataset.points) >= 3"
        )

        model = httpx.get(f"{base}/v1/model", timeout=5).json()
        # A tick every 0.5 s of wall time. The page's polls fall into step with the ticks on
        # a loaded machine (a poll whose requests wait out a tick comes 1.5 s later, just
        # before the third tick after): the test's read right after the page's then lands
        # after a tick for every read in a row (seen 40 of 40). So the decision the page
        # shows is checked against the tick that made it, in /v1/history, every time, and
        # against the test's own read whenever no tick fell in between.
        for _ in range(5):
            dom, rendered, fetched = read_aligned(page, base)
            # The page shows exactly what it received ...
            check_page_shows(dom, rendered)
            # ... which is what /v1/pool says at about the same moment: connects and waits
            # are settled; the decision is the last tick's before the page's read.
            shown = dom["fields"]
            assert shown["connects"]["text"] == str(fetched["metrics"]["connects"]) == "5"
            assert float(shown["instant-rate"]["value"]) == fetched["metrics"]["instant_rate"]
            assert close(
                float(shown["efficiency"]["value"]), fetched["metrics"]["efficiency"], 0.01
            )
            check_decided_by_last_tick(base, rendered, fetched)
            if fetched["decided_at"] == rendered["decided_at"]:
                assert {key: fetched[key] for key in DECISION} == {
                    key: rendered[key] for key in DECISION
                }
                if fetched["counts"] == rendered["counts"]:  # no node changed in between
                    check_page_shows(dom, fetched | {"metrics": rendered["metrics"]})
                    break

        check_model_shown(dom, model)
        fields = dom["fields"]
        assert fields["model-source"]["text"] == "heuristic"
        # the heuristic sizes, so its predictions are the champion's; there is no challenger
        assert fields["live-champion-version"]["text"] == "heuristic"
        assert fields["live-challenger-version"]["text"] == "none"
        assert fields["status"]["text"] == "live"
        assert fields["banner"]["text"] == ""
        history = httpx.get(f"{base}/v1/history", timeout=5).json()["points"]
        for chart in dom["charts"].values():
            assert 3 <= chart["points"] <= len(history) and chart["paths"] >= 2
        # Nothing is fetched from outside the machine, and the script raised nothing.
        assert requests and all(url.startswith(base) for url in requests), requests
        assert errors == []

        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))
    # The server is gone: the page says so and keeps the last numbers, dimmed.
    page.wait_for_function(
        "document.querySelector('[data-testid=status]').dataset.state === 'unreachable'"
    )
    assert "Cannot reach the service" in page.get_by_test_id("banner").inner_text()
    assert page.get_by_test_id("connects").inner_text() == "5"
    page.close()


def test_dashboard_says_when_the_service_is_not_ready(
    redis_url: str, redis_client: redis.Redis, key_prefix: str, browser: BrowserContext
) -> None:
    clock = ScaledClock(anchor=time.time(), speed=SPEED)
    harness = make_service(
        redis_url, key_prefix, clock, NodeFleet(UniformBoot(3, 8), random.Random(22))
    )
    # Never started: every route that needs the engine answers 503.
    app = create_app(harness.service, manage_lifecycle=False, on_shutdown=[harness.close])
    with serve(app) as base:
        assert httpx.get(f"{base}/v1/pool", timeout=5).status_code == 503
        page = browser.new_page()
        page.goto(f"{base}/")
        page.wait_for_function(
            "document.querySelector('[data-testid=status]').dataset.state === 'not-ready'"
        )
        banner = page.get_by_test_id("banner")
        assert banner.is_visible()
        assert "not ready" in banner.inner_text() and "503" in banner.inner_text()
        assert page.get_by_test_id("connects").inner_text() == "—"
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT.with_name("dashboard-not-ready.png")))
        page.close()


# -- every field, from data where no two numbers coincide ----------------------------------------

ORIGIN = "http://dashboard.test"


def crafted_status(at: float, *, waiting: int = 2) -> EngineStatus:
    """A status whose numbers all differ, so a field showing the wrong one is caught."""
    counts = PoolCounts(
        requested=1, booting=2, ready=3, allocated=7, terminating=1, waiting=waiting
    )
    metrics = MetricsReport(
        connects=23,
        instant=17,
        instant_rate=17 / 23,
        waited=5,
        mean_wait_s=4.4,
        p95_wait_s=9.5,
        abandoned=1,
        user_seconds=1234.5,
        node_seconds=4321.0,
        efficiency=1234.5 / 4321.0,
        nodes_created=19,
        busy_node_seconds=1100.25,
    )
    return EngineStatus(
        at=at,
        counts=counts,
        decided_at=at - 2.0,
        desired_warm=6,
        need=5.43,
        reason="up 2; need 5.43 (E[D] 3.21), warm 4 in [6, 7]",
        expected_demand=3.21,
        baseline_per_s=0.0125,
        scored_users=40,
        tracked_users=55,
        metrics=metrics,
        refused_needs={},
        lead_time_s=39.0,
        boot_times=BootTimes().summary(0.95),
        feedback=ServiceLevelFeedback(0.99).report(),
    )


def test_dashboard_shows_every_field_of_the_pool(browser: BrowserContext) -> None:
    """The page over fixed answers (the shapes the service's own classes produce)."""
    now = 1_800_000_000.0
    history = PoolHistory()
    for i in range(30):
        history.record(crafted_status(now - 300 + 10 * i, waiting=i % 3))
    pool: dict[str, Any] = crafted_status(now).to_dict() | {"nodes": []}
    pool["service_level"] = crafted_level(now).to_dict()
    pool["top_users"] = [
        UserScore(f"u{i}", 0.9 - 0.1 * i, source, version, 0.8 - 0.07 * i).to_dict()
        for i, (source, version) in enumerate(
            [(Source.MODEL, "7"), (Source.HEURISTIC, None), (Source.MODEL, "7")]
        )
    ]
    model = {
        "source": "model",
        "name": "connect-model",
        "alias": "champion",
        "version": "7",
        "last_error": None,
        "fallbacks": {"no_model": 3, "load_failed": 0, "predict_error": 1},
    }
    answers: dict[str, Any] = {
        "/v1/pool": pool,
        "/v1/history": history.to_dict() | {"now": now, "tick_interval_s": 10.0},
        "/v1/model": model,
        "/readyz": ready_body(),
    }
    html = (ROOT / "service" / "static" / "dashboard.html").read_text(encoding="utf-8")

    def answer(route: Route) -> None:
        path = route.request.url.removeprefix(ORIGIN).split("?")[0]
        if path == "/":
            route.fulfill(body=html, content_type="text/html")
        elif path in answers:
            route.fulfill(body=json.dumps(answers[path]), content_type="application/json")
        else:
            route.fulfill(status=404, body="{}", content_type="application/json")

    page = browser.new_page()
    page.route(f"{ORIGIN}/**", answer)
    page.goto(f"{ORIGIN}/")
    handle = page.wait_for_function(
        f"at => Number(document.body.dataset.poolAt) === at && ({READ_DOM})()", arg=now
    )
    dom: dict[str, Any] = handle.json_value()
    check_page_shows(dom, pool)
    check_model_shown(dom, model)
    fields = dom["fields"]
    assert fields["warm"]["text"] == "4" and fields["desired-warm"]["text"] == "6"
    assert fields["waiting"]["text"] == "2" and fields["live"]["text"] == "14"
    assert fields["mean-wait"]["text"] == "4.4 s"
    assert fields["p95-wait"]["text"] == "9.5 s"
    assert fields["need"]["text"] == "5.43"
    # the last hour (16 of 20 at once) against the target, missed
    assert fields["instant-rate-1h"]["text"] == "80.0%"
    assert fields["instant-rate-1h"]["value"] == "0.8"
    assert fields["target-instant-rate"]["text"] == "99%"
    assert fields["target-instant-rate"]["value"] == "0.99"
    assert fields["baseline"]["text"] == "0.75 / min"
    # the closed loop: the lead time, the boots learned, the target in force
    assert fields["lead-time"]["text"] == "39.0 s"
    assert fields["boot-p95"]["text"] == "30.0 s"  # the prior: no boot in the crafted status
    assert fields["target-in-force"]["text"] == "99%"
    assert [row["source"]["text"] for row in dom["rows"]] == ["model", "heuristic", "model"]
    for chart in dom["charts"].values():
        assert chart["points"] == 30
    page.close()


def crafted_level(at: float) -> ServiceLevel:
    """The last hour: 20 connects, 16 at once (none in the last 30 min)."""
    windows = ConnectWindows()
    for i in range(20):
        windows.record(at - 50 * 60 + 60 * i, instant=i % 5 != 0)
    return windows.service_level(at, 0.99)


def ready_body(*reasons: str, sees_events: bool = True) -> dict[str, Any]:
    model = "serving 'connect-model' version 7"
    return Readiness(sees_events, True, model, "1-0", reasons).to_dict()


@pytest.mark.parametrize("sees_events", [True, False])
def test_dashboard_says_why_the_service_is_not_ready(
    browser: BrowserContext, sees_events: bool
) -> None:
    now = 1_800_000_000.0
    pool: dict[str, Any] = crafted_status(now).to_dict() | {"nodes": [], "top_users": []}
    pool["service_level"] = ConnectWindows().service_level(now, 0.99).to_dict()
    reason = "waiting for a reason" if sees_events else "the event log is unreachable"
    answers: dict[str, tuple[int, Any]] = {
        "/v1/pool": (200, pool),
        "/v1/history": (200, PoolHistory().to_dict() | {"now": now, "tick_interval_s": 10.0}),
        "/v1/model": (200, {"source": "heuristic", "alias": None, "fallbacks": {}}),
        "/readyz": (503, ready_body(reason, sees_events=sees_events)),
    }
    html = (ROOT / "service" / "static" / "dashboard.html").read_text(encoding="utf-8")

    def answer(route: Route) -> None:
        path = route.request.url.removeprefix(ORIGIN).split("?")[0]
        if path == "/":
            route.fulfill(body=html, content_type="text/html")
        else:
            status, body = answers[path]
            route.fulfill(status=status, body=json.dumps(body), content_type="application/json")

    page = browser.new_page()
    page.route(f"{ORIGIN}/**", answer)
    page.goto(f"{ORIGIN}/")
    page.wait_for_function(
        "document.querySelector('[data-testid=status]').dataset.state === 'degraded'"
    )
    banner = page.get_by_test_id("banner").inner_text()
    assert f"/readyz is 503: {reason})" in banner
    assert ("Scaling is paused" in banner) == (not sees_events)
    # no connect in the last hour: no rate to show, nothing met or missed
    assert page.get_by_test_id("instant-rate-1h").inner_text() == "—"
    assert page.get_by_test_id("instant-rate-1h").get_attribute("data-state") == "none"
    assert page.get_by_test_id("target-instant-rate").inner_text() == "99%"
    page.close()


# -- predictions against outcomes ----------------------------------------------------------------

LIVE_FIGURES = {"n": "n", "log_loss": "log-loss", "brier": "brier", "ece": "ece", "auc": "auc"}
READ_RELIABILITY = """() => {
  const box = document.querySelector("[data-testid=chart-reliability]");
  const dots = [...box.querySelectorAll("circle.bin")].map((c) => ({
    series: c.dataset.series, predicted: Number(c.dataset.predicted),
    observed: Number(c.dataset.observed), cx: Number(c.getAttribute("cx")),
    cy: Number(c.getAttribute("cy")) }));
  const diagonal = box.querySelector("[data-testid=reliability-diagonal]");
  const ends = diagonal
    ? ["x1", "y1", "x2", "y2"].map((a) => Number(diagonal.getAttribute(a))) : null;
  return { points: Number(box.dataset.points), series: Number(box.dataset.series), dots,
           diagonal: ends };
}"""


def crafted_live(now: float) -> dict[str, Any]:
    """The live metrics of a champion (7) and a challenger (8), as ``Engine.live`` gives
    them: 400 users scored an hour apart, some connecting; the 24 h window holds an older
    tick the last hour does not."""
    log = PredictionLog(
        max_per_tick=2000, bucket_s=300.0, windows_s=(3600.0, 86400.0), keep_settled=0
    )
    log.champion, log.challenger = "7", "8"
    rng = np.random.default_rng(3)
    rows = np.arange(400)
    for at in (now - 3 * 3600.0, now - 600.0):
        truth = rng.uniform(0.0, 0.3, len(rows))
        log.record(at, rows, truth, "7", 40.0)
        log.record(at, rows, np.clip(truth * 1.6 + 0.02, 0.0, 1.0), "8", 40.0)
        for row in rows[rng.uniform(size=len(rows)) < truth]:
            log.connect(int(row), at + 10.0)
    log.advance(now)
    return log.live(now)


def check_live_shown(dom: dict[str, Any], live: dict[str, Any], window: str) -> None:
    fields = dom["fields"]
    for role in ("champion", "challenger"):
        version = live[role]
        assert fields[f"live-{role}-version"]["text"] == f"v{version}"
        metrics = live["versions"][version]["windows"][window]
        for key, testid in LIVE_FIGURES.items():
            shown_value = fields[f"live-{role}-{testid}"]
            assert float(shown_value["value"]) == metrics[key], (role, key)
            digits = {"n": 0, "auc": 3}.get(key, 4)
            assert close(float(shown_value["text"]), metrics[key], 0.5 * 10**-digits + 1e-12)


def test_dashboard_shows_the_live_reliability_of_champion_and_challenger(
    browser: BrowserContext,
) -> None:
    now = 1_800_000_000.0
    live = crafted_live(now)
    hour, day = (live["versions"]["7"]["windows"][w] for w in ("1h", "24h"))
    assert hour["n"] == 400 and day["n"] == 800  # the windows differ
    pool: dict[str, Any] = crafted_status(now).to_dict() | {"nodes": [], "top_users": []}
    pool["service_level"] = crafted_level(now).to_dict()
    pool["live"] = live
    model = {
        "source": "model",
        "alias": "champion",
        "version": "7",
        "fallbacks": {},
        "challenger": {"alias": "challenger", "version": "8"},
        "live": live,
    }
    answers: dict[str, Any] = {
        "/v1/pool": pool,
        "/v1/history": PoolHistory().to_dict() | {"now": now, "tick_interval_s": 10.0},
        "/v1/model": model,
        "/readyz": ready_body(),
    }
    html = (ROOT / "service" / "static" / "dashboard.html").read_text(encoding="utf-8")

    def answer(route: Route) -> None:
        path = route.request.url.removeprefix(ORIGIN).split("?")[0]
        if path == "/":
            route.fulfill(body=html, content_type="text/html")
        else:
            route.fulfill(body=json.dumps(answers[path]), content_type="application/json")

    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.route(f"{ORIGIN}/**", answer)
    page.goto(f"{ORIGIN}/")
    handle = page.wait_for_function(
        f"at => Number(document.body.dataset.poolAt) === at && ({READ_DOM})()", arg=now
    )
    check_live_shown(handle.json_value(), live, "1h")  # the shortest window first
    chart = page.evaluate(READ_RELIABILITY)
    curves = {
        role: live["versions"][live[role]]["windows"]["1h"]["reliability"]
        for role in ("champion", "challenger")
    }
    assert chart["series"] == 2
    assert chart["points"] == len(chart["dots"]) == sum(len(c) for c in curves.values())
    for role, curve in curves.items():
        dots = [d for d in chart["dots"] if d["series"] == role]
        assert [(d["predicted"], d["observed"]) for d in dots] == [
            (b["mean_prediction"], b["observed_rate"]) for b in curve
        ]
        # higher observed rates are drawn higher, larger predictions further right
        for a, b in itertools.pairwise(dots):
            assert (a["cx"] < b["cx"]) == (a["predicted"] < b["predicted"])
            assert (a["cy"] > b["cy"]) == (a["observed"] < b["observed"])
    x1, y1, x2, y2 = chart["diagonal"]
    assert x1 < x2 and y1 > y2  # from (0, 0) bottom left to (top, top) top right

    page.get_by_test_id("live-window-24h").click()
    handle = page.wait_for_function(
        f"n => document.querySelector('[data-testid=live-champion-n]').textContent === n"
        f" && ({READ_DOM})()",
        arg=str(day["n"]),
    )
    check_live_shown(handle.json_value(), live, "24h")
    assert page.get_by_test_id("live-window-24h").get_attribute("aria-pressed") == "true"
    assert errors == []
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT.with_name("dashboard-live.png")), full_page=True)
    page.close()
