"""Expanding a policy template for one discovered target: placeholders and overrides.

The expanded policy is the template's prototype with only what differs for the target
replaced: its name, description, target, the labels its grouped checks select, the alert
names with placeholders, and the overrides its owner set (Nomad meta `autoscaler.KEY`, ASG
tags `autoscaler:KEY`, see `OVERRIDES`). Everything else (schedules, limits, cooldowns,
untouched checks) is the template's own object, shared by every expansion. An override
that is not valid, or that breaks a cross-field rule once applied, is reported as a
problem of that target only. The owner's min/max are hard limits: the template's schedules
are clamped into them (`override_bounds`), with a warning per clamp.

A grouped check's series belongs to one target only: `one_series.one_series_each` (here
for its callers) fails a check whose series another target reads too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from autoscaler.core import model
from autoscaler.core.discovered import AsgGroup, NomadGroup
from autoscaler.core.durations import parse_duration
from autoscaler.core.ranges import MAX_COUNT
from autoscaler.errors import PolicyWarning, Problem
from autoscaler.policy.conflicts import Located
from autoscaler.policy.one_series import one_series_each
from autoscaler.policy.override_bounds import clamp_schedules, clamped
from autoscaler.policy.problems import field_name
from autoscaler.policy.rules import policy_findings
from autoscaler.policy.schema import PolicyModel
from autoscaler.policy.templates import Template, fill
from autoscaler.policy.value_types import NAME_PATTERN

__all__ = ["NOMAD_META_PREFIX", "OVERRIDES", "TAG_PREFIX", "expand", "one_series_each"]

Discovered = NomadGroup | AsgGroup
NOMAD_META_PREFIX = "autoscaler."
TAG_PREFIX = "autoscaler:"
# Override keys (after the prefix) and what they set; `check.NAME.target` sets one check's.
OVERRIDES = {
    "enabled": "opts in (matched by for_each, not an override)",
    "min": "min (a whole number)",
    "max": "max (a whole number)",
    "target": "the target of the template's only check that has one",
    "check.NAME.target": "the target of check NAME",
    "interval": "interval (a duration such as 30s)",
    "dry_run": "dry_run (true or false)",
    "cooldown.up": "cooldown.up (a duration)",
    "cooldown.down": "cooldown.down (a duration)",
}
_NAME = re.compile(NAME_PATTERN)  # used with `fullmatch`: `$` would let a final newline by
_WHOLE = re.compile(r"^[0-9]+$")


def expand(
    template: Template, found: Discovered, *, warnings: list[PolicyWarning] | None = None
) -> Located | list[Problem]:
    """The policy `template` gives `found` (with its overrides), or that target's problems.

    Its warnings (a schedule's min or max clamped into the owner's) are added to
    `warnings` when given: they fail nothing."""
    values = _values(found)
    problems: list[Problem] = []

    def problem(what: str, message: str) -> None:
        problems.append(Problem(template.source.file, template.name_line, what, message))

    name = fill(template.pattern, values)
    if not _NAME.fullmatch(name):
        problem(
            f"{found}: name",
            f"expands to {name!r}, not a valid policy name (letters, digits, '.', '_', '-')",
        )
        return problems
    overrides = _overrides(template, found, problem)
    if problems:
        return problems
    body = template.body
    if overrides:
        body = _overridden(body, overrides)
        for path, message in policy_findings(body):
            problem(f"{found}: {field_name(path)}", f"{message} (after the overrides)")
        if problems:
            return problems
    policy = _policy(
        template, found=found, name=name, values=values, body=body, overrides=overrides
    )
    if policy.schedules and ("min" in overrides or "max" in overrides):
        policy = _within_overrides(policy, template, found, overrides, warnings)
    return Located(policy, template.name_line)


def _within_overrides(
    policy: model.Policy,
    template: Template,
    found: Discovered,
    overrides: Mapping[str, Any],
    warnings: list[PolicyWarning] | None,
) -> model.Policy:
    """`policy` with its schedules clamped into the owner's min/max, each clamp a warning."""
    low, high = overrides.get("min"), overrides.get("max")
    schedules, clamps = clamp_schedules(policy.schedules, low=low, high=high)
    for clamp in clamps:
        above = clamp.written > clamp.applied
        side = "max" if above else "min"
        key = f"{NOMAD_META_PREFIX if isinstance(found, NomadGroup) else TAG_PREFIX}{side}"
        what = "meta" if isinstance(found, NomadGroup) else "tag"
        message = (
            f"schedule {clamp.schedule} {clamp.side} {clamp.written} is "
            f"{'above' if above else 'below'} {what} {key} {clamp.applied}: {clamp.applied} "
            "applies to this target while the schedule is open (the owner's min and max "
            "are hard limits)"
        )
        field = f"{policy.name}: schedules[{clamp.index}].{clamp.side}"
        if warnings is not None:
            warnings.append(PolicyWarning(template.source.file, template.name_line, field, message))
    return replace(policy, schedules=schedules)


def _values(found: Discovered) -> dict[str, str]:
    if isinstance(found, NomadGroup):
        return {"job": found.job, "group": found.group, "namespace": found.namespace}
    return {"asg": found.name}


def _overrides(
    template: Template, found: Discovered, problem: Callable[[str, str], None]
) -> dict[str, Any]:
    """The overrides `found` carries, parsed; a bad one is reported and left out."""
    if isinstance(found, NomadGroup):
        prefix, pairs, what = NOMAD_META_PREFIX, found.meta, "meta"
    else:
        prefix, pairs, what = TAG_PREFIX, found.tags, "tag"
    parsed: dict[str, Any] = {}
    checks = {c.name: c for c in template.body.checks}
    for key, text in sorted(pairs.items()):
        if not key.startswith(prefix) or key in template.match:
            continue
        option = key[len(prefix) :]
        shown = f"{found}: {what} {key}"
        try:
            value = _parse_override(option, text, checks)
        except ValueError as exc:
            problem(shown, str(exc))
            continue
        if value is not None:
            parsed[option] = value
    return parsed


def _parse_override(option: str, text: str, checks: Mapping[str, Any]) -> Any:
    """One override's value, None for `enabled`; ValueError saying what to write."""
    if option == "enabled":
        return None
    if option in ("min", "max"):
        lowest = 0 if option == "min" else 1  # as a policy file's `max` (>= 1)
        if not _WHOLE.match(text.strip()) or not lowest <= int(text) <= MAX_COUNT:
            raise ValueError(f"expected a whole number from {lowest} to {MAX_COUNT}, got {text!r}")
        return int(text)
    if option in ("interval", "cooldown.up", "cooldown.down"):
        parse_duration(text.strip())
        return text.strip()
    if option == "dry_run":
        if text.strip().lower() not in ("true", "false"):
            raise ValueError(f"expected true or false, got {text!r}")
        return text.strip().lower() == "true"
    if option == "target":
        with_target = [n for n, c in checks.items() if hasattr(c, "target")]
        if len(with_target) != 1:
            raise ValueError(
                f"the template has {len(with_target)} checks with a target: name one with "
                f"{'check.NAME.target'} (checks: {', '.join(checks) or 'none'})"
            )
        return (with_target[0], _target_value(text))
    if option.startswith("check.") and option.endswith(".target"):
        name = option[len("check.") : -len(".target")]
        if name not in checks or not hasattr(checks[name], "target"):
            usable = [n for n, c in checks.items() if hasattr(c, "target")]
            raise ValueError(
                f"no check {name!r} with a target in the template "
                f"(checks with one: {', '.join(usable) or 'none'})"
            )
        return (name, _target_value(text))
    known = ", ".join(OVERRIDES)
    raise ValueError(f"unknown override: the keys are {known}")


def _target_value(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number above 0, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"expected a number above 0, got {text!r}")
    return value


def _overridden(body: PolicyModel, overrides: Mapping[str, Any]) -> PolicyModel:
    """`body` with the overrides applied (already parsed, so no validation needed)."""
    update: dict[str, Any] = {}
    for key in ("min", "max", "interval", "dry_run"):
        if key in overrides:
            update[key] = overrides[key]
    cooldown = {
        d: overrides[f"cooldown.{d}"] for d in ("up", "down") if f"cooldown.{d}" in overrides
    }
    if cooldown:
        update["cooldown"] = body.cooldown.model_copy(update=cooldown)
    if "min" in overrides or "max" in overrides:  # hard limits, schedules' too
        low, high = overrides.get("min"), overrides.get("max")
        update["schedules"] = [
            s.model_copy(
                update={"min": clamped(s.min, low, high), "max": clamped(s.max, low, high)}
            )
            for s in body.schedules
        ]
    targets = dict(v for k, v in overrides.items() if k == "target" or k.startswith("check."))
    if targets:
        update["checks"] = [
            c.model_copy(update={"target": targets[c.name]}) if c.name in targets else c
            for c in body.checks
        ]
    return body.model_copy(update=update)


def _policy(
    template: Template,
    *,
    found: Discovered,
    name: str,
    values: Mapping[str, str],
    body: PolicyModel,
    overrides: Mapping[str, Any],
) -> model.Policy:
    """The expanded policy: the prototype with what differs for this target."""
    proto = template.prototype
    target: model.TargetRef
    if isinstance(found, NomadGroup):
        assert isinstance(proto.target, model.NomadTarget)
        target = model.NomadTarget(
            job=found.job,
            group=found.group,
            namespace=found.namespace,
            region=found.region if proto.target.region is None else proto.target.region,
        )
    else:
        assert isinstance(proto.target, model.AsgTarget)
        target = model.AsgTarget(asg=found.name, region=proto.target.region or found.region)
    checks = list(proto.checks)
    for index, pairs in template.group_by:
        select = tuple((label, fill(pattern, values)) for label, pattern in pairs)
        checks[index] = replace(checks[index], select=select)
    if body is not template.body:
        for i, check in enumerate(body.checks):
            if getattr(check, "target", None) != proto.checks[i].target:
                checks[i] = replace(checks[i], target=getattr(check, "target", None))
    changes: dict[str, Any] = {"name": name, "target": target, "checks": tuple(checks)}
    if template.description:
        changes["description"] = fill(template.description, values)
    if template.alerts:
        alerts = tuple(fill(alert, values) for alert in template.alerts)
        changes["triggers"] = replace(proto.triggers, alerts=alerts)
    if "min" in overrides or "max" in overrides:
        changes["min"], changes["max"] = body.min, body.max
    if "interval" in overrides:
        changes["interval"] = parse_duration(body.interval)
    if "dry_run" in overrides:
        changes["dry_run"] = body.dry_run
    if "cooldown.up" in overrides or "cooldown.down" in overrides:
        changes["cooldown"] = model.Cooldown(
            up=parse_duration(body.cooldown.up), down=parse_duration(body.cooldown.down)
        )
    return replace(proto, **changes)
