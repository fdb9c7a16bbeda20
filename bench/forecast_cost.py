"""Where the forecast's instance-hours go, on the first halves of the shared traces.

`python -m bench.forecast_cost`: the recommended policy twice on each first half (the part
the settings were tuned on; nothing here looks at a second half or a held-out trace), once
as it is and once with `forecast_only: true` (the forecast computed and shown, never acted
on: the same policy, reactive), beside the HPA. An *episode* is a run of ticks in which the
recommended policy bills more instances than its reactive twin. An episode *helped* when,
during it or within the provisioning time after it, the reactive twin was short (under
capacity; below demand on traces where the HPA is never under capacity) on a tick where the
recommended policy was not. The last column bounds what any rule deciding *when* to act on
this forecast could save: the recommended policy's instance-hours without the extra of the
episodes that did not help, i.e. a gate that knew in advance which forecasts would pay off
(its time short stays the recommended policy's).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from autoscaler.policy.loader import load_text
from autoscaler.replay.fleet import ticks_for
from autoscaler.replay.recommended import NAME, recommended_yaml
from autoscaler.replay.simulate import Recorded, Run, Setup, Simulation, simulate
from bench.quality import NEVER_UNDER_PCT, PROVISIONING, UTILIZATION, Case, shared_cases

REACTIVE = "reactive"


@dataclass(frozen=True)
class Episodes:
    """The recommended policy's extra instance-ticks over its reactive twin, split."""

    helped: int  # episodes that spared the reactive twin a short tick
    wasted: int
    helped_extra: int  # instance-ticks billed beyond the twin's in helpful episodes
    wasted_extra: int


def episodes(sim: Simulation, ours: Run, twin: Run, *, by_demand: bool) -> Episodes:
    """Split the ticks where `ours` bills more than `twin` into helpful and wasted episodes."""
    ticks, after = sim.ticks, ticks_for(sim.setup.provisioning)  # as the fleet counts it
    capacity = sim.setup.capacity

    def short(run: Run, i: int) -> bool:
        if by_demand:
            return run.ready[i] < sim.demand[i]
        return sim.loads[i] > run.ready[i] * capacity

    helped = wasted = helped_extra = wasted_extra = 0
    i = 0
    while i < ticks:
        if ours.billed[i] <= twin.billed[i]:
            i += 1
            continue
        start = i
        while i < ticks and ours.billed[i] > twin.billed[i]:
            i += 1
        extra = sum(ours.billed[k] - twin.billed[k] for k in range(start, i))
        window = range(start, min(ticks, i + after))
        if any(short(twin, k) and not short(ours, k) for k in window):
            helped, helped_extra = helped + 1, helped_extra + extra
        else:
            wasted, wasted_extra = wasted + 1, wasted_extra + extra
    return Episodes(helped, wasted, helped_extra, wasted_extra)


def measure(case: Case) -> str:
    """One Markdown row for `case` (a first half)."""
    setup = Setup(capacity=case.capacity, target_utilization=UTILIZATION, provisioning=PROVISIONING)
    text = recommended_yaml(case.capacity, UTILIZATION, max_count=1000, provisioning=PROVISIONING)
    (ours,) = load_text(text, file="<recommended>")
    twin_text = text.replace(f"name: {NAME}", f"name: {REACTIVE}").replace(
        "    forecast:", "    forecast:\n      forecast_only: true", 1
    )
    (twin,) = load_text(twin_text, file="<reactive twin>")
    window = case.trace.window(case.start, case.end)
    sim = simulate(
        window, setup, [ours, twin], compare=["hpa"], recorded=Recorded(case.trace, case.start)
    )
    runs = {run.name: run for run in sim.runs}
    a, b, hpa = runs[NAME], runs[REACTIVE], runs["hpa"]
    by_demand = hpa.scores.under_provisioned_pct < NEVER_UNDER_PCT
    split = episodes(sim, a, b, by_demand=by_demand)
    hpa_ticks = sum(hpa.billed)

    def short(run: Run) -> float:
        s = run.scores
        return s.timeshare_u if by_demand else s.under_provisioned_pct

    def cell(run: Run) -> str:
        ratio = short(run) / short(hpa) if short(hpa) else float("nan")
        return f"{ratio:.2f}×, {sum(run.billed) / hpa_ticks:.3f}×"

    bound = (sum(a.billed) - split.wasted_extra) / hpa_ticks
    return (
        f"| {case.label} | {'below demand' if by_demand else 'under capacity'} | {cell(a)} | "
        f"{cell(b)} | {split.helped} ({split.helped_extra / hpa_ticks * 100:.2f} %) | "
        f"{split.wasted} ({split.wasted_extra / hpa_ticks * 100:.2f} %) | {bound:.3f}× |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[2] / "shared" / "traces"
    parser.add_argument("--traces", type=Path, default=default, help="the shared traces")
    args = parser.parse_args()
    print(
        "| first half | short = | recommended vs hpa: short, inst-h | reactive twin vs hpa | "
        "episodes that helped (their extra inst-h, % of hpa's) | episodes that did not | "
        "bound: without the episodes that did not help, inst-h vs hpa |"
    )
    print("|---|---|---|---|---|---|---|")
    for case in shared_cases(args.traces, 1):
        print(measure(case), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
