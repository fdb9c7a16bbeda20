"""Policy files -> validated `Policy` values, or every problem found, each at FILE:LINE: FIELD;
and beside either, warnings (`PolicyWarning`): valid but most likely not meant.

The pipeline: `yaml_lines` turns text into plain data plus a line table; the pydantic
models of `schema` check each value; `rules` checks fields against each other;
this module locates every finding and names duplicates across files; `conversion` builds
the frozen dataclasses of `model.py` (and `files` lists the files a path names).
`load_paths` never raises: a broken file only drops its own policies, so the service can
keep running the others. A warning drops nothing.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from autoscaler.core import model
from autoscaler.errors import PolicyError, PolicyWarning, Problem
from autoscaler.policy.conflicts import Claims, Located
from autoscaler.policy.conversion import to_policy
from autoscaler.policy.files import dangling, expand_paths
from autoscaler.policy.parallel import map_files
from autoscaler.policy.problems import field_name, problem_from_error
from autoscaler.policy.rules import (
    Finding,
    check_findings,
    policy_findings,
    schedule_findings,
)
from autoscaler.policy.schema import CheckModel, PolicyFile, PolicyModel, ScheduleModel
from autoscaler.policy.template_schema import template_schema
from autoscaler.policy.templates import Template, build_template, is_template
from autoscaler.policy.value_types import NAME_PATTERN, QUERY_OFFSET
from autoscaler.policy.warning_rules import policy_warnings
from autoscaler.policy.yaml_lines import Document, YamlSyntaxError, load_documents
from autoscaler.policy.yaml_lines import Path as DataPath

__all__ = [
    "FileLoad",
    "LoadResult",
    "json_schema",
    "load_data",
    "load_file",
    "load_paths",
    "load_text",
]

_CHECK = TypeAdapter[CheckModel](CheckModel)
_SCHEDULE = TypeAdapter(ScheduleModel)


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


def load_file(path: Path, *, now: datetime | None = None) -> FileLoad:
    """Read and validate one file, without looking at any other; never raises.

    A file with any problem contributes none of its policies. With `now`, the warnings
    also name what is over by then (a one-off schedule that ended: `policy_warnings`).
    """
    file = str(path)  # one string for the load, its problems and its policies' sources
    try:
        text = _read_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        linked = isinstance(exc, FileNotFoundError) or getattr(exc, "errno", None) == errno.ELOOP
        why = dangling(path) if linked else None
        message = f"cannot read the file: {why or exc}"
        return FileLoad(file, [], [Problem(file, 1, "(file)", message)])
    loaded, templates, problems, warnings = _load(text, file, now)
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


def load_paths(
    paths: Sequence[str | Path], *, workers: int = 1, now: datetime | None = None
) -> LoadResult:
    """Load files and folders (`*.yaml`, `*.yml`, not recursive); never raise for bad files.

    A broken file contributes its problems and none of its policies. A policy whose name is
    already taken by an earlier one is dropped, with a problem naming both places; so is an
    enabled policy whose target an earlier enabled policy already scales (`conflicts`).
    Warnings drop nothing: they are only listed.
    With `workers` > 1, many files are read by that many processes (`policy.parallel`;
    only from a process that has not started threads), with the same result. `now`: as
    for `load_file` (`validate` gives its clock's time; the others leave it out).
    """
    problems: list[Problem] = []
    files = expand_paths(paths, problems)
    policies: list[model.Policy] = []
    templates: list[Template] = []
    warnings: list[PolicyWarning] = []
    claims = Claims()
    read = load_file if now is None else functools.partial(load_file, now=now)
    for found in map_files(read, FileLoad, files, workers=workers):
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


def _load(text: str, file: str, now: datetime | None = None) -> _Loaded:
    """One file's policies, templates, problems and warnings (as of `now`, if given)."""
    try:
        return _load_unsafe(text, file, now)
    except Exception as exc:  # a bug here must not take the service down
        message = f"internal error while validating ({type(exc).__name__}: {exc}); please report"
        return [], [], [Problem(file, 1, "(file)", message)], []


def _load_unsafe(text: str, file: str, now: datetime | None) -> _Loaded:
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
            template = _template(item, file, problems, warnings, now)
            if template is not None:
                templates.append(template)
            continue
        policy = _validate(item, file, problems, warnings, now)
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
    item: _Item,
    file: str,
    problems: list[Problem],
    warnings: list[PolicyWarning],
    now: datetime | None,
) -> Template | None:
    """A template (`for_each`): checked by `templates`, its body checked here as a policy
    (its warnings are the template's, said once, not once per target it expands to)."""
    return build_template(
        item.data,
        file=file,
        line=item.line,
        problems=problems,
        validate_body=lambda data: _validated(
            _Item(data, item.doc, item.prefix), file, problems, warnings, now
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
    item: _Item,
    file: str,
    problems: list[Problem],
    warnings: list[PolicyWarning],
    now: datetime | None,
) -> model.Policy | None:
    validated = _validated(item, file, problems, warnings, now)
    return None if validated is None else validated[1]


def _validated(
    item: _Item,
    file: str,
    problems: list[Problem],
    warnings: list[PolicyWarning] | None = None,
    now: datetime | None = None,
) -> tuple[PolicyModel, model.Policy] | None:
    """The item validated (model and policy), or None with its problems added; its
    warnings (once its structure is valid, as of `now`) are added to `warnings`, if given."""
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
            for path, message in policy_warnings(parsed, now)
        )
    if len(problems) > before or parsed.name is None:  # a missing name is reported already
        return None
    return parsed, to_policy(parsed, model.Source(file=file, line=item.line()))


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
