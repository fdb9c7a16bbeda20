"""The state database failing under a running controller, on real SQLite files.

Each fault is made the way an operator's bad day makes it: another process holding the
database's write lock, the files made immutable, the file deleted (alone, with its WAL, or
with its folder), or replaced by another file. The rules: what the controller knows in
memory is never forgotten, the failure is reported until it ends, and a deleted or
replaced file is taken into use again with everything the controller remembers.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autoscaler.adapters.state import LayeredStateStore, SqliteStateStore
from autoscaler.core.model import Action, Decision, Memory, Recommendation
from autoscaler.errors import StateError
from tests.support.faults import locked_by_another_process, read_only
from tests.support.net import wait_until

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
KEY = "aws-asg/-/web"
SCALED = Memory(
    last_scaled_at=T0,
    recommendations=(Recommendation(at=T0, count=6),),
    missing_data_streak=0,
)


def decision(at: datetime) -> Decision:
    return Decision(
        policy="web",
        target="aws-asg:web",
        time=at,
        current=2,
        desired=6,
        action=Action.UP,
        dry_run=False,
        reasons=("load: 6 → 6",),
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "s.db"


@pytest.fixture
def store(path: Path) -> Iterator[LayeredStateStore]:
    """The controller's store as `run` builds it, retrying at once after a failure."""
    layered = LayeredStateStore(SqliteStateStore(path, exclusive=True), retry_after=0.0)
    layered.save("web", KEY, Memory(last_scaled_at=T0 - timedelta(hours=1)))
    layered.record(decision(T0 - timedelta(hours=1)))
    yield layered
    layered.close()


def stored(path: Path) -> SqliteStateStore:
    """What a restart would read."""
    return SqliteStateStore(path, read_only=True)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        pytest.param(locked_by_another_process, "database is locked", id="locked"),
        pytest.param(read_only, "disk I/O error|readonly", id="read-only"),
    ],
)
def test_an_unwritable_database_keeps_the_memory_and_gets_it_once_writable(
    store: LayeredStateStore, path: Path, fault: object, error: str
) -> None:
    with fault(path):  # type: ignore[operator]
        with pytest.raises(StateError, match=error):
            store.save("web", KEY, SCALED)
        with pytest.raises(StateError, match=error):  # never reported as recorded ...
            store.record(decision(T0))  # ... but kept, and written once it can be
        assert store.load("web", KEY) == SCALED  # not the older database's memory
        assert store.durability_problem() is not None
        assert store.history(limit=1)[0] == decision(T0)
        assert stored(path).load("web", KEY).last_scaled_at == T0 - timedelta(hours=1)

    store.save("api", "aws-asg/-/api", Memory())  # the next write takes everything along
    assert store.durability_problem() is None
    restarted = stored(path)
    assert restarted.load("web", KEY) == SCALED
    assert restarted.history(limit=1)[0] == decision(T0)


def test_a_deleted_wal_file_loses_nothing(
    store: LayeredStateStore, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path.with_name("s.db-wal").unlink()  # what is written next would vanish with it
    with caplog.at_level(logging.WARNING):
        store.save("web", KEY, SCALED)
    assert "was left without its WAL file" in caplog.text
    assert path.with_name("s.db-wal").exists()
    restarted = stored(path)
    assert restarted.load("web", KEY) == SCALED
    assert [d.time for d in restarted.history()] == [T0 - timedelta(hours=1)]


@pytest.mark.parametrize(
    "deleted",
    [
        pytest.param(("s.db",), id="file"),
        pytest.param(("s.db", "s.db-wal", "s.db-shm"), id="file-and-wal"),
        pytest.param((), id="folder"),
    ],
)
def test_a_deleted_database_is_recreated_with_its_content_and_the_memory(
    store: LayeredStateStore,
    path: Path,
    deleted: tuple[str, ...],
    caplog: pytest.LogCaptureFixture,
) -> None:
    if deleted:
        for name in deleted:
            (path.parent / name).unlink()
    else:
        shutil.rmtree(path.parent)

    with caplog.at_level(logging.WARNING):
        store.save("web", KEY, SCALED)
    assert store.durability_problem() is None
    assert f"state database {path} was deleted while this controller was running" in caplog.text
    assert "recreated it with the content it had" in caplog.text

    restarted = stored(path)
    assert restarted.load("web", KEY) == SCALED  # the next restart keeps the cooldown
    assert [d.time for d in restarted.history()] == [T0 - timedelta(hours=1)]
    restarted.close()
    with pytest.raises(StateError, match="in use by another autoscaler"):
        SqliteStateStore(path, exclusive=True)  # the lock came back with the file


def test_a_replaced_database_is_adopted_and_gets_what_memory_knows(
    store: LayeredStateStore, path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store.save("web", KEY, SCALED)
    # An old backup put in its place: it knows another policy, and an older cooldown.
    backup = SqliteStateStore(tmp_path / "backup.db")
    backup.save("web", KEY, Memory(last_scaled_at=T0 - timedelta(days=1)))
    backup.save("old", "aws-asg/-/old", Memory(missing_data_streak=4))
    backup.close()
    os.replace(tmp_path / "backup.db", path)

    with caplog.at_level(logging.WARNING):
        store.save("api", "aws-asg/-/api", Memory(missing_data_streak=1))
    assert "was replaced by another file while this controller was running" in caplog.text
    restarted = stored(path)
    assert restarted.load("web", KEY) == SCALED
    assert restarted.load("api", "aws-asg/-/api").missing_data_streak == 1
    assert restarted.load("old", "aws-asg/-/old").missing_data_streak == 4


def test_a_path_that_no_longer_holds_a_database_is_reported_until_it_does(
    store: LayeredStateStore, path: Path
) -> None:
    path.unlink()
    path.mkdir()  # someone's mistake: a folder where the file was
    with pytest.raises(StateError, match="could not be taken into use again"):
        store.save("web", KEY, SCALED)
    assert "could not be taken into use again" in (store.durability_problem() or "")
    assert store.load("web", KEY) == SCALED

    path.rmdir()
    store.save("api", "aws-asg/-/api", Memory())
    assert store.durability_problem() is None
    assert stored(path).load("web", KEY) == SCALED


def test_closing_after_a_deletion_puts_the_file_back(store: LayeredStateStore, path: Path) -> None:
    store.save("web", KEY, SCALED)
    path.unlink()
    store.close()  # no write in between: the close itself notices
    assert stored(path).load("web", KEY) == SCALED


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(locked_by_another_process, id="locked"),
        pytest.param(read_only, id="read-only"),
    ],
)
def test_a_lingering_decision_whose_write_fails_says_so_and_is_written_so(
    path: Path, fault: object
) -> None:
    store = LayeredStateStore(SqliteStateStore(path, exclusive=True), linger=0.05)
    store.record(decision(T0 - timedelta(hours=1)))  # the file exists, with its WAL
    none = replace(decision(T0), desired=2, action=Action.NONE)
    with fault(path):  # type: ignore[operator]
        store.record(none)  # reported at once: it lingers
        wait_until(
            lambda: store.durability_problem() is not None, timeout=10, what="the failed write"
        )
        shown = store.history(policy="web", limit=1)[0]
        assert shown.time == T0
        assert shown.reasons[-1].startswith("state not durable (")
        assert store.unrecorded("web") == shown
    store.flush()
    assert stored(path).history(limit=1)[0] == shown
    assert store.unrecorded("web") is None
    store.close()


def test_decisions_beyond_the_queue_are_counted_while_the_database_is_locked(
    path: Path,
) -> None:
    store = LayeredStateStore(
        SqliteStateStore(path, exclusive=True), max_pending=2, retry_after=60.0
    )
    store.record(decision(T0 - timedelta(hours=1)))
    with locked_by_another_process(path):
        for minute in range(4):
            with pytest.raises(StateError):
                store.record(decision(T0 + timedelta(minutes=minute)))
    assert store.dropped == 2
    store.flush()
    assert [d.time for d in stored(path).history(limit=3)] == [
        T0 + timedelta(minutes=3),
        T0 + timedelta(minutes=2),
        T0 - timedelta(hours=1),
    ]
    store.close()
