"""`python -m bench` (or `make bench`): what `simulate` says about our policy, and its speed.

1. Quality (`bench.quality`): the recommended policy against the Kubernetes HPA algorithm
   and EC2 target tracking, through `autoscaler simulate`'s engine, on the second half of
   each shared public trace (../shared/traces; the recommended settings were chosen on the
   first halves: no tuning on what is reported) and on held-out traces (`bench.heldout`).
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
from bench.quality import PROVISIONING, UTILIZATION, bench_quality  # noqa: E402

WEEK = 7 * 86400.0


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
    twitter = traces_dir / "twitter_sample_stream_2021-08_per_10s.csv"
    # Said, because a synthetic week simulates faster: figures from the two do not compare.
    print(f"trace: {twitter if twitter.exists() else f'a synthetic week ({twitter} not found)'}\n")
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
    parser.add_argument(
        "--only", choices=["quality", "speed", "decide"], help="run one section of the bench"
    )
    parser.add_argument("--no-heldout", action="store_true", help="quality: the shared traces only")
    args = parser.parse_args()
    if args.only in (None, "quality"):
        bench_quality(args.traces, args.half, heldout=not args.no_heldout)
    if args.only in (None, "speed"):
        bench_speed(args.traces, args.repeat)
    if args.only in (None, "decide"):
        bench_decide()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
