"""benchmarks/service.py: the user counts its parts take."""

from __future__ import annotations

import argparse

import pytest

from benchmarks.service import counts


def test_user_counts_are_whole_numbers_comma_separated() -> None:
    assert counts("100000") == [100_000]
    assert counts("0,100000,1000000") == [0, 100_000, 1_000_000]


@pytest.mark.parametrize("text", ["", "1e6", "100000,", "100k", "-1"])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        counts(text)
