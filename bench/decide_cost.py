"""`python -m bench.decide_cost`: CPU per evaluation of the decision path, before and after.

Times, with the `autoscaler` package of a baseline revision (`--baseline`, default `main`,
exported with `git archive`) and with this checkout, each in a fresh process, alternately
(A B A B ...) so both see the same machine load, best run kept:

1. `core.decide` alone, on a day of 1-minute evaluations of a per-instance policy with
   HPA-style stabilization (5 min down), its memory carried from one call to the next as
   in production, the value a noisy daily wave;
2. the backtest replay (`replay.backtest.run_backtest`) of 10 such policies over 7 days at
   1-minute steps, on an in-memory range source: our side of `backtest` only (decisions,
   the reconciler around them), without Prometheus or HTTP.

Each process also prints a digest of everything decided (counts, actions, reasons), and
the two sides must agree: the comparison is only of the same decisions made faster.
Not a test: the figures depend on the machine and its load; the ratios travel better.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.plan_cost import export  # noqa: E402

# Run in a fresh interpreter with PYTHONPATH set to the code under test; prints JSON.
_WORKER = r'''
import hashlib, json, math, random, sys, time
from datetime import UTC, datetime, timedelta

from autoscaler.core.decision import decide
from autoscaler.core.model import (
    AsgTarget, Check, Memory, Observation, Policy, Stabilization, Strategy, TargetStatus,
)
from autoscaler.adapters.sources.prometheus import RangeSeries
from autoscaler.replay.backtest import Options, quiet_decisions, run_backtest

START = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=1)
quiet_decisions()


def policy(i):
    return Policy(
        name=f"svc-{i}", target=AsgTarget(asg=f"svc-{i}"), min=2, max=100, interval=STEP,
        stabilization=Stabilization(up=timedelta(0), down=timedelta(minutes=5)),
        checks=(Check(name="rps", strategy=Strategy.PER_INSTANCE,
                      query=f'sum(rps{{service="s{i}"}})', target=40),),
    )


def wave(i, minutes):
    rng = random.Random(i)
    base, phase = rng.uniform(50, 500), rng.uniform(0, 2 * math.pi)
    return [max(0.0, base * (1 + 0.6 * math.sin(2 * math.pi * m / 1440 + phase))
                * rng.gauss(1, 0.05)) for m in range(minutes)]


def decide_day():
    p, values = policy(0), wave(0, 1440)
    digest, memory, count = hashlib.sha256(), Memory(), 2
    started = time.process_time()
    for m, value in enumerate(values):
        out = decide(p, status=TargetStatus(count=count), memory=memory,
                     observations=[Observation(check="rps", value=value)],
                     now=START + m * STEP)
        memory, d = out.memory, out.decision
        if d.action.value in ("up", "down"):
            count = d.desired
        digest.update(repr((d.action.value, d.desired, d.reasons)).encode())
    return (time.process_time() - started) / len(values), digest.hexdigest()


class Source:
    def __init__(self, days, services):
        minutes = days * 1440
        self.series = {}
        t0 = START.timestamp()
        for i in range(services):
            points = tuple((t0 + 60 * m, v) for m, v in enumerate(wave(i, minutes)))
            self.series[policy(i).checks[0].query] = points

    def query_range(self, promql, *, start, end, step):
        a, b = start.timestamp(), end.timestamp()
        points = tuple(pt for pt in self.series[promql] if a - 1e-3 <= pt[0] <= b + 1e-3)
        return [RangeSeries(labels={}, points=points)]


def backtest(days=7, services=10):
    source = Source(days, services)
    policies = [policy(i) for i in range(services)]
    options = Options(start=START, end=START + timedelta(days=days), step=STEP, start_count=2)
    started = time.process_time()
    result = run_backtest(policies, source, options)
    seconds = time.process_time() - started
    evaluations = sum(p.evaluations for p in result.policies)
    digest = hashlib.sha256(repr([
        (p.policy, p.evaluations, p.actions, p.min_count, p.max_count,
         [(c.at, c.old, c.new, c.reasons) for c in p.changes])
        for p in result.policies
    ]).encode()).hexdigest()
    return seconds / evaluations, digest, evaluations


decide_s, decide_digest = decide_day()
backtest_s, backtest_digest, evaluations = backtest()
print(json.dumps({"decide_us": decide_s * 1e6, "decide_digest": decide_digest,
                  "backtest_us": backtest_s * 1e6, "backtest_digest": backtest_digest,
                  "evaluations": evaluations}))
'''


def measure(code: Path) -> dict[str, float | str]:
    """One run of the worker with the package found in `code`."""
    result = subprocess.run(
        [sys.executable, "-c", _WORKER],
        cwd=code,
        env={**os.environ, "PYTHONPATH": str(code)},
        capture_output=True,
        text=True,
        check=True,
    )
    found: dict[str, float | str] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", default="main", help="git revision to compare with")
    parser.add_argument("--runs", type=int, default=3, help="runs per side (best kept)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-decide-") as tmp:
        baseline = export(args.baseline, Path(tmp) / "baseline")
        runs: dict[str, list[dict[str, float | str]]] = {"before": [], "after": []}
        for _ in range(args.runs):
            runs["before"].append(measure(baseline))
            runs["after"].append(measure(ROOT))
    print(f"load average: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)\n")
    print(f"## Decision path: {args.baseline} (before) against this checkout (after)\n")
    print("| what | before µs/evaluation | after µs/evaluation | before / after | same decisions |")
    print("|---|---|---|---|---|")
    for key, label in (
        ("decide", "`core.decide`, 1,440 calls"),
        ("backtest", f"backtest replay, {runs['after'][0]['evaluations']:,} evaluations"),
    ):
        before = min(float(r[f"{key}_us"]) for r in runs["before"])
        after = min(float(r[f"{key}_us"]) for r in runs["after"])
        same = {r[f"{key}_digest"] for r in runs["before"] + runs["after"]}
        print(
            f"| {label} | {before:.1f} | {after:.1f} | {before / after:.2f}× | "
            f"{'yes' if len(same) == 1 else 'NO'} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
