"""`run`'s SQLite state: the service lets decisions that scale nothing wait up to a second
for their write; a single pass (`--once`) waits for each, so its exit code can say
whether its decisions were recorded."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from autoscaler.adapters.state import SqliteStateStore
from autoscaler.cli.run import _open_run_state
from autoscaler.core.model import Action, Decision

NONE = Decision(
    policy="web",
    target="nomad:web/web",
    time=datetime(2026, 12, 3, 9, 0, tzinfo=UTC),
    current=2,
    desired=2,
    action=Action.NONE,
    dry_run=False,
    reasons=("load: 2 → 2",),
)


def test_a_single_pass_writes_each_decision_before_going_on(tmp_path: Path) -> None:
    # (The service's lingering itself is pinned in tests/unit/adapters/test_layered_state.py.)
    path = tmp_path / "state.db"
    args = argparse.Namespace(state=str(path), once=True, history_days=14.0, history_max=100)
    state, leadership = _open_run_state(args)
    assert leadership is None
    try:
        state.record(NONE)
        reader = SqliteStateStore(path, read_only=True)
        assert [d.policy for d in reader.history()] == ["web"]
        reader.close()
    finally:
        state.close()
