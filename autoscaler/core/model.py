"""Plain values shared by every layer: policies, target state, check results and decisions.

Everything here is a frozen dataclass or a `str` enum with no behaviour beyond formatting,
so the pure core can be tested with literals and the adapters can fill these in from I/O.
Durations are `timedelta`, instants are timezone-aware `datetime` (UTC).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, get_args

from autoscaler.core.frozen import fast_init
from autoscaler.core.reasons import Pending, rendered_on_read


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

    def __post_init__(self) -> None:
        _fill_cached(self)

    @property
    def identity(self) -> tuple[str, ...]:
        """What makes two targets the same object, region aside (see `conflicts`)."""
        return (self.type, self.asg)

    @functools.cached_property  # immutable, and read at every evaluation
    def key(self) -> str:
        """A stable identifier of the scaled object, used for cooldown state and reports."""
        return f"aws-asg/{self.region or '-'}/{self.asg}"

    def __str__(self) -> str:
        return self._shown

    @functools.cached_property  # every decision names its target
    def _shown(self) -> str:
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

    def __post_init__(self) -> None:
        _fill_cached(self)

    @property
    def identity(self) -> tuple[str, ...]:
        """What makes two targets the same object, region aside (see `conflicts`)."""
        return (self.type, self.job, self.group, self.namespace)

    @functools.cached_property  # immutable, and read at every evaluation
    def key(self) -> str:
        """A stable identifier of the scaled object, used for cooldown state and reports."""
        return f"nomad/{self.region or '-'}/{self.namespace}/{self.job}/{self.group}"

    def __str__(self) -> str:
        return self._shown

    @functools.cached_property  # every decision names its target
    def _shown(self) -> str:
        where = self.namespace + (f"@{self.region}" if self.region else "")
        return f"nomad:{self.job}/{self.group} ({where})"


TargetRef = AsgTarget | NomadTarget


def _fill_cached(target: AsgTarget | NomadTarget) -> None:
    """Compute a target's cached properties as it is made, always in the same order.

    Filled later, in the order each instance happened to be asked, every instance dict grew
    on its own (CPython shares one table of keys among instances only while they gain their
    attributes in one order): 230 more bytes per Nomad target, 2.3 MB at 10,000. The values
    are the properties' own (a copy or an unpickled target gets the dict as it was).
    """
    _ = target.key, str(target)  # each stored in the instance dict as it is computed


TargetKind = type[AsgTarget] | type[NomadTarget]

# Every target kind by its `type` tag, in the order of `TargetRef`.
TARGET_KINDS: dict[str, TargetKind] = {kind.type: kind for kind in get_args(TargetRef)}


# --- policy -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Change:
    """A relative change of a threshold step: `+2`, `-1`, `+50%`, `-10%`."""

    amount: float  # signed
    percent: bool = False

    def __str__(self) -> str:
        sign = "+" if self.amount >= 0 else "-"
        number = f"{abs(self.amount):g}"
        return f"{sign}{number}{'%' if self.percent else ''}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Step:
    """One threshold step: matches when value > above and/or value < below."""

    change: Change
    above: float | None = None
    below: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ForecastSettings:
    """How a check forecasts its own value `lead` ahead from its history (extension).

    The model learns the check's value in buckets of `resolution` over the last `history`
    (range queries, then every evaluation), one seasonal profile per period in `seasons`
    (the median of the same phase in the last periods) plus the recent level, and uses the
    season whose forecasts had the smallest recent error. `lead` None means the policy's
    provisioning time plus its interval. `only`: expose the forecast, never act on it.
    `noise_band` (0: off): a scale-out waits while the value is within the forecast's
    recent error, at most this ratio, above what the current count carries (`core.noise`).
    """

    lead: timedelta | None = None
    history: timedelta = timedelta(days=14)
    resolution: timedelta = timedelta(minutes=1)
    seasons: tuple[timedelta, ...] = (timedelta(days=1), timedelta(days=7))
    min_history: timedelta = timedelta(days=1)
    max_error: float = 0.5
    only: bool = False
    noise_band: float = 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class Check:
    """One PromQL check (or a fixed count) and the strategy that turns it into a count."""

    name: str
    strategy: Strategy
    query: str | None = None  # None only for `fixed`
    target: float | None = None  # target-value, per-instance
    tolerance: float = 0.0  # target-value, per-instance
    steps: tuple[Step, ...] = ()  # threshold only
    count: int | None = None  # fixed only
    forecast: ForecastSettings | None = None  # per-instance, pass-through only
    # A grouped query shared by many policies (a template's `group_by`): the query returns
    # one series per target and this check reads the one carrying all these labels.
    select: tuple[tuple[str, str], ...] = ()
    # Why this check cannot run here (carried over from another autoscaler: another metric
    # source or strategy). It fails at every evaluation with this reason, so it blocks
    # scale-in like any failed check and never counts as a value.
    unsupported: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Cooldown:
    """Minimum time after the last scaling action before scaling up / down again."""

    up: timedelta = timedelta(minutes=1)
    down: timedelta = timedelta(minutes=5)


@dataclass(frozen=True, kw_only=True, slots=True)
class Stabilization:
    """HPA-style windows over recorded recommendations."""

    up: timedelta = timedelta(0)
    down: timedelta = timedelta(minutes=5)


@dataclass(frozen=True, kw_only=True, slots=True)
class StepLimit:
    """Largest change in one action; with both set, the larger change is allowed."""

    count: int | None = None
    percent: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    up: StepLimit | None = None
    down: StepLimit | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Fallback:
    """After `after` consecutive evaluations without usable data, scale up to at least `count`."""

    after: int
    count: int


@dataclass(frozen=True, kw_only=True, slots=True)
class AnomalyGuard:
    """The anomaly guard (extension): a value implausible against its recent history.

    A check's value is implausible when its robust z-score against the values it read over
    the last `window` (median and median absolute deviation) exceeds `z`. An implausible
    value never scales in, and a scale-out it asks for that adds more than `large_percent`
    of the current count (and more than one instance) needs `confirm` implausible
    evaluations in a row; until then the check asks only for what the largest plausible
    value needs.
    """

    enabled: bool = True
    window: timedelta = timedelta(minutes=30)
    z: float = 5.0
    confirm: int = 2
    large_percent: float = 50.0


@dataclass(frozen=True, kw_only=True, slots=True)
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


@dataclass(frozen=True, kw_only=True, slots=True)
class Triggers:
    """Alert names whose Alertmanager notifications make the policy evaluate at once."""

    alerts: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class Source:
    """Where a policy was defined, so errors and reports can point at it."""

    file: str
    line: int = 1


@dataclass(frozen=True, kw_only=True, slots=True)
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
    # How long a scale-up takes to serve (extension); the default forecast lead is this plus
    # the interval. None: not given (`DEFAULT_PROVISIONING` is assumed).
    provisioning: timedelta | None = None
    anomaly: AnomalyGuard | None = None  # None: the guard is off
    source: Source = field(default_factory=lambda: Source(file="<memory>"))

    def forecast_lead(self, check: Check) -> timedelta:
        """How far ahead `check` forecasts: its `lead`, else provisioning plus interval."""
        if check.forecast is not None and check.forecast.lead is not None:
            return check.forecast.lead
        return (self.provisioning or DEFAULT_PROVISIONING) + self.interval


# A scale-up's time to serve when the policy does not say: a typical EC2 instance boot.
DEFAULT_PROVISIONING = timedelta(minutes=2)


# --- observations and memory --------------------------------------------------------------


@fast_init
@dataclass(frozen=True, kw_only=True, slots=True)
class TargetStatus:
    """What the target says right now.

    `ready` is False while the target must not be touched (scaling activity, instance
    refresh, deployment, stopped job); `not_ready_reason` then says why. `min_size` and
    `max_size` are the target's own bounds where it has them (ASG MinSize/MaxSize).
    `last_scaled_at` is the last scaling event the target itself recorded, by anyone.
    `scale_up_allowed` (with `ready` False): what keeps the target busy is itself a
    scale-up (instances launching), so a further scale-up may proceed; only a scale-down
    waits for it.
    """

    count: int
    ready: bool = True
    not_ready_reason: str | None = None
    scale_up_allowed: bool = False
    min_size: int | None = None
    max_size: int | None = None
    last_scaled_at: datetime | None = None


@fast_init
@dataclass(frozen=True, kw_only=True, slots=True)
class ForecastReading:
    """What a check's forecaster said at one evaluation: the value `lead` ahead, or why not.

    `value` None means no usable forecast (`reason` says why: too little history, recent
    error too large); the check is then reactive. `error` is the recent relative error of
    the forecasts at this lead (mean absolute error / mean value), `season` the period of
    the profile used. `only`: shown, never acted on (`forecast_only`).
    """

    value: float | None
    lead: timedelta
    error: float | None = None
    season: timedelta | None = None
    reason: str | None = None
    only: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "lead_seconds": self.lead.total_seconds(),
            "error": self.error,
            "season_seconds": None if self.season is None else self.season.total_seconds(),
            "reason": self.reason,
            "only": self.only,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ForecastReading:
        season = data.get("season_seconds")
        return cls(
            value=data.get("value"),
            lead=timedelta(seconds=float(data.get("lead_seconds") or 0.0)),
            error=data.get("error"),
            season=None if season is None else timedelta(seconds=float(season)),
            reason=data.get("reason"),
            only=bool(data.get("only", False)),
        )


@fast_init
@dataclass(frozen=True, kw_only=True, slots=True)
class AnomalyReading:
    """How plausible a check's value is against the values it read over the guard's window.

    `z` is the robust z-score (value − median) / (1.4826 × MAD); `low` and `high` bound the
    plausible values; `streak` counts implausible evaluations in a row, this one included.
    """

    z: float
    low: float
    high: float
    implausible: bool
    streak: int
    samples: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "z": self.z,
            "low": self.low,
            "high": self.high,
            "implausible": self.implausible,
            "streak": self.streak,
            "samples": self.samples,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnomalyReading:
        return cls(
            z=float(data["z"]),
            low=float(data["low"]),
            high=float(data["high"]),
            implausible=bool(data["implausible"]),
            streak=int(data["streak"]),
            samples=int(data["samples"]),
        )


@fast_init
@dataclass(frozen=True, kw_only=True, slots=True)
class Observation:
    """The outcome of one check's query: a finite value, or an error saying why not.

    With a forecast or the anomaly guard, the engine adds what they made of the value.
    """

    check: str
    value: float | None = None
    error: str | None = None
    forecast: ForecastReading | None = None
    anomaly: AnomalyReading | None = None


@fast_init
@dataclass(frozen=True, kw_only=True, slots=True)
class Recommendation:
    """A combined recommendation recorded at one evaluation, for stabilization windows."""

    at: datetime
    count: int


@fast_init
@dataclass(frozen=True, kw_only=True, slots=True)
class Memory:
    """What the decision core remembers about one policy between evaluations."""

    last_scaled_at: datetime | None = None  # our last scaling action on the policy's target
    recommendations: tuple[Recommendation, ...] = ()
    # Consecutive evaluations where every check failed, counted at most once per interval
    # since the first of them (`missing_data_since`), so triggers cannot hurry a fallback.
    missing_data_streak: int = 0
    missing_data_since: datetime | None = None


# --- decisions ----------------------------------------------------------------------------


@fast_init
@dataclass(frozen=True, kw_only=True, slots=True)
class CheckResult:
    """One check as evaluated: its query, value and desired count, or its error."""

    name: str
    query: str | None
    value: float | None
    desired: int | None
    error: str | None
    forecast: ForecastReading | None = None
    anomaly: AnomalyReading | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "query": self.query,
            "value": self.value,
            "desired": self.desired,
            "error": self.error,
            "forecast": None if self.forecast is None else self.forecast.to_dict(),
            "anomaly": None if self.anomaly is None else self.anomaly.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        """Rebuild from `to_dict()` output (also from the five keys of older records)."""
        forecast, anomaly = data.get("forecast"), data.get("anomaly")
        return cls(
            name=data["name"],
            query=data["query"],
            value=data["value"],
            desired=data["desired"],
            error=data["error"],
            forecast=None if forecast is None else ForecastReading.from_dict(forecast),
            anomaly=None if anomaly is None else AnomalyReading.from_dict(anomaly),
        )


@fast_init
@dataclass(frozen=True, kw_only=True, slots=True)
class Decision:
    """The outcome of one evaluation of one policy, with a reason for every step that mattered.

    `reasons` may be stored pending (`core.reasons`): they are then made the first time
    they are read, and kept.
    """

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
        action = self.action  # identity: `in` would compare the str values
        return action is Action.UP or action is Action.DOWN

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


# Made when first read (the reasons of most replayed decisions never are): see `core.reasons`.
DECISION_REASONS = rendered_on_read(Decision, "reasons", Pending.render, Pending)
