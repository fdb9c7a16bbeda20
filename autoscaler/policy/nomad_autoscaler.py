"""Nomad Autoscaler policies -> our policies, with a line for everything that cannot be carried.

Two inputs, one translation:

- a scaling policy Nomad stores for a job's group `scaling` block, as
  `GET /v1/scaling/policy/:id` gives it (`policy_from_nomad`, used by discovery): its
  `Policy` map holds blocks as lists of `{label: [body]}`;
- a Nomad Autoscaler policy file, or a job file with group `scaling` blocks, in HCL
  (`nomad_hcl.convert_hcl`, used by `autoscaler convert`).

What is carried: `min`, `max`, `enabled`, `evaluation_interval` (default 10s, the agent's
default), `cooldown` (default 5m; both directions), `cooldown_on_scale_up` (as our
`cooldown.up`, and `cooldown.down` when longer than `cooldown`), the target (a Nomad task
group, or `aws-asg` by `aws_asg_name`, `dry-run`) and each `check` whose `source` is
`prometheus` with the strategy `target-value` (`target`, `precision` as our `tolerance`),
`threshold` (`lower_bound`/`upper_bound` as one step, `delta` or `percentage` as its
change), `fixed-value` (`value`) or `pass-through`. Nomad Autoscaler has no
stabilization: the translated policy has none either.

A check that cannot be carried (another metric source, another strategy, an absolute
threshold `value`, a target of 0) becomes a check that fails at every evaluation with
the reason (discovery), so it blocks scale-in as any failed check does and a policy made
only of such checks holds; `convert` leaves it out and says so. Settings whose meaning
differs (`within_bounds_trigger`, `query_window_offset`, `on_check_error`, node draining,
...) are carried as closely as possible and listed as notes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from autoscaler.core import model
from autoscaler.core.discovered import NomadScalingPolicy
from autoscaler.core.durations import format_duration, parse_duration
from autoscaler.errors import Problem
from autoscaler.policy.nomad_groups import carry_group
from autoscaler.policy.value_types import NAME_PATTERN

__all__ = ["Translation", "blocks", "policy_from_nomad", "policy_name", "translate"]

DEFAULT_INTERVAL = "10s"  # the agent's policy.default_evaluation_interval
DEFAULT_COOLDOWN = "5m"  # the agent's policy.default_cooldown
_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_GO_DURATION = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_NOMAD_TARGETS = ("nomad-target", "nomad")
_AWS_NODE_SETTINGS = (
    "node_class",
    "node_drain_deadline",
    "node_drain_ignore_system_jobs",
    "node_purge",
    "node_selector_strategy",
    "datacenter",
)


@dataclass
class Translation:
    """One Nomad Autoscaler policy in our terms.

    `data` is our policy's YAML data with the checks that could be carried; `unsupported`
    lists the others as (name, query, reason); `notes` says, one line each, what was not
    carried exactly; `errors` why the policy as a whole cannot be carried (then `data` is
    incomplete).
    """

    data: dict[str, Any]
    unsupported: list[tuple[str, str | None, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Every check's name here, carried or not, in the order of the policy's check blocks.
    names: list[str] = field(default_factory=list)


Block = tuple[str | None, dict[str, Any]]


def translate(
    name: str,
    *,
    enabled: bool,
    min_count: Any,
    max_count: Any,
    policy: Mapping[str, Any],
    target: Mapping[str, str] | None = None,
) -> Translation:
    """Our policy for a Nomad Autoscaler one: its bounds, its `policy` body and, for a job's
    scaling block, the group it belongs to (`target`: Namespace, Job, Group, and Region when
    the job file sets one)."""
    out = Translation(data={"name": policy_name(name)})
    if out.data["name"] != name:
        out.notes.append(f"name {name!r} is {out.data['name']!r} here (letters, digits, . _ -)")
    data = out.data
    if not enabled:
        data["enabled"] = False
    _target(out, policy, target)
    data["min"] = _count(out, "min", 0 if min_count is None else min_count)
    data["max"] = _count(out, "max", max_count)
    interval = _duration(out, "evaluation_interval", policy.get("evaluation_interval"))
    data["interval"] = interval or DEFAULT_INTERVAL
    down = _duration(out, "cooldown", policy.get("cooldown")) or DEFAULT_COOLDOWN
    up = _duration(out, "cooldown_on_scale_up", policy.get("cooldown_on_scale_up"))
    if up is not None:
        out.notes.append(
            "cooldown_on_scale_up is our cooldown.up: it delays a scale-up after any action "
            "(Nomad Autoscaler: any action after a scale-up)"
        )
        if _seconds(up) > _seconds(down):
            # Nomad Autoscaler scales nothing for `up` after a scale-up; ours measures
            # cooldown.down from any action: only the longer one keeps every scale-in
            # after a scale-up as late as there.
            out.notes.append(
                f"cooldown.down is cooldown_on_scale_up {up}, the longer one, so that no "
                f"scale-in comes sooner after a scale-up than there; a scale-in after a "
                f"scale-in waits {up} too (Nomad Autoscaler: cooldown {down})"
            )
            down = up
    data["cooldown"] = {"up": up or down, "down": down}
    data["stabilization"] = {"up": "0s", "down": "0s"}
    if str(policy.get("on_check_error", "ignore")) == "fail":
        out.notes.append(
            "on_check_error = fail: here a failed check blocks scale-in only; the other "
            "checks may still scale up"
        )
    checks = blocks(policy.get("check"))
    if not checks:
        out.errors.append("the policy has no check")
    data["checks"] = []
    groups: dict[str, list[str]] = {}  # check group -> the names here of its checks
    for label, body in checks:
        name = _check(out, label or "check", body)
        if body.get("group") is not None:
            groups.setdefault(str(body["group"]), []).append(name)
    for group, members in groups.items():
        others = [n for n in out.names if n not in members]
        carry_group(out, group, members, _unique(policy_name(group), others))
    for key in sorted(set(policy) - {"check", "target", *_CARRIED_POLICY_KEYS}):
        out.notes.append(f"policy setting {key!r} is not carried")
    return out


_CARRIED_POLICY_KEYS = (
    "evaluation_interval",
    "cooldown",
    "cooldown_on_scale_up",
    "on_check_error",
    "__is_block__",
)


def policy_name(name: str) -> str:
    """`name` made a valid policy name: other characters become `-`."""
    cleaned = _NAME_CHARS.sub("-", name).strip("-._") or "policy"
    return cleaned if re.fullmatch(NAME_PATTERN, cleaned) else f"p-{cleaned}"


def _unique(name: str, taken: list[str]) -> str:
    """`name`, or `name-2`, `name-3`... when a check before it is named so already.

    Two labels may make one name (`cpu` and `cpu %` are both `cpu` here), and checks are
    matched with their values by name: a check we cannot run, named as one we run, would
    be read with that one's value and could scale in, where it must hold."""
    if name not in taken:
        return name
    k = 2
    while f"{name}-{k}" in taken:
        k += 1
    return f"{name}-{k}"


# --- parts --------------------------------------------------------------------------------


def _target(out: Translation, policy: Mapping[str, Any], target: Mapping[str, str] | None) -> None:
    """The target: the job's group, or the policy's `target` block (file policies)."""
    found = blocks(policy.get("target"))
    if target is not None and target.get("Job") and target.get("Group"):
        out.data["target"] = _nomad_target(target)
        for label, _ in found:
            if label not in (None, *_NOMAD_TARGETS):
                out.notes.append(f"target {label!r} is not carried: the job's group is scaled")
        return
    if not found:
        out.errors.append("no target: give a target block (nomad-target or aws-asg)")
        return
    label, body = found[0]
    if len(found) > 1:
        out.notes.append("only the first target block is carried")
    if label in _NOMAD_TARGETS or (label is None and "Job" in body):
        if not body.get("Job") or not body.get("Group"):
            out.errors.append(f"target {label!r} needs Job and Group")
            return
        out.data["target"] = _nomad_target(body)
    elif label == "aws-asg":
        _asg_target(out, body)
    else:
        out.errors.append(
            f"target {label!r} cannot be carried: only Nomad task groups (nomad-target) and "
            "aws-asg are scaled here"
        )


def _nomad_target(values: Mapping[str, Any]) -> dict[str, Any]:
    target = {"type": "nomad", "job": str(values["Job"]), "group": str(values["Group"])}
    namespace = values.get("Namespace")
    if namespace and namespace != "default":
        target["namespace"] = str(namespace)
    if values.get("Region"):
        target["region"] = str(values["Region"])
    return target


def _asg_target(out: Translation, body: Mapping[str, Any]) -> None:
    name = body.get("aws_asg_name")
    if not isinstance(name, str) or not name:
        out.errors.append("target 'aws-asg' needs aws_asg_name")
        return
    out.data["target"] = {"type": "aws-asg", "asg": name}
    out.notes.append(
        "aws-asg: the region comes from the AWS environment here (the agent's target "
        "configuration is not read); set target.region if it differs"
    )
    if str(body.get("dry-run", "false")).lower() == "true":
        out.data["dry_run"] = True
    dropped = [key for key in _AWS_NODE_SETTINGS if key in body]
    if dropped:
        out.notes.append(
            f"{', '.join(dropped)}: nodes are not selected, drained or purged here; a "
            "scale-in lowers DesiredCapacity and AWS terminates the instances it picks"
        )
    for key in sorted(set(body) - {"aws_asg_name", "dry-run", "__is_block__", *_AWS_NODE_SETTINGS}):
        out.notes.append(f"aws-asg setting {key!r} is not carried")


def _count(out: Translation, key: str, value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        out.errors.append(f"{key} must be a whole number, got {value!r}")
    return value


def _duration(out: Translation, key: str, value: Any) -> str | None:
    """A Go duration (`1m30s`, `1.5h`) as ours; None when absent."""
    if value is None:
        return None
    text = str(value).strip()
    seconds = go_duration(text)
    if seconds is None:
        out.errors.append(f"{key} {text!r} is not a duration such as 30s or 5m")
        return None
    rendered = format_duration(timedelta(seconds=seconds))
    if abs(timedelta(seconds=seconds).total_seconds() - seconds) > 1e-3:
        out.notes.append(f"{key} {text} is rounded to {rendered}")
    return rendered


def _seconds(rendered: str) -> float:
    """Seconds of a duration as `_duration` renders it (ours: `1m30s`, `2d`)."""
    return parse_duration(rendered, limit=timedelta.max).total_seconds()


def go_duration(text: str) -> float | None:
    """Seconds of a Go duration (`300ms`, `1h15m`, `1.5h`, `0`), or None when it is not one."""
    if text == "0":
        return 0.0
    parts = _GO_DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _GO_UNITS[u] for n, u in parts)


def _check(out: Translation, label: str, body: Mapping[str, Any]) -> str:
    """Carry check `label` into `out` (or into its unsupported ones); its name here."""
    name = _unique(policy_name(label), out.names)
    out.names.append(name)
    if name != label:
        out.notes.append(f"check {label!r} is named {name!r} here")
    _carry(out, name, body)
    return name


def _carry(out: Translation, name: str, body: Mapping[str, Any]) -> None:
    query = body.get("query")
    query = None if query is None else str(query)
    where = f"check {name!r}"

    def unsupported(reason: str) -> None:
        out.unsupported.append((name, query, reason))

    source = body.get("source")
    strategies = blocks(body.get("strategy"))
    if not strategies:
        unsupported("it has no strategy block")
        return
    strategy, config = strategies[0]
    if strategy != "fixed-value" and source != "prometheus":
        shown = "the Nomad APM (no source given)" if source is None else f"source {source!r}"
        unsupported(f'{shown} is not read here: only Prometheus (source = "prometheus")')
        return
    if strategy != "fixed-value" and not query:
        unsupported("it has no query")
        return
    for key, what in (
        ("query_window_offset", "the latest value is read, without offset"),
        ("on_error", "a failed check blocks scale-in only"),
    ):
        if key in body:
            out.notes.append(f"{where}: {key} is not carried: {what}")
    check: dict[str, Any] | None
    if strategy == "target-value":
        check = _target_value(out, where, config, unsupported)
    elif strategy == "threshold":
        check = _threshold(out, where, body, config, unsupported)
    elif strategy == "fixed-value":
        check = _fixed(config, unsupported)
    elif strategy == "pass-through":
        check = {"strategy": "pass-through"}
        out.notes.append(f"{where}: pass-through rounds the value up here (Nomad Autoscaler: down)")
    else:
        unsupported(
            f"strategy {strategy!r} is not carried: use target-value, threshold, fixed-value "
            "or pass-through"
        )
        return
    if check is None:
        return
    entry: dict[str, Any] = {"name": name, "strategy": check.pop("strategy")}
    if entry["strategy"] != "fixed":
        entry["query"] = query
    entry.update(check)
    out.data["checks"].append(entry)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _plain(value: float) -> int | float:
    """`70.0` as 70, so the YAML reads as written."""
    return int(value) if value.is_integer() and abs(value) < 1e15 else value


def _target_value(
    out: Translation, where: str, config: Mapping[str, Any], unsupported: Any
) -> dict[str, Any] | None:
    target = _number(config.get("target"))
    if target is None:
        unsupported(f"target-value needs a numeric target, got {config.get('target')!r}")
        return None
    if target <= 0:
        unsupported("target-value with target 0 (scale on any value above 0) is not carried")
        return None
    precision = _number(config.get("precision", 0.01))
    if precision is None or precision < 0:
        unsupported(f"precision {config.get('precision')!r} is not a number >= 0")
        return None
    _extra(out, where, "target-value", config, ("target", "precision"))
    return {"strategy": "target-value", "target": _plain(target), "tolerance": _plain(precision)}


def _threshold(
    out: Translation,
    where: str,
    body: Mapping[str, Any],
    config: Mapping[str, Any],
    unsupported: Any,
) -> dict[str, Any] | None:
    lower, upper = config.get("lower_bound"), config.get("upper_bound")
    step: dict[str, Any] = {}
    for key, ours, value in (("lower_bound", "above", lower), ("upper_bound", "below", upper)):
        if value is not None:
            number = _number(value)
            if number is None:
                unsupported(f"threshold {key} {value!r} is not a number")
                return None
            step[ours] = _plain(number)
    if not step:
        unsupported("threshold needs lower_bound and/or upper_bound")
        return None
    actions = [k for k in ("delta", "percentage", "value") if k in config]
    if len(actions) != 1:
        unsupported("threshold needs exactly one of delta, percentage or value")
        return None
    action = actions[0]
    amount = _number(config[action])
    if action == "value":
        unsupported(
            "threshold with value (an absolute count) is not carried: steps change the count"
        )
        return None
    if amount is None or amount == 0 or (action == "delta" and not amount.is_integer()):
        unsupported(f"threshold {action} {config[action]!r} does not change the count")
        return None
    change = f"{'+' if amount > 0 else '-'}{abs(amount):g}{'%' if action == 'percentage' else ''}"
    step["change"] = change
    if "above" in step:
        out.notes.append(
            f"{where}: lower_bound {step['above']:g} is exclusive here (Nomad Autoscaler: "
            "inclusive)"
        )
    if action == "percentage" and amount < 0:
        out.notes.append(
            f"{where}: a negative percentage removes at least one instance here (Nomad "
            "Autoscaler rounds the new count up)"
        )
    trigger = config.get("within_bounds_trigger", 5)
    out.notes.append(
        f"{where}: within_bounds_trigger {trigger} is not carried: the latest value decides "
        "(Nomad Autoscaler counts the points of the query window within bounds)"
    )
    if "query_window" in body:
        out.notes.append(f"{where}: query_window is not carried: the query is instant")
    _extra(
        out,
        where,
        "threshold",
        config,
        ("lower_bound", "upper_bound", action, "within_bounds_trigger"),
    )
    return {"strategy": "threshold", "steps": [step]}


def _fixed(config: Mapping[str, Any], unsupported: Any) -> dict[str, Any] | None:
    value = _number(config.get("value"))
    if value is None or value < 0 or not value.is_integer():
        unsupported(f"fixed-value needs a whole value >= 0, got {config.get('value')!r}")
        return None
    return {"strategy": "fixed", "count": int(value)}


def _extra(
    out: Translation, where: str, strategy: str, config: Mapping[str, Any], known: Sequence[str]
) -> None:
    for key in sorted(set(config) - {*known, "__is_block__"}):
        out.notes.append(f"{where}: {strategy} setting {key!r} is not carried")


# --- block shapes -------------------------------------------------------------------------


def blocks(value: Any) -> list[Block]:
    """The blocks of a key, as (label, body): from Nomad's JSON (`[{label: [body]}]`) or
    python-hcl2's (`[{label: body}]`, or `[body]` for a block without a label)."""
    found: list[Block] = []
    for entry in value if isinstance(value, list) else []:
        if not isinstance(entry, dict):
            continue
        if entry.get("__is_block__") or not _labelled(entry):
            found.append((None, entry))
            continue
        for label, body in entry.items():
            if isinstance(body, list):
                found.extend((str(label), b) for b in body if isinstance(b, dict))
            elif isinstance(body, dict):
                found.append((str(label), body))
    return found


def _labelled(entry: Mapping[str, Any]) -> bool:
    """Whether `{key: value}` is a label and its body rather than a block's attributes."""
    if len(entry) != 1:
        return False
    (body,) = entry.values()
    return isinstance(body, dict) or (
        isinstance(body, list) and len(body) == 1 and isinstance(body[0], dict)
    )


# --- discovery: Nomad's stored policies ---------------------------------------------------


def policy_from_nomad(
    found: NomadScalingPolicy, *, name: str, file: str, load: Any
) -> tuple[model.Policy | None, list[Problem]]:
    """Our policy for one of Nomad's stored scaling policies, or why there is none.

    `load(data, file)` validates our policy data (`loader.load_data`). Checks that cannot
    be carried become checks that always fail with their reason; what is carried
    differently is listed in the policy's description.
    """
    target = {k: str(v) for k, v in found.target.items()}
    done = translate(
        name,
        enabled=found.enabled,
        min_count=found.min,
        max_count=found.max,
        policy=found.policy,
        target=target,
    )
    if done.errors:
        return None, [Problem(file, 1, "(policy)", error) for error in done.errors]
    data = done.data
    carried = bool(data["checks"])
    if not carried:  # validated with a stand-in check, then left with the failing ones
        data = {**data, "checks": [{"name": "placeholder", "strategy": "fixed", "count": 0}]}
    notes = "; ".join(done.notes)
    data["description"] = f"Nomad scaling policy {found.id}" + (
        f"; not carried exactly: {notes}" if notes else ""
    )
    policy, problems = load(data, file)
    if policy is None:
        return None, problems
    checks = list(policy.checks) if carried else []
    for check_name, query, reason in done.unsupported:
        checks.append(
            model.Check(
                name=check_name,
                strategy=model.Strategy.PASS_THROUGH,
                query=query,
                unsupported=f"unsupported: {reason}; this check never counts (it holds scale-in)",
            )
        )
    order = done.names  # the check blocks' order, by the names given here
    checks.sort(key=lambda c: order.index(c.name) if c.name in order else len(order))
    return replace(policy, checks=tuple(checks)), []
