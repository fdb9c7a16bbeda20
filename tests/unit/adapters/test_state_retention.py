"""The SQLite state store drops the memory of removed policies, and only theirs.

`drop_removed` deletes the memory of policies not loaded now that was last written before
the cutoff, and the last action of targets no policy scales older than it; what loaded
policies have stays, however old (`service.retention` picks the cutoff).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from autoscaler.adapters.state import LayeredStateStore, SqliteStateStore
from autoscaler.core.model import Memory

CYCLES = 200


def _rows(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path) as db:
        memory = db.execute("SELECT count(*) FROM memory").fetchone()[0]
        targets = db.execute("SELECT count(*) FROM targets").fetchone()[0]
    return memory, targets


def test_policy_churn_leaves_the_state_file_at_its_baseline_after_the_retention(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    store = LayeredStateStore(SqliteStateStore(path))
    now = datetime.now(UTC)
    store.save("web", "k/web", Memory(last_scaled_at=now - timedelta(days=30)))
    baseline = _rows(path)
    for i in range(CYCLES):
        store.save(f"churn-{i}", f"k/churn-{i}", Memory(last_scaled_at=now))
        store.retain({"web"}, {"k/web"})
    assert _rows(path) == (1 + CYCLES, 1 + CYCLES)

    # Within the retention: a removed policy that comes back finds its memory.
    kept = store.drop_removed({"web"}, {"k/web"}, before=now - timedelta(days=7))
    assert kept is not None and kept.policies == [] and kept.targets == 0
    assert store.load("churn-7", "k/churn-7").last_scaled_at == now

    # After it: the removed policies' rows go, `web`'s stay (loaded, however old).
    dropped = store.drop_removed({"web"}, {"k/web"}, before=now + timedelta(seconds=5))
    assert dropped is not None
    assert len(dropped.policies) == CYCLES and dropped.targets == CYCLES
    assert _rows(path) == baseline
    assert store.load("web", "k/web").last_scaled_at == now - timedelta(days=30)
    store.close()


def test_a_standby_drops_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = LayeredStateStore(SqliteStateStore(path))
    store.save("gone", "k/gone", Memory(last_scaled_at=datetime.now(UTC)))
    store.standby()
    assert store.drop_removed(set(), set(), before=datetime.now(UTC) + timedelta(days=1)) is None
    assert _rows(path) == (1, 1)
    store.close()
