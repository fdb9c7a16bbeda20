"""What a backtest found, per policy: the documented `backtest -o json` contract.

The first seven keys of a policy (`policy`, `evaluations`, `actions`, `instance_hours`,
`min_count`, `max_count`, `changes` as `{at, from, to, reasons}`) are the contract of the
command; the others are additions. Keys are only ever added, never renamed.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from autoscaler.core.durations import format_duration


@dataclass(frozen=True)
class Change:
    """One scaling action the policy would have taken."""

    at: datetime
    old: int
    new: int
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": iso(self.at),
            "from": self.old,
            "to": self.new,
            "reasons": list(self.reasons),
        }


@dataclass
class CheckFailures:
    """How often one check had no usable value, and the first time why."""

    evaluations: int
    first_at: datetime
    first_error: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "evaluations": self.evaluations,
            "first_at": iso(self.first_at),
            "first_error": self.first_error,
        }


@dataclass
class Recorded:
    """The count that really ran, read with the count query, beside the simulated one."""

    query: str
    instance_hours: float = 0.0
    min_count: int | None = None
    max_count: int | None = None
    changes: int = 0
    missing: int = 0  # evaluations without a recorded count
    # (at, recorded, simulated) whenever either changes: each holds until the next entry.
    counts: list[tuple[datetime, int | None, int]] = field(default_factory=list)
    last_seen: int | None = None  # the latest recorded count, across gaps

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "instance_hours": round(self.instance_hours, 3),
            "min_count": self.min_count,
            "max_count": self.max_count,
            "changes": self.changes,
            "missing": self.missing,
        }


@dataclass
class PolicySeries:
    """Per evaluation, for plots: what each check read and what the policy did (NaN: none).

    `checks` holds each check's value as the policy saw it (rescaled, if asked);
    `desired` is the decision's count (kept while held by a cooldown); `count` is the
    simulated count after the evaluation; `recorded` the recorded count, if queried.
    """

    checks: dict[str, array[float]] = field(default_factory=dict)
    desired: array[float] = field(default_factory=lambda: array("d"))
    count: array[float] = field(default_factory=lambda: array("d"))
    recorded: array[float] | None = None

    def add(
        self,
        values: dict[str, float | None],
        desired: int | None,
        count: int,
        recorded: int | None,
    ) -> None:
        for name, value in values.items():
            self.checks.setdefault(name, array("d")).append(math.nan if value is None else value)
        self.desired.append(math.nan if desired is None else desired)
        self.count.append(count)
        if self.recorded is not None:
            self.recorded.append(math.nan if recorded is None else recorded)


@dataclass
class PolicyBacktest:
    """What one policy would have done over the window."""

    policy: str
    step: timedelta
    start_count: int
    evaluations: int = 0
    instance_hours: float = 0.0
    min_count: int = 0
    max_count: int = 0
    changes: list[Change] = field(default_factory=list)
    holds: int = 0
    no_data: int = 0
    check_failures: dict[str, CheckFailures] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    recorded: Recorded | None = None
    series: PolicySeries | None = None  # with `Options.series`: not part of the JSON

    @property
    def actions(self) -> int:
        return len(self.changes)

    def to_dict(self) -> dict[str, Any]:
        """The documented `backtest -o json` object of one policy."""
        out: dict[str, Any] = {
            "policy": self.policy,
            "evaluations": self.evaluations,
            "actions": self.actions,
            "instance_hours": round(self.instance_hours, 3),
            "min_count": self.min_count,
            "max_count": self.max_count,
            "changes": [change.to_dict() for change in self.changes],
            "step": format_duration(self.step),
            "start_count": self.start_count,
            "holds": self.holds,
            "no_data": self.no_data,
            "check_failures": {k: v.to_dict() for k, v in self.check_failures.items()},
            "errors": list(self.errors),
            "notes": list(self.notes),
        }
        if self.recorded is not None:
            out["recorded"] = self.recorded.to_dict()
            out["counts"] = [
                {"at": iso(at), "recorded": recorded, "simulated": simulated}
                for at, recorded, simulated in self.recorded.counts
            ]
        return out


@dataclass
class Backtest:
    """Every policy's backtest, and how many range queries it took."""

    start: datetime
    end: datetime
    policies: list[PolicyBacktest]
    range_queries: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": iso(self.start),
            "to": iso(self.end),
            "range_queries": self.range_queries,
            "policies": [p.to_dict() for p in self.policies],
        }


def iso(instant: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, seconds precision unless there is a fraction."""
    text = instant.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
