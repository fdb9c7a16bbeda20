"""What a simulation looks like: load against capacity, and instances against demand.

The first policy is drawn in full (billed and ready instances, every action marked, the
capacity its ready instances offer); the other controllers' ready instances are thinner
lines, so the comparison shows without hiding the policy being judged.
"""

from __future__ import annotations

from pathlib import Path

from autoscaler.core.names import counted
from autoscaler.replay.fleet import TICK_SECONDS
from autoscaler.replay.plot import Figure, Marks, Panel, Series
from autoscaler.replay.simulate import Run, Simulation

_MAIN = {"desired": "#e67e22", "ready": "#1f77b4"}
_OTHERS = ["#7f7f7f", "#9467bd", "#8c564b", "#17becf", "#bcbd22", "#e377c2"]
_MAX_MARKS = 400  # beyond this, marks are a smear: the desired line shows the actions


def simulation_figure(sim: Simulation) -> Figure:
    """Two panels (load, instances) over the run, plus the scores table for the page."""
    times = [k * TICK_SECONDS for k in range(sim.ticks)]
    setup = sim.setup
    main = sim.runs[0] if sim.runs else None
    load_series = [Series("load", sim.loads, "#222222", width=1.0)]
    count_series = [Series("demand", [float(d) for d in sim.demand], "#222222", step=True)]
    marks: list[Marks] = []
    if main is not None:
        capacity = [r * setup.capacity for r in main.ready]
        target = [c * setup.target_utilization for c in capacity]
        load_series += [
            Series(f"{main.name}: ready capacity", capacity, _MAIN["ready"], step=True),
            Series(f"{main.name}: target", target, _MAIN["ready"], step=True, dashed=True),
        ]
        count_series += [
            Series(f"{main.name} desired", [float(c) for c in main.billed], _MAIN["desired"], True),
            Series(f"{main.name} ready", [float(c) for c in main.ready], _MAIN["ready"], True),
        ]
        marks = _action_marks(main)
    others = [run for run in sim.runs[1:] if run.name not in ("oracle", "static")]
    for run, color in zip(others, _OTHERS * (len(others) // len(_OTHERS) + 1), strict=False):
        count_series.append(
            Series(f"{run.name} ready", [float(c) for c in run.ready], color, True, width=1.0)
        )
    panels = [
        Panel("Load", "requests/s", load_series),
        Panel("Instances", "count", count_series, marks),
    ]
    subtitle = (
        f"capacity {setup.capacity:g} req/s per instance, target utilization "
        f"{setup.target_utilization:g}, provisioning {setup.provisioning:g} s, "
        f"{counted(sim.ticks, 'tick')} of {TICK_SECONDS:g} s"
    )
    return Figure(
        title=f"simulate: {Path(sim.trace.name).name}",
        subtitle=subtitle,
        times=times,
        panels=panels,
        table=score_table(sim),
    )


def _action_marks(run: Run) -> list[Marks]:
    if len(run.actions) > _MAX_MARKS:
        return []
    ups = [a for a in run.actions if a.after > a.before]
    downs = [a for a in run.actions if a.after < a.before]
    out = []
    for label, chosen, symbol, color in (
        (f"{run.name} scale up", ups, "^", "#2ca02c"),
        (f"{run.name} scale down", downs, "v", "#d62728"),
    ):
        if chosen:
            out.append(
                Marks(
                    label,
                    [a.tick * TICK_SECONDS for a in chosen],
                    [float(a.after) for a in chosen],
                    color,
                    symbol,
                    [
                        f"{a.tick * TICK_SECONDS / 60:.1f} min: {a.before} → {a.after}: "
                        + "; ".join(a.reasons)
                        for a in chosen
                    ],
                )
            )
    return out


HEADER = (
    "controller",
    "instance-h",
    "under %",
    "accuracy U %",
    "accuracy O %",
    "timeshare U %",
    "timeshare O %",
    "jitter /h",
    "actions",
)


def score_table(sim: Simulation) -> list[list[str]]:
    """The scores as rows of text, header first (for the terminal and the HTML page)."""
    rows = [list(HEADER)]
    for run in sim.runs:
        s = run.scores
        rows.append(
            [
                s.name,
                f"{s.instance_hours:,.1f}",
                f"{s.under_provisioned_pct:.2f}",
                f"{s.accuracy_u:.2f}",
                f"{s.accuracy_o:.2f}",
                f"{s.timeshare_u:.2f}",
                f"{s.timeshare_o:.2f}",
                f"{s.jitter_per_hour:.2f}",
                str(s.actions),
            ]
        )
    return rows
