"""What a backtest looks like: each check's recorded value against its target, and counts.

Per policy (the first `MAX_POLICIES` of the run): one panel per check with its value as
the policy read it, its target (`target-value`: the target; `per-instance`: target ×
simulated instances) and, where the check had no usable value, a red band; then a panel of
counts: simulated, desired (a change held by a cooldown shows here first), the recorded
count (with a count query), and every action marked with its reasons. Drawn by `plot`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import timedelta

from autoscaler.core.durations import format_duration
from autoscaler.core.model import Check, Policy, Strategy
from autoscaler.replay.plot import Figure, Marks, Panel, Series
from autoscaler.replay.results import Backtest, PolicyBacktest, PolicySeries, iso

MAX_POLICIES = 10  # panels beyond this make a page nobody scrolls through
_MAX_MARKS = 400  # beyond this, marks are a smear: the count line shows the actions
_VALUE, _TARGET, _GAP = "#1f77b4", "#2ca02c", "#d62728"
_COUNT, _DESIRED, _RECORDED = "#1f77b4", "#e67e22", "#7f7f7f"


def backtest_figure(result: Backtest, policies: Mapping[str, Policy]) -> Figure:
    """The panels of the first policies of `result` (run with `Options(series=True)`)."""
    plotted = [p for p in result.policies if p.series is not None][:MAX_POLICIES]
    step = min((p.step for p in plotted), default=timedelta(minutes=1))
    count = max(1, math.ceil((result.end - result.start) / step))
    times = [k * step.total_seconds() for k in range(count)]
    panels: list[Panel] = []
    for backtest in plotted:
        assert backtest.series is not None
        index = _resampling(backtest.step, step, count, len(backtest.series.count))
        policy = policies[backtest.policy]
        panels.extend(_check_panels(backtest, policy, backtest.series, index))
        panels.append(_count_panel(backtest, result, backtest.series, index))
    shown = f"{len(plotted)} of {len(result.policies)} policies"
    if len(plotted) < len(result.policies):
        shown += f" (the first {len(plotted)}; pass fewer policy files to see others)"
    return Figure(
        title=f"backtest {iso(result.start)} → {iso(result.end)}",
        subtitle=f"{shown}; drawn every {format_duration(step)}; {result.range_queries} range "
        "queries; red: the check had no usable value (no data, error, NaN)",
        times=times,
        panels=panels,
        table=summary_table(result),
        empty=(
            "no policy was backtested: none is enabled, no policy file is valid, or "
            "discovery found no target (check the paths and any errors above)"
        ),
    )


def summary_table(result: Backtest) -> list[list[str]]:
    """One row per policy, header first (the HTML page shows it under the panels)."""
    rows = [
        [
            "policy",
            "evaluations",
            "actions",
            "instance-h",
            "min",
            "max",
            "holds",
            "no data",
            "recorded instance-h",
        ]
    ]
    for p in result.policies:
        recorded = f"{p.recorded.instance_hours:,.1f}" if p.recorded is not None else "-"
        rows.append(
            [
                p.policy,
                str(p.evaluations),
                str(p.actions),
                f"{p.instance_hours:,.1f}",
                str(p.min_count),
                str(p.max_count),
                str(p.holds),
                str(p.no_data),
                recorded,
            ]
        )
    return rows


def _resampling(own: timedelta, common: timedelta, count: int, length: int) -> list[int]:
    """For each instant of the common grid, the index of the policy's latest evaluation."""
    return [min(length - 1, (k * common) // own) for k in range(count)] if length else []


def _held(values: Sequence[float], index: Sequence[int]) -> list[float]:
    """`values` on the common grid; where one is NaN, the last number before it (or 0)."""
    out, last = [], 0.0
    for i in index:
        value = values[i]
        if not math.isnan(value):
            last = value
        out.append(last)
    return out


def _check_panels(
    backtest: PolicyBacktest, policy: Policy, series: PolicySeries, index: Sequence[int]
) -> list[Panel]:
    panels = []
    checks = {c.name: c for c in policy.checks}
    for name, values in series.checks.items():
        check = checks[name]
        shown = _held(values, index)
        lines = [Series(f"{name} (as read)", shown, _VALUE, width=1.2)]
        target = _target(check, series.count, index)
        if target is not None:
            lines.append(Series(target[0], target[1], _TARGET, step=True, dashed=True))
        if any(math.isnan(values[i]) for i in index):
            top = max([*shown, *(target[1] if target else ())], default=1.0) or 1.0
            gaps = [top if math.isnan(values[i]) else 0.0 for i in index]
            lines.append(Series("no usable value", gaps, _GAP, step=True, width=1.0))
        title = f"{backtest.policy}: check {name} ({check.strategy.value})"
        panels.append(Panel(title, "", lines))
    return panels


def _target(
    check: Check, counts: Sequence[float], index: Sequence[int]
) -> tuple[str, list[float]] | None:
    if check.target is None:
        return None
    if check.strategy is Strategy.PER_INSTANCE:
        return f"target {check.target:g} × instances", [check.target * counts[i] for i in index]
    if check.strategy is Strategy.TARGET_VALUE:
        return f"target {check.target:g}", [check.target] * len(index)
    return None


def _count_panel(
    backtest: PolicyBacktest, result: Backtest, series: PolicySeries, index: Sequence[int]
) -> Panel:
    lines = [
        Series("simulated", [series.count[i] for i in index], _COUNT, step=True),
        Series("desired", _held(series.desired, index), _DESIRED, step=True, dashed=True),
    ]
    if series.recorded is not None:
        lines.append(Series("recorded", _held(series.recorded, index), _RECORDED, step=True))
    marks: list[Marks] = []
    if backtest.actions <= _MAX_MARKS:
        start = result.start
        for label, symbol, color, chosen in (
            ("scale up", "^", "#2ca02c", [c for c in backtest.changes if c.new > c.old]),
            ("scale down", "v", "#d62728", [c for c in backtest.changes if c.new < c.old]),
        ):
            if chosen:
                marks.append(
                    Marks(
                        label,
                        [(c.at - start).total_seconds() for c in chosen],
                        [float(c.new) for c in chosen],
                        color,
                        symbol,
                        [
                            f"{iso(c.at)}: {c.old} → {c.new}: " + "; ".join(c.reasons)
                            for c in chosen
                        ],
                    )
                )
    return Panel(f"{backtest.policy}: instances", "count", lines, marks)
