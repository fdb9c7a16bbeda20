"""`python -m bench` (or `make bench`): side-by-side benchmarks, reported as ratios.

1. Policy behaviour on real public traces (../shared/traces): the default settings and
   the default settings with a scale-down limit, against a naive controller with no
   cooldown and no stabilization, on the same trace in the same run.
2. Cost of one decision in the pure core, against the cost of one trivial function call
   measured in the same run, so the number travels between machines.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoscaler.core.decision import decide  # noqa: E402
from autoscaler.core.model import Memory, Observation, TargetStatus  # noqa: E402
from bench.simulate import (  # noqa: E402
    EPOCH,
    base_policy,
    capacity_for,
    read_trace,
    settings,
    simulate,
)

# trace file, evaluation interval (s), provisioning delay (s)
TRACES = [
    ("azure_llm_inference_code_2023-11-16_per_second.csv", 15, 60),
    ("azure_llm_inference_conv_2023-11-16_per_second.csv", 15, 60),
    ("nasa_http_jul1995_per_minute.csv", 60, 120),
    ("twitter_sample_stream_2021-08_per_10s.csv", 30, 120),
]


def bench_policies(traces_dir: Path) -> None:
    print("## Policy behaviour on real traces (ratios: setting / naive)\n")
    header = (
        f"{'trace':<44} {'setting':<16} {'actions':>8} {'flaps':>6} "
        f"{'inst-h':>9} {'under%':>7} {'actions×':>9} {'cost×':>6}"
    )
    print(header)
    print("-" * len(header))
    for file, interval, provisioning in TRACES:
        path = traces_dir / file
        if not path.exists():
            print(f"{file:<44} (missing: {path})")
            continue
        trace = read_trace(path, interval, provisioning)
        capacity = capacity_for(trace)
        results = {
            name: simulate(trace, policy, capacity)
            for name, policy in settings(capacity, interval).items()
        }
        naive = results["naive"]
        for name, r in results.items():
            actions_ratio = r.actions / naive.actions if naive.actions else float("nan")
            cost_ratio = r.instance_hours / naive.instance_hours
            print(
                f"{trace.name[:44]:<44} {name:<16} {r.actions:>8} {r.reversals:>6} "
                f"{r.instance_hours:>9.1f} {100 * r.under_capacity:>6.2f}% "
                f"{actions_ratio:>9.2f} {cost_ratio:>6.2f}"
            )
    print(
        "\nactions: scaling calls; flaps: direction reversals within 10 min; inst-h: "
        "instance-hours; under%: time with load above ready capacity."
    )


def bench_decide() -> None:
    print("\n## Cost of one decision (ratio to a trivial call, same run)\n")
    policy = base_policy(capacity=10.0, interval=15)
    status = TargetStatus(count=5)
    observations = [Observation(check="load", value=42.0)]
    memory = Memory()
    now = EPOCH + timedelta(hours=1)

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
    args = parser.parse_args()
    bench_policies(args.traces)
    bench_decide()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
