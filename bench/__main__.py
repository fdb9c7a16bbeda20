"""`python -m bench` (or `make bench`): what `simulate` says about our policy, and its speed.

1. Quality on the shared public traces (../shared/traces): the recommended policy against
   the Kubernetes HPA algorithm and EC2 target tracking, through `autoscaler simulate`'s
   engine, on the second half of each trace (the recommended settings were chosen on the
   first halves: no tuning on what is reported).
2. Simulation speed: one week of a 15-second trace, every controller compared, in weeks
   of trace per second of wall time (goal: at least 1).
3. Cost of one decision in the pure core, against a trivial call in the same run.
"""

from __future__ import annotations

import argparse
import sys
import time
import timeit
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoscaler.core.decision import decide  # noqa: E402
from autoscaler.core.model import Memory, Observation, TargetStatus  # noqa: E402
from autoscaler.replay.recommended import recommended_policy  # noqa: E402
from autoscaler.replay.simulate import DEFAULT_START, Setup, simulate  # noqa: E402
from autoscaler.replay.trace import Trace, read_trace, tick_means  # noqa: E402

WEEK = 7 * 86400.0
PROVISIONING = 120.0
UTILIZATION = 0.7

# file, label, (start, end) of the part to use in seconds (None: all of it)
TRACES = [
    ("azure_llm_inference_code_2023-11-16_per_second.csv", "Azure LLM code (bursty, 1 s)", None),
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


def bench_quality(traces_dir: Path, half: int) -> None:
    which = "second" if half == 2 else "first"
    print(f"## Recommended policy against the baselines ({which} half of each trace)\n")
    print(
        f"provisioning {PROVISIONING:g} s, target utilization {UTILIZATION:g}, capacity: the "
        "trace's 99th percentile / 20 instances. under% = time with load above ready "
        "capacity; tU% = BUNGEE timeshare_U (time with fewer ready instances than demand).\n"
    )
    header = (
        f"{'trace':<32} {'controller':<12} {'under%':>7} {'tU%':>7} {'inst-h':>11} "
        f"{'actions':>8} {'under×hpa':>10} {'tU×hpa':>7} {'cost×hpa':>9}"
    )
    print(header)
    print("-" * len(header))
    for file, label, part in TRACES:
        path = traces_dir / file
        if not path.exists():
            print(f"{label:<32} (missing: {path})")
            continue
        trace = read_trace(path)
        if part is not None:
            trace = trace.window(*part)
        capacity = capacity_for(trace)
        middle = trace.end / 2
        trace = trace.window(middle, trace.end) if half == 2 else trace.window(0, middle)
        setup = Setup(capacity=capacity, target_utilization=UTILIZATION, provisioning=PROVISIONING)
        policy = recommended_policy(capacity, UTILIZATION, max_count=1000)
        sim = simulate(trace, setup, [policy], compare=["hpa", "aws-tt", "static", "oracle"])
        hpa = next(run.scores for run in sim.runs if run.name == "hpa")
        for run in sim.runs:
            s = run.scores
            print(
                f"{label:<32} {s.name:<12} {s.under_provisioned_pct:>6.2f}% "
                f"{s.timeshare_u:>6.2f}% {s.instance_hours:>11,.1f} {s.actions:>8} "
                f"{_ratio(s.under_provisioned_pct, hpa.under_provisioned_pct):>10} "
                f"{_ratio(s.timeshare_u, hpa.timeshare_u):>7} "
                f"{_ratio(s.instance_hours, hpa.instance_hours):>9}"
            )
    print()


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}" if base > 0 else "-"


def week_of_15s(traces_dir: Path) -> Trace:
    """One week of the Twitter trace as 15-second rows (exact means), or a synthetic week."""
    path = traces_dir / "twitter_sample_stream_2021-08_per_10s.csv"
    if path.exists():
        rates = tick_means(read_trace(path).window(0, WEEK), 15.0)
    else:
        rates = [50 + 40 * ((k // 240) % 7) for k in range(int(WEEK // 15))]
    return Trace("week-15s", [15.0 * k for k in range(len(rates))], rates, 15.0, WEEK)


def bench_speed(traces_dir: Path, repeat: int) -> None:
    print("## Simulation speed: one week of a 15 s trace, every controller compared\n")
    trace = week_of_15s(traces_dir)
    setup = Setup(capacity=10.0, target_utilization=UTILIZATION, provisioning=PROVISIONING)
    for interval in (30, 15):
        policy = replace(
            recommended_policy(10.0, UTILIZATION, max_count=1000),
            interval=timedelta(seconds=interval),
        )
        walls, cpus = [], []
        for _ in range(repeat):
            wall, cpu = time.perf_counter(), time.process_time()
            sim = simulate(trace, setup, [policy])
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        best = min(walls)
        what = "recommended policy" + (" (interval 30 s)" if interval == 30 else ", interval 15 s")
        print(
            f"{what}: {sim.ticks:,} ticks, {len(sim.runs)} controllers: best {best:.2f} s wall "
            f"({min(cpus):.2f} s CPU) of {repeat} = {sim.ticks * 15 / WEEK / best:.2f} "
            "weeks per second"
        )
    print()


def bench_decide() -> None:
    print("## Cost of one decision (ratio to a trivial call, same run)\n")
    policy = recommended_policy(10.0, UTILIZATION)
    status = TargetStatus(count=5)
    observations = [Observation(check="load", value=42.0)]
    memory = Memory()
    now = DEFAULT_START + timedelta(hours=1)

    def one() -> None:
        decide(policy, status=status, observations=observations, memory=memory, now=now)

    def trivial() -> None:
        return None

    number = 5000
    decide_s = min(timeit.repeat(one, number=number, repeat=5)) / number
    trivial_s = min(timeit.repeat(trivial, number=number, repeat=5)) / number
    print(f"decide(): {decide_s * 1e6:.1f} µs per call = {decide_s / trivial_s:.0f}× a no-op call")
    print(f"evaluations per second per core (decision only): {1 / decide_s:,.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--traces", type=Path, default=ROOT.parent / "shared" / "traces")
    parser.add_argument(
        "--half", type=int, choices=[1, 2], default=2, help="which half of each trace (default 2)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="speed runs (best is reported)")
    args = parser.parse_args()
    bench_quality(args.traces, args.half)
    bench_speed(args.traces, args.repeat)
    bench_decide()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
