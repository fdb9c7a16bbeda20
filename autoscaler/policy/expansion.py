"""Expanding a policy template for one discovered target: placeholders and overrides.

The expanded policy is the template's prototype with only what differs for the target
replaced: its name, description, target, the labels its grouped checks select, the alert
names with placeholders, and the overrides its owner set (Nomad meta `autoscaler.KEY`, ASG
tags `autoscaler:KEY`, see `OVERRIDES`). Everything else (schedules, limits, cooldowns,
untouched checks) is the template's own object, shared by every expansion. An override
that is not valid, or that breaks a cross-field rule once applied, is reported as a
problem of that target only. The owner's min/max are hard limits: the template's schedules
are clamped into them (`override_bounds`), with a warning per clamp.

A grouped check's series belongs to one target only: two targets that select the same
series of one query (`group_by: {job: "{job}"}` over two groups of one job) would each be
sized on their shared traffic. `one_series_each` fails that check for each of them (as an
unsupported one: it holds scale-in), with a warning saying how to tell them apart.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from itertools import islice
from typing import Any

from autoscaler.core import model
from autoscaler.core.discovered import AsgGroup, NomadGroup
from autoscaler.core.durations import parse_duration
from autoscaler.core.ranges import MAX_COUNT
from autoscaler.core.series import describe_select
from autoscaler.errors import PolicyWarning, Problem
from autoscaler.policy.conflicts import Located
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
_SHOWN = 3  # other targets named in a shared-series message at most
# A series of a grouped query: the query, and the labels a check selects in its answer
_Series = tuple[str | None, tuple[tuple[str, str], ...]]


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


def one_series_each(
    expanded: Sequence[Located],
) -> list[tuple[Located, tuple[PolicyWarning, ...]]]:
    """`expanded` (in order), each with every grouped check whose series another target
    reads too failed, and a warning per such check (none: the item itself).

    A series is a grouped query and the labels a check selects in it. Neither target can
    tell its own series from the other's, and each would be sized on their shared traffic
    (a group serving no requests scaled in on its job's request rate): ambiguous data, so
    the check fails for each of them at every evaluation, as an unsupported check does (it
    holds scale-in and never counts as a value). Their other checks, and the other
    targets, are untouched.

    Readers are counted by target: `expanded` may hold two versions of one target's policy
    (its new one and the last good one the registry keeps running), which share nothing.
    A grouped check is unsupported for this reason only, so a check no longer shared
    comes back with its reason cleared (a kept policy that was held runs its check again).
    """
    readers: dict[_Series, dict[tuple[str, ...], Located]] = {}
    held = False  # a grouped check failed already (by an earlier call)
    for item in expanded:
        target = _reader(item.policy.target)
        for check in item.policy.checks:
            if check.select:
                readers.setdefault((check.query, check.select), {}).setdefault(target, item)
                held = held or check.unsupported is not None
    # series -> its readers (one per target), and the placeholders that tell them apart
    shared: dict[_Series, tuple[list[Located], str]] = {}
    for key, by_target in readers.items():
        if len(by_target) > 1:
            items = list(by_target.values())
            shared[key] = (items, _apart(items))
    if not shared and not held:  # 10,000 targets, each its own series: nothing to do
        return [(item, ()) for item in expanded]
    out: list[tuple[Located, tuple[PolicyWarning, ...]]] = []
    for item in expanded:
        checks = list(item.policy.checks)
        warnings: list[PolicyWarning] = []
        for index, check in enumerate(checks):
            if not check.select:
                continue
            found = shared.get((check.query, check.select))
            message = None if found is None else _shared_message(item, *found, check.select)
            if message is not None:
                field = f"{item.policy.name}: checks[{index}].group_by"
                file = item.policy.source.file
                warnings.append(PolicyWarning(file, item.name_line, field, message))
            if message != check.unsupported:
                checks[index] = replace(check, unsupported=message)
        if checks == list(item.policy.checks):
            out.append((item, tuple(warnings)))
        else:
            policy = replace(item.policy, checks=tuple(checks))
            out.append((Located(policy, item.name_line), tuple(warnings)))
    return out


def _reader(target: model.TargetRef) -> tuple[str, ...]:
    """`target` as one reader of a series, whatever region it names or leaves out."""
    if isinstance(target, model.NomadTarget):
        return ("nomad", target.namespace, target.job, target.group)
    return ("asg", target.asg)


def _apart(sharing: Sequence[Located]) -> str:
    """The placeholders whose values differ among `sharing`, as group_by pairs."""
    values = [_placeholders(item.policy.target) for item in sharing]
    apart = [k for k in values[0] if len({v.get(k) for v in values}) > 1]
    return ", ".join(f'{k}: "{{{k}}}"' for k in apart) or "the placeholder that differs"


def _shared_message(
    item: Located, sharing: Sequence[Located], apart: str, select: tuple[tuple[str, str], ...]
) -> str:
    """Why `item`'s check is ambiguous: who else reads its series, and what to add."""
    own = _reader(item.policy.target)  # one of `sharing` (one per target) is item's own
    others = (o.policy.name for o in sharing if _reader(o.policy.target) != own)
    named = ", ".join(islice(others, _SHOWN))
    if len(sharing) - 1 > _SHOWN:
        named += f" and {len(sharing) - 1 - _SHOWN} more"
    return (
        f"ambiguous: {named} {'reads' if len(sharing) == 2 else 'read'} this same series "
        f"({describe_select(select)}) of the grouped query: add the label that tells them "
        f"apart to the query's by (...) and to group_by (e.g. {apart}); until then this "
        "check fails for each of them, and holds scale-in"
    )


def _placeholders(target: model.TargetRef) -> dict[str, str]:
    """A target's placeholder values, as the template filled them in."""
    if isinstance(target, model.NomadTarget):
        return {"job": target.job, "group": target.group, "namespace": target.namespace}
    return {"asg": target.asg}
