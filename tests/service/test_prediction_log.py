"""The prediction log: outcomes over each scorer's own horizon, settling, sampling, the
settled queue and the state round trip."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from sklearn.metrics import log_loss

from service.prediction_log import PredictionLog, sample

T0 = 1_732_492_800.0
H = 40.0


def log(max_per_tick: int = 2000, keep_settled: int = 100_000) -> PredictionLog:
    return PredictionLog(
        max_per_tick=max_per_tick,
        bucket_s=300.0,
        windows_s=(3600.0, 86_400.0),
        keep_settled=keep_settled,
    )


def rows(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.intp)


def test_a_connect_within_the_horizon_is_an_outcome_of_one() -> None:
    plog = log()
    plog.record(T0, rows(0, 1, 2, 3, 4), np.full(5, 0.2), "7", H)
    plog.connect(0, T0)  # with the tick itself: before it, not after
    plog.connect(1, T0 + 5.0)
    plog.connect(2, T0 + H)  # exactly at the edge: counts
    plog.connect(3, T0 + H + 0.001)  # just after: does not
    plog.advance(T0 + H + 1.0)
    settled = plog.take_settled()["7"]
    assert settled.outcome.tolist() == [False, True, True, False, False]
    assert settled.probability.tolist() == [0.2] * 5
    assert settled.weight.tolist() == [1.0] * 5 and settled.at.tolist() == [T0] * 5


def test_nothing_settles_before_the_horizon_has_passed() -> None:
    plog = log()
    plog.record(T0, rows(0), np.array([0.5]), "7", H)
    plog.advance(T0 + H)  # a connect at this very instant may still come
    assert len(plog) == 1 and plog.take_settled() == {}
    plog.connect(0, T0 + H)
    plog.advance(T0 + H + 0.5)
    assert len(plog) == 0 and plog.take_settled()["7"].outcome.tolist() == [True]


def test_each_tick_judges_its_own_window() -> None:
    plog = log()
    for k in range(3):  # ticks at 0, 10 and 20 s, windows (0, 40], (10, 50], (20, 60]
        plog.record(T0 + 10.0 * k, rows(5, 9), np.array([0.1, 0.3]), "7", H)
    plog.connect(9, T0 + 45.0)
    plog.connect(9, T0 + 46.0)  # a second connect changes nothing
    plog.advance(T0 + 100.0)
    settled = plog.take_settled()["7"]
    assert settled.at.tolist() == [T0, T0, T0 + 10, T0 + 10, T0 + 20, T0 + 20]
    assert settled.outcome.tolist() == [False, False, False, True, False, True]


def test_connects_of_users_nobody_scored_are_ignored() -> None:
    plog = log()
    plog.record(T0, rows(2, 4), np.array([0.1, 0.3]), "7", H)
    plog.connect(3, T0 + 1.0)
    plog.connect(100, T0 + 2.0)
    plog.connect(0, T0 + 3.0)
    plog.advance(T0 + 50.0)
    assert not plog.take_settled()["7"].outcome.any()


def test_each_version_is_judged_over_its_own_horizon() -> None:
    plog = log()
    plog.record(T0, rows(1), np.array([0.4]), "7", 40.0)
    plog.record(T0, rows(1), np.array([0.6]), "8", 120.0)
    plog.connect(1, T0 + 60.0)
    plog.advance(T0 + 200.0)
    taken = plog.take_settled()
    assert taken["7"].outcome.tolist() == [False] and taken["8"].outcome.tolist() == [True]
    report = plog.report(T0 + 200.0)
    assert report["7"]["1h"].n == 1 and report["8"]["1h"].base_rate == 1.0


def test_unsorted_rows_are_sorted_with_their_scores() -> None:
    plog = log()
    plog.record(T0, rows(7, 2, 5), np.array([0.7, 0.2, 0.5]), "7", H)
    plog.connect(5, T0 + 1.0)
    plog.advance(T0 + 50.0)
    settled = plog.take_settled()["7"]
    assert settled.probability.tolist() == [0.2, 0.5, 0.7]
    assert settled.outcome.tolist() == [False, True, False]


def test_many_users_are_sampled_to_the_bound_and_weighted_to_stand_for_all() -> None:
    plog = log(max_per_tick=2000)
    n = 100_000
    everyone = np.arange(0, 3 * n, 3, dtype=np.intp)
    probability = np.linspace(0.0, 0.2, n)
    for k in range(40):
        plog.record(T0 + 10.0 * k, everyone, probability, "7", H)
        assert len(plog) <= 5 * 2000  # only the horizon's records are pending
    plog.advance(T0 + 1000.0)
    settled = plog.take_settled()["7"]
    assert len(settled) == 40 * 2000
    np.testing.assert_allclose(settled.weight, n / 2000)
    # unbiased: the weighted sample's mean score is the population's
    mean = np.average(settled.probability, weights=settled.weight)
    assert mean == pytest.approx(probability.mean(), rel=0.01)
    window = plog.report(T0 + 1000.0)["7"]["1h"]
    assert window.n == 80_000 and window.weight == pytest.approx(40 * n)


def test_the_sample_is_deterministic_differs_by_tick_and_keeps_order() -> None:
    users = np.arange(10_000, dtype=np.intp) * 7
    a, b = sample(users, T0, 100), sample(users, T0, 100)
    c = sample(users, T0 + 10.0, 100)
    assert a.tolist() == b.tolist() and len(a) == 100 and np.all(np.diff(a) > 0)
    assert len(set(a.tolist()) & set(c.tolist())) < 20
    assert sample(users[:50], T0, 100).tolist() == list(range(50))


def test_a_sample_keeps_every_user_alike() -> None:
    users = np.arange(1000, dtype=np.intp)
    kept = np.zeros(1000)
    for k in range(500):
        kept[users[sample(users, T0 + 10.0 * k, 100)]] += 1
    # 50 expected each; a binomial(500, 0.1) stays within 50 +- 30
    assert kept.sum() == 50_000 and kept.min() > 20 and kept.max() < 80
    # the low rows and the high rows are kept as often
    assert kept[:500].sum() == pytest.approx(kept[500:].sum(), rel=0.05)


def test_versions_scored_on_the_same_users_keep_the_same_sample() -> None:
    plog = log(max_per_tick=10)
    users = np.arange(1000, dtype=np.intp)
    plog.record(T0, users, np.full(1000, 0.1), "7", H)
    plog.record(T0, users, np.full(1000, 0.2), "8", H)
    kept = sample(users, T0, 10)
    for user in users[kept][:5]:
        plog.connect(int(user), T0 + 1.0)
    plog.advance(T0 + 50.0)
    taken = plog.take_settled()
    assert taken["7"].outcome.tolist() == taken["8"].outcome.tolist()
    assert taken["7"].outcome.sum() == 5


def test_settled_pairs_are_taken_once_and_bounded_when_nobody_takes_them() -> None:
    plog = log(keep_settled=25)
    for k in range(4):
        plog.record(T0 + 10.0 * k, np.arange(10, dtype=np.intp), np.full(10, 0.1 * k), "7", H)
    plog.advance(T0 + 100.0)
    settled = plog.take_settled()["7"]
    assert len(settled) == 25 and plog.dropped_settled == 15
    assert settled.at.tolist() == [T0 + 10.0] * 5 + [T0 + 20.0] * 10 + [T0 + 30.0] * 10
    assert plog.take_settled() == {}
    assert plog.report(T0 + 100.0)["7"]["1h"].n == 40  # the metrics saw them all


def test_live_metrics_agree_with_an_offline_evaluation_of_the_same_pairs() -> None:
    rng = np.random.default_rng(11)
    plog = log()
    users = np.arange(500, dtype=np.intp)
    for k in range(60):
        now = T0 + 10.0 * k
        p = rng.beta(0.5, 5.0, 500)
        plog.record(now, users, p, "7", H)
        for user in np.flatnonzero(rng.random(500) < p / 4):
            plog.connect(int(user), now + float(rng.uniform(1.0, 8.0)))
    plog.advance(T0 + 700.0)
    settled = plog.take_settled()["7"]
    window = plog.report(T0 + 700.0)["7"]["1h"]
    assert window.n == len(settled) == 60 * 500
    assert window.log_loss == pytest.approx(
        log_loss(settled.outcome, settled.probability), rel=1e-9
    )


def test_state_round_trip_carries_on_the_same() -> None:
    rng = np.random.default_rng(12)
    users = np.arange(5000, dtype=np.intp)

    def feed(plog: PredictionLog, start: int, stop: int) -> None:
        for k in range(start, stop):
            now = T0 + 10.0 * k
            plog.record(now, users, rng.random(5000) * 0.1, "7", H)
            plog.record(now, users[:50], rng.random(50) * 0.1, "heuristic", H)
            for user in rng.choice(5000, 30, replace=False):
                plog.connect(int(user), now + 3.0)

    first, second = log(max_per_tick=1000), log(max_per_tick=1000)
    state = rng.bit_generator.state
    feed(first, 0, 20)
    rng.bit_generator.state = state
    feed(second, 0, 10)
    second.champion = "7"
    data = orjson.loads(orjson.dumps(second.to_dict()))
    restored = log(max_per_tick=1000)
    restored.load(data)
    assert restored.to_dict() == data and len(restored) == len(second) > 0
    feed(restored, 10, 20)
    restored.advance(T0 + 400.0)
    first.advance(T0 + 400.0)
    assert restored.report(T0 + 400.0) == first.report(T0 + 400.0)
    assert restored.live(T0 + 400.0)["champion"] == "7"


def test_the_saved_state_stays_small_at_many_users() -> None:
    plog = log(max_per_tick=2000)
    everyone = np.arange(100_000, dtype=np.intp)
    probability = np.random.default_rng(13).random(100_000) * 0.05
    # a day of five-minute buckets, two versions; a tick keeps 2000 users whatever their
    # number, so 2000 scored stand for 100k here (and keep the test fast)
    for k in range(24 * 12):
        now = T0 + 300.0 * k
        for version in ("7", "8"):
            plog.record(now, everyone[:2000] * 50, probability[:2000], version, H)
            plog.connect(int(k) * 50, now + 1.0)
    for k in range(4):  # and a horizon of pending ticks
        plog.record(T0 + 86_400.0 + 10.0 * k, everyone, probability, "7", H)
    size = len(orjson.dumps(plog.to_dict()))
    assert size / 100_000 < 100  # bytes per user, far below the 1 KB the state may take


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"horizon_s": 0}, "horizon > 0"),
        ({"weight": 0.5}, "weight must be >= 1"),
        ({"rows": "AQAAAAAAAAA="}, "rows must be increasing"),  # rows 1, 0
        ({"probability": "AAAAAAAA8D8="}, "probabilities in"),  # one value for two rows
        ({"hit": "BQAAAA=="}, "hits are out of range"),  # position 5
        ({"version": 3}, "version must be a string"),
        ({"at": None}, "malformed"),
    ],
)
def test_bad_state_is_refused_with_a_clear_message(change: dict[str, object], message: str) -> None:
    plog = log()
    plog.record(T0, rows(3, 4), np.array([0.1, 0.2]), "7", H)
    data = plog.to_dict()
    data["pending"][0].update(change)
    with pytest.raises(ValueError, match=message):
        log().load(data)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="max_per_tick"):
        log(max_per_tick=0)
    with pytest.raises(ValueError, match="weight"):
        log().record(T0, rows(1), np.array([0.1]), "7", H, weight=0.5)
