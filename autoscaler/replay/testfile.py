"""Policy test files (`autoscaler test`) -> validated tests, or every problem at FILE:LINE.

The format, like `promtool test rules` (documented in the README; extend it, never rename):

    policy_files: [web.yaml]            # relative to this file
    tests:
      - name: burst
        interval: 1m                    # default: each policy's interval
        start_count: {web: 2}           # default: each policy's min
        input_values:                   # per policy, per check, in promtool's notation
          web: {rps: '20x4 60x6'}
        expect:
          - {at: 5m, policy: web, desired: 6, action: up}

Extensions: a test's `start` (RFC 3339, the instant of `0s`; default 1970-01-01T00:00:00Z as
promtool) for policies with schedules; an expectation's `current` (the count before the
decision) and `reason` (text that one of the decision's reasons contains); and a file's
`discovered`, what discovery would find, to expand the policy files' templates with (each
target then is a policy under its expanded name, its grouped checks reading their input
values as their own series):

    discovered:
      nomad:   [{job: web, group: main, meta: {autoscaler.enabled: "true"}}]  # namespace: default
      aws_asg: [{asg: web-asg, region: eu-west-3, tags: {"autoscaler:enabled": "true"}}]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from autoscaler.core.discovered import AsgGroup, NomadGroup
from autoscaler.core.durations import format_duration, parse_duration
from autoscaler.core.model import Action, Policy
from autoscaler.errors import Problem, TestFileError
from autoscaler.policy.conflicts import Located, files_first
from autoscaler.policy.expansion import expand as expand_template
from autoscaler.policy.expansion import one_series_each
from autoscaler.policy.loader import load_paths
from autoscaler.policy.problems import field_name
from autoscaler.policy.yaml_lines import Document, YamlSyntaxError, load_documents
from autoscaler.policy.yaml_lines import Path as DataPath
from autoscaler.replay.series import SeriesError, SeriesValue, expand

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FILE_KEYS = ("policy_files", "discovered", "tests")
_DISCOVERED_KEYS = ("nomad", "aws_asg")
_NOMAD_KEYS = ("job", "group", "namespace", "region", "meta")
_ASG_KEYS = ("asg", "region", "tags")
# Evaluations one test replays at most (each is kept until the expectations are checked:
# `interval: 1s` with `at: 1y` would be 31 million).
MAX_EVALUATIONS = 1_000_000
_TEST_KEYS = ("name", "interval", "start", "start_count", "input_values", "expect")
_EXPECT_KEYS = ("at", "policy", "desired", "action", "current", "reason")
_T = TypeVar("_T")


@dataclass(frozen=True, kw_only=True)
class Expectation:
    """What one decision must be: any of desired, action, current, reason (all optional)."""

    line: int
    at: timedelta
    policy: str
    desired: int | None = None
    action: Action | None = None
    current: int | None = None
    reason: str | None = None

    def describe(self) -> str:
        """`desired 6, action up`: the fields this expectation sets."""
        parts = []
        if self.current is not None:
            parts.append(f"current {self.current}")
        if self.desired is not None:
            parts.append(f"desired {self.desired}")
        if self.action is not None:
            parts.append(f"action {self.action.value}")
        if self.reason is not None:
            parts.append(f"a reason containing {self.reason!r}")
        return ", ".join(parts)


@dataclass(frozen=True, kw_only=True)
class PolicyTest:
    """One test: input values per policy and check, and the expected decisions."""

    name: str
    line: int
    interval: timedelta | None
    start: datetime
    start_count: Mapping[str, int]
    input_values: Mapping[str, Mapping[str, list[SeriesValue]]]
    expect: tuple[Expectation, ...]


@dataclass(frozen=True)
class TestFile:
    """A valid test file: its policies (by name) and its tests."""

    path: Path
    policies: Mapping[str, Policy]
    tests: tuple[PolicyTest, ...]


def load_test_file(path: str | Path) -> TestFile:
    """Read and check a test file and its policy files; raise `TestFileError` with every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TestFileError([Problem(str(path), 1, "(file)", f"cannot read: {exc}")]) from None
    try:
        docs, issues = load_documents(text)
    except YamlSyntaxError as exc:
        problems = [Problem(str(path), i.line, "(yaml)", i.message) for i in exc.issues]
        raise TestFileError(problems) from None
    reader = _Reader(str(path), docs[0] if docs else Document(None))
    for issue in issues:
        reader.problem(issue.path, issue.message, issue.line)
    test_file = reader.read_file(path)
    if len(docs) > 1:
        reader.problem((), "a test file holds one YAML document; move every test into `tests`")
    if reader.problems or test_file is None:
        raise TestFileError(sorted(reader.problems, key=lambda p: (p.file, p.line)))
    return test_file


class _Reader:
    """Reads one document, collecting every problem with its line instead of stopping."""

    def __init__(self, file: str, doc: Document) -> None:
        self.file = file
        self.doc = doc
        self.problems: list[Problem] = []

    def problem(self, path: DataPath, message: str, line: int | None = None) -> None:
        field = field_name(path) if path else "(file)"
        where = self.doc.line_of(path) if line is None else line
        self.problems.append(Problem(self.file, where, field, message))

    def line(self, path: DataPath) -> int:
        return self.doc.line_of(path)

    # --- the file -------------------------------------------------------------------------

    def read_file(self, path: Path) -> TestFile | None:
        data = self.doc.data
        if not isinstance(data, dict):
            self.problem((), "a test file is a mapping with policy_files and tests")
            return None
        self._unknown_keys(data, (), _FILE_KEYS)
        found = self._discovered(data.get("discovered"), ("discovered",))
        policies = self._policies(path, data.get("policy_files"), found)
        tests_data = data.get("tests")
        if not isinstance(tests_data, list) or not tests_data:
            self.problem(("tests",), "a non-empty list of tests is required")
            return None
        tests = [self._test(item, ("tests", i), policies) for i, item in enumerate(tests_data)]
        self._unique_names(tests_data)
        if policies is None or any(test is None for test in tests):
            return None
        return TestFile(path, policies, tuple(test for test in tests if test is not None))

    def _policies(
        self, path: Path, files: Any, found: list[NomadGroup | AsgGroup]
    ) -> dict[str, Policy] | None:
        where: DataPath = ("policy_files",)
        if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
            self.problem(where, "a non-empty list of policy file paths (relative to this file)")
            return None
        resolved: list[Path] = []
        for i, name in enumerate(files):
            candidate = path.parent / name
            if candidate.is_file():
                resolved.append(candidate)
            elif candidate.is_dir():
                self.problem((*where, i), f"{candidate} is a folder: name each policy file in it")
            else:
                self.problem((*where, i), f"no such policy file: {candidate}")
        if len(resolved) != len(files):
            return None
        result = load_paths(resolved)
        self.problems.extend(result.problems)
        if result.problems:
            return None

        def newcomers() -> Iterator[Located]:
            """Each template's targets, as discovery adds them in `run` (a grouped check
            reading another target's series too, of any template, fails for each:
            `one_series_each`)."""
            expansions: list[Located] = []
            for template in result.templates:
                for target in found:
                    if template.matches(target):
                        expanded = expand_template(template, target)
                        if isinstance(expanded, Located):
                            expansions.append(expanded)
                        else:
                            self.problems.extend(expanded)
            yield from (item for item, _ in one_series_each(expansions))

        policies = files_first(result.policies, newcomers(), self.problems)
        if not policies:
            self.problem(where, "the policy files hold no policy")
            return None
        return {policy.name: policy for policy in policies}

    def _discovered(self, data: Any, where: DataPath) -> list[NomadGroup | AsgGroup]:
        """`discovered`: the Nomad task groups and Auto Scaling Groups to expand with."""
        if data is None:
            return []
        if not isinstance(data, dict):
            self.problem(where, "a mapping with nomad: [...] and/or aws_asg: [...]")
            return []
        self._unknown_keys(data, where, _DISCOVERED_KEYS)
        found: list[NomadGroup | AsgGroup] = []
        for kind in _DISCOVERED_KEYS:
            items = data.get(kind)
            if items is None:
                continue
            if not isinstance(items, list):
                self.problem((*where, kind), "a list of targets")
                continue
            for i, item in enumerate(items):
                target = self._target(kind, item, (*where, kind, i))
                if target is not None:
                    found.append(target)
        return found

    def _target(self, kind: str, data: Any, where: DataPath) -> NomadGroup | AsgGroup | None:
        nomad = kind == "nomad"
        keys = _NOMAD_KEYS if nomad else _ASG_KEYS
        if not isinstance(data, dict):
            example = "{job: web, group: main}" if nomad else "{asg: web-asg}"
            self.problem(where, f"a mapping such as {example}")
            return None
        before = len(self.problems)
        self._unknown_keys(data, where, keys)
        names = ("job", "group") if nomad else ("asg",)
        required = [self._required(data, (*where, key), self._text) for key in names]
        region = self._optional(data, (*where, "region"), self._text)
        labels = self._labels(data.get("meta" if nomad else "tags"), (*where, keys[-1]))
        if len(self.problems) > before or None in required:
            return None
        if nomad:
            namespace = self._optional(data, (*where, "namespace"), self._text) or "default"
            job, group = (str(value) for value in required)
            return NomadGroup(namespace=namespace, job=job, group=group, meta=labels, region=region)
        return AsgGroup(name=str(required[0]), region=region, tags=labels)

    def _labels(self, data: Any, where: DataPath) -> dict[str, str]:
        """Nomad meta or AWS tags: text to text, as the APIs give them."""
        if data is None:
            return {}
        if not isinstance(data, dict):
            self.problem(where, 'a mapping of text to text, e.g. {autoscaler.enabled: "true"}')
            return {}
        for key, value in data.items():
            if not isinstance(value, str):
                self.problem(
                    (*where, key),
                    f"must be text, as Nomad meta and AWS tags are: quote it ({str(value)!r})",
                )
        return {str(k): v for k, v in data.items() if isinstance(v, str)}

    def _unique_names(self, tests_data: list[Any]) -> None:
        """Refuse a test name used twice in the file: failures are reported and counted by
        name, so two tests of one name would read as one (as promtool's names, they name
        one test each)."""
        first: dict[str, int] = {}
        for i, data in enumerate(tests_data):
            if not isinstance(data, dict):
                continue
            name = data.get("name", f"tests[{i}]")
            if not isinstance(name, str) or not name:
                continue  # reported by `_test`
            where: DataPath = ("tests", i, "name") if "name" in data else ("tests", i)
            line = self.line(where)
            if name in first:
                self.problem(
                    where,
                    f"test name {name!r} is already used at line {first[name]}: give each "
                    "test its own name",
                )
            else:
                first[name] = line

    # --- one test -------------------------------------------------------------------------

    def _test(
        self, data: Any, where: DataPath, policies: Mapping[str, Policy] | None
    ) -> PolicyTest | None:
        if not isinstance(data, dict):
            self.problem(where, "a test is a mapping with name, input_values and expect")
            return None
        before = len(self.problems)
        self._unknown_keys(data, where, _TEST_KEYS)
        name = data.get("name", f"tests[{where[-1]}]")
        if not isinstance(name, str) or not name:
            self.problem((*where, "name"), "must be text")
        interval = self._optional(data, (*where, "interval"), self._duration)
        if interval is not None and interval <= timedelta(0):
            self.problem((*where, "interval"), "must be longer than 0s")
            interval = None  # reported; the expectations are checked on each policy's own
        start = self._optional(data, (*where, "start"), self._instant) or EPOCH
        start_count = self._start_count(data.get("start_count"), (*where, "start_count"), policies)
        inputs = self._inputs(data.get("input_values"), (*where, "input_values"), policies)
        expect = self._expectations(data.get("expect"), (*where, "expect"), policies, interval)
        last = max((e.at for e in expect), default=timedelta(0))
        try:
            start + last
        except OverflowError:
            self.problem(
                (*where, "start"),
                f"start plus {format_duration(last)} (the last `at`) is past year 9999",
            )
        if len(self.problems) > before:
            return None
        return PolicyTest(
            name=str(name),
            line=self.line(where),
            interval=interval,
            start=start,
            start_count=start_count,
            input_values=inputs,
            expect=expect,
        )

    def _start_count(
        self, data: Any, where: DataPath, policies: Mapping[str, Policy] | None
    ) -> dict[str, int]:
        if data is None:
            return {}
        if not isinstance(data, dict):
            self.problem(where, "a mapping of policy name to count, e.g. {web: 2}")
            return {}
        counts: dict[str, int] = {}
        for policy, count in data.items():
            self._known_policy(policy, (*where, policy), policies)
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                self.problem((*where, policy), f"must be a count (0 or more), got {count!r}")
            else:
                counts[policy] = count
        return counts

    def _inputs(
        self, data: Any, where: DataPath, policies: Mapping[str, Policy] | None
    ) -> dict[str, dict[str, list[SeriesValue]]]:
        if data is None:
            return {}
        if not isinstance(data, dict):
            self.problem(where, "a mapping of policy name to {check: 'values'}")
            return {}
        inputs: dict[str, dict[str, list[SeriesValue]]] = {}
        for policy_name, checks in data.items():
            at: DataPath = (*where, policy_name)
            policy = self._known_policy(policy_name, at, policies)
            if not isinstance(checks, dict):
                self.problem(at, "a mapping of check name to values, e.g. {rps: '20x4 60x6'}")
                continue
            inputs[policy_name] = {}
            for check, text in checks.items():
                self._known_check(policy, check, (*at, check))
                values = self._series(text, (*at, check))
                if values is not None:
                    inputs[policy_name][check] = values
        return inputs

    def _series(self, text: Any, where: DataPath) -> list[SeriesValue] | None:
        if isinstance(text, bool) or not isinstance(text, str | int | float):
            self.problem(where, "values in promtool's notation, e.g. '1+1x10 _ stale'")
            return None
        try:
            return expand(str(text))
        except SeriesError as exc:
            self.problem(where, str(exc))
            return None

    def _expectations(
        self,
        data: Any,
        where: DataPath,
        policies: Mapping[str, Policy] | None,
        interval: timedelta | None,
    ) -> tuple[Expectation, ...]:
        if not isinstance(data, list) or not data:
            self.problem(where, "a non-empty list such as [{at: 5m, policy: web, desired: 6}]")
            return ()
        found = [
            self._expectation(item, (*where, i), policies, interval) for i, item in enumerate(data)
        ]
        return tuple(e for e in found if e is not None)

    def _expectation(
        self,
        data: Any,
        where: DataPath,
        policies: Mapping[str, Policy] | None,
        interval: timedelta | None,
    ) -> Expectation | None:
        if not isinstance(data, dict):
            self.problem(where, "a mapping such as {at: 5m, policy: web, desired: 6, action: up}")
            return None
        before = len(self.problems)
        self._unknown_keys(data, where, _EXPECT_KEYS)
        at = self._required(data, (*where, "at"), self._duration)
        policy = self._expected_policy(data.get("policy"), (*where, "policy"), policies)
        desired = self._optional(data, (*where, "desired"), self._count)
        current = self._optional(data, (*where, "current"), self._count)
        action = self._optional(data, (*where, "action"), self._action)
        reason = self._optional(data, (*where, "reason"), self._text)
        if all(data.get(key) is None for key in ("desired", "action", "current", "reason")):
            self.problem(where, "expects nothing: set desired, action, current or reason")
        if at is not None and policy is not None:
            self._on_grid(at, interval or policy.interval, policy.name, (*where, "at"))
        if len(self.problems) > before or at is None or policy is None:
            return None
        return Expectation(
            line=self.line(where),
            at=at,
            policy=policy.name,
            desired=desired,
            action=action,
            current=current,
            reason=reason,
        )

    def _expected_policy(
        self, name: Any, where: DataPath, policies: Mapping[str, Policy] | None
    ) -> Policy | None:
        """The policy an expectation names; it may be left out when there is only one."""
        if name is None:
            if policies is None:
                return None  # the policy files have problems of their own
            if len(policies) == 1:
                return next(iter(policies.values()))
            self.problem(where, f"required: the policy files hold {len(policies)} policies")
            return None
        return self._known_policy(name, where, policies)

    def _on_grid(self, at: timedelta, interval: timedelta, policy: str, where: DataPath) -> None:
        if at < timedelta(0):
            self.problem(where, "must be 0s or later")
        elif at % interval:
            self.problem(
                where,
                f"{format_duration(at)} is not an evaluation of policy {policy} (every "
                f"{format_duration(interval)}): use a multiple of {format_duration(interval)}",
            )
        elif at // interval >= MAX_EVALUATIONS:
            self.problem(
                where,
                f"{format_duration(at)} is {at // interval + 1:,} evaluations of policy "
                f"{policy} (every {format_duration(interval)}): a test replays at most "
                f"{MAX_EVALUATIONS:,}; use a longer interval or an earlier `at`",
            )

    # --- values ---------------------------------------------------------------------------

    def _known_policy(
        self, name: Any, where: DataPath, policies: Mapping[str, Policy] | None
    ) -> Policy | None:
        if not isinstance(name, str):
            self.problem(where, "name a policy of policy_files")
            return None
        if policies is None:
            return None  # the policy files have problems of their own
        policy = policies.get(name)
        if policy is None:
            known = ", ".join(sorted(policies))
            self.problem(where, f"no policy {name!r} in policy_files (policies: {known})")
        return policy

    def _known_check(self, policy: Policy | None, check: str, where: DataPath) -> None:
        if policy is None:
            return
        queried = [c.name for c in policy.checks if c.query is not None]
        if check not in queried:
            shown = ", ".join(queried) or "none"
            self.problem(
                where, f"policy {policy.name} has no check {check!r} with a query ({shown})"
            )

    def _unknown_keys(
        self, data: dict[str, Any], where: DataPath, allowed: tuple[str, ...]
    ) -> None:
        for key in data:
            if key not in allowed:
                self.problem(
                    (*where, key), f"unknown key {key!r}; allowed keys: {', '.join(allowed)}"
                )

    def _required(
        self, data: dict[str, Any], where: DataPath, read: Callable[[Any, DataPath], _T | None]
    ) -> _T | None:
        value = data.get(str(where[-1]))
        if value is None:
            self.problem(where, "required")
            return None
        return read(value, where)

    def _optional(
        self, data: dict[str, Any], where: DataPath, read: Callable[[Any, DataPath], _T | None]
    ) -> _T | None:
        value = data.get(str(where[-1]))
        return None if value is None else read(value, where)

    def _duration(self, value: Any, where: DataPath) -> timedelta | None:
        if value == 0 and not isinstance(value, bool):
            return timedelta(0)
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.problem(where, str(exc))
            return None

    def _instant(self, value: Any, where: DataPath) -> datetime | None:
        text = self.doc.raw.get(where, str(value))
        try:
            parsed = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            self.problem(where, f"{text!r} is not an RFC 3339 time such as 2026-03-02T08:00:00Z")
            return None
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            self.problem(where, f"{text!r} is outside year 1 to 9999 in UTC")
            return None

    def _count(self, value: Any, where: DataPath) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.problem(where, f"must be a count (0 or more), got {value!r}")
            return None
        return value

    def _action(self, value: Any, where: DataPath) -> Action | None:
        if isinstance(value, str) and value in {a.value for a in Action}:
            return Action(value)
        choices = ", ".join(a.value for a in Action)
        self.problem(where, f"{value!r} is not an action: one of {choices}")
        return None

    def _text(self, value: Any, where: DataPath) -> str | None:
        if not isinstance(value, str) or not value:
            self.problem(where, "must be non-empty text")
            return None
        return value
