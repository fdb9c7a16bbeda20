"""How the recommended policy compares with the Kubernetes HPA and EC2 target tracking.

The goal (issue 11), measured with `autoscaler simulate --compare hpa`, the recommended
policy and our defaults: at least 30 % less time under capacity than the HPA at no more
instance-hours; where the HPA is never under capacity (smooth hourly load), the same for
BUNGEE's timeshare_U (time with fewer ready instances than the demand).

Protocol: each shared trace is split in halves; the recommended settings were chosen on
the first halves (`--half 1`) and the second halves are reported, each simulated with its
first half as the history forecasts read (what Prometheus would hold). The held-out
traces (`heldout`) were never looked at while tuning; they are reported the same way.
Fleet: 120 s provisioning, target utilization 0.7, a capacity per instance that makes the
trace's 99th percentile need 20 instances.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from autoscaler.replay.recommended import recommended_policy
from autoscaler.replay.scores import Scores
from autoscaler.replay.simulate import Recorded, Setup, simulate
from autoscaler.replay.trace import Trace, read_trace
from bench.heldout import heldout_traces

PROVISIONING = 120.0
UTILIZATION = 0.7
GOAL_UNDER = 0.7  # at most 70 % of the HPA's time under capacity ...
GOAL_COST = 1.0  # ... at no more instance-hours
# Below this share of the time under capacity (a minute a week), the HPA counts as never
# under capacity, and the time below demand (timeshare_U) is compared instead.
NEVER_UNDER_PCT = 0.01

# file, label, (start, end) of the part to use in seconds (None: all of it)
SHARED = [
    ("azure_llm_inference_code_2023-11-16_per_second.csv", "Azure LLM code (1 s)", None),
    ("azure_llm_inference_conv_2023-11-16_per_second.csv", "Azure LLM conversation (1 s)", None),
    ("nasa_http_jul1995_per_minute.csv", "NASA HTTP, July 1995 (1 min)", None),
    ("twitter_sample_stream_2021-08_per_10s.csv", "Twitter sample stream (10 s)", None),
    # The longest stretch without gaps (SOURCES.md): 2011-12-26 to 2012-10-31.
    (
        "wikipedia_all_projects_hourly_2008-2013.csv",
        "Wikipedia, 2012 (1 h)",
        (113_893_200.0, 140_706_000.0),
    ),
]


def capacity_for(trace: Trace) -> float:
    """Per-instance capacity so that the trace's 99th percentile needs about 20 instances."""
    ordered = sorted(trace.rates)
    return max(1e-6, ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] / 20)


@dataclass(frozen=True)
class Case:
    """One scored run: a trace, the part scored, and what came before it (history)."""

    label: str
    part: str
    trace: Trace  # the whole trace: history, then the scored part
    start: float  # where the scored part starts
    end: float
    capacity: float


@dataclass(frozen=True)
class Result:
    case: Case
    ours: Scores
    hpa: Scores
    aws: Scores
    seconds: float

    @property
    def by_timeshare(self) -> bool:
        """The HPA is (practically) never under capacity here: compare the time below
        demand instead."""
        return self.hpa.under_provisioned_pct < NEVER_UNDER_PCT

    @property
    def under_ratio(self) -> float | None:
        if self.by_timeshare:
            return _ratio(self.ours.timeshare_u, self.hpa.timeshare_u)
        return _ratio(self.ours.under_provisioned_pct, self.hpa.under_provisioned_pct)

    @property
    def cost_ratio(self) -> float | None:
        return _ratio(self.ours.instance_hours, self.hpa.instance_hours)

    @property
    def verdict(self) -> str:
        under, cost = self.under_ratio, self.cost_ratio
        if under is None or cost is None:
            return "– (the HPA is never below demand)"
        misses = []
        if under > GOAL_UNDER:
            misses.append("not 30 % less " + ("below demand" if self.by_timeshare else "under"))
        if cost > GOAL_COST:
            misses.append("more instance-hours")
        return "**met**" if not misses else "not met: " + ", ".join(misses)


def _ratio(value: float, base: float) -> float | None:
    if base > 0:
        return value / base
    return 0.0 if value == 0 else None


def shared_cases(traces_dir: Path, half: int) -> Iterator[Case]:
    """The first or second half of each shared trace, the part before it as history."""
    for file, label, part in SHARED:
        path = traces_dir / file
        if not path.exists():
            print(f"(missing: {path})")
            continue
        trace = read_trace(path)
        if part is not None:
            trace = trace.window(*part)
        middle = trace.end / 2
        start, end = (middle, trace.end) if half == 2 else (0.0, middle)
        name = "second half" if half == 2 else "first half"
        yield Case(label, name, trace, start, end, capacity_for(trace))


def heldout_cases(traces_dir: Path) -> Iterator[Case]:
    for held in heldout_traces(traces_dir):
        days = (held.trace.end - held.split) / 86400
        part = f"last {days:g} d" if days >= 1 else f"last {days * 24:g} h"
        yield Case(
            held.label, part, held.trace, held.split, held.trace.end, capacity_for(held.trace)
        )


def run_case(case: Case) -> Result:
    """The recommended policy, the HPA and EC2 target tracking on one case."""
    started = time.perf_counter()
    setup = Setup(capacity=case.capacity, target_utilization=UTILIZATION, provisioning=PROVISIONING)
    policy = recommended_policy(
        case.capacity, UTILIZATION, max_count=1000, provisioning=PROVISIONING
    )
    window = case.trace.window(case.start, case.end)
    sim = simulate(
        window,
        setup,
        [policy],
        compare=["hpa", "aws-tt"],
        recorded=Recorded(case.trace, case.start),
    )
    scores = {run.name: run.scores for run in sim.runs}
    return Result(
        case,
        scores[policy.name],
        scores["hpa"],
        scores["aws-tt"],
        time.perf_counter() - started,
    )


def _cell(s: Scores) -> str:
    under = s.under_provisioned_pct
    shown = f"{under:.2f}" if under == 0 or under >= 0.005 else f"{under:.1e}"
    return f"{shown} % · {s.timeshare_u:.1f} % · {s.instance_hours:,.1f}"


def _times(ratio: float | None, digits: int = 2) -> str:
    return "–" if ratio is None else f"{ratio:.{digits}f}×"


def table(results: list[Result]) -> str:
    """The results as a Markdown table (what the README shows)."""
    lines = [
        "| trace | scored | recommended | hpa | aws-tt | vs hpa: under (tU), inst-h | goal |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        under = _times(r.under_ratio) + (" tU" if r.by_timeshare else "")
        lines.append(
            f"| {r.case.label} | {r.case.part} | {_cell(r.ours)} | {_cell(r.hpa)} | "
            f"{_cell(r.aws)} | {under}, {_times(r.cost_ratio, 3)} | {r.verdict} |"
        )
    return "\n".join(lines)


def bench_quality(traces_dir: Path, half: int, *, heldout: bool = True) -> list[Result]:
    """Print the quality tables (shared traces, then held-out ones); return the results."""
    which = "second" if half == 2 else "first"
    print(f"## The recommended policy against the HPA ({which} halves; held-out traces)\n")
    print(
        f"provisioning {PROVISIONING:g} s, target utilization {UTILIZATION:g}, capacity: the "
        "trace's 99th percentile / 20 instances. Each cell: under capacity % (load above "
        "what the ready instances serve) · timeshare_U % (fewer ready than the demand) · "
        "instance-hours. Goal: under ≤ 0.70× the HPA's (timeshare_U where the HPA is never "
        "under) at ≤ 1.00× its instance-hours.\n"
    )
    results = []
    for case in shared_cases(traces_dir, half):
        results.append(run_case(case))
    print(table(results))
    print()
    if heldout:
        held = [run_case(case) for case in heldout_cases(traces_dir)]
        print("Held-out traces (never tuned on):\n")
        print(table(held))
        print()
        results += held
    met = sum(1 for r in results if r.verdict == "**met**")
    print(f"goal met on {met} of {len(results)}; {sum(r.seconds for r in results):.0f} s\n")
    return results
