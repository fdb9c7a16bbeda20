"""One list of strategies and one of target kinds, and everything that reads them agrees.

The lists are `model.Strategy` and `model.TargetRef` (indexed as `model.TARGET_KINDS`).
Each test here names what is missing when a strategy or a target kind is added in one
place and forgotten in another: its function and traits, its policy-format model, the
loader's conversion, its adapter, the JSON Schema editors use, and the documentation.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from autoscaler.adapters.targets import BUILDERS
from autoscaler.core import model
from autoscaler.core.strategies import STRATEGIES
from autoscaler.policy.loader import json_schema
from autoscaler.policy.schema import CHECK_MODELS, TARGET_MODELS, TARGET_TYPES
from autoscaler.policy.schema import STRATEGIES as STRATEGY_TAGS

ROOT = Path(__file__).resolve().parents[2]
CHECK_FIELDS = {f.name for f in dataclasses.fields(model.Check)}
COMMON_CHECK_KEYS = {"name", "strategy", "query"}

strategies = pytest.mark.parametrize("strategy", list(model.Strategy), ids=str)
kinds = pytest.mark.parametrize("kind", list(model.TARGET_KINDS), ids=str)


def test_the_policy_format_offers_exactly_the_cores_strategies_and_kinds() -> None:
    assert tuple(s.value for s in model.Strategy) == STRATEGY_TAGS
    assert list(CHECK_MODELS) == list(STRATEGY_TAGS)
    assert tuple(model.TARGET_KINDS) == TARGET_TYPES
    assert list(TARGET_MODELS) == list(TARGET_TYPES)


@strategies
def test_each_strategy_has_a_function_and_traits(strategy: model.Strategy) -> None:
    spec = STRATEGIES.get(strategy)
    assert spec is not None, f"core/strategies.py: STRATEGIES has no entry for {strategy}"
    unknown = spec.settings - CHECK_FIELDS
    assert not unknown, f"{strategy} reads {unknown}, which model.Check does not have"


@strategies
def test_each_strategys_check_model_takes_exactly_its_settings(strategy: model.Strategy) -> None:
    keys = set(CHECK_MODELS[strategy.value].model_fields)
    spec = STRATEGIES[strategy]
    assert keys - COMMON_CHECK_KEYS == spec.settings, (
        f"policy/schema.py's {strategy} model and its StrategySpec.settings disagree"
    )
    assert ("query" in keys) == spec.query, f"{strategy}: a query in the model iff spec.query"


@kinds
def test_each_target_kinds_model_has_its_dataclass_fields_and_defaults(kind: str) -> None:
    dataclass = model.TARGET_KINDS[kind]
    fields = {f.name: f for f in dataclasses.fields(dataclass)}
    schema_fields = TARGET_MODELS[kind].model_fields
    assert set(schema_fields) == set(fields), (
        f"policy/schema.py's {kind} model and model.{dataclass.__name__} have other fields"
    )
    for name, field in schema_fields.items():
        if name != "type" and not field.is_required():
            assert field.default == fields[name].default, f"{kind}.{name}: defaults differ"
    assert dataclass.type == kind
    assert isinstance(dataclass.min_count, int) and dataclass.min_count >= 0


@kinds
def test_each_target_kind_has_an_adapter(kind: str) -> None:
    assert kind in BUILDERS, f"adapters/targets/__init__.py: BUILDERS has no adapter for {kind}"


@kinds
def test_each_target_kind_loads_into_its_dataclass(kind: str) -> None:
    from autoscaler.policy.loader import load_text

    model_cls = TARGET_MODELS[kind]
    required = [n for n, f in model_cls.model_fields.items() if f.is_required() and n != "type"]
    target = ", ".join([f"type: {kind}", *(f"{name}: x" for name in required)])
    text = (
        f"name: p\ntarget: {{{target}}}\nmin: {max(1, model.TARGET_KINDS[kind].min_count)}\n"
        "max: 2\nchecks: [{name: c, strategy: fixed, count: 1}]\n"
    )
    (policy,) = load_text(text, "p.yaml")
    assert isinstance(policy.target, model.TARGET_KINDS[kind])
    assert all(getattr(policy.target, name) == "x" for name in required)


def _schema_tags(schema: dict[str, Any], key: str) -> set[str]:
    tags: set[str] = set()
    for definition in schema["$defs"].values():
        prop = definition.get("properties", {}).get(key, {})
        if "const" in prop:
            tags.add(prop["const"])
        tags.update(prop.get("enum", []))
    return tags


def test_the_shipped_json_schema_knows_every_strategy_and_kind() -> None:
    shipped = json.loads((ROOT / "policy.schema.json").read_text())
    assert shipped == json_schema(), "regenerate it: autoscaler schema > policy.schema.json"
    assert _schema_tags(shipped, "strategy") == set(STRATEGY_TAGS)
    assert {"aws-asg", "nomad"} <= _schema_tags(shipped, "type")
    assert set(TARGET_TYPES) <= _schema_tags(shipped, "type")


@pytest.mark.parametrize("doc", ["README.md", "docs/POLICY_SPEC.md"])
def test_the_documentation_names_every_strategy_and_kind(doc: str) -> None:
    text = (ROOT / doc).read_text()
    for tag in (*STRATEGY_TAGS, *TARGET_TYPES):
        assert f"`{tag}`" in text or f": {tag}" in text, f"{doc} does not document {tag}"
