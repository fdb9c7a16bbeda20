"""The policy file format as pydantic models: one source for validation and the JSON Schema.

These models check shape and single values (types, unknown keys, ranges; durations, PromQL,
cron, time zones, names through the types of `value_types`). Rules that relate several
fields (min <= max, schedule kinds, threshold steps that can never match, ...) live in
`rules`, so each reports the exact field. `conversion` turns validated models into
the frozen dataclasses of `model.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from autoscaler.core.model import TARGET_KINDS, Strategy
from autoscaler.core.ranges import MAX_COUNT, MAX_PERCENT
from autoscaler.policy.value_types import (
    ChangeText,
    Cron,
    Duration,
    Instant,
    Name,
    NomadNamespace,
    PromQL,
    TimeZone,
)

# The tags users write, read from the core's registries (see `CHECK_MODELS` below).
STRATEGIES = tuple(strategy.value for strategy in Strategy)
TARGET_TYPES = tuple(TARGET_KINDS)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


# --- targets ------------------------------------------------------------------------------


class TargetBase(_Strict):
    """A target kind's model: one per entry of `model.TARGET_KINDS`, with the same fields as
    its dataclass, `type` being a `Literal` of its tag (collected in `TARGET_MODELS`)."""


class AsgTargetModel(TargetBase):
    """An EC2 Auto Scaling Group, scaled through its DesiredCapacity."""

    model_config = ConfigDict(title="AWS Auto Scaling Group target")
    type: Literal["aws-asg"] = Field(description="Target kind.")
    asg: str = Field(min_length=1, description="Auto Scaling Group name.")
    region: str | None = Field(
        None, min_length=1, description="AWS region; default from the environment."
    )


class NomadTargetModel(TargetBase):
    """A task group of a Nomad job, scaled through its count."""

    model_config = ConfigDict(title="Nomad task group target")
    type: Literal["nomad"] = Field(description="Target kind.")
    job: str = Field(min_length=1, description="Nomad job ID.")
    group: str = Field(min_length=1, description="Task group name within the job.")
    namespace: NomadNamespace = Field(
        "default", min_length=1, description="Nomad namespace: one, not a wildcard."
    )
    region: str | None = Field(
        None, min_length=1, description="Nomad region; default from the agent."
    )


# --- checks -------------------------------------------------------------------------------


class CheckBase(_Strict):
    """A strategy's check model: one per `Strategy`, `strategy` being a `Literal` of its tag;
    its keys besides name, strategy and query are the strategy's `settings` in
    `strategies.STRATEGIES` (collected in `CHECK_MODELS`)."""

    if TYPE_CHECKING:  # every check model has one (declared there, with its description)
        name: str


_CHECK_NAME = Field(description="Check name, unique within the policy.")
_QUERY = Field(description="Instant PromQL query; must return one series or a scalar.")


class TargetValueCheck(CheckBase):
    """desired = ceil(current * value / target), unchanged within the tolerance."""

    model_config = ConfigDict(title="target-value check")
    name: Name = _CHECK_NAME
    strategy: Literal["target-value"] = Field(description="Scaling strategy.")
    query: PromQL = _QUERY
    target: float = Field(gt=0, description="The value each evaluation steers towards.")
    tolerance: float = Field(
        0.1,
        ge=0,
        lt=1,  # 1 or more: the value would have to fall below 0 to scale in
        description="No change while |value/target - 1| <= tolerance (below 1).",
    )


class ForecastModel(_Strict):
    """Extension: forecast the check's value `lead` ahead from its Prometheus history.

    The check then acts on max(observed, forecast): a forecast never scales in.
    """

    model_config = ConfigDict(title="forecast")
    lead: Duration | None = Field(
        None, description="How far ahead; default: the policy's provisioning plus its interval."
    )
    history: Duration = Field("14d", description="History learned from (range queries).")
    resolution: Duration = Field("1m", description="Bucket size of the learned profiles.")
    seasons: list[Duration] = Field(
        default_factory=lambda: ["1d", "1w"],
        min_length=1,
        max_length=4,
        description="Periods of the seasonal profiles; the one with the smallest recent "
        "error is used.",
        json_schema_extra={"default": ["1d", "1w"]},  # a factory's default is not shown
    )
    min_history: Duration = Field("1d", description="Reactive until this much history.")
    max_error: float = Field(
        0.5,
        gt=0,
        le=1000,
        description="Reactive while the recent relative error of the forecasts exceeds it.",
    )
    forecast_only: bool = Field(
        False, description="true: compute and show the forecast, never act on it."
    )
    noise_band: float = Field(
        0.0,
        ge=0,
        lt=1,  # 1 or more: a scale-out would wait until the value doubled
        description="Extension: a scale-out waits while the value is within the forecast's "
        "recent error, at most this ratio, above what the current count carries (0: off).",
    )


_FORECAST = Field(None, description="Extension: forecast the value (see `forecast`).")


class PerInstanceCheck(CheckBase):
    """desired = ceil(value / target): `target` is what one instance handles."""

    model_config = ConfigDict(title="per-instance check")
    name: Name = _CHECK_NAME
    strategy: Literal["per-instance"] = Field(description="Scaling strategy.")
    query: PromQL = _QUERY
    target: float = Field(gt=0, description="How much of the metric one instance handles.")
    tolerance: float = Field(
        0.0,
        ge=0,
        lt=1,  # 1 or more: the value would have to fall below 0 to scale in
        description="Extension: no change while |value / (target × current) - 1| <= tolerance "
        "(below 1).",
    )
    forecast: ForecastModel | None = _FORECAST


class StepModel(_Strict):
    """Matches when value > above and/or value < below; the first matching step wins."""

    model_config = ConfigDict(
        title="threshold step",
        json_schema_extra={"anyOf": [{"required": ["above"]}, {"required": ["below"]}]},
    )
    above: float | None = Field(None, description="Matches values strictly above this.")
    below: float | None = Field(None, description="Matches values strictly below this.")
    change: ChangeText = Field(
        description='Relative change: "+N", "-N", "+N%" or "-N%" (quote it in YAML).'
    )


class ThresholdCheck(CheckBase):
    """The first step whose range contains the value gives a relative change."""

    model_config = ConfigDict(title="threshold check")
    name: Name = _CHECK_NAME
    strategy: Literal["threshold"] = Field(description="Scaling strategy.")
    query: PromQL = _QUERY
    steps: list[StepModel] = Field(min_length=1, description="Steps, tried in order.")


class FixedCheck(CheckBase):
    """A constant desired count; runs no query."""

    model_config = ConfigDict(title="fixed check")
    name: Name = _CHECK_NAME
    strategy: Literal["fixed"] = Field(description="Scaling strategy.")
    count: int = Field(ge=0, le=MAX_COUNT, description="The desired count.")


class PassThroughCheck(CheckBase):
    """desired = the query's value, rounded up."""

    model_config = ConfigDict(title="pass-through check")
    name: Name = _CHECK_NAME
    strategy: Literal["pass-through"] = Field(description="Scaling strategy.")
    query: PromQL = _QUERY
    forecast: ForecastModel | None = _FORECAST


def _by_tag(base: type[_Strict], key: str, tags: tuple[str, ...]) -> dict[str, Any]:
    """The subclasses of `base` by the `Literal` tag of their field `key`, in `tags` order.

    Raises ImportError naming each tag of the core's registry that has no model, so a
    strategy or target kind added to the core cannot be forgotten here.
    """
    found = {get_args(m.model_fields[key].annotation)[0]: m for m in base.__subclasses__()}
    missing = [tag for tag in tags if tag not in found]
    extra = [tag for tag in found if tag not in tags]
    if missing or extra:  # pragma: no cover - a programming error, caught by every test
        raise ImportError(
            f"{base.__name__} models out of step with the core: without a model "
            f"{missing or 'none'}, unknown to the core {extra or 'none'}"
        )
    return {tag: found[tag] for tag in tags}


# The per-kind models, by tag, in the core's order (which is the JSON Schema's order).
CHECK_MODELS: dict[str, type[CheckBase]] = _by_tag(CheckBase, "strategy", STRATEGIES)
TARGET_MODELS: dict[str, type[TargetBase]] = _by_tag(TargetBase, "type", TARGET_TYPES)

if TYPE_CHECKING:  # mypy sees the bases; pydantic gets the discriminated unions
    CheckModel = CheckBase
    TargetModel = TargetBase
else:
    CheckModel = Annotated[
        Union[tuple(CHECK_MODELS.values())],  # noqa: UP007 - built from the registry
        Field(discriminator="strategy"),
    ]
    TargetModel = Annotated[
        Union[tuple(TARGET_MODELS.values())],  # noqa: UP007
        Field(discriminator="type"),
    ]


# --- timing, limits, schedules ------------------------------------------------------------


class CooldownModel(_Strict):
    """Minimum time after the last scaling action (ours or anyone's) before the next."""

    model_config = ConfigDict(title="cooldown")

    up: Duration = Field("1m", description="Before scaling up again.")
    down: Duration = Field("5m", description="Before scaling down again.")


class StabilizationModel(_Strict):
    """Recommendation windows with Kubernetes HPA semantics."""

    model_config = ConfigDict(title="stabilization")

    up: Duration = Field("0s", description="Scale up only to the lowest recommendation in it.")
    down: Duration = Field("5m", description="Scale down only to the highest one in it.")


class StepLimitModel(_Strict):
    """Largest change in one action; with both set, the larger change is allowed."""

    model_config = ConfigDict(title="step limit")  # neither: no limit (a warning says so)

    count: int | None = Field(None, ge=1, le=MAX_COUNT, description="Instances per action.")
    percent: float | None = Field(
        None, gt=0, le=MAX_PERCENT, description="Percent of the current count."
    )


class LimitsModel(_Strict):
    """Largest change in one scaling action, per direction."""

    model_config = ConfigDict(title="limits")

    up: StepLimitModel | None = Field(None, description="Largest scale-up step.")
    down: StepLimitModel | None = Field(None, description="Largest scale-down step.")


class FallbackModel(_Strict):
    """What to do when no check has usable data for a while."""

    model_config = ConfigDict(title="fallback")

    after: int = Field(
        ge=1, le=MAX_COUNT, description="Consecutive evaluations without usable data."
    )
    count: int = Field(
        ge=1, le=MAX_COUNT, description="Then scale up to at least this count (never down)."
    )


class ScheduleModel(_Strict):
    """A window overriding min/max: one-off (start + end) or recurring (cron + duration)."""

    model_config = ConfigDict(
        title="schedule",
        json_schema_extra={
            "oneOf": [{"required": ["start", "end"]}, {"required": ["cron", "duration"]}],
        },  # neither min nor max: no effect (a warning says so)
    )
    name: Name = Field(description="Schedule name, shown in decision reasons.")
    min: int | None = Field(None, ge=0, le=MAX_COUNT, description="Floor while the window is open.")
    max: int | None = Field(
        None, ge=1, le=MAX_COUNT, description="Ceiling while the window is open."
    )
    start: Instant | None = Field(
        None, description="One-off: ISO 8601; without an offset, in `timezone` (default UTC)."
    )
    end: Instant | None = Field(None, description="One-off: ISO 8601 as start, after start.")
    cron: Cron | None = Field(None, description="Recurring: the window opens at each time.")
    duration: Duration | None = Field(None, description="Recurring: how long it stays open.")
    timezone: TimeZone | None = Field(
        None, description="IANA zone of cron, and of start/end without an offset; default UTC."
    )


class AnomalyModel(_Strict):
    """Extension: the anomaly guard, on every check of the policy.

    A value whose robust z-score against the check's values over `window` exceeds `z` is
    implausible: it never scales in, and a scale-out on it adding more than
    `large_percent` % of the current count needs `confirm` such evaluations in a row.
    """

    model_config = ConfigDict(title="anomaly guard")

    enabled: bool = Field(True, description="false: the guard is off.")
    window: Duration = Field("30m", description="Recent history the value is judged against.")
    z: float = Field(
        5.0, gt=0, le=1000, description="Robust z-score above which a value is implausible."
    )
    confirm: int = Field(
        2,
        ge=1,
        le=MAX_COUNT,
        description="Implausible evaluations in a row before a large scale-out.",
    )
    large_percent: float = Field(
        50.0,
        ge=0,
        le=MAX_PERCENT,
        description="A scale-out adding more than this % of the count is large.",
    )


class TriggersModel(_Strict):
    """Events that make the policy evaluate at once instead of at its next interval."""

    model_config = ConfigDict(title="triggers")

    alerts: list[Annotated[str, StringConstraints(min_length=1)]] = Field(
        default_factory=list, description="Alert names from the Alertmanager webhook."
    )


# --- the policy ---------------------------------------------------------------------------


class PolicyModel(_Strict):
    """One scaling policy: what to scale, within which bounds, driven by which checks."""

    model_config = ConfigDict(title="Scaling policy")
    name: Name | None = Field(
        None, description="Unique across all files; default: the file's stem (one-policy files)."
    )
    description: str = Field("", description="Free text shown in reports.")
    enabled: bool = Field(True, description="false: loaded and validated, never evaluated.")
    dry_run: bool = Field(False, description="true: evaluate and report, never scale.")
    target: TargetModel = Field(description="What to scale.")
    min: int = Field(
        ge=0, le=MAX_COUNT, description="Hard floor (0 allowed for nomad targets only)."
    )
    max: int = Field(ge=1, le=MAX_COUNT, description="Hard ceiling; min <= max.")
    interval: Duration = Field("30s", description="Evaluation interval.")
    cooldown: CooldownModel = Field(default_factory=CooldownModel, description="Cooldowns.")
    stabilization: StabilizationModel = Field(
        default_factory=StabilizationModel, description="Recommendation smoothing."
    )
    limits: LimitsModel = Field(default_factory=LimitsModel, description="Step size limits.")
    on_missing_data: Literal["hold", "fallback"] = Field(
        "hold", description="When every check failed: hold, or fallback (needs `fallback`)."
    )
    fallback: FallbackModel | None = Field(None, description="With on_missing_data: fallback.")
    schedules: list[ScheduleModel] = Field(
        default_factory=list, description="Windows that override min/max while active."
    )
    checks: list[CheckModel] = Field(min_length=1, description="One or more checks.")
    triggers: TriggersModel = Field(
        default_factory=TriggersModel, description="Alerts that trigger an evaluation."
    )
    provisioning: Duration | None = Field(
        None,
        description="Extension: how long a scale-up takes to serve (an instance's boot and "
        "warm-up); the default forecast lead is this plus the interval. Default 2m.",
    )
    anomaly: AnomalyModel | None = Field(
        None, description="Extension: the anomaly guard (see `anomaly`)."
    )


PolicyFile = PolicyModel | list[PolicyModel]


def tag_models() -> dict[str, dict[str, type[BaseModel]]]:
    """The members of each tagged union, by discriminator field and tag value."""
    return {"strategy": dict(CHECK_MODELS), "type": dict(TARGET_MODELS)}


def describe(value: Any) -> str:
    """A short description of a YAML value, for 'expected X, got Y' messages."""
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "text"}
    kind = kinds.get(type(value))
    if kind is not None:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        return f"{kind} {shown}"
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__
