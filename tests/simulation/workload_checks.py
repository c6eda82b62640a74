"""What the tests of the day-planned workloads (``habits``, ``shifts``) check alike."""

from __future__ import annotations

import ast
import inspect
import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from features.events import UserConnect, UserDisconnect, UserEvent

Sessions = dict[str, list[tuple[float, float | None]]]
GUIDE = Path(__file__).parents[2] / "docs" / "workloads.md"


def sessions_by_user(events: Sequence[UserEvent]) -> Sessions:
    """(connect, disconnect or None) per user; asserts that they alternate."""
    sessions: Sessions = defaultdict(list)
    open_at: dict[str, float] = {}
    for event in events:
        if isinstance(event, UserConnect):
            assert event.user_id not in open_at, "connect while connected"
            open_at[event.user_id] = event.ts
        elif isinstance(event, UserDisconnect):
            assert event.user_id in open_at, "disconnect without a connect"
            sessions[event.user_id].append((open_at.pop(event.user_id), event.ts))
    for user_id, connect in open_at.items():
        sessions[user_id].append((connect, None))
    return sessions


def check_every_field_documented(params: type) -> None:
    """Each field of a parameters dataclass has a docstring and a row in the guide."""
    source = ast.parse(inspect.getsource(params)).body[0]
    assert isinstance(source, ast.ClassDef)
    documented = {
        node.target.id
        for node, after in itertools.pairwise(source.body)
        if isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and isinstance(after, ast.Expr)
        and isinstance(after.value, ast.Constant)
        and isinstance(after.value.value, str)
    }
    names = {f.name for f in fields(params)}
    assert documented == names
    guide = GUIDE.read_text()
    assert all(f"| `{name}` |" in guide for name in names), names - {
        name for name in names if f"| `{name}` |" in guide
    }
