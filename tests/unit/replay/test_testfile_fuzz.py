"""A test file of any shape loads or fails with located problems, never another exception."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoscaler.errors import Problem, TestFileError
from autoscaler.replay.testfile import load_test_file
from tests.unit.replay.fakes import WEB_POLICY

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))

VALID: dict[str, Any] = {
    "policy_files": ["web.yaml"],
    "tests": [
        {
            "name": "burst",
            "interval": "1m",
            "start": "2026-03-02T08:00:00Z",
            "start_count": {"web": 2},
            "input_values": {"web": {"rps": "20x4 60x6 _ stale"}},
            "expect": [{"at": "5m", "policy": "web", "desired": 6, "action": "up"}],
        }
    ],
}
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 10**6),
    st.floats(allow_nan=True),
    st.sampled_from(["", "0", "5m", "-1s", "web", "rps", "up", "1x3", "_x2", "x", "now"]),
    st.text(max_size=8),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """The valid file with one value somewhere replaced by anything."""
    data = copy.deepcopy(VALID)
    path = draw(st.sampled_from(_paths(data)[1:]))
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = draw(VALUES)
    return data


def _check(tmp: Path, text: str) -> None:
    (tmp / "web.yaml").write_text(WEB_POLICY)
    path = tmp / "t.yaml"
    path.write_text(text)
    problems: Sequence[Problem | str] = []
    try:
        load_test_file(path)
    except TestFileError as exc:
        problems = exc.problems or ["a TestFileError without problems"]
    for problem in problems:
        assert not isinstance(problem, str), problem
        assert problem.line >= 1 and problem.field and problem.message


@SETTINGS
@given(data=mutated())
def test_any_value_anywhere_loads_or_is_a_located_problem(tmp_path: Path, data: Any) -> None:
    _check(tmp_path, yaml.safe_dump(data))


@SETTINGS
@given(text=st.text(max_size=200))
def test_any_text_loads_or_is_a_located_problem(tmp_path: Path, text: str) -> None:
    _check(tmp_path, text)
