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
Expanding it for one discovered target (`policy.expansion`) substitutes the placeholders in
`name`, `description`, `target`, the `group_by` values and the `triggers.alerts` names, and
applies the target's own overrides. Expanded policies share every part the template gives
them (schedules, limits, cooldowns, check settings): only what differs per target is built
per target, so 10,000 of them stay small.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autoscaler.core import model
from autoscaler.core.discovered import AsgGroup, NomadGroup
from autoscaler.errors import Problem
from autoscaler.policy.problems import field_name, problem_from_error
from autoscaler.policy.schema import PolicyModel

__all__ = ["PLACEHOLDERS", "Template", "build_template", "fill", "is_template"]

Kind = Literal["nomad", "aws_asg"]
Discovered = NomadGroup | AsgGroup
# `validate_body(data)` checks a policy's data as the loader does, adding located problems;
# the validated model and policy back, or None when it has problems.
ValidateBody = Callable[[dict[str, Any]], tuple[PolicyModel, model.Policy] | None]

PLACEHOLDERS: Mapping[Kind, tuple[str, ...]] = {
    "nomad": ("job", "group", "namespace"),
    "aws_asg": ("asg",),
}
_EVERY_PLACEHOLDER = frozenset(name for names in PLACEHOLDERS.values() for name in names)
# What validation substitutes for each placeholder (any valid value would do).
_SAMPLES = {"job": "job", "group": "group", "namespace": "default", "asg": "asg"}
# The target fields that must name the discovered object, and their placeholder.
_IDENTITY: Mapping[Kind, Mapping[str, str]] = {
    "nomad": {"job": "{job}", "group": "{group}", "namespace": "{namespace}"},
    "aws_asg": {"asg": "{asg}"},
}
_TARGET_TYPE: Mapping[Kind, str] = {"nomad": "nomad", "aws_asg": "aws-asg"}
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
    region: str | None = Field(
        None, min_length=1, description="AWS region; default from the environment."
    )


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
    # triggers.alerts as written when one holds a placeholder; else () (the prototype's are
    # every expansion's)
    alerts: tuple[str, ...]
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
        _untemplated_queries(body, kind, problem)
        _default_target(body, kind, for_each, problem)
    elif "target" not in body:
        # The default target is what for_each discovers, unknown while for_each is invalid:
        # the body is checked with a stand-in, not reported as lacking a target.
        stand_in: Kind = "aws_asg" if _names_source(data, "aws_asg") else "nomad"
        body["target"] = {"type": _TARGET_TYPE[stand_in], **_IDENTITY[stand_in]}
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
        alerts=_templated_alerts(body),
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
            elif error["type"] == "string_type" and len(path) == 3 and path[1] in ("meta", "tags"):
                message += _quote_hint(error.get("input"))
            problem(("for_each", *path), message)
        return None
    if (parsed.nomad is None) == (parsed.aws_asg is None):
        problem(("for_each",), "give exactly one source: nomad or aws_asg")
        return None
    return parsed


def _quote_hint(value: Any) -> str:
    """How to write `value` as the text a meta or tag value is (YAML read `true` unquoted
    as a boolean, `7` as a number); "" for a value that is no scalar."""
    if isinstance(value, bool):
        shown = f'"{str(value).lower()}"'
    elif isinstance(value, int):
        shown = f'"{value}"'
    elif isinstance(value, float):
        shown = "it"
    else:
        return ""
    return f": write {shown} in quotes (meta and tag values are text)"


def _names_source(data: dict[str, Any], source: str) -> bool:
    """Whether the template's `for_each`, valid or not, is a mapping with key `source`."""
    value = data.get("for_each")
    return isinstance(value, dict) and source in value


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


def _untemplated_queries(
    body: dict[str, Any], kind: Kind, problem: Callable[[tuple[str | int, ...], str], None]
) -> None:
    """A placeholder in a query is a mistake: queries are sent as written (one per template
    per tick), so `{job="{job}"}` would ask for a job literally named {job}, and every target
    would hold for want of data. The target's series is chosen with `group_by`."""
    checks = body.get("checks")
    for i, check in enumerate(checks if isinstance(checks, list) else []):
        query = check.get("query") if isinstance(check, dict) else None
        if not isinstance(query, str):
            continue
        # Any source's: `{job}` in an aws_asg template's query is as literal (it passed).
        used = [n for n in _PLACEHOLDER.findall(query) if n in _EVERY_PLACEHOLDER]
        if used and used[0] not in PLACEHOLDERS[kind]:
            problem(
                ("checks", i, "query"),
                f"{{{used[0]}}} in a query is sent as is, and is no placeholder of "
                f"for_each {kind} (use {_listed(kind)}); aggregate by a label instead and "
                "pick this target's series with group_by",
            )
        elif used:
            name = used[0]
            problem(
                ("checks", i, "query"),
                f"{{{name}}} in a query is sent as is (queries are not templated: one query "
                f"serves every target); aggregate by the label instead, e.g. "
                f"'sum by ({name}) (...)', and pick this target's series with "
                f'group_by: {{{name}: "{{{name}}}"}}',
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
    # The region too: an object of the same name elsewhere never opted in.
    if kind == "aws_asg":
        region = for_each.aws_asg.region if for_each and for_each.aws_asg else None
        if "region" not in target:
            if region:
                target["region"] = region
        elif target["region"] != region:
            where = (
                f"must be {region!r} (for_each's region) or left out"
                if region
                else "must be left out, or set as for_each.aws_asg.region"
            )
            problem(("target", "region"), f"{where}: a template scales what it discovers")
    elif "region" in target:
        problem(
            ("target", "region"),
            "must be left out: a template scales the jobs it discovers, in the region "
            "discovery reads (the connection's: NOMAD_REGION or nomad.region)",
        )


def _templated_texts(body: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """The texts where placeholders are substituted: name, description, target values and
    alert names (matched exactly: `Slow-{job}` must become `Slow-shop` to ever match)."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    for key in ("name", "description"):
        if isinstance(body.get(key), str):
            found.append(((key,), body[key]))
    target = body.get("target")
    if isinstance(target, dict):
        found += [(("target", k), v) for k, v in target.items() if isinstance(v, str)]
    alerts = _alerts(body)
    found += [(("triggers", "alerts", i), a) for i, a in enumerate(alerts) if isinstance(a, str)]
    return found


def _alerts(body: dict[str, Any]) -> list[Any]:
    triggers = body.get("triggers")
    alerts = triggers.get("alerts") if isinstance(triggers, dict) else None
    return alerts if isinstance(alerts, list) else []


def _templated_alerts(body: dict[str, Any]) -> tuple[str, ...]:
    """`Template.alerts`: the alert names as written when one holds a placeholder, else ()."""
    written = tuple(str(a) for a in _alerts(body))
    return written if any(_PLACEHOLDER.search(a) for a in written) else ()


def _substitute(body: dict[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    """A copy of `body` with placeholders replaced in name, description, target and alert
    names."""
    out = dict(body)
    for key in ("name", "description"):
        if isinstance(out.get(key), str):
            out[key] = fill(out[key], values)
    if isinstance(out.get("target"), dict):
        out["target"] = {
            k: fill(v, values) if isinstance(v, str) else v for k, v in out["target"].items()
        }
    if written := _alerts(out):
        alerts = [fill(a, values) if isinstance(a, str) else a for a in written]
        out["triggers"] = {**out["triggers"], "alerts": alerts}
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
