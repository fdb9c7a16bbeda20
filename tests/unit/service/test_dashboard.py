"""The Grafana dashboard against what `/metrics` really exports: each query's series by
name *and* kind (a `_bucket` only of a histogram), every label it filters, groups, joins
or names in a legend, the `$policy` variable's query, and panel units that say what the
query gives (a rate per second, seconds, a plain count)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, cast

import promql_parser as promql
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.service.test_telemetry import _dashboard, _exposition_of_a_busy_controller

# Prometheus adds these to every series it scrapes.
TARGET_LABELS = frozenset({"job", "instance"})
GRAFANA = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "1m", "$policy": ".*"}
PER_SECOND_UNITS = frozenset({"ops", "reqps", "rps", "wps", "iops", "opm", "rpm"})


def _exported() -> dict[str, frozenset[str]]:
    """Every sample name a busy controller writes on /metrics -> its label names, as
    Prometheus stores it (the target's `job` and `instance` added)."""
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(_exposition_of_a_busy_controller()):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return {name: frozenset(found) | TARGET_LABELS for name, found in labels.items()}


EXPORTED = _exported()


def _queries() -> Iterator[tuple[str, str, str]]:
    """(where, expression, legend) of every panel target and annotation."""
    dashboard = _dashboard()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            where = f"{panel['title']} ({target['refId']})"
            yield where, target["expr"], target.get("legendFormat", "")
    for annotation in dashboard["annotations"]["list"]:
        yield annotation["name"], annotation["expr"], annotation.get("titleFormat", "")


def _concrete(expr: str) -> str:
    for variable, value in GRAFANA.items():
        expr = expr.replace(variable, value)
    return expr


class _Labels:
    """The label names of a PromQL expression's result (None: a scalar), and every
    problem found on the way: a series not exported, a label it does not carry."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def of(self, node: promql.Expr) -> frozenset[str] | None:
        if isinstance(node, promql.MatrixSelector):
            return self.of(node.vector_selector)
        if isinstance(node, promql.VectorSelector):
            return self._selector(node)
        if isinstance(node, promql.ParenExpr | promql.UnaryExpr):
            return self.of(node.expr)
        if isinstance(node, promql.NumberLiteral | promql.StringLiteral):
            return None
        if isinstance(node, promql.Call):
            return self._call(node)
        if isinstance(node, promql.AggregateExpr):
            return self._aggregate(node)
        if isinstance(node, promql.BinaryExpr):
            return self._binary(node)
        self.problems.append(f"cannot follow {type(node).__name__} in the labels test")
        return frozenset()

    def _selector(self, node: promql.VectorSelector) -> frozenset[str]:
        name = node.name or ""
        if name not in EXPORTED:
            self.problems.append(f"{name}: no such series on /metrics")
            return frozenset()
        labels = EXPORTED[name]
        for matcher in node.matchers.matchers:
            if matcher.name not in labels:
                self.problems.append(f"{name}: filters on {matcher.name!r}, which it lacks")
        return labels

    def _call(self, node: promql.Call) -> frozenset[str] | None:
        found = [self.of(arg) for arg in node.args]
        vectors = [labels for labels in found if labels is not None]
        if node.func.name == "histogram_quantile":
            (buckets,) = vectors
            if "le" not in buckets:
                self.problems.append("histogram_quantile over series without `le`")
            return buckets - {"le"}
        if node.func.name in ("time", "vector", "scalar"):
            return None if node.func.name != "vector" else frozenset()
        return vectors[0] if vectors else None

    def _aggregate(self, node: promql.AggregateExpr) -> frozenset[str]:
        inner = self.of(node.expr) or frozenset()
        if node.modifier is None:
            return frozenset()
        named = frozenset(node.modifier.labels)
        for label in named - inner:
            self.problems.append(f"{node.op} by/without {label!r}, which the series lack")
        if node.modifier.type == promql.AggModifierType.Without:
            return inner - named
        return named

    def _binary(self, node: promql.BinaryExpr) -> frozenset[str] | None:
        lhs, rhs = self.of(node.lhs), self.of(node.rhs)
        if lhs is None or rhs is None:
            return rhs if lhs is None else lhs
        modifier = node.modifier
        if modifier is not None and modifier.matching is not None:
            for label in frozenset(modifier.matching.labels) - (lhs & rhs):
                self.problems.append(f"joins on {label!r}, which a side lacks")
        if modifier is not None and modifier.card == promql.VectorMatchCardinality.OneToMany:
            return rhs
        return lhs


@pytest.mark.parametrize(("where", "expr", "legend"), list(_queries()))
def test_each_query_uses_exported_series_and_labels_and_its_legend_names_them(
    where: str, expr: str, legend: str
) -> None:
    labels = _Labels()
    result = labels.of(promql.parse(_concrete(expr))) or frozenset()
    assert labels.problems == [], where
    named = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
    assert named <= result, (where, named - result)


def test_the_policy_variable_lists_a_label_the_series_has() -> None:
    variables = {v["name"]: v for v in _dashboard()["templating"]["list"]}
    query = variables["policy"]["query"]["query"]
    match = re.fullmatch(r"label_values\((\w+), (\w+)\)", query)
    assert match, query
    series, label = match.groups()
    assert label in EXPORTED[series], query


def test_a_bucket_series_exists_only_for_histograms() -> None:
    """The label test would catch `autoscaler_check_value_bucket`: no such sample name."""
    labels = _Labels()
    labels.of(promql.parse("rate(autoscaler_check_value_bucket[5m])"))
    assert labels.problems == ["autoscaler_check_value_bucket: no such series on /metrics"]
    labels = _Labels()
    labels.of(promql.parse('sum by (check) (autoscaler_current_capacity{check="p95"})'))
    assert len(labels.problems) == 2, labels.problems


def _unit(panel: dict[str, Any], ref: str) -> str | None:
    """The unit Grafana shows the target `ref` of `panel` in."""
    config = panel.get("fieldConfig", {})
    unit = config.get("defaults", {}).get("unit")
    for override in config.get("overrides", []):
        if override["matcher"] == {"id": "byFrameRefID", "options": ref}:
            for prop in override["properties"]:
                if prop["id"] == "unit":
                    unit = prop["value"]
    return cast(str | None, unit)


def _kind(expr: str) -> str:
    """What a query gives: `seconds`, `per-second`, `ratio`, `bytes` or a `count`."""
    if "histogram_quantile(" in expr or re.search(r"time\(\) - \w+_timestamp_seconds", expr):
        return "seconds"
    if re.search(r"\brate\(", expr):
        return "per-second"
    if re.search(r"\b\w+_seconds\b", expr) and "increase(" not in expr:
        return "seconds"
    if re.search(r"\b\w+_ratio\b", expr):
        return "ratio"
    if re.search(r"\b\w+_bytes\b", expr):
        return "bytes"
    return "count"


def _panel_targets() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in _dashboard()["panels"]:
        for target in panel.get("targets", []):
            yield panel, target


@pytest.mark.parametrize(
    ("panel", "target"),
    [pytest.param(p, t, id=f"{p['id']}-{t['refId']}") for p, t in _panel_targets()],
)
def test_each_query_is_shown_in_a_unit_that_fits_what_it_gives(
    panel: dict[str, Any], target: dict[str, Any]
) -> None:
    unit, kind = _unit(panel, target["refId"]), _kind(target["expr"])
    where = (panel["title"], target["refId"], kind, unit)
    if kind == "per-second":
        # A rate of CPU seconds is cores (`short`); any other rate is per second.
        assert unit in PER_SECOND_UNITS or "process_cpu_seconds_total" in target["expr"], where
    elif kind == "seconds":
        assert unit == "s", where
    elif kind == "ratio":
        assert unit == "percentunit", where
    elif kind == "bytes":
        assert unit == "bytes", where
    else:
        assert unit not in PER_SECOND_UNITS and unit != "s", where


def test_per_policy_gauges_are_read_from_the_replica_that_evaluates() -> None:
    """Under `--ha` a standby keeps the gauges it set while it led (frozen), and its
    policies' last success ages from their load: the panels read the leader's only, as the
    README's AutoscalerPolicyStale alert does."""
    gauges = (
        "autoscaler_last_successful_evaluation_timestamp_seconds",
        "autoscaler_current_capacity",
        "autoscaler_desired_capacity",
        "autoscaler_check_value",
        "autoscaler_check_desired_capacity",
        "autoscaler_check_forecast_value",
        "autoscaler_check_forecast_lead_seconds",
        "autoscaler_check_forecast_error_ratio",
    )
    for panel, target in _panel_targets():
        expr = target["expr"]
        if any(re.search(rf"\b{g}\b", expr) for g in gauges):
            assert expr.endswith("and on (job, instance) (autoscaler_leader == 1)"), (
                panel["title"],
                expr,
            )
