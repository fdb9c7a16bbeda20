"""`simulate`: policies and baselines in closed loop on a load trace, with scores.

Each controller gets its own simulated fleet (`fleet`) and sees the trace as production
would see Prometheus: every `interval` seconds (at the first tick at or after each
multiple of it), the mean load over `[t − 15 s − interval, t − 15 s)`, one scrape late,
and the instances that were ready at that scrape. A policy decides through the replay
harness, i.e. the production reconciler and `core.decide`, with each check's value read
from the signal it is mapped to (`signals`). Demand in each 15-second tick is
`max(1, ceil(load / (capacity × target utilization)))`; the scores (`scores`) compare
each controller's ready instances with it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from autoscaler.core.frozen import fast_init
from autoscaler.core.model import Policy, TargetStatus
from autoscaler.core.ports import RangeSeries
from autoscaler.core.strategies import ceil_count
from autoscaler.errors import AutoscalerError
from autoscaler.replay.baselines import BASELINES, AwsTargetTracking, Controller, Hpa
from autoscaler.replay.fleet import TICK_SECONDS, Fleet, ticks_for
from autoscaler.replay.scores import Scores, score
from autoscaler.replay.signals import SIGNALS, signal_value
from autoscaler.replay.trace import Integral, Trace, TraceError

DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday, for schedules in policies


class SimulationError(AutoscalerError):
    """The simulation cannot run as asked (a check without a signal, a bad setting...)."""


@dataclass(frozen=True, kw_only=True)
class Setup:
    """The fleet and demand model shared by every controller of one simulation."""

    capacity: float  # requests per second one instance serves
    target_utilization: float = 0.7
    provisioning: float = 120.0  # seconds from a scale-up to the new instances serving
    start: datetime = DEFAULT_START  # wall-clock time of the trace's first row

    def __post_init__(self) -> None:
        if not (math.isfinite(self.capacity) and self.capacity > 0):
            raise SimulationError("--capacity must be a number of requests per second > 0")
        if not 0 < self.target_utilization <= 1:
            raise SimulationError("--target-utilization must be > 0 and at most 1")
        if not (math.isfinite(self.provisioning) and self.provisioning >= 0):
            raise SimulationError("--provisioning must be a duration >= 0")
        if self.capacity * self.target_utilization == 0:  # both tiny: the product underflows
            raise SimulationError(
                f"--capacity × --target-utilization ({self.capacity:g} × "
                f"{self.target_utilization:g}) is 0 in floating point: use a larger unit"
            )

    def demand(self, load: float) -> int:
        """Instances needed to serve `load` at the target utilization (at least 1)."""
        return max(1, ceil_count(load / (self.capacity * self.target_utilization)))

    def demands(self, loads: Sequence[float]) -> list[int]:
        """`demand` of each load (in one pass: a week of 15-second ticks is 40,320)."""
        per = self.capacity * self.target_utilization
        return [max(1, ceil_count(load / per)) for load in loads]


@fast_init  # the oracle alone makes one per change of demand: 14,000 in a week
@dataclass(frozen=True)
class ScaleAction:
    """One change of a controller's desired count, at a tick, with its reasons."""

    tick: int
    before: int
    after: int
    reasons: tuple[str, ...] = ()


@dataclass
class Run:
    """One controller's run: per tick its ready and billed counts, its actions, its scores."""

    name: str
    kind: str  # "policy" or "baseline"
    ready: list[int]
    billed: list[int]
    actions: list[ScaleAction]
    scores: Scores


@dataclass
class Simulation:
    """Everything one `simulate` produced, for the table, the JSON and the plot."""

    trace: Trace
    setup: Setup
    loads: list[float]  # mean load per tick
    demand: list[int]
    runs: list[Run] = field(default_factory=list)

    @property
    def ticks(self) -> int:
        return len(self.loads)

    def to_json(self) -> dict[str, Any]:
        """The `simulate -o json` document (a contract: see the README)."""
        return {
            "trace": self.trace.name,
            "capacity": self.setup.capacity,
            "controllers": [run.scores.to_dict() for run in self.runs],
        }


@dataclass(frozen=True)
class Recorded:
    """The whole trace a simulated window was cut from, and where the window starts in it."""

    trace: Trace
    offset: float = 0.0  # seconds into `trace` of the window's first instant


@dataclass(frozen=True)
class _Series:
    labels: Mapping[str, str]
    points: tuple[tuple[float, float], ...]


class TraceHistory:
    """`RangeSource` answering from a trace what a check on the `load` signal read.

    At each instant it gives what the check would have read then: the mean load over
    `[t − 15 s − interval, t − 15 s)`, one scrape late, as in the simulation itself.
    `queries` maps each such check's query to its policy's interval (seconds); other
    queries have no history. `origin` is the wall-clock time of the trace's offset 0.
    """

    def __init__(self, trace: Trace, origin: datetime, queries: Mapping[str, float]) -> None:
        self._integral = Integral(trace)
        self._origin = origin
        self._end = trace.end
        self._queries = dict(queries)

    def query_range(
        self, promql: str, *, start: datetime, end: datetime, step: timedelta
    ) -> Sequence[RangeSeries]:
        interval = self._queries.get(promql)
        seconds = step.total_seconds()
        if interval is None or seconds <= 0 or end < start:
            return []
        span = interval if interval > 0 else TICK_SECONDS
        first = (start - self._origin).total_seconds()
        epoch = start.timestamp()
        points = []
        for k in range(int((end - start).total_seconds() // seconds) + 1):
            x = first + k * seconds - TICK_SECONDS  # the end of what that scrape saw
            if x - span < 0 or x > self._end:
                continue
            mean = (self._integral.at(x) - self._integral.at(x - span)) / span
            points.append((epoch + k * seconds, mean))
        return [_Series({}, tuple(points))] if points else []


class PolicyController:
    """A policy as a simulated controller: each evaluation goes through the real reconciler."""

    def __init__(
        self,
        policy: Policy,
        signals: Sequence[tuple[str, str]],
        setup: Setup,
        count: int,
        recorded: Recorded | None = None,
    ) -> None:
        self.name = policy.name
        self.interval = policy.interval.total_seconds()
        self._start = setup.start
        self._capacity = setup.capacity
        self._signals = tuple(signals)
        history = None
        if recorded is not None:
            queries = {c.name: c.query for c in policy.checks if c.query is not None}
            loads = {queries[name]: self.interval for name, s in self._signals if s == "load"}
            origin = setup.start - timedelta(seconds=recorded.offset)
            history = TraceHistory(recorded.trace, origin, loads)
        # The production reconciler, imported with the first policy simulated rather than
        # with this module (which the `autoscaler` command's parser reads).
        from autoscaler.replay.harness import Replay  # noqa: PLC0415

        # Simulate what the policy would do live, even where its file says dry_run.
        self._replay = Replay(
            replace(policy, dry_run=False),
            start=setup.start,
            count=count,
            keep_history=False,
            history=history,
        )
        self._why: tuple[str, ...] = ()
        self._statuses: dict[int, TargetStatus] = {}

    def decide(self, t: float, load: float, seen_ready: int, fleet: Fleet) -> int:
        capacity = self._capacity
        values: dict[str, float | None] = {}
        for name, signal in self._signals:  # (a loop: a comprehension is a call more)
            values[name] = signal_value(signal, load, seen_ready, capacity)
        now = self._start + timedelta(0, t)  # (seconds, given by position: a third cheaper)
        status = self._statuses.get(fleet.desired)
        if status is None:  # statuses are immutable: one per count is enough
            status = self._statuses[fleet.desired] = TargetStatus(count=fleet.desired)
        evaluation = self._replay.evaluate(now, values, status)
        desired = evaluation.decision.desired
        if evaluation.scaled and desired is not None:
            self._why = evaluation.decision.reasons
            return desired
        return fleet.desired

    def explain(self) -> tuple[str, ...]:
        return self._why


def normalize_signal(name: str) -> str:
    """`latency-p95` and `latency_p95` name the same signal."""
    return name.strip().replace("-", "_")


def check_signals(policy: Policy, mapping: Mapping[str, str]) -> list[tuple[str, str]]:
    """(check name, signal) for every check of `policy` that runs a query.

    A check uses the signal `mapping` gives it, else the signal it is named after; any
    other check is a `SimulationError` saying how to map it.
    """
    pairs = []
    for check in policy.checks:
        if check.query is None:
            continue  # `fixed`: no query, no signal
        signal = mapping.get(check.name) or normalize_signal(check.name)
        signal = normalize_signal(signal)
        if signal not in SIGNALS:
            given = f"--signal {check.name}={mapping[check.name]}" if check.name in mapping else ""
            raise SimulationError(
                f"policy {policy.name}: check {check.name!r} has no signal"
                + (f" ({given} is not one)" if given else "")
                + f": pass --signal {check.name}=SIGNAL with SIGNAL one of {', '.join(SIGNALS)}"
            )
        pairs.append((check.name, signal))
    return pairs


def simulate(
    trace: Trace,
    setup: Setup,
    policies: Sequence[Policy],
    *,
    signals: Mapping[str, str] | None = None,
    compare: Sequence[str] = BASELINES,
    baseline_bounds: tuple[int, int] | None = None,
    recorded: Recorded | None = None,
) -> Simulation:
    """Run every policy, then every baseline in `compare`, on `trace`; return all results.

    `signals` maps check names to signals (see `check_signals`). Baselines keep their count
    within `baseline_bounds` (min, max), by default those of the first policy. `recorded`
    is the longer trace `trace` was cut from (and where): the history that forecasts read.
    Without it, `trace` itself is the history (nothing before its start).
    """
    if recorded is None:
        recorded = Recorded(trace)
    mapping = {name: normalize_signal(s) for name, s in (signals or {}).items()}
    _check_names(policies, mapping, compare)
    pairs = [check_signals(policy, mapping) for policy in policies]
    windows = _Windows(trace)
    loads = windows.loads  # `tick_means(trace, TICK_SECONDS)`, from the integral it shares
    if not loads:
        raise TraceError(f"{trace.name}: shorter than one {TICK_SECONDS:g}-second tick")
    demand = setup.demands(loads)
    sim = Simulation(trace, setup, loads, demand)
    provisioning = ticks_for(setup.provisioning)
    for policy, policy_signals in zip(policies, pairs, strict=True):
        count = min(policy.max, max(policy.min, demand[0]))
        controller = PolicyController(policy, policy_signals, setup, count, recorded)
        sim.runs.append(
            _closed_loop(
                sim,
                controller=controller,
                kind="policy",
                windows=windows,
                count=count,
                provisioning=provisioning,
            )
        )
    if baseline_bounds is None:
        baseline_bounds = (policies[0].min, policies[0].max) if policies else (1, 1_000_000)
    low, high = baseline_bounds
    target = setup.capacity * setup.target_utilization
    for name in compare:
        if name in ("static", "oracle"):
            sim.runs.append(_open_loop(sim, name, low, high))
            continue
        baseline: Controller = (
            Hpa(target=target, min=low, max=high)
            if name == "hpa"
            else AwsTargetTracking(target=target, min=low, max=high)
        )
        count = min(high, max(low, demand[0]))
        sim.runs.append(
            _closed_loop(
                sim,
                controller=baseline,
                kind="baseline",
                windows=windows,
                count=count,
                provisioning=provisioning,
            )
        )
    return sim


def _check_names(
    policies: Sequence[Policy], mapping: Mapping[str, str], compare: Sequence[str]
) -> None:
    unknown = [name for name in compare if name not in BASELINES]
    if unknown:
        raise SimulationError(
            f"unknown baseline {', '.join(unknown)}: --compare takes {', '.join(BASELINES)} "
            "(or none, for the policy alone)"
        )
    checks = {check.name for policy in policies for check in policy.checks}
    stray = sorted(set(mapping) - checks)
    if stray:
        raise SimulationError(
            f"--signal names no check of the policies: {', '.join(stray)} "
            f"(checks: {', '.join(sorted(checks)) or 'none'})"
        )
    names = [policy.name for policy in policies] + list(compare)
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise SimulationError(
            f"two controllers named {', '.join(twice)}: rename the policy, or leave the "
            "baseline out of --compare"
        )


class _Windows:
    """Mean load per tick, and over scrape windows, from the trace's running integral."""

    def __init__(self, trace: Trace) -> None:
        self._integral = Integral(trace)
        ticks = int(trace.end // TICK_SECONDS + 1e-9)  # whole ticks, as `tick_means` counts
        self._edges = self._integral.walk([k * TICK_SECONDS for k in range(ticks + 1)])
        self._first = trace.rates[0]
        # Exactly `tick_means(trace, TICK_SECONDS)`: the same edges, the same arithmetic.
        self.loads = [(b - a) / TICK_SECONDS for a, b in itertools.pairwise(self._edges)]

    def edge(self, index: int) -> float:
        """The running integral at tick boundary `index` (negative: before the trace)."""
        if index >= 0:
            return self._edges[index]
        return self._first * index * TICK_SECONDS

    def mean(self, tick: int, interval: float) -> float:
        """Mean load over `[t − 15 s − interval, t − 15 s)` for the tick `t` at `tick`."""
        end = tick - 1
        span = interval if interval > 0 else TICK_SECONDS
        ticks, rest = divmod(span, TICK_SECONDS)
        if rest:
            start = self._integral.at(end * TICK_SECONDS - span)
        else:
            start = self.edge(end - int(ticks))
        return (self.edge(end) - start) / span

    def means(self, interval: float) -> list[float]:
        """`mean(k, interval)` for every tick `k`, in one pass (a controller's loop reads
        one per evaluation; a method call each was a tenth of a baseline's run)."""
        span = interval if interval > 0 else TICK_SECONDS
        ticks, rest = divmod(span, TICK_SECONDS)
        n = len(self.loads)
        if rest:
            return [self.mean(k, interval) for k in range(n)]
        back = int(ticks)
        # edge(i) for i from -1 - back on: the negative ones as `edge` computes them.
        first = self._first
        edges = [first * i * TICK_SECONDS for i in range(-1 - back, 0)] + self._edges
        return [(edges[k + back] - edges[k]) / span for k in range(n)]


def _closed_loop(
    sim: Simulation,
    *,
    controller: Controller,
    kind: str,
    windows: _Windows,
    count: int,
    provisioning: int,
) -> Run:
    """Tick by tick: instances become ready, the controller decides when due, counts recorded."""
    fleet = Fleet(count, provisioning)
    n = sim.ticks
    ready = [0] * n
    billed = [0] * n
    actions: list[ScaleAction] = []
    interval = controller.interval
    means = windows.means(interval)
    # The m-th evaluation is due at the first tick at or after m × interval, counted from
    # m (not by adding interval/15 again and again: the float error put an evaluation
    # due at a tick boundary one tick late, e.g. at 660 s for a 20 s interval). Exact
    # for any interval in milliseconds; below a tick, once per tick.
    step = round(interval * 1000) if interval > 0 else 0
    tick_ms = round(TICK_SECONDS * 1000)
    m, next_due = 0, 0
    seen = count
    for k in range(n):
        fleet.advance(k)
        if k >= next_due:
            m += 1
            if step:
                next_due = -(-m * step // tick_ms)  # ceil(m × interval / 15 s), in integers
                if next_due <= k:  # an interval under a tick: the next tick, once
                    m = k * tick_ms // step + 1
                    next_due = max(k + 1, -(-m * step // tick_ms))
            else:
                next_due = k + 1
            before = fleet.desired
            wanted = controller.decide(k * TICK_SECONDS, means[k], seen, fleet)
            if wanted != before:
                fleet.scale_to(wanted, k)
                actions.append(ScaleAction(k, before, wanted, controller.explain()))
        seen = ready[k] = fleet.ready
        billed[k] = fleet.desired
    return _run(sim, controller.name, kind=kind, ready=ready, billed=billed, actions=actions)


def _open_loop(sim: Simulation, name: str, low: int, high: int) -> Run:
    """`static` (the peak demand, ready from the start) or `oracle` (the demand, always ready)."""
    if name == "static":
        peak = min(high, max(low, *sim.demand))
        counts = [peak] * sim.ticks
        return _run(sim, name, kind="baseline", ready=counts, billed=counts, actions=[])
    counts = [min(high, max(low, d)) for d in sim.demand]
    actions = [
        ScaleAction(k, a, b, ("oracle: the demand",))
        for k, (a, b) in enumerate(itertools.pairwise(counts), start=1)
        if a != b
    ]
    return _run(sim, name, kind="baseline", ready=counts, billed=counts, actions=actions)


def _run(
    sim: Simulation,
    name: str,
    *,
    kind: str,
    ready: list[int],
    billed: list[int],
    actions: list[ScaleAction],
) -> Run:
    capacity = sim.setup.capacity
    overloaded = [load > r * capacity for load, r in zip(sim.loads, ready, strict=True)]
    scores = score(
        name,
        demand=sim.demand,
        supply=ready,
        billed=billed,
        overloaded=overloaded,
        actions=len(actions),
        step_seconds=TICK_SECONDS,
    )
    return Run(name, kind, ready, billed, actions, scores)
