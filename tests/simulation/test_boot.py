"""Boot-time specs and schedules: parsing, ranges, switching, determinism by seed, errors."""

from __future__ import annotations

import math
import random

import pytest

from simulation.nodes.boot import (
    DEFAULT_BOOT_SPEC,
    BootChange,
    BootSchedule,
    FixedBoot,
    NormalBoot,
    UniformBoot,
    parse_boot_schedule,
    parse_boot_time,
)


def samples(spec: str, seed: int, n: int = 2000) -> list[float]:
    boot = parse_boot_time(spec)
    rng = random.Random(seed)
    return [boot.sample(rng) for _ in range(n)]


def test_default_is_the_seed_range_whole_seconds_inclusive() -> None:
    boot = parse_boot_time(DEFAULT_BOOT_SPEC)
    assert boot == UniformBoot(10, 29)
    assert (boot.low, boot.high) == (10, 29)
    drawn = samples(DEFAULT_BOOT_SPEC, seed=1)
    assert set(drawn) == {float(s) for s in range(10, 30)}  # every value, ends included
    assert all(s.is_integer() for s in drawn)


def test_uniform_is_roughly_uniform() -> None:
    drawn = samples("uniform:1:4", seed=2, n=8000)
    for value in (1.0, 2.0, 3.0, 4.0):
        assert 1700 < drawn.count(value) < 2300


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("uniform:10:29", UniformBoot(10, 29)),
        ("  UNIFORM:5:5 ", UniformBoot(5, 5)),
        ("fixed:12", FixedBoot(12.0)),
        ("fixed:0.25", FixedBoot(0.25)),
        ("normal:20:4:10:30", NormalBoot(20.0, 4.0, 10, 30)),
        ("normal:19.5:0:10:29", NormalBoot(19.5, 0.0, 10, 29)),
    ],
)
def test_parse(spec: str, expected: object) -> None:
    assert parse_boot_time(spec) == expected


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        ("uniform:10:29", "uniform:10:29"),
        (" Uniform:3:7", "uniform:3:7"),
        ("fixed:12", "fixed:12"),
        ("fixed:12.0", "fixed:12"),
        ("fixed:0.25", "fixed:0.25"),
        ("normal:20:4.5:10:30", "normal:20:4.5:10:30"),
    ],
)
def test_str_gives_the_spec_back(spec: str, canonical: str) -> None:
    boot = parse_boot_time(spec)
    assert str(boot) == canonical
    assert parse_boot_time(str(boot)) == boot


def test_fixed_always_the_same() -> None:
    assert set(samples("fixed:7.5", seed=3, n=50)) == {7.5}


def test_normal_rounded_and_clipped() -> None:
    drawn = samples("normal:20:8:15:25", seed=4)
    assert all(s.is_integer() and 15 <= s <= 25 for s in drawn)
    assert drawn.count(15.0) > 100 and drawn.count(25.0) > 100  # the clipped tails
    assert 19 < sum(drawn) / len(drawn) < 21
    assert set(samples("normal:19.6:0:10:29", seed=4, n=10)) == {20.0}


@pytest.mark.parametrize("spec", ["uniform:10:29", "normal:20:5:10:30"])
def test_same_seed_same_boot_times(spec: str) -> None:
    assert samples(spec, seed=42, n=200) == samples(spec, seed=42, n=200)
    assert samples(spec, seed=42, n=200) != samples(spec, seed=43, n=200)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "unknown kind ''"),
        ("gamma:2:3", "unknown kind 'gamma'"),
        ("uniform", "expected 2 number(s) after the kind, got 0"),
        ("uniform:10", "expected 2 number(s) after the kind, got 1"),
        ("uniform:1:2:3", "expected 2 number(s) after the kind, got 3"),
        ("uniform:10.5:20", "A='10.5' is not whole seconds"),
        ("uniform:a:20", "A='a' is not whole seconds"),
        ("uniform:20:10", "0 <= A <= B"),
        ("uniform:-1:10", "0 <= A <= B"),
        ("fixed:", "expected 1 number(s) after the kind, got 0"),
        ("fixed:abc", "S='abc' is not a number"),
        ("fixed:-1", "finite number >= 0"),
        ("fixed:nan", "S='nan' is not finite"),
        ("fixed:inf", "S='inf' is not finite"),
        ("normal:20:4:10", "expected 4 number(s) after the kind, got 3"),
        ("normal:20:-1:10:30", "SD >= 0"),
        ("normal:20:4:30:10", "0 <= MIN <= MAX"),
        ("normal:20:4:1.5:30", "MIN='1.5' is not whole seconds"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_boot_time(spec)
    text = str(info.value)
    assert text.startswith(f"boot time spec {spec!r}: ")
    assert message in text


def test_unknown_kind_lists_the_forms() -> None:
    with pytest.raises(ValueError, match=r"uniform:A:B, fixed:S or normal:MEAN:SD:MIN:MAX"):
        parse_boot_time("exp:3")


# Schedules: SPEC[,SPEC@HOURS...]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("uniform:10:29", BootSchedule(UniformBoot(10, 29))),
        (
            "uniform:10:29,uniform:60:180@12",
            BootSchedule(UniformBoot(10, 29), (BootChange(12.0, UniformBoot(60, 180)),)),
        ),
        (
            " fixed:5 , normal:20:4:10:30 @ 6.5 ,FIXED:1@12",
            BootSchedule(
                FixedBoot(5.0),
                (BootChange(6.5, NormalBoot(20.0, 4.0, 10, 30)), BootChange(12.0, FixedBoot(1.0))),
            ),
        ),
    ],
)
def test_parse_schedule(spec: str, expected: BootSchedule) -> None:
    assert parse_boot_schedule(spec) == expected


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        ("uniform:10:29", "uniform:10:29"),
        (" Uniform:3:7", "uniform:3:7"),
        ("uniform:10:29,uniform:60:180@12", "uniform:10:29,uniform:60:180@12"),
        ("fixed:12.0, fixed:30@6.0 ,fixed:0.5@12.25", "fixed:12,fixed:30@6,fixed:0.5@12.25"),
        ("normal:20:4.5:10:30,uniform:1:2@0.001", "normal:20:4.5:10:30,uniform:1:2@0.001"),
    ],
)
def test_schedule_str_gives_the_canonical_spec_back(spec: str, canonical: str) -> None:
    schedule = parse_boot_schedule(spec)
    assert str(schedule) == canonical
    assert parse_boot_schedule(canonical) == schedule
    assert str(schedule.starting_at(1.7e9)) == canonical  # the start is not part of the spec


@pytest.mark.parametrize("spec", ["uniform:10:29", "fixed:12", "normal:20:5:10:30"])
def test_a_single_spec_samples_exactly_as_its_distribution(spec: str) -> None:
    schedule = parse_boot_schedule(spec).starting_at(1000.0)
    assert schedule.first == parse_boot_time(spec) and not schedule.changes
    rng = random.Random(9)
    from_schedule = [schedule.sample(rng, 1000.0 + 600.0 * i) for i in range(300)]
    assert from_schedule == samples(spec, seed=9, n=300)


def test_the_distribution_switches_at_its_hour_from_the_start() -> None:
    start = 1_000_000.0
    schedule = parse_boot_schedule("fixed:10,fixed:60@12,fixed:5@13.5").starting_at(start)
    assert schedule.at(start - 86_400.0) == FixedBoot(10.0)  # before the start: the first
    assert schedule.at(start) == FixedBoot(10.0)
    assert schedule.at(start + 12 * 3600.0 - 0.001) == FixedBoot(10.0)
    assert schedule.at(start + 12 * 3600.0) == FixedBoot(60.0)  # in force from its hour on
    assert schedule.at(start + 13.5 * 3600.0 - 0.001) == FixedBoot(60.0)
    assert schedule.at(start + 13.5 * 3600.0) == FixedBoot(5.0)
    assert schedule.at(start + 1e6) == FixedBoot(5.0)
    assert [t for t, _ in schedule.phases()] == [
        -math.inf,
        start + 12 * 3600.0,
        start + 13.5 * 3600.0,
    ]
    # the same schedule from another start switches that much later
    assert schedule.starting_at(start + 3600.0).at(start + 12 * 3600.0) == FixedBoot(10.0)


def test_sampling_draws_from_the_distribution_in_force() -> None:
    schedule = parse_boot_schedule("uniform:10:29,uniform:60:180@1").starting_at(0.0)
    rng = random.Random(5)
    before = {schedule.sample(rng, t) for t in range(0, 3600, 3)}
    after = {schedule.sample(rng, t) for t in range(3600, 7200, 3)}
    assert before == {float(s) for s in range(10, 30)}
    assert min(after) >= 60 and max(after) <= 180 and len(after) > 100
    # seeded by the caller's random.Random: the same seed, the same boot times
    again, other = random.Random(7), random.Random(7)
    times = [float(t) for t in range(0, 7200, 7)]
    assert [schedule.sample(again, t) for t in times] == [schedule.sample(other, t) for t in times]


def test_describe_names_each_distribution_and_when_it_takes_over() -> None:
    schedule = parse_boot_schedule("uniform:10:29,uniform:60:180@12").starting_at(100.0)
    assert schedule.describe() == [
        {"boot": "uniform:10:29", "from_hour": 0.0, "start": 100.0},
        {"boot": "uniform:60:180", "from_hour": 12.0, "start": 100.0 + 12 * 3600.0},
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("uniform:10:29@5", "the first part 'uniform:10:29@5' applies from the start"),
        (",fixed:3@1", "part 1 is empty"),
        ("uniform:10:29,", "part 2 is empty"),
        ("uniform:10:29,,fixed:3@2", "part 2 is empty"),
        ("exp:3,fixed:3@1", "part 1 'exp:3': boot time spec 'exp:3': unknown kind 'exp'"),
        ("uniform:10:29,fixed:3", "part 2 'fixed:3' needs @HOURS"),
        ("uniform:10:29,uniform:60@3", "part 2 'uniform:60@3': boot time spec 'uniform:60'"),
        ("uniform:10:29,fixed:3@x", "part 2 'fixed:3@x': HOURS='x' is not a number"),
        ("uniform:10:29,fixed:3@", "part 2 'fixed:3@': HOURS='' is not a number"),
        ("uniform:10:29,fixed:3@@4", "part 2 'fixed:3@@4': HOURS='@4' is not a number"),
        ("uniform:10:29,fixed:3@0", "part 2 'fixed:3@0': HOURS must be a finite number > 0"),
        ("uniform:10:29,fixed:3@-2", "part 2 'fixed:3@-2': HOURS must be a finite number > 0"),
        ("uniform:10:29,fixed:3@inf", "part 2 'fixed:3@inf': HOURS must be a finite number"),
        ("uniform:10:29,fixed:3@nan", "part 2 'fixed:3@nan': HOURS must be a finite number"),
        ("fixed:1,fixed:3@6,fixed:4@6", "part 3 'fixed:4@6': hour 6 is not after the previous"),
        ("fixed:1,fixed:3@6,fixed:4@2.5", "part 3 'fixed:4@2.5': hour 2.5 is not after"),
    ],
)
def test_bad_schedules_name_the_bad_part(spec: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_boot_schedule(spec)
    text = str(info.value)
    assert text.startswith(f"boot schedule {spec!r}: ")
    assert message in text
    assert text.endswith("form: SPEC[,SPEC@HOURS...]")


def test_a_bad_single_spec_keeps_the_distribution_error() -> None:
    with pytest.raises(ValueError, match=r"^boot time spec 'exp:3': unknown kind 'exp'"):
        parse_boot_schedule("exp:3")


@pytest.mark.parametrize("hours", [[0.0], [-1.0], [2.0, 2.0], [3.0, 1.0], [math.inf]])
def test_a_schedule_built_directly_checks_its_hours(hours: list[float]) -> None:
    changes = tuple(BootChange(h, FixedBoot(1.0)) for h in hours)
    with pytest.raises(ValueError, match="strictly increasing"):
        BootSchedule(FixedBoot(1.0), changes)
