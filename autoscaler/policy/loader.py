"""Policy files -> validated `Policy` values, or every problem found, each at FILE:LINE: FIELD;
and beside either, warnings (`PolicyWarning`): valid but most likely not meant.

The pipeline: `yaml_lines` turns text into plain data plus a line table; the pydantic
models of `policy_schema` check each value; `policy_rules` checks fields against each other;
this module locates every finding, names duplicates across files, and builds the frozen
dataclasses of `model.py`. `load_paths` never raises: a broken file only drops its own
policies, so the service can keep running the others. A warning drops nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from pydantic import TypeAdapter, ValidationError

from autoscaler.core import model
from autoscaler.core.durations import parse_duration
from autoscaler.errors import PolicyError, PolicyWarning, Problem
from autoscaler.policy.conflicts import Claims, Located
from autoscaler.policy.parallel import map_files
from autoscaler.policy.problems import field_name, problem_from_error
from autoscaler.policy.rules import (
    Finding,
    check_findings,
    policy_findings,
    schedule_findings,
    utc_time,
)
from autoscaler.policy.schema import (
    NAME_PATTERN,
    QUERY_OFFSET,
    AnomalyModel,
    CheckModel,
    ForecastModel,
    PolicyFile,
    PolicyModel,
    ScheduleModel,
    StepModel,
    TargetModel,
)
from autoscaler.policy.template_schema import template_schema
from autoscaler.policy.templates import Template, build_template, is_template
from autoscaler.policy.warning_rules import policy_warnings
from autoscaler.policy.yaml_lines import Document, YamlSyntaxError, load_documents
from autoscaler.policy.yaml_lines import Path as DataPath

__all__ = [
    "FileLoad",
    "LoadResult",
    "expand_paths",
    "json_schema",
    "load_data",
    "load_file",
    "load_paths",
    "load_text",
]

_CHECK = TypeAdapter[CheckModel](CheckModel)
_SCHEDULE = TypeAdapter(ScheduleModel)
T = TypeVar("T")


@dataclass(frozen=True)
class LoadResult:
    """What `load_paths` found: the valid policies, every problem, the files it read, the
    valid policy templates (`for_each`), which discovery expands into more policies, and
    every warning (which refuses nothing)."""

    policies: list[model.Policy]
    problems: list[Problem]
    files: list[Path]
    templates: list[Template] = field(default_factory=list)
    warnings: list[PolicyWarning] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FileLoad:
    """One file read and validated on its own: its policies and templates, or its problems
    (never both); and its warnings, with either.

    `path` is the file's path as text (as given to `load_file`), or a discovered target's
    pseudo-file (`service.registry`), its key: a `Path` kept for each of 10,000 files held
    2.3 MB more.
    """

    path: str
    policies: Sequence[Located]
    problems: Sequence[Problem]
    templates: Sequence[Template] = ()
    warnings: Sequence[PolicyWarning] = ()


def load_text(text: str, file: str) -> list[model.Policy]:
    """The policies of one file's text; raise PolicyError listing every problem found.

    Templates in the text are validated, but not returned (they need discovery); warnings
    are left out.
    """
    loaded, _, problems, _ = _load(text, file)
    if problems:
        raise PolicyError(problems)
    return [item.policy for item in loaded]


def load_data(data: dict[str, Any], file: str) -> tuple[model.Policy | None, list[Problem]]:
    """One policy from plain data (not YAML text: e.g. translated from another tool's
    format), validated like a file's; problems are at line 1 of `file`. Warnings are left
    out: the data is no file its author could change."""
    problems: list[Problem] = []
    validated = _validated(_Item(data, Document(data, {(): 1}), ()), file, problems)
    return (None if validated is None else validated[1]), problems


def load_file(path: Path) -> FileLoad:
    """Read and validate one file, without looking at any other; never raises.

    A file with any problem contributes none of its policies.
    """
    file = str(path)  # one string for the load, its problems and its policies' sources
    try:
        text = _read_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        return FileLoad(file, [], [Problem(file, 1, "(file)", f"cannot read the file: {exc}")])
    loaded, templates, problems, warnings = _load(text, file)
    if problems:
        return FileLoad(file, (), problems, (), warnings or ())
    return FileLoad(file, loaded, (), templates or (), warnings or ())  # no empty list per file


def _read_text(path: Path) -> str:
    """The file's text, as `open(path, encoding="utf-8").read()` gives it (same errors,
    line ends `\r\n` and `\r` read as `\n`), without the text and buffer layers: setting
    those up took as long as reading a small policy file."""
    with open(path, "rb", buffering=0) as file:
        text = file.read().decode("utf-8")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def load_paths(paths: Sequence[str | Path], *, workers: int = 1) -> LoadResult:
    """Load files and folders (`*.yaml`, `*.yml`, not recursive); never raise for bad files.

    A broken file contributes its problems and none of its policies. A policy whose name is
    already taken by an earlier one is dropped, with a problem naming both places; so is an
    enabled policy whose target an earlier enabled policy already scales (`conflicts`).
    Warnings drop nothing: they are only listed.
    With `workers` > 1, many files are read by that many processes (`policy.parallel`;
    only from a process that has not started threads), with the same result.
    """
    problems: list[Problem] = []
    files = expand_paths(paths, problems)
    policies: list[model.Policy] = []
    templates: list[Template] = []
    warnings: list[PolicyWarning] = []
    claims = Claims()
    for found in map_files(load_file, FileLoad, files, workers=workers):
        problems.extend(found.problems)
        templates.extend(found.templates)
        warnings.extend(found.warnings)
        policies += claims.admit(found.policies, problems)
    return LoadResult(
        policies=policies, problems=problems, files=files, templates=templates, warnings=warnings
    )


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a policy file (one policy or template, or a list), from the
    validating models."""
    schema = TypeAdapter[Any](PolicyFile).json_schema()
    return template_schema(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Autoscaler policy file",
            "description": "One scaling policy, or a list of them. See POLICY_SPEC / README.",
            **schema,
        }
    )


def expand_paths(paths: Sequence[str | Path], problems: list[Problem]) -> list[Path]:
    """The policy files named by `paths` (folders: their `*.yaml`/`*.yml`), each once.

    A path that does not exist adds a problem to `problems`.
    """
    found: list[tuple[Path, str]] = []  # (as given, resolved)
    for given in paths:
        path = Path(given)
        try:
            is_dir, is_file = path.is_dir(), path.is_file()
        except OSError as exc:  # a folder on the way that cannot be entered
            message = f"cannot be reached: {exc.strerror or exc} (check the folders' permissions)"
            problems.append(Problem(str(path), 1, "(file)", message))
            continue
        if is_dir:
            found.extend(_folder_files(path))
        elif is_file:
            found.append((path, str(path.resolve())))
        else:
            problems.append(Problem(str(path), 1, "(file)", "no such file or folder"))
    unique: dict[str, Path] = {}
    for path, resolved in found:
        unique.setdefault(resolved, path)
    return list(unique.values())


def _folder_files(folder: Path) -> list[tuple[Path, str]]:
    """The `*.yaml`/`*.yml` files of `folder` by name, each with its resolved path.

    One directory read and one `resolve` of the folder, not a `stat` and a `resolve` per
    file (a third of `validate`'s time at 10,000 files): only links are resolved one by one.
    A resolved path is kept as text (what `str` of the resolved `Path` gives), only to
    tell when two names lead to one file.
    """
    with os.scandir(folder) as scan:
        entries = sorted(
            (entry for entry in scan if os.path.splitext(entry.name)[1] in (".yaml", ".yml")),
            key=lambda entry: entry.name,
        )
    real = str(folder.resolve())
    return [
        (
            folder / e.name,
            str((folder / e.name).resolve()) if e.is_symlink() else os.path.join(real, e.name),
        )
        for e in entries
        if e.is_file()
    ]


# --- one file -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    """One policy's raw data, its document, and its path within the document."""

    data: Any
    doc: Document
    prefix: DataPath

    def line(self, path: DataPath = ()) -> int:
        return self.doc.line_of((*self.prefix, *path))


_Loaded = tuple[list[Located], list[Template], list[Problem], list[PolicyWarning]]


def _load(text: str, file: str) -> _Loaded:
    """One file's policies, templates, problems and warnings."""
    try:
        return _load_unsafe(text, file)
    except Exception as exc:  # a bug here must not take the service down
        message = f"internal error while validating ({type(exc).__name__}: {exc}); please report"
        return [], [], [Problem(file, 1, "(file)", message)], []


def _load_unsafe(text: str, file: str) -> _Loaded:
    try:
        docs, issues = load_documents(text)
    except YamlSyntaxError as exc:
        return [], [], [Problem(file, i.line, "(yaml)", i.message) for i in exc.issues], []
    problems = [_issue_problem(file, docs, i.path, i.line, i.message) for i in issues]
    items = _items(docs, file, problems)
    if not items and not problems:
        message = "no policy found: write a mapping with target, min, max and checks"
        problems.append(Problem(file, 1, "(file)", message))
    _default_name(items, file, problems)
    loaded: list[Located] = []
    templates: list[Template] = []
    warnings: list[PolicyWarning] = []
    for item in items:
        if is_template(item.data):
            template = _template(item, file, problems, warnings)
            if template is not None:
                templates.append(template)
            continue
        policy = _validate(item, file, problems, warnings)
        if policy is not None:
            loaded.append(Located(policy, item.line(("name",))))
    names = Claims(targets=False)  # within one file, a duplicate name breaks the file
    for entry in loaded:
        duplicate = names.conflict(entry)
        if duplicate is None:
            names.claim(entry)
        else:
            problems.append(duplicate)
    problems.sort(key=lambda p: p.line)  # stable: same-line problems keep their order
    warnings.sort(key=lambda w: w.line)
    return loaded, templates, problems, warnings


def _template(
    item: _Item, file: str, problems: list[Problem], warnings: list[PolicyWarning]
) -> Template | None:
    """A template (`for_each`): checked by `templates`, its body checked here as a policy
    (its warnings are the template's, said once, not once per target it expands to)."""
    return build_template(
        item.data,
        file=file,
        line=item.line,
        problems=problems,
        validate_body=lambda data: _validated(
            _Item(data, item.doc, item.prefix), file, problems, warnings
        ),
        text=repr(item.data),
    )


def _issue_problem(file: str, docs: list[Document], path: DataPath, line: int, msg: str) -> Problem:
    in_list = any(isinstance(d.data, list) for d in docs)
    inner = path[1:] if in_list and path and isinstance(path[0], int) else path
    return Problem(file, line, field_name(inner), msg)


def _items(docs: list[Document], file: str, problems: list[Problem]) -> list[_Item]:
    items: list[_Item] = []
    for doc in docs:
        if isinstance(doc.data, dict):
            items.append(_Item(doc.data, doc, ()))
        elif isinstance(doc.data, list):
            items.extend(_Item(data, doc, (i,)) for i, data in enumerate(doc.data))
        else:
            items.append(_Item(doc.data, doc, ()))
    good = []
    for item in items:
        if isinstance(item.data, dict):
            good.append(item)
        else:
            message = "a policy must be a mapping of keys such as name, target, min, max, checks"
            problems.append(Problem(file, item.line(), "(policy)", message))
    return good


def _default_name(items: list[_Item], file: str, problems: list[Problem]) -> None:
    """`name` defaults to the file's stem, but only in a file that holds one policy."""
    missing = [item for item in items if item.data.get("name") is None]
    if len(items) == 1 and missing:
        stem = Path(file).stem
        if re.fullmatch(NAME_PATTERN, stem):
            items[0].data["name"] = stem
            return
        message = f"missing, and the file name {stem!r} is not a valid name: add `name: ...`"
        problems.append(Problem(file, items[0].line(), "name", message))
        return
    for item in missing:
        message = "missing: each policy needs a name when a file holds several policies"
        problems.append(Problem(file, item.line(), "name", message))


def _validate(
    item: _Item, file: str, problems: list[Problem], warnings: list[PolicyWarning]
) -> model.Policy | None:
    validated = _validated(item, file, problems, warnings)
    return None if validated is None else validated[1]


def _validated(
    item: _Item, file: str, problems: list[Problem], warnings: list[PolicyWarning] | None = None
) -> tuple[PolicyModel, model.Policy] | None:
    """The item validated (model and policy), or None with its problems added; its
    warnings (once its structure is valid) are added to `warnings`, if given."""
    _restore_changes(item)
    before = len(problems)
    problems.extend(_duplicate_names(item, file))
    try:
        parsed = PolicyModel.model_validate(item.data)
    except ValidationError as exc:
        for error in exc.errors():
            path, message = problem_from_error(error, lambda path: _plain(item, path))
            line, message = _query_position(item, path, message, error.get("ctx"))
            problems.append(Problem(file, line, field_name(path), message))
        problems.extend(_locate(item, file, _salvaged_findings(item.data)))
        return None
    problems.extend(_locate(item, file, policy_findings(parsed)))
    if warnings is not None:
        warnings.extend(
            PolicyWarning(file, item.line(path), field_name(path), message)
            for path, message in policy_warnings(parsed)
        )
    if len(problems) > before or parsed.name is None:  # a missing name is reported already
        return None
    return parsed, _to_policy(parsed, model.Source(file=file, line=item.line()))


def _plain(item: _Item, path: DataPath) -> bool:
    """Whether the scalar at `path` was written without quotes, tag or block indicator:
    YAML chose its type from its look."""
    span = item.doc.spans.get((*item.prefix, *path))
    first = item.doc.text[span[0] : span[0] + 1] if span is not None else ""
    return first != "" and first not in _NOT_PLAIN


_NOT_PLAIN = frozenset("'\"!|>")  # how a quoted, tagged or block scalar starts


def _query_position(
    item: _Item, path: DataPath, message: str, context: dict[str, Any] | None
) -> tuple[int, str]:
    """The line of a problem, and for a PromQL error the line within a multi-line query,
    with the column and the text found there added to the message."""
    offset = (context or {}).get(QUERY_OFFSET)
    where = item.doc.position((*item.prefix, *path), offset) if isinstance(offset, int) else None
    if where is None:
        return item.line(path), message
    line, column = where
    query = item.doc.raw.get((*item.prefix, *path), "")
    near = query[offset:].split("\n")[0].strip()[:24]
    shown = f"at {near!r}" if near else "at the end of the query"
    return line, f"{message} (column {column}, {shown})"


def _restore_changes(item: _Item) -> None:
    """Unquoted `change: +2` reaches us as the integer 2; take back the text the user wrote."""
    for i, check in enumerate(_entries(item.data, "checks")):
        steps = check.get("steps") if isinstance(check, dict) else None
        for j, step in enumerate(steps if isinstance(steps, list) else []):
            value = step.get("change") if isinstance(step, dict) else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                raw = item.doc.raw.get((*item.prefix, "checks", i, "steps", j, "change"))
                if raw is not None:  # checked as text, so `2` is told to write "+2"
                    step["change"] = raw


def _duplicate_names(item: _Item, file: str) -> list[Problem]:
    """Two checks of one name (two schedules of one name are a warning: `policy_warnings`)."""
    problems: list[Problem] = []
    first: dict[str, int] = {}
    for i, entry in enumerate(_entries(item.data, "checks")):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            continue
        if name in first:
            j = first[name]
            message = (
                f"duplicate name '{name}': also used by checks[{j}] at "
                f"{file}:{item.line(('checks', j, 'name'))}; names are unique within a policy"
            )
            path = ("checks", i, "name")
            problems.append(Problem(file, item.line(path), field_name(path), message))
        else:
            first[name] = i
    return problems


def _salvaged_findings(data: dict[str, Any]) -> list[Finding]:
    """Cross-field findings for the checks and schedules that are valid on their own."""
    found: list[Finding] = []
    for i, entry in enumerate(_entries(data, "checks")):
        with contextlib.suppress(ValidationError):  # its errors are reported already
            found += check_findings(_CHECK.validate_python(entry), ("checks", i))
    for i, entry in enumerate(_entries(data, "schedules")):
        with contextlib.suppress(ValidationError):
            found += schedule_findings(_SCHEDULE.validate_python(entry), ("schedules", i))
    return found


def _entries(data: dict[str, Any], key: str) -> list[Any]:
    entries = data.get(key)
    return entries if isinstance(entries, list) else []


def _locate(item: _Item, file: str, findings: list[Finding]) -> list[Problem]:
    return [Problem(file, item.line(path), field_name(path), msg) for path, msg in findings]


# --- pydantic models -> model.py dataclasses ----------------------------------------------

# The enum members by value, as `Enum(value)` finds them (its lookup is slow in Python 3.11);
# the values were validated against the same enums.
_MISSING_DATA = {member.value: member for member in model.MissingData}
_STRATEGIES = {member.value: member for member in model.Strategy}


def _to_policy(p: PolicyModel, source: model.Source) -> model.Policy:
    assert p.name is not None  # set by _default_name or reported missing
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
