"""The SQLite state file as `run` finds it at startup, on real files: what it refuses.

A controller that starts on a file it cannot write would scale up without a record (and
hold every scale-in) until someone read `/readyz`; one that starts on a damaged file holds
every policy with `database disk image is malformed`. Both are startup errors (exit 4)
that name the file and say what to do. Two controllers reaching one file by different
names (a symlink) are refused as two by one name are.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from autoscaler.adapters.state import SqliteStateStore
from autoscaler.core.model import Memory, Recommendation
from autoscaler.errors import StateError
from tests.support.faults import read_only

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _written(path: Path, policies: int = 200) -> Path:
    """A state file as a stopped controller leaves it, with `policies` policies' memory."""
    store = SqliteStateStore(path, exclusive=True)
    for i in range(policies):
        store.save(f"p{i}", f"t{i}", Memory(last_scaled_at=T0))
    store.close()
    return path


def test_a_state_file_the_controller_cannot_write_is_refused_at_startup(tmp_path: Path) -> None:
    path = _written(tmp_path / "s.db")
    with read_only(path), pytest.raises(StateError) as raised:
        SqliteStateStore(path, exclusive=True).close()
    message = str(raised.value)
    assert str(path) in message
    assert "cannot be written" in message
    assert "owner" in message  # what to check
    # The lock is released: the controller started once the file is fixed is not refused.
    SqliteStateStore(path, exclusive=True).close()


def test_a_preview_still_reads_a_state_file_it_cannot_write(tmp_path: Path) -> None:
    path = _written(tmp_path / "s.db")
    with read_only(path):
        preview = SqliteStateStore(path, read_only=True)
        assert preview.load("p1", "t1").last_scaled_at == T0
        preview.close()


def _damage_all_but_the_first_page(path: Path) -> None:
    """Every page but the schema's overwritten: the tables' contents are lost, as after a
    disk or a copy that went wrong, while the file still opens as a database."""
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.seek(4096)
        f.write(bytes([0x5A]) * (size - 4096))


def _truncate_to_half(path: Path) -> None:
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)


@pytest.mark.parametrize(
    "damage",
    [_damage_all_but_the_first_page, _truncate_to_half],
    ids=["overwritten-pages", "truncated"],
)
def test_a_damaged_state_file_is_refused_at_startup_saying_what_to_do(
    tmp_path: Path, damage: object
) -> None:
    path = _written(tmp_path / "s.db")
    assert callable(damage)
    damage(path)
    with pytest.raises(StateError) as raised:
        SqliteStateStore(path, exclusive=True).close()
    message = str(raised.value)
    assert str(path) in message
    assert "damaged" in message
    assert "backup" in message  # what to do
    assert "move it aside" in message


def test_two_controllers_reaching_one_file_through_a_symlink_are_refused(
    tmp_path: Path,
) -> None:
    real = tmp_path / "data" / "state.db"
    first = SqliteStateStore(real, exclusive=True)
    link = tmp_path / "state.db"
    link.symlink_to(real)
    try:
        with pytest.raises(StateError, match="in use by another autoscaler"):
            SqliteStateStore(link, exclusive=True)
    finally:
        first.close()
    SqliteStateStore(link, exclusive=True).close()  # free again after close


FIRST_SCHEMA = """
CREATE TABLE targets (target_key TEXT PRIMARY KEY, last_scaled_at TEXT NOT NULL);
CREATE TABLE memory (policy TEXT PRIMARY KEY, recommendations TEXT NOT NULL,
    missing_data_streak INTEGER NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE decisions (id INTEGER PRIMARY KEY AUTOINCREMENT, policy TEXT NOT NULL,
    time TEXT NOT NULL, payload TEXT NOT NULL);
INSERT INTO targets VALUES ('t', '2026-11-24T12:00:00+00:00');
INSERT INTO memory VALUES ('web', '[["2026-11-24T12:00:00+00:00", 9]]', 4,
    '2026-11-24T12:00:00+00:00');
"""


def test_a_state_file_of_the_first_version_keeps_its_cooldowns(tmp_path: Path) -> None:
    # The first version kept a policy's memory without the target it was about: that
    # memory is taken as about no target (forgotten, as for a policy moved to another
    # target), while each target's last action, the cooldown, is kept.
    path = tmp_path / "first.db"
    with sqlite3.connect(path) as db:
        db.executescript(FIRST_SCHEMA)
    with pytest.raises(StateError, match="first version, which `autoscaler run` upgrades"):
        SqliteStateStore(path, read_only=True)  # a preview changes nothing
    store = SqliteStateStore(path, exclusive=True)
    assert store.load("web", "t") == Memory(last_scaled_at=T0)
    kept = Memory(last_scaled_at=T0, recommendations=(Recommendation(at=T0, count=3),))
    store.save("web", "t", kept)
    assert store.load("web", "t") == kept
    store.close()


def test_a_state_file_with_no_memory_at_all_is_said_to_start_afresh(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A new file, an emptied one or the wrong one (a volume not mounted): every cooldown
    # starts afresh, which the log of a restart must say.
    path = tmp_path / "s.db"
    path.touch()
    with caplog.at_level(logging.WARNING, logger="autoscaler.adapters.state.proof"):
        SqliteStateStore(path, exclusive=True).close()
    assert f"state database {path} holds no scaling action" in caplog.text
    assert "check that --state names its file" in caplog.text

    _written(path, policies=1)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="autoscaler.adapters.state.proof"):
        SqliteStateStore(path, exclusive=True).close()
    assert "holds no scaling action" not in caplog.text
