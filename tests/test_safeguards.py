"""Every safeguard ``scripts/safeguards.py`` removes is still where it says: code that moves
must take its entry along, or the script would no longer prove its fault test."""

from __future__ import annotations

import pytest

from scripts.safeguards import ROOT, SAFEGUARDS


@pytest.mark.parametrize("name", sorted(SAFEGUARDS))
def test_each_edit_finds_its_text_exactly_once(name: str) -> None:
    for path, text, _ in SAFEGUARDS[name].edits:
        assert (ROOT / path).read_text().count(text) == 1, f"{name}: {path}"
    for test in SAFEGUARDS[name].tests:
        assert (ROOT / test.split("::")[0]).is_file(), f"{name}: {test}"
