"""Rendering of evaluations for people (table) and machines (JSON)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from autoscaler.core.forecast import describe
from autoscaler.engine.reconciler import Evaluation

PLAN_KEYS = ("policy", "target", "current", "desired", "action", "dry_run", "reasons", "checks")


def plan_object(evaluation: Evaluation) -> dict[str, Any]:
    """The documented `plan --output json` object for one policy."""
    full = evaluation.decision.to_dict()
    obj = {key: full[key] for key in PLAN_KEYS}
    obj["error"] = evaluation.error
    return obj


def render_plan_json(evaluations: Sequence[Evaluation]) -> str:
    return json.dumps([plan_object(e) for e in evaluations], indent=2)


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def render_plan_table(evaluations: Sequence[Evaluation]) -> str:
    """A block per policy: headline, reasons, then one line per check."""
    if not evaluations:
        return "no enabled policies\n"
    lines: list[str] = []
    for evaluation in evaluations:
        d = evaluation.decision
        flag = "  [dry-run]" if d.dry_run else ""
        lines.append(
            f"{d.policy}  {d.target}  current {_count(d.current)} -> desired "
            f"{_count(d.desired)}  {d.action.value.upper()}{flag}"
        )
        for reason in d.reasons:
            lines.append(f"  - {reason}")
        if evaluation.error and evaluation.error not in d.reasons:
            lines.append(f"  ! not evaluated: {evaluation.error}")
        width = max((len(c.name) for c in d.checks), default=0)
        for c in d.checks:
            query = c.query if c.query is not None else "(fixed)"
            outcome = f"error: {c.error}" if c.error else f"= {_value(c.value)} -> {c.desired}"
            lines.append(f"    {c.name:<{width}}  {outcome}")
            if c.forecast is not None:
                lines.append(f"    {'':<{width}}  forecast {describe(c.forecast)}")
            lines.append(f"    {'':<{width}}  {query}")
        lines.append("")
    return "\n".join(lines)
