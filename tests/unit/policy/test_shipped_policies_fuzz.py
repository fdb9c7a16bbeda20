"""Fuzz: the shipped policies, mutated field by field, either load or are rejected with
located problems; and every policy that loads evaluates without crashing, whatever the
target, the queries, the memory and the clock say.

The rule it pins: anything `validate` accepts must evaluate (`decide()` over any status,
observations, memory and `now`, up to `datetime.min`/`datetime.max`), and anything it
rejects is a `FILE:LINE: FIELD: message`, never an internal error. CI runs a small
fixed-seed slice; `AUTOSCALER_FUZZ=nightly` runs thousands (see `tests/support/fuzz.py`).
"""

from __future__ import annotations

import copy
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from hypothesis import event, given
from hypothesis import strategies as st

from autoscaler.core.decision import decide
from autoscaler.core.model import Memory, Observation, Policy, Recommendation, TargetStatus
from autoscaler.errors import PolicyError
from autoscaler.policy.loader import load_text
from tests.support.fuzz import fuzz_settings

FILE = "mutated.yaml"
POLICIES = Path(__file__).resolve().parents[3] / "policies"


def _shipped() -> list[dict[str, Any]]:
    """Every policy mapping of every shipped file (documents and lists alike)."""
    found: list[dict[str, Any]] = []
    for path in sorted(POLICIES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            items = document if isinstance(document, list) else [document]
            found += [item for item in items if isinstance(item, dict)]
    return found


SHIPPED = _shipped()
Key = str | int


def _paths(data: Any, prefix: tuple[Key, ...] = ()) -> list[tuple[Key, ...]]:
    """Every key path inside `data` (containers included), e.g. ("checks", 0, "target"),
    down to a depth of 6: never into a deeply nested value a mutation put there."""
    found = [prefix] if prefix else []
    if len(prefix) >= 6:
        return found
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


# --- values, by the kind of field they are aimed at ------------------------------------------

FLOATS = st.one_of(
    st.sampled_from(
        [0.0, -0.0, -1.0, 1e308, -1e308, 5e-324, 1e-308, 1e15, 1e16, 1e19, 1e300, 0.5, 1.0]
    ),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.floats(allow_nan=True, allow_infinity=True),
)
INTEGERS = st.one_of(
    st.sampled_from([0, 1, -1, 2**31, 2**53 + 1, 2**63, 2**64, 10**6, 10**6 + 1, 10**20]),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.integers(min_value=0, max_value=100),
)
NUMBERS = st.one_of(INTEGERS, FLOATS)
UNITS = st.sampled_from(["ms", "s", "m", "h", "d", "w", "y"])
DURATIONS = st.one_of(
    st.sampled_from(
        [
            "99999999999999999999y",
            "106751991167d",
            "9223372036854775807ms",
            "1y",
            "1y1ms",
            "365d",
            "366d",
            "52w1d",
            "0s",
            "0ms",
            "1ms",
            "2562047h",
            "1h30m",
        ]
    ),
    st.builds(lambda n, unit: f"{n}{unit}", st.integers(0, 10**25), UNITS),
)
CRONS = st.one_of(
    st.sampled_from(
        [
            "0 0 30 2 *",
            "0 0 31 2 *",
            "0 0 31 4,6,9,11 *",
            "0 0 29 2 *",
            "0 0 29 2 1#5",
            "0 0 1 1 0#5",
            "0 0 L 2 *",
            "0 0 15W * *",
            "* * * * *",
            "* * * * * *",
            "0 0 1 1 * 0 2030",
            "0 0 1 1 * 0 1999",
            "@yearly",
            "@hourly",
            "@reboot",
            "*/0 * * * *",
            "0 2 * * *",
            "30 2 * * *",
            "59 23 31 12 *",
            "0 0 ? * *",
            "",
        ]
    ),
    st.lists(
        st.sampled_from(["*", "0", "59", "31", "12", "7", "*/5", "1-5", "L", "2#5", "?", "60"]),
        min_size=1,
        max_size=7,
    ).map(" ".join),
)
TIMEZONES = st.sampled_from(
    [
        "UTC",
        "Etc/GMT+12",
        "Etc/GMT-14",
        "Pacific/Kiritimati",
        "Pacific/Apia",
        "America/Santiago",
        "America/St_Johns",
        "Australia/Lord_Howe",
        "Asia/Kathmandu",
        "Antarctica/Troll",
        "Europe/Paris",
        "EST5EDT",
        "posixrules",
        "Factory",
        "right/UTC",
        "../../etc/passwd",
        "/etc/localtime",
        "",
        "Mars/Olympus",
    ]
)
INSTANTS = st.one_of(
    st.sampled_from(
        [
            "9999-12-31T23:59:59+00:00",
            "9999-12-31T23:59:59-14:00",
            "0001-01-01T00:00:00+14:00",
            "0001-01-01T00:00:00+00:00",
            "9999-12-31T23:59:59.999999Z",
            "2026-11-27T06:00:00+01:00",
            "2026-11-27T06:00:00",
            "2026-11-27",
        ]
    ),
    st.datetimes(timezones=st.just(UTC)),
)
TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", " ", "\u0000", "名前", "é", "x" * 5000, "sum(x)", "(((", "up[5m]"]),
)
CHANGES = st.one_of(
    st.sampled_from(
        ["+2", "-1", "+50%", "-100%", "-1000%", "+0", "+0.0000001%", "+1000000000000%"]
    ),
    st.builds(
        lambda sign, digits, percent: f"{sign}{digits}{percent}",
        st.sampled_from("+-"),
        st.integers(0, 10**400),
        st.sampled_from(["", "%"]),
    ),
)
ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    NUMBERS,
    TEXT,
    st.just([]),
    st.just({}),
    st.sampled_from([_nested(50), _nested(300), {"a": {"b": [1, {"c": None}]}}]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
BY_KEY: dict[str, st.SearchStrategy[Any]] = {
    "interval": DURATIONS,
    "duration": DURATIONS,
    "up": DURATIONS,
    "down": DURATIONS,
    "cron": CRONS,
    "timezone": TIMEZONES,
    "start": INSTANTS,
    "end": INSTANTS,
    "change": CHANGES,
    **dict.fromkeys(["min", "max", "count", "after"], INTEGERS),
    **dict.fromkeys(["percent", "target", "tolerance", "above", "below"], NUMBERS),
    **dict.fromkeys(["name", "query", "asg", "job", "group", "namespace", "region"], TEXT),
}


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A shipped policy with one to three fields replaced, dropped or added."""
    data: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(SHIPPED)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(data)))
        *parents, last = path
        parent: Any = data
        for key in parents:
            parent = parent[key]
        how = draw(st.sampled_from(["aimed", "aimed", "aimed", "any", "drop", "add"]))
        if how == "drop":
            del parent[last]
        elif how == "add" and isinstance(parent, dict):
            key = draw(st.sampled_from(["x", "Min", "cron", "steps", "target"]))
            parent[key] = copy.deepcopy(draw(ANYTHING))  # never alter a shared value
        else:
            aimed = BY_KEY.get(str(last)) if how == "aimed" else None
            parent[last] = copy.deepcopy(draw(aimed if aimed is not None else ANYTHING))
        if not _paths(data):
            break
    return data


# --- what the world says at evaluation time ---------------------------------------------------

MOMENTS = st.one_of(
    st.sampled_from(
        [
            datetime.max.replace(tzinfo=UTC),
            datetime.min.replace(tzinfo=UTC),
            datetime(9999, 12, 31, tzinfo=UTC),
            datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC),
            datetime(2026, 3, 29, 1, 30, tzinfo=UTC),  # Europe's spring DST change
            datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
            datetime(2026, 11, 27, 9, 0, tzinfo=UTC),
        ]
    ),
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
    ),
)
COUNTS = st.one_of(
    st.integers(0, 60), st.sampled_from([-1, 10**6, 10**6 + 1, 2**63, 10**30, 10**400])
)
VALUES = st.one_of(st.none(), FLOATS, st.floats(-100, 1000))


@st.composite
def evaluation(draw: st.DrawFn, policy: Policy) -> dict[str, Any]:
    """Keyword arguments of `decide` for `policy`: status, observations, memory, now."""
    now = draw(MOMENTS)
    when = st.one_of(st.none(), st.just(now), MOMENTS)
    status = TargetStatus(
        count=draw(COUNTS),
        ready=draw(st.booleans()),
        not_ready_reason=draw(st.none() | st.text(max_size=10)),
        min_size=draw(st.none() | COUNTS),
        max_size=draw(st.none() | COUNTS),
        last_scaled_at=draw(when),
    )
    observations = [
        Observation(
            check=check.name,
            value=draw(VALUES),
            error=draw(st.none() | st.sampled_from(["no series", "timeout"])),
        )
        for check in policy.checks
        if draw(st.integers(0, 9)) > 0
    ]
    recommendations = draw(
        st.lists(st.builds(Recommendation, at=st.one_of(st.just(now), MOMENTS), count=COUNTS))
    )
    memory = Memory(
        last_scaled_at=draw(when),
        recommendations=tuple(recommendations),
        missing_data_streak=draw(st.integers(0, 10**18)),
        missing_data_since=draw(when),
    )
    return {
        "status": status,
        "observations": observations,
        "memory": memory,
        "now": now,
        "dry_run": draw(st.booleans()),
    }


def _load(data: dict[str, Any]) -> list[Policy] | None:
    """The policies the text loads to, or None after checking every problem is located."""
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    try:
        return load_text(text, FILE)
    except PolicyError as exc:
        problems = exc.problems
    assert problems
    for problem in problems:
        assert problem.file == FILE
        assert problem.line >= 1
        assert problem.field
        assert problem.message
        assert "internal error" not in problem.message, str(problem)
    return None


@fuzz_settings(ci=300)
@given(mutated(), st.data())
def test_a_mutated_shipped_policy_evaluates_or_is_rejected_with_located_problems(
    data: dict[str, Any], draw: st.DataObject
) -> None:
    policies = _load(data)
    event("accepted" if policies else "rejected")
    for policy in policies or []:
        for _ in range(3):
            outcome = decide(policy, **draw.draw(evaluation(policy)))
            decision = outcome.decision
            json.dumps(decision.to_dict(), allow_nan=False)  # what the API and state store get
            assert decision.reasons


@fuzz_settings(ci=300)
@given(st.sampled_from(SHIPPED), st.data())
def test_every_shipped_policy_evaluates_at_any_moment_with_any_inputs(
    data: dict[str, Any], draw: st.DataObject
) -> None:
    policies = _load(data)
    assert policies
    for policy in policies:
        decide(policy, **draw.draw(evaluation(policy)))


def test_the_shipped_policies_are_what_the_fuzz_mutates() -> None:
    assert len(SHIPPED) >= 6
    assert {"cron", "start", "steps", "fallback", "limits"} <= {
        str(key) for item in SHIPPED for path in _paths(item) for key in path
    }
