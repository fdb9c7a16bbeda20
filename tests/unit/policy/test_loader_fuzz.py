"""The loader never fails with anything but PolicyError, and every problem it reports is
located (file, line >= 1, field) and explained, whatever text it is given."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from autoscaler.core.model import Policy
from autoscaler.errors import PolicyError
from autoscaler.policy import loader, value_types, yaml_lines
from autoscaler.policy.loader import load_text
from autoscaler.policy.yaml_lines import YamlSyntaxError, load_documents
from tests.support.fuzz import fuzz_settings

FILE = "fuzz.yaml"
SETTINGS = fuzz_settings(ci=200)

VALID: dict[str, Any] = {
    "name": "web",
    "enabled": True,
    "dry_run": False,
    "target": {"type": "aws-asg", "asg": "web", "region": "eu-west-3"},
    "min": 2,
    "max": 40,
    "interval": "15s",
    "cooldown": {"up": "1m", "down": "5m"},
    "stabilization": {"up": "0s", "down": "5m"},
    "limits": {"up": {"count": 10, "percent": 100}, "down": {"count": 2}},
    "on_missing_data": "fallback",
    "fallback": {"after": 3, "count": 10},
    "triggers": {"alerts": ["CheckoutSlow"]},
    "schedules": [
        {
            "name": "bf",
            "start": "2026-11-27T06:00:00+01:00",
            "end": "2026-11-28T02:00:00Z",
            "min": 12,
        },
        {
            "name": "office",
            "cron": "0 8 * * 1-5",
            "duration": "10h",
            "timezone": "Europe/Paris",
            "min": 4,
        },
    ],
    "checks": [
        {"name": "p95", "strategy": "target-value", "query": "sum(rate(x[2m]))", "target": 0.25},
        {"name": "conv", "strategy": "per-instance", "query": "sum(conv)", "target": 50},
        {
            "name": "err",
            "strategy": "threshold",
            "query": "sum(e) / sum(r)",
            "steps": [{"above": 0.05, "change": "+2"}, {"below": 0.01, "change": "-10%"}],
        },
        {"name": "floor", "strategy": "fixed", "count": 6},
        {"name": "fc", "strategy": "pass-through", "query": "forecast"},
    ],
}

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 100),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["0s", "1m", "+2", "-50%", "nomad", "threshold", "fixed", "hold", "(", ""]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def assert_loads_or_locates_problems(text: str) -> None:
    try:
        policies = load_text(text, FILE)
    except PolicyError as exc:
        problems = exc.problems
    else:
        assert all(isinstance(p, Policy) for p in policies)
        return
    assert problems
    for problem in problems:
        assert problem.file == FILE
        assert isinstance(problem.line, int)
        assert problem.line >= 1
        assert problem.field
        assert problem.message
        assert not problem.message.startswith("internal error"), str(problem)


def test_the_valid_base_policy_loads() -> None:
    (policy,) = load_text(yaml.safe_dump(VALID), FILE)
    assert policy.name == "web"


@SETTINGS
@given(st.text(max_size=300))
def test_arbitrary_text_gives_policies_or_located_problems(text: str) -> None:
    assert_loads_or_locates_problems(text)


FRAGMENTS = [
    "name: a",
    "min: 1",
    "max:",
    "- ",
    "  ",
    "checks:",
    "  - {",
    "strategy: fixed",
    "---",
    "target: {type: nomad",
    "&a",
    "*a",
    "<<: *a",
    "? [x]",
    ": y",
    "!!int x",
    "!!binary z",
    "count: 2}",
    "'",
    '"',
    "#",
    "\t",
    "{",
    "}",
    "[",
    "]",
    ",",
    "start: 2026-01-01",
]


def _read(text: str) -> Any:
    try:
        documents, issues = load_documents(text)
    except YamlSyntaxError as exc:
        return ("error", exc.issues)
    return [(repr(d.data), d.lines, d.raw) for d in documents], issues


@SETTINGS
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=25))
def test_yaml_like_fragments_give_policies_or_located_problems(parts: list[str]) -> None:
    assert_loads_or_locates_problems("\n".join(parts))


@SETTINGS
@given(st.one_of(st.text(max_size=200), st.lists(st.sampled_from(FRAGMENTS), max_size=25)))
def test_libyaml_reads_every_text_as_the_pure_parser_does(text: str | list[str]) -> None:
    """The fast path (libyaml) gives the very data, lines, raw texts and issues, or the
    pure parser's own error."""
    if isinstance(text, list):
        text = "\n".join(text)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(yaml_lines, "_FAST", None)
        pure = _read(text)
    assert _read(text) == pure


_SCALARS = ["", "~", "null", "Null", "NULL", "yes", "No", "on", "OFF", "y", "n", "true", "False"]
_SCALARS += ["0", "-1", "+2", "0x1F", "0o17", "0b101", "1_000", "12:30", "190:20:30", "1e3", ".5"]
_SCALARS += [".inf", "-.Inf", ".NaN", "2026-01-01", "2026-01-01T06:00:00+01:00", "<<", "=", "+"]
_SCALARS += ["name", "nomad", "job7", "5m", "-5%", "1.2.3", "!x", "&a", "*a", "0.", "-", "."]


@SETTINGS
@given(st.one_of(st.sampled_from(_SCALARS), st.text(max_size=12)), st.booleans(), st.booleans())
def test_libyaml_resolves_every_scalar_as_safe_loader_does(
    value: str, plain: bool, quoted: bool
) -> None:
    """The cheaper resolver given to libyaml tags every node as SafeLoader's own, asked
    twice (the second answer is the remembered one)."""
    assert yaml_lines._FAST is not None  # libyaml is installed with PyYAML's wheels
    fast, safe = yaml_lines._FAST(""), yaml.SafeLoader("")
    for kind in (ScalarNode, SequenceNode, MappingNode):
        # types-pyyaml leaves `BaseResolver.resolve` unannotated.
        expected = safe.resolve(kind, value, (plain, quoted))  # type: ignore[no-untyped-call]
        assert fast.resolve(kind, value, (plain, quoted)) == expected
        assert fast.resolve(kind, value, (plain, quoted)) == expected


def test_the_remembered_tags_are_bounded() -> None:
    """A long-lived service reading ever new values keeps at most a few thousand tags."""
    assert yaml_lines._FAST is not None
    loader = yaml_lines._FAST("")
    for i in range(2 * yaml_lines._RESOLVED_MAX + 10):
        assert loader.resolve(ScalarNode, f"v{i}", (True, False)) == "tag:yaml.org,2002:str"
        assert loader.resolve(ScalarNode, str(i), (True, False)) == "tag:yaml.org,2002:int"
        assert len(yaml_lines._RESOLVED) <= yaml_lines._RESOLVED_MAX


_LINE_PATHS = [(), ("name",), ("checks", 0, "name"), ("target", "job"), (0,), (0, "name"), (1,)]


# What the fast path leaves to the builder, beside FRAGMENTS.
_UNUSUAL = [
    "base: &b {min: 1}",
    "<<: *b",
    "other: *b",
    "- &i {name: x}",
    "- *i",
    "name: a",
    "name: b",
    "1: one",
    "when: 2026-13-45",
    "when: 2026-01-02",
    "bin: !!binary aGk=",
    "n: !!int x",
    "loop: &l [*l]",
    "  - deep: {a: [1, 2.5, ~, yes]}",
]


def _read_lines(text: str, paths: list[tuple[str | int, ...]]) -> Any:
    """What `_read` gives, and the line of each path, asked before the tables exist."""
    try:
        documents, issues = load_documents(text)
    except YamlSyntaxError as exc:
        return ("error", exc.issues)
    lines = [[d.line_of(path) for path in paths] for d in documents]
    return lines, [(repr(d.data), d.lines, d.raw, d.spans) for d in documents], issues


@SETTINGS
@given(
    st.one_of(st.text(max_size=200), st.lists(st.sampled_from(FRAGMENTS + _UNUSUAL), max_size=25)),
    st.lists(st.sampled_from(_LINE_PATHS), max_size=6),
)
def test_the_fast_path_reads_every_text_as_the_builder_does(
    text: str | list[str], paths: list[tuple[str | int, ...]]
) -> None:
    """Documents read without their tables (most files) give the very data, lines (asked
    path by path, then as tables), raw texts, spans and issues as the builder's tables."""
    if isinstance(text, list):
        text = "\n".join(text)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(yaml_lines, "_plain", _never_plain)
        built = _read_lines(text, paths)
    assert _read_lines(text, paths) == built


def _never_plain(node: object, limit: int = 0) -> object:
    raise yaml_lines._Unusual


def test_a_valid_policy_is_read_without_building_its_tables() -> None:
    """The fast path is taken for an ordinary policy (or the test above proves nothing)."""
    text = "name: web\ntarget: {type: nomad, job: j, group: g}\nmin: 1\nmax: 2\n"
    (document,), _ = load_documents(text)
    assert document._lines is None
    assert document.line_of(("target", "job")) == 2
    assert document._lines is None


PATHS = st.sampled_from(
    [
        ("name",),
        ("enabled",),
        ("target",),
        ("target", "type"),
        ("target", "asg"),
        ("min",),
        ("max",),
        ("interval",),
        ("cooldown",),
        ("cooldown", "up"),
        ("stabilization", "down"),
        ("limits", "up"),
        ("limits", "up", "percent"),
        ("on_missing_data",),
        ("fallback",),
        ("fallback", "after"),
        ("triggers", "alerts"),
        ("schedules",),
        ("schedules", 0, "start"),
        ("schedules", 0, "end"),
        ("schedules", 1, "cron"),
        ("schedules", 1, "duration"),
        ("schedules", 1, "timezone"),
        ("schedules", 0, "min"),
        ("checks",),
        ("checks", 0),
        ("checks", 0, "strategy"),
        ("checks", 0, "query"),
        ("checks", 0, "target"),
        ("checks", 2, "steps"),
        ("checks", 2, "steps", 0),
        ("checks", 2, "steps", 1, "change"),
        ("checks", 2, "steps", 0, "below"),
        ("checks", 3, "count"),
        ("checks", 4, "strategy"),
    ]
)
MUTATIONS = st.lists(
    st.tuples(PATHS, st.sampled_from(["drop", "set", "extra"]), VALUES), min_size=1, max_size=4
)


def mutate(data: dict[str, Any], path: tuple[str | int, ...], how: str, value: Any) -> None:
    parent: Any = data
    for key in path[:-1]:
        try:
            parent = parent[key]
        except (KeyError, IndexError, TypeError):
            return
    last = path[-1]
    if isinstance(parent, dict) and isinstance(last, str):
        if how == "drop":
            parent.pop(last, None)
        elif how == "set":
            parent[last] = value
        else:
            parent["x_" + last] = value
    elif isinstance(parent, list) and isinstance(last, int) and last < len(parent):
        if how == "drop":
            del parent[last]
        else:
            parent[last] = value


@SETTINGS
@given(MUTATIONS, st.booleans())
def test_mutated_valid_policies_give_policies_or_located_problems(
    mutations: list[tuple[tuple[str | int, ...], str, Any]], as_list: bool
) -> None:
    data = copy.deepcopy(VALID)
    for path, how, value in mutations:
        mutate(data, path, how, value)
    document: Any = [data, copy.deepcopy(VALID) | {"name": "other"}] if as_list else data
    assert_loads_or_locates_problems(yaml.safe_dump(document, allow_unicode=True))


def _opened(path: Path) -> str:
    """What `load_file` read before: the text layer's answer, or its error."""
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except (OSError, UnicodeDecodeError) as exc:
        return f"{type(exc).__name__}: {exc}"


def _read_file(path: Path) -> str:
    try:
        return loader._read_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        return f"{type(exc).__name__}: {exc}"


_BYTES = [b"name: a\r\n", b"\r", b"\n", b"\r\r\n", b"\xff", b"\xc3\xa9", b"\xc3", b"\xef\xbb\xbf"]


@SETTINGS
@given(st.one_of(st.binary(max_size=64), st.lists(st.sampled_from(_BYTES), max_size=12)))
def test_a_file_is_read_as_the_text_layer_reads_it(content: bytes | list[bytes]) -> None:
    """The same text (line ends `\\r\\n` and `\\r` as `\\n`, a BOM kept) or the same error."""
    data = content if isinstance(content, bytes) else b"".join(content)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.yaml"
        path.write_bytes(data)
        assert _read_file(path) == _opened(path)


def test_a_missing_file_or_a_folder_fails_as_the_text_layer_does(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.yaml", tmp_path):
        assert _read_file(path) == _opened(path)
        assert _read_file(path).startswith(("FileNotFoundError", "IsADirectoryError"))


def _walked_nesting(query: str) -> int:
    """How deep the brackets nest, walked character by character (the check before)."""
    depth = deepest = 0
    for char in query:
        depth += (char in "([{") - (char in ")]}")
        deepest = max(deepest, depth)
    return deepest


@SETTINGS
@given(st.text(alphabet="([{}])x", max_size=400))
def test_a_query_too_deep_to_check_is_told_as_by_walking_it(query: str) -> None:
    """Counting the openers first decides `too deep` exactly as walking the query does."""
    deep = value_types._nesting(query) > value_types._MAX_QUERY_DEPTH
    assert deep == (_walked_nesting(query) > value_types._MAX_QUERY_DEPTH)


def test_many_brackets_side_by_side_are_not_too_deep() -> None:
    """150 openers, but never more than one open at once: the query is checked as PromQL."""
    query = " + ".join(["(up)"] * 150)
    (policy,) = load_text(
        "name: web\ntarget: {type: nomad, job: j, group: g}\nmin: 1\nmax: 2\n"
        f"checks: [{{name: c, strategy: pass-through, query: '{query}'}}]\n",
        FILE,
    )
    assert policy.checks[0].query == query


def test_the_remembered_scalar_values_are_bounded() -> None:
    """Numbers read on the fast path are remembered, a few thousand at most."""
    for i in range(2 * yaml_lines._CONSTRUCTED_MAX + 10):
        (document,), _ = load_documents(f"n: {i}\nf: {i}.5\nb: yes\n")
        assert document.data == {"n": i, "f": i + 0.5, "b": True}
        assert len(yaml_lines._CONSTRUCTED) <= yaml_lines._CONSTRUCTED_MAX
