"""How well a controller's supply followed the demand: SPEC RG BUNGEE elasticity metrics.

Definitions (Herbst et al., SPEC Research Group, "Quantifying Cloud Performance and
Dependability", ACM TOMPECS 2018), over a run of duration T cut in steps of length Δt,
with demand d (instances needed) and supply s (instances ready) in each step:

- accuracy_U = 100/T · Σ (d − s)⁺ / d · Δt   (mean relative shortfall, %)
- accuracy_O = 100/T · Σ (s − d)⁺ / d · Δt   (mean relative excess, %)
- timeshare_U = 100/T · Σ [s < d] · Δt, timeshare_O = 100/T · Σ [s > d] · Δt   (%)
- jitter = (supply changes − demand changes) / T, here per hour: negative when the
  supply follows too few of the demand's moves, positive when it moves more than needed.

Plus what an operator reads first: instance-hours billed, the share of time the load was
above what the ready instances can serve (`under_provisioned_pct`), and scaling actions.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

# Exactly the keys of `simulate -o json`, in order: a documented contract.
SCORE_KEYS = (
    "name",
    "instance_hours",
    "under_provisioned_pct",
    "accuracy_u",
    "accuracy_o",
    "timeshare_u",
    "timeshare_o",
    "jitter_per_hour",
    "actions",
)


@dataclass(frozen=True, kw_only=True)
class Scores:
    """One controller's scores on one run (percentages are 0-100)."""

    name: str
    instance_hours: float
    under_provisioned_pct: float
    accuracy_u: float
    accuracy_o: float
    timeshare_u: float
    timeshare_o: float
    jitter_per_hour: float
    actions: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score(
    name: str,
    *,
    demand: Sequence[int],
    supply: Sequence[int],
    billed: Sequence[int],
    overloaded: Sequence[bool],
    actions: int,
    step_seconds: float,
) -> Scores:
    """The scores of a run given per step: demand, ready supply, billed count, overload.

    All sequences have one entry per step of `step_seconds`; demand is at least 1.
    """
    n = len(demand)
    if not n or not (len(supply) == len(billed) == len(overloaded) == n):
        raise ValueError("demand, supply, billed and overloaded need one entry per step")
    short = excess = 0.0
    under = over = 0
    for d, s in zip(demand, supply, strict=True):
        if s < d:
            under += 1
            short += (d - s) / d
        elif s > d:
            over += 1
            excess += (s - d) / d
    hours = n * step_seconds / 3600
    return Scores(
        name=name,
        instance_hours=sum(billed) * step_seconds / 3600,
        under_provisioned_pct=100 * sum(overloaded) / n,
        accuracy_u=100 * short / n,
        accuracy_o=100 * excess / n,
        timeshare_u=100 * under / n,
        timeshare_o=100 * over / n,
        jitter_per_hour=(changes(supply) - changes(demand)) / hours,
        actions=actions,
    )


def changes(series: Sequence[int]) -> int:
    """How many times the series changes value from one step to the next."""
    return sum(map(operator.ne, series, series[1:]))


def mean_shortfall(demand: Sequence[int], supply: Sequence[int]) -> float:
    """BUNGEE's raw under-provisioning accuracy: Σ (d − s)⁺ / T, in instances."""
    return sum(max(0, d - s) for d, s in zip(demand, supply, strict=True)) / len(demand)
