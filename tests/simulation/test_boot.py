"""Boot-time specs: parsing, ranges, determinism by seed, and the errors."""

from __future__ import annotations

import random

import pytest

from simulation.nodes.boot import (
    DEFAULT_BOOT_SPEC,
    FixedBoot,
    NormalBoot,
    UniformBoot,
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
