"""The SQLite state store: what a restart must remember, and how it refuses bad files."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autoscaler.adapters.state import MemoryStateStore, SqliteStateStore
from autoscaler.api.models import DecisionOut
from autoscaler.core.model import (
    Action,
    AnomalyReading,
    CheckResult,
    Decision,
    ForecastReading,
    Memory,
    Recommendation,
)
from autoscaler.errors import StateError

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _decision(policy: str, at: datetime, action: Action = Action.UP) -> Decision:
    return Decision(
        policy=policy,
        target="aws-asg:web",
        time=at,
        current=2,
        desired=4,
        action=action,
        dry_run=False,
        reasons=("p95: 0.5 / 0.25 → 4",),
        checks=(CheckResult(name="p95", query="q", value=0.5, desired=4, error=None),),
    )


def test_memory_survives_reopening_the_database(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStateStore(path, exclusive=True)
    memory = Memory(
        last_scaled_at=T0,
        recommendations=(Recommendation(at=T0, count=4), Recommendation(at=T0, count=5)),
        missing_data_streak=2,
        missing_data_since=T0 - timedelta(minutes=1),
    )
    store.save("web", "aws-asg/-/web", memory)
    store.close()

    reopened = SqliteStateStore(path, exclusive=True)
    assert reopened.load("web", "aws-asg/-/web") == memory
    reopened.close()


def test_a_decision_keeps_its_forecast_and_anomaly_readings(tmp_path: Path) -> None:
    forecast = ForecastReading(
        value=83.0, lead=timedelta(seconds=150), error=0.12, season=timedelta(days=1)
    )
    anomaly = AnomalyReading(z=7.5, low=40.0, high=60.0, implausible=True, streak=1, samples=60)
    check = replace(_decision("web", T0).checks[0], forecast=forecast, anomaly=anomaly)
    decision = replace(_decision("web", T0), checks=(check,))
    store = SqliteStateStore(tmp_path / "s.db")
    store.record(decision)
    assert store.history(policy="web") == [decision]
    assert DecisionOut.of(decision).checks[0].forecast is not None


def test_a_decision_recorded_before_forecasts_reads_back_without_them(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "s.db")
    old = _decision("web", T0).to_dict()
    for check in old["checks"]:
        del check["forecast"], check["anomaly"]
    with sqlite3.connect(tmp_path / "s.db") as db:
        db.execute(
            "INSERT INTO decisions (policy, time, payload) VALUES (?, ?, ?)",
            ("web", T0.isoformat(), json.dumps(old)),
        )
    (read,) = store.history(policy="web")
    assert read.checks[0].forecast is None
    assert read.checks[0].anomaly is None


def test_last_scaled_at_is_per_target_and_never_moves_back(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "s.db")
    store.save("a", "t1", Memory(last_scaled_at=T0))
    store.save("b", "t1", Memory(last_scaled_at=T0 - timedelta(minutes=5)))
    assert store.load("a", "t1").last_scaled_at == T0
    assert store.load("b", "t1").last_scaled_at == T0  # shared target, latest action wins
    assert store.load("a", "t2").last_scaled_at is None
    store.close()


def test_every_commit_is_synced_to_disk_before_it_returns(tmp_path: Path) -> None:
    # A scale's record is written before the scale call: it must survive a power loss,
    # which under WAL only `synchronous=FULL` (2) promises, not NORMAL (1).
    store = SqliteStateStore(tmp_path / "state.db")
    assert store._db is not None
    assert store._db.execute("PRAGMA synchronous").fetchone() == (2,)
    assert store._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    store.close()


def test_unknown_policy_loads_empty_memory(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "s.db")
    assert store.load("nobody", "t") == Memory()
    store.close()


def test_history_is_newest_first_and_filtered_by_policy(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "s.db")
    for i in range(3):
        store.record(_decision("a", T0 + timedelta(seconds=i)))
        store.record(_decision("b", T0 + timedelta(seconds=i), Action.NONE))
    history = store.history(policy="a", limit=2)
    assert [d.time for d in history] == [T0 + timedelta(seconds=2), T0 + timedelta(seconds=1)]
    assert history[0] == _decision("a", T0 + timedelta(seconds=2))
    assert len(store.history(limit=10)) == 6
    store.close()


def test_history_is_pruned_by_count_and_age(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "s.db", keep_decisions=3, keep_for=timedelta(hours=1))
    for i in range(5):
        store.record(_decision("a", T0 + timedelta(seconds=i)))
    assert len(store.history(limit=100)) == 3
    store.record(_decision("a", T0 + timedelta(hours=2)))
    assert [d.time for d in store.history(limit=100)] == [T0 + timedelta(hours=2)]
    store.close()


def test_the_age_prune_reads_an_index_also_in_a_file_of_the_previous_version(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
    SqliteStateStore(path, exclusive=True).close()  # the controller opens it once
    with sqlite3.connect(path) as db:
        plan = db.execute(
            "EXPLAIN QUERY PLAN DELETE FROM decisions WHERE time < ?", ("2026",)
        ).fetchall()
    assert any("USING INDEX decisions_by_time" in row[-1] for row in plan), plan


def test_second_controller_on_the_same_file_is_refused(tmp_path: Path) -> None:
    first = SqliteStateStore(tmp_path / "s.db", exclusive=True)
    with pytest.raises(StateError, match="in use by another autoscaler"):
        SqliteStateStore(tmp_path / "s.db", exclusive=True)
    first.close()
    SqliteStateStore(tmp_path / "s.db", exclusive=True).close()  # free again after close


def test_a_deleted_lock_file_is_taken_again_and_a_second_controller_stops_the_writes(
    tmp_path: Path,
) -> None:
    # Someone deletes `s.db.lock` as a stale lock: the next write locks a new one, so a
    # controller started later is refused again.
    path, lock = tmp_path / "s.db", tmp_path / "s.db.lock"
    first = SqliteStateStore(path, exclusive=True)
    lock.unlink()
    first.save("a", "t", Memory(last_scaled_at=T0))
    with pytest.raises(StateError, match="in use by another autoscaler"):
        SqliteStateStore(path, exclusive=True)

    # A controller that started before that write: the first one writes nothing more
    # (scale-in held, `/readyz` 503) while it runs, and goes on once it stopped.
    lock.unlink()
    second = SqliteStateStore(path, exclusive=True)
    with pytest.raises(StateError, match=r"in use by another autoscaler \(pid \d+\)"):
        first.save("a", "t", Memory(last_scaled_at=T0 + timedelta(minutes=1)))
    assert "in use by another autoscaler" in (first.durability_problem() or "")
    second.close()
    first.save("a", "t", Memory(last_scaled_at=T0 + timedelta(minutes=2)))
    assert first.durability_problem() is None
    assert first.load("a", "t").last_scaled_at == T0 + timedelta(minutes=2)
    first.close()


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError, match="cannot use state database"):
        SqliteStateStore(path)


def test_an_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateError, match="cannot use state database"):
        SqliteStateStore(blocker / "sub" / "s.db")


def test_memory_store_behaves_like_sqlite_for_load_and_save() -> None:
    store = MemoryStateStore()
    store.save("a", "t", Memory(last_scaled_at=T0, missing_data_streak=1))
    store.save("b", "t", Memory(last_scaled_at=T0 - timedelta(1)))
    assert store.load("b", "t").last_scaled_at == T0
    assert store.load("a", "t").missing_data_streak == 1
    store.record(_decision("a", T0))
    store.record(_decision("b", T0))
    assert [d.policy for d in store.history()] == ["b", "a"]


def test_read_only_store_reads_memory_and_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    live = SqliteStateStore(path, exclusive=True)  # the running controller keeps its lock
    live.save("web", "t", Memory(last_scaled_at=T0, missing_data_streak=1))
    before = path.read_bytes(), (tmp_path / "s.db-wal").read_bytes()

    preview = SqliteStateStore(path, read_only=True)
    assert preview.load("web", "t") == Memory(last_scaled_at=T0, missing_data_streak=1)
    with pytest.raises(StateError):
        preview.save("web", "t", Memory())
    preview.close()

    assert (path.read_bytes(), (tmp_path / "s.db-wal").read_bytes()) == before
    live.save("web", "t", Memory(last_scaled_at=T0 + timedelta(minutes=1)))  # not locked out
    live.close()


def test_read_only_store_refuses_a_file_that_is_not_a_state_database(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    with pytest.raises(StateError, match="cannot read state database"):
        SqliteStateStore(path, read_only=True)
    assert path.read_bytes() == b""  # no schema was created in it


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_a_policy_pointed_at_another_target_forgets_its_recommendations(
    tmp_path: Path, kind: str
) -> None:
    store = SqliteStateStore(tmp_path / "s.db") if kind == "sqlite" else MemoryStateStore()
    store.save("web", "asg-a", Memory(recommendations=(Recommendation(at=T0, count=9),)))
    assert store.load("web", "asg-a").recommendations
    assert store.load("web", "asg-b") == Memory()
    store.close()


OLD_SCHEMA = """
CREATE TABLE targets (target_key TEXT PRIMARY KEY, last_scaled_at TEXT NOT NULL);
CREATE TABLE memory (policy TEXT PRIMARY KEY, target_key TEXT NOT NULL,
    recommendations TEXT NOT NULL, missing_data_streak INTEGER NOT NULL,
    updated_at TEXT NOT NULL);
CREATE TABLE decisions (id INTEGER PRIMARY KEY AUTOINCREMENT, policy TEXT NOT NULL,
    time TEXT NOT NULL, payload TEXT NOT NULL);
INSERT INTO memory VALUES ('web', 't', '[]', 4, '2026-11-24T12:00:00+00:00');
"""


def test_a_state_file_of_the_previous_version_is_read_and_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
    preview = SqliteStateStore(path, read_only=True)  # plan never changes the file
    assert preview.load("web", "t") == Memory(missing_data_streak=4)
    preview.close()

    store = SqliteStateStore(path, exclusive=True)
    assert store.load("web", "t") == Memory(missing_data_streak=4)
    store.save("web", "t", Memory(missing_data_streak=5, missing_data_since=T0))
    assert store.load("web", "t") == Memory(missing_data_streak=5, missing_data_since=T0)
    store.close()


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_withdraw_undoes_only_the_action_it_names(tmp_path: Path, kind: str) -> None:
    store = SqliteStateStore(tmp_path / "s.db") if kind == "sqlite" else MemoryStateStore()
    later = T0 + timedelta(minutes=5)
    store.save("web", "t", Memory(last_scaled_at=T0))
    store.save("web", "t", Memory(last_scaled_at=later))  # recorded ahead of a scale call
    store.withdraw("t", at=later, previous=T0)  # ... that did not happen
    assert store.load("web", "t").last_scaled_at == T0
    store.withdraw("t", at=later, previous=None)  # no longer the last action: nothing to undo
    assert store.load("web", "t").last_scaled_at == T0
    store.withdraw("t", at=T0, previous=None)
    assert store.load("web", "t").last_scaled_at is None
    assert store.durability_problem() is None
    store.close()
