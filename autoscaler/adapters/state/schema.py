"""The state database's tables, how older files are upgraded, and how values are stored.

Times are ISO 8601 text in UTC, so they sort as text (the `max()` that keeps a target's
last action moving forward relies on it); decisions are their `to_dict()` JSON.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from autoscaler.core.model import Action, CheckResult, Decision

_Stored = TypeVar("_Stored")  # a time as a database gives it back

SCHEMA = """
CREATE TABLE IF NOT EXISTS targets (
    target_key TEXT PRIMARY KEY,
    last_scaled_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS memory (
    policy TEXT PRIMARY KEY,
    target_key TEXT NOT NULL,
    recommendations TEXT NOT NULL,
    missing_data_streak INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    missing_data_since TEXT
);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    policy TEXT NOT NULL,
    time TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_by_policy ON decisions (policy, id);
-- The age prune after every write reads this index instead of scanning the whole history
-- (5.7 ms of CPU per write at 10,000 decisions, a quarter of the service's time at 10,000
-- targets). Older files get it when the controller opens them.
CREATE INDEX IF NOT EXISTS decisions_by_time ON decisions (time);
"""


def iso(value: datetime) -> str:
    """`value` as stored: ISO 8601 in UTC."""
    return value.astimezone(UTC).isoformat()


def parse(value: str) -> datetime:
    """A stored time back as an aware UTC `datetime`."""
    return datetime.fromisoformat(value).astimezone(UTC)


def migrate(db: sqlite3.Connection) -> None:
    """Bring a state file written by an older version up to the current schema."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(memory)")}
    if "target_key" not in columns:
        # The first version kept a policy's memory without its target. Such memory is about
        # no target (forgotten, as a policy moved to another target forgets it); the last
        # action of each target, the cooldown, is in `targets` and kept.
        db.execute("ALTER TABLE memory ADD COLUMN target_key TEXT NOT NULL DEFAULT ''")
    if "missing_data_since" not in columns:
        db.execute("ALTER TABLE memory ADD COLUMN missing_data_since TEXT")


@dataclass(frozen=True)
class Dropped:
    """What `drop_removed` deleted: the memory of each policy (its name and when it was
    last written) and how many targets' last actions."""

    policies: list[tuple[str, datetime]] = field(default_factory=list)
    targets: int = 0


def removed(
    rows: Iterable[tuple[str, _Stored]], keep: Collection[str], read: Callable[[_Stored], datetime]
) -> list[tuple[str, datetime]]:
    """The (key, time) of `rows` (key, stored time, turned into a time by `read`: `parse`
    for SQLite's text) whose key is not in `keep`: the rows of removed policies or
    targets; those of loaded ones stay, however old."""
    return [(key, read(at)) for key, at in rows if key not in keep]


def decision_from_dict(data: dict[str, Any]) -> Decision:
    """Rebuild a Decision from `Decision.to_dict()` output."""
    return Decision(
        policy=data["policy"],
        target=data["target"],
        time=parse(data["time"]),
        current=data["current"],
        desired=data["desired"],
        action=Action(data["action"]),
        dry_run=bool(data["dry_run"]),
        reasons=tuple(data["reasons"]),
        checks=tuple(CheckResult.from_dict(c) for c in data["checks"]),
    )
