"""Validated pydantic models (`policy.schema`) -> the frozen dataclasses of `core.model`.

The last step of loading a policy: by then every value has been checked, so the
conversion only builds values. Equal cooldowns, windows, limits and triggers are shared
between policies, to keep the memory of many policies small.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

from autoscaler.core import model
from autoscaler.core.durations import parse_duration
from autoscaler.policy.rules import utc_time
from autoscaler.policy.schema import (
    AnomalyModel,
    CheckModel,
    ForecastModel,
    PolicyModel,
    ScheduleModel,
    StepModel,
    TargetModel,
)

__all__ = ["to_policy"]

T = TypeVar("T")

# The enum members by value, as `Enum(value)` finds them (its lookup is slow in Python 3.11);
# the values were validated against the same enums.
_MISSING_DATA = {member.value: member for member in model.MissingData}
_STRATEGIES = {member.value: member for member in model.Strategy}


def to_policy(p: PolicyModel, source: model.Source) -> model.Policy:
    assert p.name is not None  # set by `loader._default_name` or reported missing
    limits = p.limits
    return model.Policy(
        name=p.name,
        description=p.description,
        enabled=p.enabled,
        dry_run=p.dry_run,
        target=_to_target(p.target),
        min=p.min,
        max=p.max,
        interval=parse_duration(p.interval),
        cooldown=_shared(
            model.Cooldown(up=parse_duration(p.cooldown.up), down=parse_duration(p.cooldown.down))
        ),
        stabilization=_shared(
            model.Stabilization(
                up=parse_duration(p.stabilization.up), down=parse_duration(p.stabilization.down)
            )
        ),
        limits=_shared(
            model.Limits(
                up=None if limits.up is None else model.StepLimit(**limits.up.model_dump()),
                down=None if limits.down is None else model.StepLimit(**limits.down.model_dump()),
            )
        ),
        on_missing_data=_MISSING_DATA[p.on_missing_data],
        fallback=None if p.fallback is None else model.Fallback(**p.fallback.model_dump()),
        schedules=tuple(_to_schedule(s) for s in p.schedules),
        checks=tuple(_to_check(c) for c in p.checks),
        triggers=_shared(model.Triggers(alerts=tuple(p.triggers.alerts))),
        provisioning=None if p.provisioning is None else parse_duration(p.provisioning),
        anomaly=_to_anomaly(p.anomaly),
        source=source,
    )


_SHARED_MAX = 1024  # value objects remembered (cleared when full)
_SHARED: dict[Any, Any] = {}


def _shared(value: T) -> T:
    """An equal value object made before, if any, else `value` (remembered).

    Most policies have the same cooldowns, stabilization windows, limits and triggers;
    these are frozen, so policies can share one object of each: 180 bytes less per
    policy, 1.8 MB at 10,000 policy files.
    """
    found = _SHARED.get(value)
    if found is not None:
        return cast("T", found)
    if len(_SHARED) >= _SHARED_MAX:
        _SHARED.clear()
    _SHARED[value] = value
    return value


# The anomaly guard of a policy that does not mention it: off (see the README for why).
DEFAULT_ANOMALY_GUARD: model.AnomalyGuard | None = None


def _to_anomaly(a: AnomalyModel | None) -> model.AnomalyGuard | None:
    if a is None:
        return DEFAULT_ANOMALY_GUARD
    return model.AnomalyGuard(
        enabled=a.enabled,
        window=parse_duration(a.window),
        z=a.z,
        confirm=a.confirm,
        large_percent=a.large_percent,
    )


def _to_forecast(f: ForecastModel | None) -> model.ForecastSettings | None:
    if f is None:
        return None
    return model.ForecastSettings(
        lead=None if f.lead is None else parse_duration(f.lead),
        history=parse_duration(f.history),
        resolution=parse_duration(f.resolution),
        seasons=tuple(parse_duration(season) for season in f.seasons),
        min_history=parse_duration(f.min_history),
        max_error=f.max_error,
        only=f.forecast_only,
        noise_band=f.noise_band,
    )


def _to_target(t: TargetModel) -> model.TargetRef:
    """A target model's fields are its kind's dataclass fields (tests/unit/test_registries)."""
    fields = t.model_dump()
    return model.TARGET_KINDS[fields.pop("type")](**fields)


def _to_check(c: CheckModel) -> model.Check:
    """Generic over strategies: a check model's keys are `model.Check` fields (the
    strategy's `settings`, tests/unit/test_registries); steps and forecasts need their own
    conversion."""
    fields: dict[str, Any] = {key: getattr(c, key) for key in type(c).model_fields}
    if "steps" in fields:
        fields["steps"] = tuple(_to_step(s) for s in fields["steps"])
    if "forecast" in fields:
        fields["forecast"] = _to_forecast(fields["forecast"])
    fields["strategy"] = _STRATEGIES[fields["strategy"]]
    return model.Check(**fields)


def _to_step(s: StepModel) -> model.Step:
    amount = float(s.change.rstrip("%"))
    change = model.Change(amount=amount, percent=s.change.endswith("%"))
    return model.Step(change=change, above=s.above, below=s.below)


def _to_schedule(s: ScheduleModel) -> model.Schedule:
    return model.Schedule(
        name=s.name,
        min=s.min,
        max=s.max,
        start=None if s.start is None else utc_time(s.start, s.timezone),
        end=None if s.end is None else utc_time(s.end, s.timezone),
        cron=s.cron,
        duration=None if s.duration is None else parse_duration(s.duration),
        timezone=s.timezone if s.timezone is not None or s.cron is None else "UTC",
    )
