"""Policies replayed on their own Prometheus history: what they would have done, and why.

Open loop: the checks read what Prometheus recorded at each instant, and the production
reconciler (through `harness.Replay`) decides with cooldowns, stabilization, limits,
schedules and missing data exactly as `run` would. The simulated target obeys at once and
is always ready; its count is only what the policy made it. The recorded count that really
ran (`count_query`) can be set beside it, and a utilization-like check can be rescaled by
recorded count / simulated count, which assumes the load spreads evenly over instances and
does not itself depend on how many there are.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import string
from array import array
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from autoscaler.core.model import Action, AsgTarget, Policy, TargetStatus
from autoscaler.core.ranges import MAX_COUNT
from autoscaler.core.series import Select, matching, own_series
from autoscaler.engine.histories import several_series
from autoscaler.errors import QueryError
from autoscaler.replay.harness import Replay, Value
from autoscaler.replay.history import (
    Grid,
    History,
    HistoryFetcher,
    RangeSource,
    StoredHistory,
)
from autoscaler.replay.lookback import PastReads, Simulated
from autoscaler.replay.results import (
    Backtest,
    Change,
    CheckFailures,
    PolicyBacktest,
    PolicySeries,
    Recorded,
)

# About 2 s of decisions on one core: enough to repay starting a worker process (~0.5 s).
EVALUATIONS_PER_WORKER = 50_000
Read = tuple[str, Select]  # a check's query, and the labels of its series in a grouped one
RESCALE_ASSUMPTION = (
    "rescaled by recorded count / simulated count: assumes the load spreads evenly over "
    "the instances and does not depend on how many there are"
)


@dataclass(frozen=True, kw_only=True)
class Options:
    """What to replay: the window `[start, end)`, the step, and where counts come from.

    `step` None evaluates each policy at its own interval, as `run` does. `count_query` is
    a PromQL template (`$policy`, `$asg`, `$region`, `$job`, `$group`, `$namespace`) for
    the count that really ran; `rescale` names checks whose value is scaled by recorded /
    simulated count (requires `count_query`). `series` keeps what each evaluation read and
    did, for plots.
    """

    start: datetime
    end: datetime
    step: timedelta | None = None
    start_count: int | None = None
    count_query: str | None = None
    rescale: frozenset[str] = frozenset()
    series: bool = False  # keep every evaluation's values and counts (for plots)


def count_query_for(template: str, policy: Policy) -> str:
    """The count query of `policy`: `template` with its target's `$placeholders` filled in.

    Raises ValueError naming the placeholders this policy's target offers when the template
    uses another one.
    """
    target = policy.target
    if isinstance(target, AsgTarget):
        fields = {"asg": target.asg, "region": target.region or ""}
    else:
        fields = {
            "job": target.job,
            "group": target.group,
            "namespace": target.namespace,
            "region": target.region or "",
        }
    fields["policy"] = policy.name
    try:
        return string.Template(template).substitute(fields)
    except KeyError as exc:
        offered = ", ".join(f"${name}" for name in sorted(fields))
        raise ValueError(
            f"--count-query uses ${exc.args[0]}, but policy {policy.name}'s {target.type} "
            f"target offers {offered}"
        ) from None
    except ValueError as exc:
        raise ValueError(f"--count-query: {exc}; write a literal $ as $$") from None


def run_backtest(
    policies: Sequence[Policy],
    source: RangeSource,
    options: Options,
    *,
    jobs: int = 1,
    before_queries: Callable[[], None] | None = None,
) -> Backtest:
    """Replay every policy over `[options.start, options.end)` on `source`'s history.

    With `jobs` > 1 the policies are replayed in up to that many worker processes while this
    one fetches (the decisions are Python: one core each); a worker is only started for at
    least `EVALUATIONS_PER_WORKER` evaluations, which repay its start.

    `before_queries`, when some policy sends a query, is called once the options are
    known to be usable (`OverflowError` is raised first) and before the first query: the
    CLI checks there that Prometheus can be reached at all.

    Raises `SourceUnavailable` when Prometheus cannot be reached; a query it rejects fails
    that check at every instant (as it would in `run`) and is listed in the policy's errors.
    """
    asked = PastReads(policies, options.start, options.end)  # shared by the policies
    planned = [_plan(p, options) for p in policies]
    if before_queries is not None and any(p.queries or asked.fetches(p.policy) for p in planned):
        before_queries()  # (not when nothing is asked of Prometheus: fixed checks alone)
    plans = [_with_past(plan, source, options, asked) for plan in planned]
    needs = [(query, plan.grid, select) for plan in plans for query, select in plan.queries]
    with HistoryFetcher(source, needs) as fetcher:
        evaluations = sum(plan.grid.count for plan in plans)
        jobs = min(jobs, len(plans), evaluations // EVALUATIONS_PER_WORKER)
        if jobs > 1:
            results = _replay_in_processes(plans, options, fetcher, jobs)
        else:
            results = [_replay(plan, options, _take(plan, fetcher)) for plan in plans]
        for result, plan in zip(results, plans, strict=True):
            result.errors.extend(
                f"{query}: {fetcher.errors[query]}"
                for query in dict.fromkeys(query for query, _ in plan.queries)
                if query in fetcher.errors
            )
        sent = fetcher.sent + asked.sent  # the window's, and what forecasts and guards read
    return Backtest(options.start, options.end, results, sent)


def _take(plan: _Plan, fetcher: HistoryFetcher) -> dict[Read, History]:
    return {
        (query, select): fetcher.take(query, plan.grid, select) for query, select in plan.queries
    }


def _replay_in_processes(
    plans: Sequence[_Plan], options: Options, fetcher: HistoryFetcher, jobs: int
) -> list[PolicyBacktest]:
    """`_replay` of each plan in worker processes, in order, a few plans ahead at most."""
    # spawn, not fork: this process runs the fetching thread, and a fork copies its locks.
    context = multiprocessing.get_context("spawn")
    results: list[PolicyBacktest] = []
    pending: deque[Future[PolicyBacktest]] = deque()
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=quiet_decisions) as pool:
        for plan in plans:
            pending.append(pool.submit(_replay, plan, options, _take(plan, fetcher)))
            while len(pending) > 2 * jobs:  # bounds the histories waiting in the queue
                results.append(pending.popleft().result())
        results.extend(future.result() for future in pending)
    return results


def quiet_decisions() -> None:
    """Stop the reconciler's one log line per decision: a replay makes millions."""
    logging.getLogger("autoscaler.decisions").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class _Plan:
    """One policy, its grid, and the queries it reads (checks first, then the count)."""

    policy: Policy
    grid: Grid
    checks: tuple[tuple[str, Read], ...]  # (check name, (query, select))
    count_query: str | None
    # What forecasts and the anomaly guard learn from: each such query at each step it is
    # read at, before the window (and inside it for a forecast); a grouped query's: the
    # target's own series, and its labels.
    past: tuple[tuple[tuple[str, float], tuple[tuple[float, float], ...]], ...] = ()
    past_labels: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    past_errors: tuple[str, ...] = ()

    @property
    def queries(self) -> list[Read]:
        unique = dict.fromkeys(read for _, read in self.checks)
        if self.count_query is not None:
            unique.setdefault((self.count_query, ()))
        return list(unique)


def _plan(policy: Policy, options: Options) -> _Plan:
    grid = Grid.covering(options.start, options.end, options.step or policy.interval)
    checks = tuple((c.name, (c.query, c.select)) for c in policy.checks if c.query is not None)
    count_query = None
    if options.count_query is not None:
        count_query = count_query_for(options.count_query, policy)
    return _Plan(policy, grid, checks, count_query)


def _with_past(
    plan: _Plan, source: RangeSource, options: Options, asked: PastReads | None = None
) -> _Plan:
    """`plan` with what each query that forecasts or is guarded reads back (`lookback`),
    read with range queries (Prometheus splits long ranges; `asked` shares an answer
    between the policies that need the same). A query that fails, or gives several series,
    gives no history and is listed in `past_errors`, as `run` would say it."""
    asked = PastReads([plan.policy], options.start, options.end) if asked is None else asked
    past: dict[tuple[str, float], dict[float, float]] = {}
    labels: dict[str, tuple[tuple[str, str], ...]] = {}
    errors: dict[str, None] = {}
    selects = {query: select for _, (query, select) in plan.checks}
    for fetch in asked.fetches(plan.policy):
        query, step, _ = fetch
        series = asked.get(source, fetch)
        if isinstance(series, QueryError):
            errors[f"{query}: history before --from: {series}"] = None
            continue
        select = selects.get(query, ())
        series = matching(series, select)
        if len(series) > 1:  # as under `run`: no history, and the policy says why
            errors[f"{query}: history before --from: {several_series(series, select)}"] = None
        elif series:  # none: nothing before --from to learn from, as under `run`
            # Held under the query the check's history asks for: a template's target asks
            # for its own series of the grouped query (`own_series`), as under `run`.
            asked_as = own_series(query, select)
            past.setdefault((asked_as, step.total_seconds()), {}).update(series[0].points)
            labels[asked_as] = tuple(sorted(series[0].labels.items()))
    return replace(
        plan,
        past=tuple((key, tuple(sorted(points.items()))) for key, points in past.items()),
        past_labels=tuple(labels.items()),
        past_errors=tuple(errors),
    )


def _replay(plan: _Plan, options: Options, histories: dict[Read, History]) -> PolicyBacktest:
    """One policy over its grid (in this process or a worker: everything here pickles)."""
    counts = histories.get((plan.count_query, ())) if plan.count_query is not None else None
    start_count, notes = _start_count(plan.policy, options, counts)
    result = PolicyBacktest(
        policy=plan.policy.name, step=plan.grid.step, start_count=start_count, notes=notes
    )
    if counts is not None:
        assert plan.count_query is not None
        result.recorded = Recorded(query=plan.count_query)
    if options.series:
        result.series = PolicySeries(recorded=array("d") if counts is not None else None)
    rescaled = [name for name, _ in plan.checks if name in options.rescale]
    if rescaled:
        result.notes.append(f"checks {', '.join(rescaled)} {RESCALE_ASSUMPTION}")
    result.errors.extend(plan.past_errors)
    # What forecasts and the guard read back; with --rescale, scaled as the values are.
    simulated = Simulated(plan.grid) if rescaled and plan.past else None
    scaled = {
        own_series(query, select) for name, (query, select) in plan.checks if name in rescaled
    }
    stored = (
        StoredHistory(
            dict(plan.past),
            {q: dict(labels) for q, labels in plan.past_labels},
            scale=dict.fromkeys(scaled, simulated.factor) if simulated else None,
        )
        if plan.past
        else None
    )
    # A policy marked dry_run is replayed as if live: the point is to see what it would do.
    replay = Replay(
        replace(plan.policy, dry_run=False),
        start=plan.grid.start,
        count=start_count,
        keep_history=False,  # each evaluation is read as it comes
        history=stored,
    )
    checks = [(name, histories[read]) for name, read in plan.checks]
    _run(
        result,
        replay,
        plan.grid,
        checks,
        counts=counts,
        rescaled=frozenset(rescaled),
        history=(stored, simulated),
    )
    return result


def _run(
    result: PolicyBacktest,
    replay: Replay,
    grid: Grid,
    checks: Sequence[tuple[str, History]],
    *,
    counts: History | None,
    rescaled: frozenset[str],
    history: tuple[StoredHistory | None, Simulated | None] = (None, None),
) -> None:
    """Evaluate at every instant of `grid`, following the count the policy sets; `history`
    (what forecasts and the guard read back) is told each instant, and `--rescale`'s
    counts."""
    stored, simulated = history
    count = result.start_count
    low = high = count
    hours_per_step = grid.step.total_seconds() / 3600
    statuses: dict[int, TargetStatus] = {}  # immutable: one per count is enough
    for index, now in _instants(grid):
        values: dict[str, Value] = {name: history.value(index) for name, history in checks}
        recorded = _recorded(counts, index)
        if rescaled:
            _rescale(values, rescaled, recorded, count)
        status = statuses.get(count)
        if status is None:
            status = statuses[count] = TargetStatus(count=count)
        if stored is not None:
            stored.now = now.timestamp()  # what it answers stops before this instant
        evaluation = replay.evaluate(now, values, status)
        decision = evaluation.decision
        before = count
        if evaluation.scaled and decision.desired is not None:
            result.changes.append(Change(now, count, decision.desired, decision.reasons))
            count = decision.desired
            low, high = min(low, count), max(high, count)
        elif decision.action is Action.HOLD:
            result.holds += 1
        if simulated is not None:
            simulated.add(recorded, before, count)
        failing = False  # (no list built per evaluation: most have no failed check)
        for check in decision.checks:
            if check.error is None:
                continue
            failing = True
            seen = result.check_failures.get(check.name)
            if seen is None:
                result.check_failures[check.name] = CheckFailures(1, now, str(check.error))
            else:
                seen.evaluations += 1
        if failing:
            result.no_data += 1
        result.evaluations += 1
        result.instance_hours += count * hours_per_step
        if result.recorded is not None:
            _record(result.recorded, now, recorded, count, hours_per_step)
        if result.series is not None:
            read = {
                c.name: c.value if c.error is None else None for c in decision.checks if c.query
            }
            result.series.add(read, decision.desired, count, recorded)
    result.min_count, result.max_count = low, high


def _instants(grid: Grid) -> Iterator[tuple[int, datetime]]:
    for index in range(grid.count):
        yield index, grid.at(index)


def _recorded(counts: History | None, index: int) -> int | None:
    """The recorded count at `index` (rounded), or None when there is none to read (or it
    is above `MAX_COUNT`, which no target reports: the core holds on such a count)."""
    if counts is None:
        return None
    value = counts.value(index)
    if isinstance(value, float) and math.isfinite(value) and value < MAX_COUNT + 0.5:
        return max(0, round(value))
    return None


def _rescale(
    values: dict[str, Value], rescaled: frozenset[str], recorded: int | None, simulated: int
) -> None:
    """Scale the recorded value of each `rescaled` check by recorded / simulated count."""
    for name in rescaled:
        value = values.get(name)
        if not isinstance(value, float):
            continue  # no data or an error stays what it is
        if not recorded:
            values[name] = f"no recorded count to rescale {name} by"
        elif simulated == 0:
            values[name] = f"cannot rescale {name} to a simulated count of 0"
        else:
            values[name] = value * recorded / simulated


def _record(
    recorded: Recorded, now: datetime, count: int | None, simulated: int, hours: float
) -> None:
    if count is None:
        recorded.missing += 1
    else:
        recorded.instance_hours += count * hours
        recorded.min_count = count if recorded.min_count is None else min(recorded.min_count, count)
        recorded.max_count = count if recorded.max_count is None else max(recorded.max_count, count)
        if recorded.last_seen is not None and recorded.last_seen != count:
            recorded.changes += 1
        recorded.last_seen = count
    last = recorded.counts[-1] if recorded.counts else None
    if last is None or (last[1], last[2]) != (count, simulated):
        recorded.counts.append((now, count, simulated))


def _start_count(policy: Policy, options: Options, counts: History | None) -> tuple[int, list[str]]:
    if options.start_count is not None:
        return options.start_count, []
    first = _recorded(counts, 0) if counts is not None and counts.grid.count else None
    if first is not None:
        return first, [f"start count {first}: the recorded count at the start"]
    why = "no recorded count at the start" if counts is not None else "no --start-count given"
    return policy.min, [f"start count {policy.min} = the policy's min ({why})"]
