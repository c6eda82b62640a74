from __future__ import annotations

from collections import Counter

import pytest

from features.partitions import user_partition


def test_the_partition_is_crc32_of_the_id_so_fixed_across_processes() -> None:
    # 0xCBF43926 = 3421780262 is CRC-32's published check value, of "123456789"
    assert user_partition("123456789", 1_000_000) == 780_262
    assert user_partition("u1", 16) == 6
    assert user_partition("user-42", 7) == 1
    assert user_partition("é", 16) == 14  # the UTF-8 bytes of the id


def test_every_id_falls_in_range_and_one_partition_takes_all() -> None:
    ids = [f"u{n}" for n in range(500)]
    assert {user_partition(u, 1) for u in ids} == {0}
    assert all(0 <= user_partition(u, 13) < 13 for u in ids)


def test_users_spread_roughly_evenly() -> None:
    partitions = 8
    counts = Counter(user_partition(f"user-{n}", partitions) for n in range(8000))
    assert sorted(counts) == list(range(partitions))
    assert max(counts.values()) < 1.1 * 8000 / partitions
    assert min(counts.values()) > 0.9 * 8000 / partitions


@pytest.mark.parametrize("partitions", [0, -3])
def test_partitions_below_one_are_refused(partitions: int) -> None:
    with pytest.raises(ValueError, match="1 or more"):
        user_partition("u1", partitions)
