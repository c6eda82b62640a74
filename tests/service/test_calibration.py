"""Online calibration: band rates from the connects that follow the scores, and the baseline."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from service.calibration import BASELINE_PRIOR_CONNECTS, EVIDENCE_FLOOR, N_BANDS, Calibration
from service.config import ServiceConfig
from service.packed import pack, unpack

T0 = 1_732_492_800.0
LEAD = 40.0


def calibration(half_life_s: float = 1e9) -> Calibration:
    return Calibration(half_life_s=half_life_s, prior=10.0)


def scores(values: list[float], model: bool = False) -> tuple[np.ndarray, np.ndarray]:
    return np.array(values, dtype=np.float64), np.full(len(values), model)


def test_with_no_outcomes_a_score_stands_as_it_is() -> None:
    cal = calibration()
    p, m = scores([0.0, 0.03, 0.5, 0.97])
    np.testing.assert_allclose(cal.calibrated(p, m), p)


def test_a_band_converges_to_its_observed_connect_rate() -> None:
    cal = calibration()
    users = np.arange(10)
    p, m = scores([0.8] * 10)
    for k in range(400):
        now = T0 + 10.0 * k
        cal.record(now, users, p, m, 10, None, LEAD)
        if k % 2 == 0:  # a connect every 20 s: 2 in each tick's lead time, among 10 users
            cal.connect(k % 10, now + 5.0)
    rate = cal.calibrated(p, m)
    assert rate == pytest.approx(np.full(10, 0.2), abs=0.01)
    # other bands are untouched
    np.testing.assert_allclose(cal.calibrated(*scores([0.3])), [0.3])


def test_a_connect_counts_in_each_tick_within_the_lead_time_once() -> None:
    cal = calibration()
    users = np.arange(2)
    p, m = scores([0.5, 0.5])
    for k in range(5):  # ticks at 0, 10, 20, 30, 40
        cal.record(T0 + 10.0 * k, users, p, m, 2, None, LEAD)
    cal.connect(0, T0 + 45.0)  # within 40 s of the ticks at 10..40, not of the one at 0
    cal.connect(0, T0 + 46.0)  # again: no more hits
    cal.record(T0 + 100.0, users[:0], p[:0], m[:0], 2, None, LEAD)  # everything matures
    band = int(cal.codes(p[:1], m[:1])[0])
    assert cal.hits[band] == pytest.approx(4.0) and cal.scored[band] == pytest.approx(10.0)
    # the second (its hits were taken already), on top of the prior's pseudo-connect
    assert cal.unforeseen == pytest.approx(1.0 + BASELINE_PRIOR_CONNECTS, rel=1e-3)


def test_connects_nobody_scored_make_the_baseline() -> None:
    cal = calibration()
    empty = np.zeros(0, dtype=np.intp)
    for k in range(361):  # one hour of ticks, nobody scored
        cal.record(T0 + 10.0 * k, empty, np.zeros(0), np.zeros(0, bool), 3, None, LEAD)
        if k % 60 == 59:
            cal.connect(2, T0 + 10.0 * k + 1)
    # six in an hour, and the prior's one in five minutes
    assert cal.baseline_rate() == pytest.approx((6 + 1) / (3600 + 300))


def test_sources_are_calibrated_apart_and_a_new_model_version_starts_afresh() -> None:
    cal = calibration()
    users = np.arange(4)
    p = np.full(4, 0.6)
    source = np.array([False, False, True, True])
    for k in range(200):
        now = T0 + 10.0 * k
        cal.record(now, users, p, source, 4, "1", LEAD)
        cal.connect(2, now + 1.0)  # the model's users connect, the heuristic's do not
        cal.connect(3, now + 1.0)
    heuristic, model = cal.calibrated(p, source)[[0, 2]]
    assert heuristic < 0.1
    assert model > 0.9
    cal.record(T0 + 3000.0, users, p, source, 4, "2", LEAD)
    assert cal.model_version == "2"
    assert cal.scored[N_BANDS:].sum() == 0.0 and cal.scored[:N_BANDS].sum() > 0.0


def test_old_outcomes_are_forgotten() -> None:
    n = int(4 * EVIDENCE_FLOOR)
    cal = calibration(half_life_s=600.0)
    users = np.arange(n)
    p, m = scores([0.8] * n)
    cal.record(T0, users, p, m, n, None, LEAD)
    cal.record(T0 + LEAD, users, p, m, n, None, LEAD)
    band = int(cal.codes(p, m)[0])
    assert cal.scored[band] == n
    cal.record(T0 + LEAD + 600.0, users[:0], p[:0], m[:0], n, None, LEAD)
    assert cal.scored[band] == pytest.approx(n / 2 + n)  # the first halved, the second added


def test_round_trip() -> None:
    cal = calibration()
    users = np.arange(3)
    p, m = scores([0.1, 0.5, 0.9])
    for k in range(20):
        cal.record(T0 + 10.0 * k, users, p, m, 3, "v", LEAD)
        cal.connect(k % 3, T0 + 10.0 * k + 3)
    copy = calibration()
    copy.load(orjson.loads(orjson.dumps(cal.to_dict())))
    assert copy.to_dict() == cal.to_dict()
    np.testing.assert_allclose(copy.calibrated(p, m), cal.calibrated(p, m))
    with pytest.raises(ValueError, match="scored"):
        copy.load({**cal.to_dict(), "scored": [1.0]})


def test_a_drifted_estimate_is_pulled_back_within_hours() -> None:
    """Whatever state the calibration reached (restored, or learned on another population),
    the outcomes pull it back within a few half-lives (the service's default: 10 minutes)."""
    half_life = ServiceConfig().calibration_half_life_s
    cal = calibration(half_life_s=half_life)
    p, m = scores([0.8] * 20)
    band = int(cal.codes(p[:1], m[:1])[0])
    state = cal.to_dict()
    state["scored"][band], state["score_sum"][band], state["hits"][band] = 1e3, 8e2, 9e2
    state |= {"unforeseen": 500.0, "exposure_s": 1000.0, "last_at": T0}
    cal.load(state)
    assert cal.calibrated(p[:1], m[:1])[0] == pytest.approx(0.9, abs=0.01)
    assert cal.baseline_rate() == pytest.approx(0.5)  # a connect every 2 s nobody foresaw
    users = np.arange(20)
    rates = []
    for k in range(1, 6 * 360 + 1):  # six hours of ticks: these users never connect
        cal.record(T0 + 10.0 * k, users, p, m, 20, None, LEAD)
        if k % 360 == 0:
            rates.append(float(cal.calibrated(p[:1], m[:1])[0]))
    assert rates == sorted(rates, reverse=True) and rates[-1] < 0.05
    assert cal.baseline_rate() < 0.5 / 50  # no unforeseen connect since: nearly gone


def test_the_baseline_of_a_fresh_service_is_cautious_and_not_carried_away() -> None:
    cal = calibration()
    assert cal.baseline_rate() == pytest.approx(1 / 300)  # nothing seen: the prior
    empty = np.zeros(0, dtype=np.intp)
    cal.record(T0, empty, np.zeros(0), np.zeros(0, bool), 1, None, LEAD)
    cal.record(T0 + 1.0, empty, np.zeros(0), np.zeros(0, bool), 1, None, LEAD)
    cal.connect(0, T0 + 1.0)  # one unforeseen connect in the first second
    assert cal.baseline_rate() < 0.01  # not one a second


def test_pending_scores_are_saved_and_bad_ones_refused() -> None:
    cal = calibration()
    users = np.arange(3)
    p, m = scores([0.5, 0.2, 0.9])
    cal.record(T0, users, p, m, 3, None, LEAD)
    copy = calibration()
    copy.load(json.loads(json.dumps(cal.to_dict())))  # as the state store saves it
    cal.connect(1, T0 + 5.0)
    copy.connect(1, T0 + 5.0)  # a hit of the restored pending tick, not an unforeseen connect
    assert copy.to_dict() == cal.to_dict()
    bad = cal.to_dict()
    bad["pending"][0]["code_of_user"] = [99, 0, 0]
    with pytest.raises(ValueError, match="band codes"):
        copy.load(bad)
    bad["pending"][0]["code_of_user"] = pack(np.array([99, 0, 0]), "<i1")
    with pytest.raises(ValueError, match="band codes"):
        copy.load(bad)


def test_pending_band_codes_are_packed_and_listed_ones_still_load() -> None:
    """A pending tick's band codes are saved as packed bytes (one per user, not a JSON
    number each: the state is saved after every read); a state saved with them as a list
    of numbers loads the same."""
    cal = calibration()
    cal.record(T0, np.arange(3), *scores([0.5, 0.2, 0.9]), 3, None, LEAD)
    saved = cal.to_dict()
    codes = saved["pending"][0]["code_of_user"]
    assert isinstance(codes, str)
    listed = json.loads(json.dumps(saved))
    listed["pending"][0]["code_of_user"] = unpack(codes, "<i1", "codes").tolist()
    restored = calibration()
    restored.load(listed)
    assert restored.to_dict() == saved


@pytest.mark.parametrize(
    ("half_life_s", "follows"), [(ServiceConfig().calibration_half_life_s, True), (7200.0, False)]
)
def test_a_band_follows_a_crowd_within_minutes(half_life_s: float, follows: bool) -> None:
    """A shift start: 100 users in one score band, a connect among them every 40 s (1 % of
    them within a lead time) for hours, then three every 10 s (12 %). With the default
    half-life the band's rate is five times the old one within 10 minutes (halfway to the
    crowd's); learned over hours, it stays near the old rate and the nodes come late."""
    cal = calibration(half_life_s=half_life_s)
    users = np.arange(100)
    p, m = scores([0.05] * 100)
    quiet_ticks, connects = 4 * 360, 0
    for k in range(quiet_ticks + 61):
        now = T0 + 10.0 * k
        if k == quiet_ticks:
            assert cal.calibrated(p[:1], m[:1])[0] == pytest.approx(0.01, abs=0.005)
        cal.record(now, users, p, m, 100, None, LEAD)
        for _ in range(3 if k >= quiet_ticks else int(k % 4 == 0)):
            cal.connect(connects % 100, now + 5.0)
            connects += 1
    assert bool(cal.calibrated(p[:1], m[:1])[0] > 0.05) is follows


def test_a_band_scored_rarely_keeps_what_it_learned() -> None:
    """A few browsers' burst: their band is scored for five minutes, none of them connects,
    then nobody is in the band for two hours. Their next burst must not be taken at its raw
    score again (a node booted for each browser): the band keeps ``EVIDENCE_FLOOR`` scores'
    worth of its outcomes however long ago they came."""
    cal = calibration(half_life_s=ServiceConfig().calibration_half_life_s)
    users = np.arange(10)
    p, m = scores([0.8] * 10)
    for k in range(30):
        cal.record(T0 + 10.0 * k, users, p, m, 10, None, LEAD)
    for hour in (1, 2):  # two quiet hours
        cal.record(T0 + hour * 3600.0, users[:0], p[:0], m[:0], 10, None, LEAD)
    band = int(cal.codes(p[:1], m[:1])[0])
    assert cal.scored[band] == pytest.approx(EVIDENCE_FLOOR)
    assert cal.calibrated(p[:1], m[:1])[0] < 0.1
