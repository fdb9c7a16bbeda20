"""Golden `simulate`: scores and every action with its reasons, pinned by a digest.

Making the replay cheaper (issue 10) must not change one decision. Two days of a seeded
synthetic trace (a daily wave, bursts, a dip) are simulated after two days of recorded
history, so the forecasts learn and act: the recommended policy, and a policy with
cooldowns, stabilization, limits, three strategies, a forecast and the anomaly guard,
beside the HPA baseline. The digest was taken with the code before the speed-up (main at
b3da97b) and is equal after it; it was taken again when the recommended policy gained
`forecast.noise_band` (issue 11: the recommended run's actions change, the guarded policy's
and the HPA's do not), and again when reasons came to show a value with the digits that
decide its count (`load: 189.03 / 7 per instance → 28`, was `189 / 7 … → 28`: three reasons
differ, nothing else). `python -m bench.golden_simulate` checks the same on the
shared public traces. If the digest changes, the behaviour changed: print the actions with
`python -m tests.unit.replay.test_golden_simulate`.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from typing import Any

import pytest

from autoscaler.policy.loader import load_text
from autoscaler.replay.recommended import recommended_policy
from autoscaler.replay.simulate import Recorded, Setup, simulate
from autoscaler.replay.trace import Trace

GOLDEN = "e731ad0cabc054e22c30bfa39818c7afcb86946d03525591b417af8d898acf44"

DAY = 86400.0
GUARDED = """\
name: guarded
target: {type: aws-asg, asg: web}
min: 2
max: 400
interval: 30s
checks:
  - {name: load, query: "sum(rate(x[1m]))", strategy: per-instance, target: 7, tolerance: 0.1,
     forecast: {}}
  - {name: utilization, query: avg(util), strategy: target-value, target: 0.6}
  - name: latency_p95
    query: p95
    strategy: threshold
    steps:
      - {above: 0.5, change: "+2"}
      - {below: 0.05, change: "-10%"}
anomaly: {enabled: true}
cooldown: {up: 60s, down: 3m}
stabilization: {up: 30s, down: 5m}
limits: {up: {count: 6, percent: 50}, down: {count: 2}}
"""


def _trace(seed: int = 10) -> Trace:
    rng = random.Random(seed)
    times, rates = [], []
    for k in range(int(4 * DAY // 60)):
        t = 60.0 * k
        wave = 1 + 0.6 * math.sin(2 * math.pi * t / DAY)
        burst = 2.5 if k % 997 < 6 else 1.0
        dip = 0.2 if 3000 < k < 3010 else 1.0
        times.append(t)
        rates.append(max(0.0, 60 * wave * burst * dip * rng.gauss(1, 0.08)))
    return Trace("synthetic", times, rates, 60.0, 4 * DAY)


def simulated() -> dict[str, Any]:
    """The scores and every action (tick, from, to, reasons) of each controller."""
    full = _trace()
    setup = Setup(capacity=10.0, target_utilization=0.7)
    (guarded,) = load_text(GUARDED, file="<guarded>")
    policies = [recommended_policy(10.0, 0.7, max_count=400), guarded]
    sim = simulate(
        full.window(2 * DAY, 4 * DAY),
        setup,
        policies,
        compare=["hpa"],
        recorded=Recorded(full, 2 * DAY),
    )
    return {
        "scores": sim.to_json(),
        "actions": {
            run.name: [[a.tick, a.before, a.after, list(a.reasons)] for a in run.actions]
            for run in sim.runs
        },
    }


def digest(result: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(result, sort_keys=True).encode()).hexdigest()


# Two simulated days of every controller: 11 s alone on a slow machine, past the suite's
# 120 s under coverage tracing with the other workers busy (it timed out so in CI once).
@pytest.mark.timeout(600)
def test_every_score_action_and_reason_of_the_golden_simulation_is_unchanged() -> None:
    result = simulated()
    actions = result["actions"]
    assert len(actions["recommended"]) > 100 and len(actions["guarded"]) > 3
    reasons = " ".join(r for run in actions.values() for a in run for r in a[3])
    assert "forecast" in reasons and "stabilization" in reasons  # the paths it pins
    assert digest(result) == GOLDEN


if __name__ == "__main__":
    print(json.dumps(simulated(), indent=1))
