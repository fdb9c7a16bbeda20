"""The decision core: one policy, the target's status and the checks' values -> a Decision.

Pure: no I/O and no clock; `now` and the policy's memory come in, the decision and the
updated memory go out, so every behaviour is a plain function call in tests. The pipeline
follows the spec's "Semantics", in this order, and every step that changes the number
adds a reason:

1. Not ready: the target must not be touched -> `hold` at the current count; memory as is.
   Unless what keeps it busy is itself a scale-up (`status.scale_up_allowed`): then the
   pipeline runs and only a scale-down waits (step 7).
   A count outside 0..`ranges.MAX_COUNT` is nonsense from the target: `hold`, as unknown.
2. Checks: each check's value through its strategy (`strategies`). An error, a missing
   value or a non-finite one fails the check; it never counts as zero. With a forecast
   the strategy gets max(observed, forecast): a forecast never asks for less than the
   observed value (`forecast_only`: shown, not used); with `noise_band`, a scale-out
   within the forecast's recent error above the current count waits (`noise`). With the
   anomaly guard, an implausible value never scales in, and a large scale-out on it needs
   confirmation (until then the check asks for what the largest plausible value needs).
3. Combine: the highest count any successful check asks for. A failed check blocks
   scale-down, even one that lowered bounds would force (5b/5c never scale in blind);
   so does an implausible value.
   If every check failed: `hold`, or after `fallback.after` such evaluations in a row,
   scale up to at least `fallback.count` (skipping steps 4 and 5a). The streak advances
   at most once per `interval` since its first evaluation, so evaluations triggered
   out of schedule (alerts, the API) never bring the fallback sooner.
4. Stabilization (Kubernetes HPA semantics): record the recommendation; go up only to the
   lowest one in the `up` window and down only to the highest one in the `down` window.
5. a. Limits: the change is capped to the step limit of its direction (`bounds.limit`).
   b. Bounds: the policy's min/max, replaced by active schedules; they win over limits.
   c. The target's own bounds (ASG MinSize/MaxSize); they win over everything.
6. Cooldown: a change within the cooldown of its direction since the last scaling action
   (ours or the target's record) is held; the decision keeps the number it would set.
   Except a scale-up while the metric keeps rising: when the check that asks for the most
   is count-independent (per-instance, pass-through, fixed) and this recommendation is
   above every one recorded since that action, the scale-up goes ahead.
7. Action: `up`, `down` or `none`; a scale-down on a busy target is held. `memory.
   last_scaled_at` is left to whoever applies the decision, since only a successful scale
   starts a cooldown.

Each step has a module of its own: `checks` (2), `missing_data` (3 when checks fail, the
streak and the fallback), `stabilization` (4), `bounds` (5), `cooldown` (6); `run` holds
the evaluation in progress and how every path ends (bounds, cooldown, action, Decision).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from autoscaler.core.bounds import effective_bounds, limit
from autoscaler.core.checks import NOT_EVALUATED, Evaluated, evaluate_checks, failed_result
from autoscaler.core.missing_data import (
    block_scale_down,
    block_scale_down_implausible,
    count_missing,
    fallback_floor,
    no_blind_scale_in,
    without_data,
)
from autoscaler.core.model import (
    Action,
    CheckResult,
    Decision,
    Memory,
    Observation,
    Policy,
    TargetStatus,
)
from autoscaler.core.ranges import MAX_COUNT
from autoscaler.core.run import Outcome, Run, action, bounded, decision
from autoscaler.core.stabilization import stabilize


def decide(
    policy: Policy,
    *,
    status: TargetStatus,
    observations: Sequence[Observation],
    memory: Memory,
    now: datetime,
    dry_run: bool = False,
) -> Outcome:
    """Decide what to do with `policy`'s target now, following the module's pipeline.

    `observations` holds one entry per check with a query (matched by name); a query check
    without one counts as failed, and so does one given several different entries. The
    returned memory carries the recorded recommendations and the missing-data streak; its
    `last_scaled_at` is unchanged.
    """
    if not 0 <= status.count <= MAX_COUNT:
        reason = f"the target reports a count of {_shown(status.count)}, not a plausible count"
        reason += f" (0 to {MAX_COUNT:,}): holding"
        return Outcome(unavailable(policy, now=now, reason=reason, dry_run=dry_run), memory)
    evaluated = evaluate_checks(policy, observations, status.count)
    checks = tuple([e.result for e in evaluated])
    run = Run(policy, status, now, dry_run, checks, status.count, [])
    if not status.ready:
        run.reasons.append(status.not_ready_reason or "target not ready")
        if not status.scale_up_allowed:
            return Outcome(run.finish(status.count, Action.HOLD), memory)
        run.reasons.append("it is launching instances: a scale-up may go ahead, a scale-down waits")

    failed: list[CheckResult] = []
    wanted: list[int] = []
    implausible = False  # a value that, though usable, forbids a scale-in
    measured = False  # a check with a query gave a count (`fixed` ones are floors, not data)
    for e in evaluated:  # one pass (replays run this hundreds of thousands of times)
        run.reasons.extend(e.notes)
        if e.reason is None:
            failed.append(e.result)
        else:
            run.reasons.append(e.reason)
        if e.result.desired is not None:
            wanted.append(e.result.desired)
            measured = measured or e.result.query is not None
        if e.blocks_scale_in is not None:
            implausible = True
    if not wanted:
        return without_data(run, memory, failed)

    # Every query check failed, only fixed counts are left: an evaluation without usable
    # data, as the spec counts them for `fallback.after`.
    blind = bool(failed) and not measured
    if blind:
        memory, _ = count_missing(run, memory)
    elif memory.missing_data_streak or memory.missing_data_since is not None:
        memory = replace(memory, missing_data_streak=0, missing_data_since=None)
    count = max(wanted)
    recommendation, before = count, memory
    if failed:
        count = block_scale_down(run, count, failed)
    if implausible:
        count = block_scale_down_implausible(run, count)
    count, memory = stabilize(run, count, memory)
    count = run.collect(limit(policy.limits, count, run.current))
    count = bounded(run, count)
    if failed or implausible:
        count = no_blind_scale_in(run, count, failed=bool(failed), implausible=implausible)
    fell_back = False
    if blind:
        floor = fallback_floor(run, count, memory.missing_data_streak)
        fell_back, count = floor > count, floor
    # A fallback's count is no check's: no check's rise lets it past the up cooldown.
    rising = None if fell_back else _rising(run, before, recommendation, evaluated)
    return Outcome(run.finish(count, action(run, memory, count, rising)), memory)


def unavailable(
    policy: Policy,
    *,
    now: datetime,
    reason: str,
    dry_run: bool = False,
    current: int | None = None,
) -> Decision:
    """A `hold` decision for when the target could not be read or evaluation failed.

    Every check is reported as not evaluated; `desired` is `current` (None if unknown).
    """
    return decision(
        policy,
        now=now,
        dry_run=dry_run,
        current=current,
        desired=current,
        action=Action.HOLD,
        reasons=[reason],
        checks=tuple(failed_result(check, NOT_EVALUATED) for check in policy.checks),
    )


def without_target(
    policy: Policy,
    *,
    observations: Sequence[Observation],
    now: datetime,
    reason: str,
    dry_run: bool = False,
) -> Decision:
    """A `hold` for a target that cannot be read, with every check evaluated that can be.

    The preview (`plan`) of a policy whose target is out of reach (no credentials yet):
    `current` and `desired` stay unknown (None), since nothing can be scaled or compared,
    but each check shows its value and, where its strategy does not need the current
    count, its desired count; a strategy that needs it (target-value, threshold) says so
    in the check's error. `reason` comes first, then the strategies' reasons.
    """
    evaluated = evaluate_checks(policy, observations, None)
    reasons = [reason]
    for e in evaluated:  # a forecast's note first, as `decide` gives it
        reasons.extend(e.notes)
        if e.reason is not None:
            reasons.append(e.reason)
    wanted = [e.result.desired for e in evaluated if e.result.desired is not None]
    if wanted:
        bounds = effective_bounds(policy, now)
        bounded = min(max(*wanted, bounds.min), bounds.max)
        reasons.append(
            f"without the current count the checks ask for at most {max(wanted)} ({bounded} "
            f"within bounds {bounds.min}..{bounds.max}): holding until the target can be read"
        )
    return decision(
        policy,
        now=now,
        dry_run=dry_run,
        current=None,
        desired=None,
        action=Action.HOLD,
        reasons=reasons,
        checks=tuple(e.result for e in evaluated),
    )


def _shown(count: int) -> str:
    """A count for a reason; one too long to print is described (str() refuses ~4300 digits)."""
    return str(count) if abs(count) < 10**15 else f"{count.bit_length()} bits long"


def _rising(
    run: Run, memory: Memory, recommendation: int, evaluated: Sequence[Evaluated]
) -> str | None:
    """Why a scale-up may skip the cooldown up (the metric keeps rising), or None.

    The check that asks for the most must be count-independent (per-instance,
    pass-through, fixed: asking again cannot compound instances that are not serving yet),
    and this recommendation must be above every one the memory holds from since our last
    scaling action (that action's own one, while the stabilization windows keep it, and
    at least the last evaluation's). With no record since that action, or when someone
    else scaled the target since, the cooldown applies.
    """
    if recommendation <= run.current:
        return None
    driving = [e for e in evaluated if e.result.desired == recommendation]
    if not driving or not all(e.count_independent for e in driving):
        return None
    ours, theirs = memory.last_scaled_at, run.status.last_scaled_at
    if ours is None or (theirs is not None and theirs - ours > run.policy.interval):
        return None
    since = [r.count for r in memory.recommendations if r.at >= ours]
    if not since or recommendation <= max(since):
        return None
    return (
        f"{driving[0].result.name} keeps rising (asks {recommendation}, above the "
        f"{max(since)} recommended since the last scaling action)"
    )
