"""Plain values shared by every layer: policies, target state, check results and decisions.

Everything here is a frozen dataclass or a `str` enum with no behaviour beyond formatting,
so the pure core can be tested with literals and the adapters can fill these in from I/O.
Durations are `timedelta`, instants are timezone-aware `datetime` (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, get_args


class Strategy(StrEnum):
    """How one check turns its value into a desired count: *the* list of strategies.

    `strategies.STRATEGIES` gives each its function and traits, `policy.schema` its check
    model; `tests/unit/test_registries.py` fails when one of them lacks a member.
    """

    TARGET_VALUE = "target-value"  # ceil(current * value / target), with tolerance
    PER_INSTANCE = "per-instance"  # ceil(value / target)
    THRESHOLD = "threshold"  # first matching step's change, relative to current
    FIXED = "fixed"  # a constant count; no query
    PASS_THROUGH = "pass-through"  # ceil(value)


class Action(StrEnum):
    """What a decision does to the target."""

    UP = "up"
    DOWN = "down"
    NONE = "none"  # desired == current
    HOLD = "hold"  # a change was wanted or possible but is held back (reasons say why)


class MissingData(StrEnum):
    """What to do when every check failed."""

    HOLD = "hold"
    FALLBACK = "fallback"


# --- targets ------------------------------------------------------------------------------
# Each kind is a frozen dataclass with a `type` tag, a `key`, an `identity` and a
# `min_count`; `TargetRef` below is *the* list of kinds, and `TARGET_KINDS` indexes it by tag.


@dataclass(frozen=True, kw_only=True)
class AsgTarget:
    """An EC2 Auto Scaling Group, scaled through its DesiredCapacity."""

    asg: str
    region: str | None = None
    type: str = "aws-asg"

    # An ASG at 0 has no instance to measure: every policy keeps at least one.
    min_count: ClassVar[int] = 1

    @property
    def identity(self) -> tuple[str, ...]:
        """What makes two targets the same object, region aside (see `conflicts`)."""
        return (self.type, self.asg)

    @property
    def key(self) -> str:
        """A stable identifier of the scaled object, used for cooldown state and reports."""
        return f"aws-asg/{self.region or '-'}/{self.asg}"

    def __str__(self) -> str:
        return f"aws-asg:{self.asg}" + (f"@{self.region}" if self.region else "")


@dataclass(frozen=True, kw_only=True)
class NomadTarget:
    """A task group of a Nomad job, scaled through its count."""

    job: str
    group: str
    namespace: str = "default"
    region: str | None = None
    type: str = "nomad"

    min_count: ClassVar[int] = 0  # scale to zero and back

    @property
    def identity(self) -> tuple[str, ...]:
        """What makes two targets the same object, region aside (see `conflicts`)."""
        return (self.type, self.job, self.group, self.namespace)

    @property
    def key(self) -> str:
        """A stable identifier of the scaled object, used for cooldown state and reports."""
        return f"nomad/{self.region or '-'}/{self.namespace}/{self.job}/{self.group}"

    def __str__(self) -> str:
        where = self.namespace + (f"@{self.region}" if self.region else "")
        return f"nomad:{self.job}/{self.group} ({where})"


TargetRef = AsgTarget | NomadTarget
TargetKind = type[AsgTarget] | type[NomadTarget]

# Every target kind by its `type` tag, in the order of `TargetRef`.
TARGET_KINDS: dict[str, TargetKind] = {kind.type: kind for kind in get_args(TargetRef)}


# --- policy -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Change:
    """A relative change of a threshold step: `+2`, `-1`, `+50%`, `-10%`."""

    amount: float  # signed
    percent: bool = False

    def __str__(self) -> str:
        sign = "+" if self.amount >= 0 else "-"
        number = f"{abs(self.amount):g}"
        return f"{sign}{number}{'%' if self.percent else ''}"


@dataclass(frozen=True, kw_only=True)
class Step:
    """One threshold step: matches when value > above and/or value < below."""

    change: Change
    above: float | None = None
    below: float | None = None


@dataclass(frozen=True, kw_only=True)
class Check:
    """One PromQL check (or a fixed count) and the strategy that turns it into a count."""

    name: str
    strategy: Strategy
    query: str | None = None  # None only for `fixed`
    target: float | None = None  # target-value, per-instance
    tolerance: float = 0.0  # target-value only
    steps: tuple[Step, ...] = ()  # threshold only
    count: int | None = None  # fixed only
    # A grouped query shared by many policies (a template's `group_by`): the query returns
    # one series per target and this check reads the one carrying all these labels.
    select: tuple[tuple[str, str], ...] = ()
    # Why this check cannot run here (carried over from another autoscaler: another metric
    # source or strategy). It fails at every evaluation with this reason, so it blocks
    # scale-in like any failed check and never counts as a value.
    unsupported: str | None = None


@dataclass(frozen=True, kw_only=True)
class Cooldown:
    """Minimum time after the last scaling action before scaling up / down again."""

    up: timedelta = timedelta(minutes=1)
    down: timedelta = timedelta(minutes=5)


@dataclass(frozen=True, kw_only=True)
class Stabilization:
    """HPA-style windows over recorded recommendations."""

    up: timedelta = timedelta(0)
    down: timedelta = timedelta(minutes=5)


@dataclass(frozen=True, kw_only=True)
class StepLimit:
    """Largest change in one action; with both set, the larger change is allowed."""

    count: int | None = None
    percent: float | None = None


@dataclass(frozen=True, kw_only=True)
class Limits:
    up: StepLimit | None = None
    down: StepLimit | None = None


@dataclass(frozen=True, kw_only=True)
class Fallback:
    """After `after` consecutive evaluations without usable data, scale up to at least `count`."""

    after: int
    count: int


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """A window that overrides min/max while active: one-off (start/end) or recurring (cron)."""

    name: str
    min: int | None = None
    max: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    cron: str | None = None
    duration: timedelta | None = None
    timezone: str | None = None


@dataclass(frozen=True, kw_only=True)
class Triggers:
    """Alert names whose Alertmanager notifications make the policy evaluate at once."""

    alerts: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Source:
    """Where a policy was defined, so errors and reports can point at it."""

    file: str
    line: int = 1


@dataclass(frozen=True, kw_only=True)
class Policy:
    """One validated scaling policy."""

    name: str
    target: TargetRef
    min: int
    max: int
    checks: tuple[Check, ...]
    description: str = ""
    enabled: bool = True
    dry_run: bool = False
    interval: timedelta = timedelta(seconds=30)
    cooldown: Cooldown = field(default_factory=Cooldown)
    stabilization: Stabilization = field(default_factory=Stabilization)
    limits: Limits = field(default_factory=Limits)
    on_missing_data: MissingData = MissingData.HOLD
    fallback: Fallback | None = None
    schedules: tuple[Schedule, ...] = ()
    triggers: Triggers = field(default_factory=Triggers)
    source: Source = field(default_factory=lambda: Source(file="<memory>"))


# --- observations and memory --------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TargetStatus:
    """What the target says right now.

    `ready` is False while the target must not be touched (scaling activity, instance
    refresh, deployment, stopped job); `not_ready_reason` then says why. `min_size` and
    `max_size` are the target's own bounds where it has them (ASG MinSize/MaxSize).
    `last_scaled_at` is the last scaling event the target itself recorded, by anyone.
    """

    count: int
    ready: bool = True
    not_ready_reason: str | None = None
    min_size: int | None = None
    max_size: int | None = None
    last_scaled_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Observation:
    """The outcome of one check's query: a finite value, or an error saying why not."""

    check: str
    value: float | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class Recommendation:
    """A combined recommendation recorded at one evaluation, for stabilization windows."""

    at: datetime
    count: int


@dataclass(frozen=True, kw_only=True)
class Memory:
    """What the decision core remembers about one policy between evaluations."""

    last_scaled_at: datetime | None = None  # our last scaling action on the policy's target
    recommendations: tuple[Recommendation, ...] = ()
    # Consecutive evaluations where every check failed, counted at most once per interval
    # since the first of them (`missing_data_since`), so triggers cannot hurry a fallback.
    missing_data_streak: int = 0
    missing_data_since: datetime | None = None


# --- decisions ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    """One check as evaluated: its query, value and desired count, or its error."""

    name: str
    query: str | None
    value: float | None
    desired: int | None
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "query": self.query,
            "value": self.value,
            "desired": self.desired,
            "error": self.error,
        }


@dataclass(frozen=True, kw_only=True)
class Decision:
    """The outcome of one evaluation of one policy, with a reason for every step that mattered."""

    policy: str
    target: str
    time: datetime
    current: int | None
    desired: int | None
    action: Action
    dry_run: bool
    reasons: tuple[str, ...]
    checks: tuple[CheckResult, ...] = ()

    @property
    def changes_target(self) -> bool:
        """True when applying this decision would call the scale API (dry-run aside)."""
        return self.action in (Action.UP, Action.DOWN)

    def to_dict(self) -> dict[str, Any]:
        """The report shape used by `plan --output json` (plus `time`) and the HTTP API."""
        return {
            "policy": self.policy,
            "target": self.target,
            "current": self.current,
            "desired": self.desired,
            "action": self.action.value,
            "dry_run": self.dry_run,
            "reasons": list(self.reasons),
            "checks": [c.to_dict() for c in self.checks],
            "time": self.time.isoformat(),
        }
