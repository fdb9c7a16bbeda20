"""The example policies in `policies/` load cleanly, match the JSON Schema, and together
show every feature of the format (users learn from them, so they must stay correct)."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from autoscaler.core.model import MissingData, Policy, Strategy
from autoscaler.errors import PolicyError
from autoscaler.policy.loader import json_schema, load_paths, load_text

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "policies"
FILES = sorted([*EXAMPLES.glob("*.yaml"), *EXAMPLES.glob("*.yml")])


@pytest.fixture(scope="module")
def policies() -> list[Policy]:
    result = load_paths([EXAMPLES])
    assert not result.problems, "\n".join(str(p) for p in result.problems)
    return result.policies


def test_every_example_file_loads_without_problems(policies: list[Policy]) -> None:
    assert {p.source.file for p in policies} == {str(f) for f in FILES}


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_every_example_starts_with_the_schema_comment(path: Path) -> None:
    first = path.read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../policy.schema.json"


def as_json(value: Any) -> Any:
    """YAML's timestamps as the ISO text an editor's schema check sees."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    return value


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_every_example_validates_against_the_json_schema(path: Path) -> None:
    validator = jsonschema.Draft202012Validator(json_schema())
    for document in yaml.safe_load_all(path.read_text()):
        errors = [e.message for e in validator.iter_errors(as_json(document))]
        assert not errors, errors


def test_json_schema_rejects_what_the_loader_rejects() -> None:
    validator = jsonschema.Draft202012Validator(json_schema())
    bad = {"target": {"type": "gcp"}, "min": -1, "max": 2, "checks": [], "bogus": 1}
    assert not validator.is_valid(bad)
    schedule = {"name": "s", "min": 1}  # neither one-off nor recurring
    good = {
        "target": {"type": "nomad", "job": "j", "group": "g"},
        "min": 0,
        "max": 2,
        "checks": [{"name": "c", "strategy": "fixed", "count": 1}],
    }
    assert validator.is_valid(good)
    assert validator.is_valid([good, good])
    assert not validator.is_valid(good | {"schedules": [schedule]})


def test_json_schema_accepts_what_the_loader_only_warns_about() -> None:
    """An editor must not mark a policy `validate` accepts: warnings are no schema errors."""
    validator = jsonschema.Draft202012Validator(json_schema())
    local = {"name": "s", "start": "2026-11-27T06:00:00", "end": "2026-11-28 02:00", "min": 1}
    unbounded = {"name": "s", "cron": "0 8 * * *", "duration": "1h"}  # no min or max
    good = {
        "target": {"type": "nomad", "job": "j", "group": "g"},
        "min": 0,
        "max": 2,
        "limits": {"up": {}, "down": {}},
        "schedules": [local, unbounded],
        "checks": [{"name": "c", "strategy": "threshold", "query": "up", "steps": [
            {"above": 1, "change": "+0"}, {"below": 1, "change": "-0%"}
        ]}],
    }  # fmt: skip
    assert validator.is_valid(good), [e.message for e in validator.iter_errors(good)]
    assert not validator.is_valid(good | {"schedules": [local | {"start": "27/11/2026 06:00"}]})


def test_shipped_schema_file_matches_the_models() -> None:
    """The editor schema in the repo is regenerated whenever the models change."""
    shipped = ROOT / "policy.schema.json"
    assert shipped.exists(), "run: autoscaler schema > policy.schema.json"
    assert json.loads(shipped.read_text()) == json_schema(), (
        "policy.schema.json is stale: run autoscaler schema > policy.schema.json"
    )


def test_examples_show_every_feature(policies: list[Policy]) -> None:
    checks = [c for p in policies for c in p.checks]
    steps = [s for c in checks for s in c.steps]
    schedules = [s for p in policies for s in p.schedules]
    assert {c.strategy for c in checks} == set(Strategy)
    assert any(s.change.percent for s in steps)
    assert any(not s.change.percent for s in steps)
    assert any(s.start is not None for s in schedules), "a one-off schedule"
    assert any(s.cron is not None for s in schedules), "a recurring schedule"
    assert any(p.limits.up is not None and p.limits.down is not None for p in policies)
    assert any(p.stabilization.down != p.stabilization.up for p in policies)
    assert any(p.on_missing_data is MissingData.FALLBACK and p.fallback for p in policies)
    assert any(p.triggers.alerts for p in policies)
    assert any(p.dry_run for p in policies)
    assert any(not p.enabled for p in policies)
    assert any(p.target.type == "aws-asg" for p in policies)
    # extensions
    assert any(c.forecast is not None and not c.forecast.only for c in checks)
    assert any(c.forecast is not None and c.forecast.only for c in checks)
    assert any(c.strategy is Strategy.PER_INSTANCE and c.tolerance > 0 for c in checks)
    assert any(p.anomaly is not None and p.anomaly.enabled for p in policies)
    assert any(p.provisioning is not None for p in policies)


@pytest.mark.parametrize(
    "name", ["checkout-latency", "support-conversations"], ids=["target-value", "per-instance"]
)
def test_named_examples_exist(policies: list[Policy], name: str) -> None:
    assert name in {p.name for p in policies}


@pytest.mark.parametrize(
    "time",
    [
        "2026-11-27T06:00:00+01:00",
        "2026-11-27T06:00:00Z",
        "2026-11-27 06:00",
        "2026-11-27T06:00:00.5",
        "2026-11-27",  # a date alone: midnight in which zone? refused by both
        "2026-11-27T06",
        "20261127T060000",
        "2026-11-27T06:00:00,5",
        "2026-11-27T06:00:00+01:00:30",
    ],
)
def test_json_schema_and_loader_agree_on_a_one_off_time(time: str) -> None:
    """The schema's `start` pattern is what the loader takes: an editor that passes a time
    `validate` refuses (or the reverse) misleads."""
    schedule = {"name": "s", "start": time, "end": "2027-01-01T00:00:00Z", "min": 1}
    policy = {
        "name": "p",
        "target": {"type": "nomad", "job": "j", "group": "g"},
        "min": 0,
        "max": 2,
        "schedules": [schedule],
        "checks": [{"name": "c", "strategy": "fixed", "count": 1}],
    }
    by_schema = jsonschema.Draft202012Validator(json_schema()).is_valid(policy)
    try:
        load_text(json.dumps(policy), file="p.yaml")
    except PolicyError:
        by_loader = False
    else:
        by_loader = True
    assert by_schema == by_loader


def test_every_default_a_field_has_is_in_the_json_schema() -> None:
    """An editor shows the schema's `default`: a field whose default comes from a factory
    (a list) must state it too, or the schema hides what a policy gets without the key
    (`forecast.seasons` is `[1d, 1w]`, as POLICY_SPEC.md says). A nested model's default
    needs none: its own fields carry theirs."""
    from pydantic import BaseModel

    from autoscaler.policy import schema as models

    definitions = json_schema()["$defs"]
    missing = []
    for name, model in vars(models).items():
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or name not in (
            definitions
        ):
            continue
        for field, info in model.model_fields.items():
            if info.default_factory is None:
                continue
            value = info.default_factory()  # type: ignore[call-arg]
            if isinstance(value, BaseModel) or value == []:
                continue
            shown = definitions[name]["properties"][field].get("default")
            if shown != value:
                missing.append(f"{name}.{field}: default {value!r}, schema shows {shown!r}")
    assert not missing, missing
