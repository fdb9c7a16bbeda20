"""`python -m bench.backtest`: backtest speed as a ratio to the bare range queries.

A real Prometheus (Debian's, started here on 127.0.0.1) holds 7 days of history for 100
services, backfilled with promtool at one sample a minute (a daily wave with noise, per
service). 100 policies, one per service, each with one check on its own series, are
backtested over the 7 days at 1-minute steps (10,080 evaluations each, 1,008,000 in all).
In the same run we time the bare range queries for the same data (the same 100 queries,
same grid, through the same adapter: HTTP, JSON, floats) and report the ratio
backtest / bare queries, so the number travels between machines. Each side is timed
twice and the faster run kept. Generating and backfilling the data takes about a minute.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoscaler.adapters.sources import PrometheusSettings, PrometheusSource  # noqa: E402
from autoscaler.core.model import (  # noqa: E402
    AsgTarget,
    Check,
    Policy,
    Strategy,
)
from autoscaler.replay.backtest import Options, quiet_decisions, run_backtest  # noqa: E402
from tests.support.prometheus import PrometheusServer  # noqa: E402

END = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 7
STEP = timedelta(minutes=1)


def history(services: int, seed: int = 7) -> str:
    """OpenMetrics text: `bench_rps{service=...}` every minute for DAYS days."""
    rng = random.Random(seed)
    start = int((END - timedelta(days=DAYS)).timestamp())
    lines = ["# TYPE bench_rps gauge\n"]
    for service in range(services):
        base = rng.uniform(50, 500)
        phase = rng.uniform(0, 2 * math.pi)
        for minute in range(DAYS * 1440):
            wave = 1 + 0.6 * math.sin(2 * math.pi * minute / 1440 + phase)
            value = max(0.0, base * wave * rng.gauss(1, 0.05))
            lines.append(f'bench_rps{{service="s{service}"}} {value:.2f} {start + 60 * minute}\n')
    return "".join(lines)


def policies(services: int) -> list[Policy]:
    """One policy per service, one per-instance check on its own series, default timings."""
    return [
        Policy(
            name=f"svc-{service}",
            target=AsgTarget(asg=f"svc-{service}"),
            min=2,
            max=100,
            interval=STEP,
            checks=(
                Check(
                    name="rps",
                    strategy=Strategy.PER_INSTANCE,
                    query=f'sum(bench_rps{{service="s{service}"}})',
                    target=40,
                ),
            ),
        )
        for service in range(services)
    ]


def best_of(runs: int, work: Callable[[], object]) -> tuple[float, float]:
    """The shortest wall time of `runs` calls of `work`, and that run's CPU time here."""
    times = []
    for _ in range(runs):
        started, cpu = time.perf_counter(), time.process_time()
        work()
        times.append((time.perf_counter() - started, time.process_time() - cpu))
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--runs", type=int, default=2, help="timed runs per side (best kept)")
    parser.add_argument(
        "--jobs", type=int, default=len(os.sched_getaffinity(0)), help="worker processes"
    )
    args = parser.parse_args()
    quiet_decisions()

    with tempfile.TemporaryDirectory(prefix="bench-backtest-") as workdir:
        server = PrometheusServer(Path(workdir))
        started = time.perf_counter()
        server.backfill(history(args.services))
        print(
            f"backfilled {args.services} series x {DAYS * 1440} samples "
            f"in {time.perf_counter() - started:.0f} s"
        )
        with server:
            source = PrometheusSource(PrometheusSettings(url=server.url, timeout=60, deadline=180))
            start = END - timedelta(days=DAYS)
            options = Options(start=start, end=END, step=STEP, start_count=2)
            the_policies = policies(args.services)
            queries = [c.query for p in the_policies for c in p.checks if c.query]

            def bare() -> None:
                for query in queries:
                    source.query_range(query, start=start, end=END - STEP, step=STEP)

            bare_s, _ = best_of(args.runs, bare)
            timed = {
                jobs: best_of(
                    args.runs, partial(run_backtest, the_policies, source, options, jobs=jobs)
                )
                for jobs in dict.fromkeys((1, args.jobs))
            }
            result = run_backtest(the_policies, source, options)
    evaluations = sum(p.evaluations for p in result.policies)
    actions = sum(p.actions for p in result.policies)
    print(f"\n## Backtest speed ({args.services} policies, {DAYS} days at 1-minute steps)\n")
    print(f"{evaluations:,} evaluations, {actions:,} scaling actions; best of {args.runs} runs\n")
    print("| what | wall time | ratio to the bare range queries |")
    print("|---|---|---|")
    print(f"| bare range queries ({len(queries)}) | {bare_s:.2f} s | 1× |")
    for jobs, (seconds, _) in timed.items():
        print(f"| backtest, {jobs} job(s) | {seconds:.2f} s | {seconds / bare_s:.1f}× |")
    cpu = timed[1][1]
    print(f"\nCPU of this process per evaluation (1 job): {cpu / evaluations * 1e6:.1f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
