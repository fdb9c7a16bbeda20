"""Policy templates: one YAML policy with `for_each`, expanded into a policy per discovered target.

    name: "web-{job}-{group}"
    for_each:
      nomad: {meta: {autoscaler.enabled: "true"}}        # or aws_asg: {tags: {...}}
    target: {type: nomad, job: "{job}", group: "{group}"}
    min: 1
    max: 20
    checks:
      - name: rps
        query: 'sum by (job) (rate(http_requests_total[2m]))'
        group_by: {job: "{job}"}
        strategy: per-instance
        target: 10

A template is validated offline, on its own: `for_each`, the placeholders (`{job}`,
`{group}`, `{namespace}` for Nomad; `{asg}` for Auto Scaling Groups) and the body, which is
checked as a policy whose placeholders hold sample values, with every problem at its line.
Expanding it for one discovered target (`expand`) substitutes the placeholders in `name`,
`description`, `target` and the `group_by` values, and applies the target's own overrides
(Nomad meta `autoscaler.*`, ASG tags `autoscaler:*`, see `OVERRIDES`); an override that is
not valid is that target's problem only. Expanded policies share every part the template
gives them (schedules, limits, cooldowns, check settings): only what differs per target is
built per target, so 10,000 of them stay small.
"""

from __future__ import annotations

import copy
import functools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autoscaler.core import model
from autoscaler.core.discovered import AsgGroup, NomadGroup
from autoscaler.core.durations import parse_duration
from autoscaler.core.ranges import MAX_COUNT
from autoscaler.errors import Problem
from autoscaler.policy.conflicts import Located
from autoscaler.policy.problems import field_name, problem_from_error
from autoscaler.policy.rules import policy_findings
from autoscaler.policy.schema import NAME_PATTERN, PolicyModel

__all__ = [
    "NOMAD_META_PREFIX",
    "OVERRIDES",
    "PLACEHOLDERS",
    "TAG_PREFIX",
    "Template",
    "build_template",
    "expand",
    "is_template",
    "template_schema",
]

Kind = Literal["nomad", "aws_asg"]
Discovered = NomadGroup | AsgGroup
# `validate_body(data)` checks a policy's data as the loader does, adding located problems;
# the validated model and policy back, or None when it has problems.
ValidateBody = Callable[[dict[str, Any]], tuple[PolicyModel, model.Policy] | None]

PLACEHOLDERS: Mapping[Kind, tuple[str, ...]] = {
    "nomad": ("job", "group", "namespace"),
    "aws_asg": ("asg",),
}
# What validation substitutes for each placeholder (any valid value would do).
_SAMPLES = {"job": "job", "group": "group", "namespace": "default", "asg": "asg"}
# The target fields that must name the discovered object, and their placeholder.
_IDENTITY: Mapping[Kind, Mapping[str, str]] = {
    "nomad": {"job": "{job}", "group": "{group}", "namespace": "{namespace}"},
    "aws_asg": {"asg": "{asg}"},
}
_TARGET_TYPE: Mapping[Kind, str] = {"nomad": "nomad", "aws_asg": "aws-asg"}
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
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME = re.compile(NAME_PATTERN)
_WHOLE = re.compile(r"^[0-9]+$")


# --- the for_each block -------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class NomadForEach(_Strict):
    """Every task group whose job or group `meta` holds all these pairs (group wins)."""

    model_config = ConfigDict(title="for_each nomad")
    meta: dict[str, str] = Field(
        min_length=1, description='Meta pairs that opt in, e.g. {autoscaler.enabled: "true"}.'
    )
    namespace: str = Field(
        "*", min_length=1, description="Namespace to look in; * (default): every readable one."
    )


class AsgForEach(_Strict):
    """Every Auto Scaling Group carrying all these tags."""

    model_config = ConfigDict(title="for_each aws_asg")
    tags: dict[str, str] = Field(
        min_length=1, description='Tags that opt in, e.g. {"autoscaler:enabled": "true"}.'
    )
    region: str | None = Field(None, description="AWS region; default from the environment.")


class ForEachModel(_Strict):
    """Where the targets of a template come from: exactly one source."""

    model_config = ConfigDict(title="for_each")
    nomad: NomadForEach | None = Field(None, description="Nomad task groups opted in by meta.")
    aws_asg: AsgForEach | None = Field(None, description="Auto Scaling Groups opted in by tags.")


# --- a validated template -----------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Template:
    """A validated template: what it matches, and the policy it expands to per target.

    `prototype` and `body` are the template validated with sample placeholder values; an
    expansion replaces only what differs per target. Compared by identity: a reload makes
    new templates, and an unchanged one is recognized by `same_as`.
    """

    pattern: str  # the name with its placeholders
    kind: Kind
    match: Mapping[str, str]  # meta (nomad) or tags (aws_asg) that opt in
    namespace: str  # nomad: where to look ("*": everywhere)
    region: str | None  # aws_asg
    description: str
    group_by: tuple[tuple[int, tuple[tuple[str, str], ...]], ...]  # (check index, label pairs)
    body: PolicyModel
    prototype: model.Policy
    name_line: int
    text: str  # the template as written, to recognize an unchanged one after a reload

    @property
    def source(self) -> model.Source:
        return self.prototype.source

    @property
    def where(self) -> str:
        return f"{self.source.file}:{self.name_line}"

    def same_as(self, other: Template) -> bool:
        """Whether `other` is this template again (same file, place and text)."""
        return self is other or (self.where == other.where and self.text == other.text)

    def describe(self) -> str:
        """`web-{job}-{group} (nomad meta autoscaler.enabled=true)`, for listings."""
        pairs = ", ".join(f"{k}={v}" for k, v in self.match.items())
        what = "nomad meta" if self.kind == "nomad" else "aws_asg tags"
        return f"{self.pattern} ({what} {pairs})"

    def matches(self, found: Discovered) -> bool:
        """Whether discovery's `found` opts in to this template."""
        if isinstance(found, NomadGroup):
            if self.kind != "nomad" or self.namespace not in ("*", found.namespace):
                return False
            return all(found.meta.get(k) == v for k, v in self.match.items())
        if self.kind != "aws_asg" or (self.region and found.region != self.region):
            return False
        return all(found.tags.get(k) == v for k, v in self.match.items())


def is_template(data: Any) -> bool:
    """Whether a policy document is a template (it has `for_each`)."""
    return isinstance(data, dict) and "for_each" in data


def build_template(
    data: dict[str, Any],
    *,
    file: str,
    line: Callable[[tuple[str | int, ...]], int],
    problems: list[Problem],
    validate_body: ValidateBody,
    text: str,
) -> Template | None:
    """Validate a template's data; the `Template`, or None with `problems` added.

    `line(path)` gives the line of a path in the document; `validate_body` validates the
    body as the loader validates a policy (same messages, same lines).
    """
    before = len(problems)

    def problem(path: tuple[str | int, ...], message: str) -> None:
        problems.append(Problem(file, line(path), field_name(path), message))

    for_each = _for_each(data.get("for_each"), problem)
    kind: Kind | None = None
    if for_each is not None:
        kind = "nomad" if for_each.nomad is not None else "aws_asg"
    body = copy.deepcopy({k: v for k, v in data.items() if k != "for_each"})
    group_by = _group_by(body, kind, problem)
    if kind is not None:
        _placeholders(body, kind, problem)
        _default_target(body, kind, for_each, problem)
    sample = _substitute(body, _SAMPLES)
    validated = validate_body(sample)
    if validated is None or for_each is None or kind is None or len(problems) > before:
        return None
    parsed, prototype = validated
    if for_each.nomad is not None:
        match, namespace, region = for_each.nomad.meta, for_each.nomad.namespace, None
    else:
        assert for_each.aws_asg is not None
        match, namespace, region = for_each.aws_asg.tags, "*", for_each.aws_asg.region
    return Template(
        pattern=str(body.get("name")),
        kind=kind,
        match=dict(match),
        namespace=namespace,
        region=region,
        description=str(body.get("description") or ""),
        group_by=group_by,
        body=parsed,
        prototype=prototype,
        name_line=line(("name",)),
        text=text,
    )


def _for_each(value: Any, problem: Callable[[tuple[str | int, ...], str], None]) -> Any:
    if not isinstance(value, dict):
        problem(
            ("for_each",), "give one source: {nomad: {meta: {...}}} or {aws_asg: {tags: {...}}}"
        )
        return None
    try:
        parsed = ForEachModel.model_validate(value)
    except ValidationError as exc:
        for error in exc.errors():
            path, message = problem_from_error(error)
            if error["type"] == "extra_forbidden":
                message = f"unknown key {path[-1]!r}: use {', '.join(_fields_at(path[:-1]))}"
            problem(("for_each", *path), message)
        return None
    if (parsed.nomad is None) == (parsed.aws_asg is None):
        problem(("for_each",), "give exactly one source: nomad or aws_asg")
        return None
    return parsed


_NESTED: dict[str, type[BaseModel]] = {"nomad": NomadForEach, "aws_asg": AsgForEach}


def _fields_at(path: tuple[str | int, ...]) -> list[str]:
    """The keys allowed at `path` inside `for_each`."""
    current: type[BaseModel] = ForEachModel
    for key in path:
        nested = _NESTED.get(str(key))
        if current is not ForEachModel or nested is None:
            return []
        current = nested
    return list(current.model_fields)


def _group_by(
    body: dict[str, Any], kind: Kind | None, problem: Callable[[tuple[str | int, ...], str], None]
) -> tuple[tuple[int, tuple[tuple[str, str], ...]], ...]:
    """Each check's `group_by` (taken out of the body), checked: labels -> placeholders."""
    found: list[tuple[int, tuple[tuple[str, str], ...]]] = []
    checks = body.get("checks")
    for i, check in enumerate(checks if isinstance(checks, list) else []):
        if not isinstance(check, dict) or "group_by" not in check:
            continue
        value = check.pop("group_by")
        path: tuple[str | int, ...] = ("checks", i, "group_by")
        if not isinstance(value, dict) or not value:
            problem(path, 'give labels and the placeholder each must equal, e.g. {job: "{job}"}')
            continue
        if "query" not in check:
            problem(path, "group_by needs a query: it picks this target's series of its result")
        pairs: list[tuple[str, str]] = []
        for label, pattern in value.items():
            if not isinstance(label, str) or not _LABEL_NAME.match(label):
                problem(path, f"{label!r} is not a Prometheus label name")
            elif not isinstance(pattern, str):
                problem((*path, label), f'expected text such as "{{job}}", got {pattern!r}')
            elif kind is not None and not _PLACEHOLDER.search(pattern):
                problem(
                    (*path, label),
                    f"{pattern!r} holds no placeholder: every target would read the same "
                    f"series; use {_listed(kind)}",
                )
            elif kind is not None and (
                unknown := [n for n in _PLACEHOLDER.findall(pattern) if n not in PLACEHOLDERS[kind]]
            ):
                problem(
                    (*path, label), f"unknown placeholder {{{unknown[0]}}}: use {_listed(kind)}"
                )
            else:
                pairs.append((label, pattern))
        found.append((i, tuple(pairs)))
    return tuple(found)


def _placeholders(
    body: dict[str, Any], kind: Kind, problem: Callable[[tuple[str | int, ...], str], None]
) -> None:
    """Placeholders are known ones, and the name tells targets apart."""
    known = PLACEHOLDERS[kind]
    for path, text in _templated_texts(body):
        for name in _PLACEHOLDER.findall(text):
            if name not in known:
                problem(path, f"unknown placeholder {{{name}}}: use {_listed(kind)}")
    name = body.get("name")
    if not isinstance(name, str):
        problem(("name",), f"a template needs a name with placeholders, e.g. {_example(kind)}")
        return
    needed = ("job", "group") if kind == "nomad" else ("asg",)
    missing = [p for p in needed if f"{{{p}}}" not in name]
    if missing:
        problem(
            ("name",),
            f"{name!r} lacks {', '.join('{' + p + '}' for p in missing)}: every expanded "
            f"policy needs its own name, e.g. {_example(kind)}",
        )


def _default_target(
    body: dict[str, Any],
    kind: Kind,
    for_each: ForEachModel | None,
    problem: Callable[[tuple[str | int, ...], str], None],
) -> None:
    """The target defaults to the discovered object; where given, it must name it."""
    target = body.setdefault("target", {"type": _TARGET_TYPE[kind]})
    if not isinstance(target, dict):
        return  # the body's validation says what is wrong
    if target.get("type") != _TARGET_TYPE[kind]:
        problem(
            ("target", "type"),
            f"for_each {kind} discovers {_TARGET_TYPE[kind]} targets: use type: "
            f"{_TARGET_TYPE[kind]}",
        )
        return
    for key, placeholder in _IDENTITY[kind].items():
        given = target.setdefault(key, placeholder)
        if given != placeholder:
            problem(
                ("target", key),
                f"must be {placeholder!r} (or left out): a template scales what it discovers",
            )
    region = for_each.aws_asg.region if for_each and for_each.aws_asg else None
    if kind == "aws_asg" and region and "region" not in target:
        target["region"] = region


def _templated_texts(body: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """The texts where placeholders are substituted: name, description, target values."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    for key in ("name", "description"):
        if isinstance(body.get(key), str):
            found.append(((key,), body[key]))
    target = body.get("target")
    if isinstance(target, dict):
        found += [(("target", k), v) for k, v in target.items() if isinstance(v, str)]
    return found


def _substitute(body: dict[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    """A copy of `body` with placeholders replaced in name, description and target."""
    out = dict(body)
    for key in ("name", "description"):
        if isinstance(out.get(key), str):
            out[key] = fill(out[key], values)
    if isinstance(out.get("target"), dict):
        out["target"] = {
            k: fill(v, values) if isinstance(v, str) else v for k, v in out["target"].items()
        }
    if isinstance(out.get("checks"), list):  # the loader writes into the checks it reads
        out["checks"] = [dict(c) if isinstance(c, dict) else c for c in out["checks"]]
    return out


def fill(pattern: str, values: Mapping[str, str]) -> str:
    """`pattern` with each `{placeholder}` replaced by its value (unknown ones kept)."""
    parts = _parts(pattern)
    if len(parts) == 1:
        return pattern
    # parts alternate: text, placeholder name, text, ... (split once per pattern)
    return "".join(
        part if i % 2 == 0 else values.get(part, "{" + part + "}") for i, part in enumerate(parts)
    )


@functools.lru_cache(maxsize=1024)
def _parts(pattern: str) -> tuple[str, ...]:
    return tuple(_PLACEHOLDER.split(pattern))


def _listed(kind: Kind) -> str:
    return ", ".join("{" + p + "}" for p in PLACEHOLDERS[kind])


def _example(kind: Kind) -> str:
    return '"web-{job}-{group}"' if kind == "nomad" else '"asg-{asg}"'


# --- expansion ----------------------------------------------------------------------------


def expand(template: Template, found: Discovered) -> Located | list[Problem]:
    """The policy `template` gives `found` (with its overrides), or that target's problems."""
    values = _values(found)
    problems: list[Problem] = []

    def problem(what: str, message: str) -> None:
        problems.append(Problem(template.source.file, template.name_line, what, message))

    name = fill(template.pattern, values)
    if not _NAME.match(name):
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
    return Located(policy, template.name_line)


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
        if not _WHOLE.match(text.strip()) or int(text) > MAX_COUNT:
            raise ValueError(f"expected a whole number from 0 to {MAX_COUNT}, got {text!r}")
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


# --- JSON Schema --------------------------------------------------------------------------


def template_schema(policy_schema: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a policy file with templates, from the policy file's schema.

    A template is a policy with `for_each` (required), `group_by` on its checks, and an
    optional `target`. The policy's `$defs` are reused; the template's are added beside.
    """
    schema = copy.deepcopy(policy_schema)
    defs = schema["$defs"]
    policy_name = _policy_def(defs)
    for_each = ForEachModel.model_json_schema(ref_template="#/$defs/{model}")
    defs.update(for_each.pop("$defs", {}))
    defs["ForEachModel"] = {
        **for_each,
        "oneOf": [{"required": ["nomad"]}, {"required": ["aws_asg"]}],
    }
    group_by = {
        "type": "object",
        "title": "group_by",
        "description": "Label -> placeholder: this target reads the series of the query whose "
        'labels equal the expanded values, e.g. {job: "{job}"}.',
        "additionalProperties": {"type": "string"},
        "minProperties": 1,
    }
    template = copy.deepcopy(defs[policy_name])
    items = template["properties"]["checks"]["items"]
    renamed: dict[str, str] = {}
    for ref in items.get("oneOf", []):
        name = ref["$ref"].rsplit("/", 1)[-1]
        if "query" in defs[name].get("properties", {}):
            variant = copy.deepcopy(defs[name])
            variant["properties"]["group_by"] = group_by
            variant["title"] = f"{variant.get('title', name)} in a template"
            defs[f"Template{name}"] = variant
            renamed[ref["$ref"]] = f"#/$defs/Template{name}"
    items["oneOf"] = [{"$ref": renamed.get(r["$ref"], r["$ref"])} for r in items.get("oneOf", [])]
    mapping = items.get("discriminator", {}).get("mapping", {})
    for tag, ref in mapping.items():
        mapping[tag] = renamed.get(ref, ref)
    template["title"] = "Scaling policy template"
    template["description"] = (
        "A policy per discovered target (for_each), with placeholders in name, description, "
        "target and group_by."
    )
    template["properties"]["name"] = {
        "type": "string",
        "description": "Name of each expanded policy, with placeholders, e.g. web-{job}-{group}.",
        "title": "Name",
    }
    template["properties"]["for_each"] = {
        "$ref": "#/$defs/ForEachModel",
        "description": "Where the targets come from: Nomad task groups or Auto Scaling Groups.",
    }
    template["properties"]["target"] = {
        **template["properties"]["target"],
        "description": "What to scale; default: the discovered object.",
    }
    template["required"] = sorted({*template.get("required", []), "for_each"} - {"target"})
    defs["TemplateModel"] = template
    one = [{"$ref": f"#/$defs/{policy_name}"}, {"$ref": "#/$defs/TemplateModel"}]
    schema["anyOf"] = [*one, {"type": "array", "items": {"anyOf": one}}]
    schema["description"] = (
        "One scaling policy or policy template, or a list of them. See POLICY_SPEC / README."
    )
    return schema


def _policy_def(defs: Mapping[str, Any]) -> str:
    """The name of the policy's definition in `$defs`."""
    title = PolicyModel.model_config.get("title")
    for name, definition in defs.items():
        if definition.get("title") == title:
            return name
    raise KeyError("no policy definition in the schema")
