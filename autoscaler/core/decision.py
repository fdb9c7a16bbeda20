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
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from autoscaler.core.bounds import bound, effective_bounds, limit, target_bound
from autoscaler.core.cooldown import cooldown_left, last_action, plausible
from autoscaler.core.durations import format_duration, human_seconds
from autoscaler.core.frozen import fast_init
from autoscaler.core.model import (
    Action,
    AnomalyGuard,
    AnomalyReading,
    Check,
    CheckResult,
    Decision,
    Fallback,
    ForecastReading,
    Memory,
    MissingData,
    Observation,
    Policy,
    Recommendation,
    TargetStatus,
)
from autoscaler.core.noise import within_noise
from autoscaler.core.ranges import MAX_COUNT
from autoscaler.core.reasons import later
from autoscaler.core.reasons import reasons as pending_reasons
from autoscaler.core.strategies import STRATEGIES, fmt_agreeing, fmt_number, reason_part
from autoscaler.core.strategies import desired as strategy_desired

NOT_EVALUATED = "not evaluated"
_ZERO = timedelta(0)


@fast_init
@dataclass(frozen=True)
class Outcome:
    """A decision and the policy's memory to keep for the next evaluation."""

    decision: Decision
    memory: Memory


@dataclass(slots=True)  # private, never changed once made; not frozen, as that costs
class _Evaluated:
    """One check's result plus its reasons (None when the check failed).

    `blocks_scale_in` says why this check, though it has a value, forbids a scale-in (an
    implausible value); `count_independent` is the check's strategy's.
    """

    result: CheckResult
    reason: str | None
    notes: tuple[str, ...] = ()
    blocks_scale_in: str | None = None
    count_independent: bool = False


@dataclass(slots=True)
class _Run:
    """One evaluation in progress: its fixed inputs and the reasons gathered so far (texts,
    or `later` ones, made when the decision's reasons are first read)."""

    policy: Policy
    status: TargetStatus
    now: datetime
    dry_run: bool
    checks: tuple[CheckResult, ...]
    current: int  # the status's count
    reasons: list[str]  # (given, not a `default_factory`, which costs a call per evaluation)

    def collect(self, step: tuple[int, list[str]]) -> int:
        """A step's count, with the step's reasons added to the decision's."""
        count, reasons = step
        self.reasons.extend(reasons)
        return count

    def finish(self, desired: int, action: Action) -> Decision:
        return _decision(
            self.policy,
            now=self.now,
            dry_run=self.dry_run,
            current=self.current,
            desired=desired,
            action=action,
            reasons=self.reasons,
            checks=self.checks,
        )


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
    without one counts as failed. The returned memory carries the recorded recommendations
    and the missing-data streak; its `last_scaled_at` is unchanged.
    """
    if not 0 <= status.count <= MAX_COUNT:
        reason = f"the target reports a count of {_shown(status.count)}, not a plausible count"
        reason += f" (0 to {MAX_COUNT:,}): holding"
        return Outcome(unavailable(policy, now=now, reason=reason, dry_run=dry_run), memory)
    evaluated = _evaluate_checks(policy, observations, status.count)
    checks = tuple([e.result for e in evaluated])
    run = _Run(policy, status, now, dry_run, checks, status.count, [])
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
        return _without_data(run, memory, failed)

    # Every query check failed, only fixed counts are left: an evaluation without usable
    # data, as the spec counts them for `fallback.after`.
    blind = bool(failed) and not measured
    if blind:
        memory, _ = _count_missing(run, memory)
    elif memory.missing_data_streak or memory.missing_data_since is not None:
        memory = replace(memory, missing_data_streak=0, missing_data_since=None)
    count = max(wanted)
    recommendation, before = count, memory
    if failed:
        count = _block_scale_down(run, count, failed)
    if implausible:
        count = _block_scale_down_implausible(run, count)
    count, memory = _stabilize(run, count, memory)
    count = run.collect(limit(policy.limits, count, run.current))
    count = _bound(run, count)
    if failed or implausible:
        count = _no_blind_scale_in(run, count)
    fell_back = False
    if blind:
        floor = _fallback_floor(run, count, memory.missing_data_streak)
        fell_back, count = floor > count, floor
    # A fallback's count is no check's: no check's rise lets it past the up cooldown.
    rising = None if fell_back else _rising(run, before, recommendation, evaluated)
    return Outcome(run.finish(count, _action(run, memory, count, rising)), memory)


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
    return _decision(
        policy,
        now=now,
        dry_run=dry_run,
        current=current,
        desired=current,
        action=Action.HOLD,
        reasons=[reason],
        checks=tuple(_failed_result(check, NOT_EVALUATED) for check in policy.checks),
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
    evaluated = _evaluate_checks(policy, observations, None)
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
    return _decision(
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


# --- step 2: checks ------------------------------------------------------------------------


def _evaluate_checks(
    policy: Policy, observations: Sequence[Observation], current: int | None
) -> list[_Evaluated]:
    """Every check in policy order, matched with its observation by name (`current` None:
    unknown, see `without_target`)."""
    by_name: dict[str, Observation] = {}
    for observation in observations:
        by_name.setdefault(observation.check, observation)
    guard = policy.anomaly if policy.anomaly is not None and policy.anomaly.enabled else None
    checks = policy.checks
    if len(checks) > 1 and len({c.name for c in checks}) < len(checks):
        return _ambiguous(checks, by_name, current, guard)
    return [_evaluate(check, by_name.get(check.name), current, guard) for check in checks]


def _ambiguous(
    checks: Sequence[Check],
    by_name: dict[str, Observation],
    current: int | None,
    guard: AnomalyGuard | None,
) -> list[_Evaluated]:
    """Every check, those sharing a name with another failed: values are matched with
    checks by name, so whose value is whose cannot be told (the loader refuses such a
    policy; one built otherwise must never be read with another check's value)."""
    names = [c.name for c in checks]
    evaluated = []
    for check in checks:
        shared = names.count(check.name)
        if shared > 1:
            error = f"{shared} checks are named {check.name!r}: their values cannot be told apart"
            evaluated.append(_Evaluated(_failed_result(check, error), None))
        else:
            evaluated.append(_evaluate(check, by_name.get(check.name), current, guard))
    return evaluated


def _evaluate(
    check: Check, observation: Observation | None, current: int | None, guard: AnomalyGuard | None
) -> _Evaluated:
    """One check's desired count, or the reason it failed (`current` None: unknown)."""
    value: float | None = None
    forecast = anomaly = None
    spec = STRATEGIES[check.strategy]  # (`needs_query(check)` is `spec.query`)
    if spec.query:
        if observation is None:
            return _Evaluated(_failed_result(check, NOT_EVALUATED), None)
        forecast = observation.forecast if check.forecast is not None else None
        anomaly = observation.anomaly if guard is not None else None
        error = _unusable(observation)
        if error is not None:
            return _Evaluated(_failed_result(check, error, forecast=forecast), None)
        value = observation.value
    notes: tuple[str, ...] = ()  # (a tuple from the start: most checks have none or one)
    used = value
    if value is not None and forecast is not None:
        used, note = _with_forecast(check, value, forecast)
        notes = (note,)
    try:
        result = strategy_desired(check, used, current)
        if forecast is not None and current and used is not None:  # extension: `noise`
            result = within_noise(check, used, current, forecast, result)
        count, reason, blocks = result.count, reason_part(result), None
        # Without the current count (a preview) nothing is capped relative to it.
        if (
            guard is not None
            and anomaly is not None
            and anomaly.implausible
            and current is not None
        ):
            assert value is not None
            assert used is not None
            count, reason, blocks = _guarded(
                check, current, count, value=value, used=used, anomaly=anomaly, guard=guard
            )
            if reason != result.reason:
                notes = (*notes, result.reason)
    except (ValueError, ArithmeticError) as exc:
        failed = _failed_result(check, str(exc), value, forecast=forecast)
        return _Evaluated(failed, None)
    check_result = CheckResult(
        name=check.name,
        query=check.query,
        value=value,
        desired=count,
        error=None,
        forecast=forecast,
        anomaly=anomaly,
    )
    return _Evaluated(check_result, reason, notes, blocks, not spec.current)


def _with_forecast(check: Check, value: float, forecast: ForecastReading) -> tuple[float, str]:
    """The value the strategy gets, max(observed, forecast), and a reason that shows both
    (made when read)."""
    used, ahead = value, forecast.value
    if ahead is not None and math.isfinite(ahead) and not forecast.only and ahead > value:
        used = ahead
    return used, later(_forecast_text, check.name, value, forecast)


def _forecast_text(name: str, value: float, forecast: ForecastReading) -> str:
    if forecast.value is None:
        return f"{name}: no forecast ({forecast.reason}): reactive"
    if not math.isfinite(forecast.value):  # an overflowed model: unusable, like a NaN value
        return f"{name}: forecast {forecast.value} is not a finite number: reactive"
    ahead = forecast.value
    if forecast.only:
        ahead_shown = fmt_number(ahead)
    else:  # both numbers with the digits that show which one is acted on
        above = ahead > value
        ahead_shown, observed = fmt_agreeing([ahead, value], lambda s: (s[0] > s[1]) == above)
    shown = f"{name}: forecast {ahead_shown} in {_lead(forecast.lead)}"
    if forecast.error is not None:
        shown += f" (recent error {forecast.error * 100:.0f} %)"
    if forecast.only:
        return f"{shown}, forecast only: not acted on"
    if ahead > value:
        return f"{shown} above the observed {observed}: acting on it"
    return f"{shown}, not above the observed {observed}"


@functools.lru_cache(maxsize=64)
def _lead(lead: timedelta) -> str:
    return format_duration(lead)


def _guarded(
    check: Check,
    current: int,
    count: int,
    *,
    value: float,
    used: float,
    anomaly: AnomalyReading,
    guard: AnomalyGuard,
) -> tuple[int, str, str | None]:
    """The count, reason and scale-in block of a check whose value is implausible.

    An implausible value never scales in (the block); a scale-out it asks for that adds
    more than `guard.large_percent` % of the current count needs `guard.confirm` implausible
    evaluations in a row, and until then the check asks only for what the largest
    plausible value needs (never less than the current count).
    """
    shown = (
        f"{check.name}: {fmt_number(value)} is implausible against its last "
        f"{format_duration(guard.window)} (robust z {anomaly.z:+.1f}, plausible "
        f"{fmt_number(anomaly.low)} to {fmt_number(anomaly.high)})"
    )
    block = f"{shown}: no scale-in on it"
    large = count - current > max(1.0, current * guard.large_percent / 100)
    if not large:
        return count, shown + f" → {count}", block
    if anomaly.streak >= guard.confirm:
        confirmed = f"{shown}, {anomaly.streak} evaluations in a row: scale-out confirmed → {count}"
        return count, confirmed, block
    # A forecast above the value is learned from history, no anomaly: it keeps its ask.
    # Else the nearest plausible value: a value implausibly *low* can ask for a large
    # scale-out too (a threshold step `below`, an inverse metric), and min() alone let it.
    plausible = used if used > value else max(anomaly.low, min(value, anomaly.high))
    capped = min(count, max(current, strategy_desired(check, plausible, current).count))
    held = (
        f"{shown}: a scale-out of more than {guard.large_percent:g} % needs {guard.confirm} "
        f"such evaluations in a row ({anomaly.streak} so far) → {capped} instead of {count}"
    )
    return capped, held, block


def _unusable(observation: Observation) -> str | None:
    """Why an observation gives no usable value, or None when it holds a finite number."""
    if observation.error is not None:
        return observation.error
    if observation.value is None:
        return "no value"
    if not math.isfinite(observation.value):
        return f"value {observation.value} is not a finite number"
    return None


def _failed_result(
    check: Check,
    error: str,
    value: float | None = None,
    *,
    forecast: ForecastReading | None = None,
) -> CheckResult:
    return CheckResult(
        name=check.name,
        query=check.query,
        value=value,
        desired=None,
        error=error,
        forecast=forecast,
    )


# --- step 3: combine and missing data ------------------------------------------------------


def _failures(failed: Sequence[CheckResult]) -> str:
    """`check a failed (why)` or `checks a (why), b (why) failed`."""
    if len(failed) == 1:
        return f"check {failed[0].name} failed ({failed[0].error})"
    listed = ", ".join(f"{result.name} ({result.error})" for result in failed)
    return f"checks {listed} failed"


def _block_scale_down(run: _Run, count: int, failed: Sequence[CheckResult]) -> int:
    """With any check failed, never recommend less than the current count."""
    blocked = f"{_failures(failed)}: scale-down blocked"
    if count < run.current:
        run.reasons.append(f"{blocked}, {run.current} instead of {count}")
        return run.current
    run.reasons.append(blocked)
    return count


def _block_scale_down_implausible(run: _Run, count: int) -> int:
    """With an implausible value, never recommend less than the current count."""
    if count < run.current:
        run.reasons.append(
            f"an implausible value blocks scale-down: {run.current} instead of {count}"
        )
        return run.current
    return count


def _without_data(run: _Run, memory: Memory, failed: Sequence[CheckResult]) -> Outcome:
    """Every check failed: hold, or fall back to a floor once the streak is long enough.

    The fallback skips stabilization and limits (it is a safety net, not a measurement),
    but bounds and cooldown still apply; it never scales down.
    """
    memory, capped = _count_missing(run, memory)
    streak = memory.missing_data_streak
    if failed:
        run.reasons.append(_failures(failed))
    fallback = _fallback(run.policy)
    if fallback is None or streak < fallback.after:
        paced = ""
        if capped:
            paced = f", counted at most once per interval of {format_duration(run.policy.interval)}"
        hold = f"no usable data from any check ({streak} in a row{paced}): holding"
        at = len(run.reasons)
        # Bounds still win upwards (a count below `min`, or a schedule's `min` starting,
        # is raised as when a single check fails); they never scale in blind.
        count = _no_blind_scale_in(run, _bound(run, run.current))
        if count != run.current:  # the reasons must not say "holding" and then scale
            hold = hold.replace(": holding", ": holding, but the bounds still apply")
        if fallback is not None:
            hold += f", fallback after {fallback.after}"
        run.reasons.insert(at, hold)
        memory = _recorded(run, memory, count)
        if count == run.current:
            return Outcome(run.finish(run.current, Action.HOLD), memory)
        return Outcome(run.finish(count, _action(run, memory, count)), memory)
    run.reasons.append(
        f"no usable data for {streak} evaluations: fallback to at least {fallback.count}"
    )
    count = _fallback_count(run, fallback)
    memory = _recorded(run, memory, count)
    return Outcome(run.finish(count, _action(run, memory, count)), memory)


def _fallback_count(run: _Run, fallback: Fallback) -> int:
    """The fallback's count: at least the current one, within bounds, never a scale-in."""
    return _no_blind_scale_in(run, _bound(run, max(run.current, fallback.count)))


def _fallback_floor(run: _Run, count: int, streak: int) -> int:
    """`count` raised to the fallback's once `streak` evaluations in a row had no usable
    data, when only `fixed` checks answered: they are floors, not measurements, so they
    do not stand in for the data the fallback is there to replace."""
    fallback = _fallback(run.policy)
    if fallback is None:
        return count
    if streak < fallback.after:
        run.reasons.append(
            f"no usable data from any query check ({streak} in a row): "
            f"fallback after {fallback.after}"
        )
        return count
    floor = _fallback_count(run, fallback)
    run.reasons.append(
        f"no usable data from any query check for {streak} evaluations: "
        f"fallback to at least {fallback.count}"
    )
    return max(count, floor)


def _recorded(run: _Run, memory: Memory, count: int) -> Memory:
    """`memory` with `count` recorded as this evaluation's recommendation, as when some
    checks fail: the down window then holds it for its length after the data comes back,
    so the first answers after an outage (often the least trustworthy: a rate over a
    Prometheus just restarted) do not scale in at once on an empty window."""
    windows, now = run.policy.stabilization, run.now
    longest = max(windows.up, windows.down)
    kept = [r for r in memory.recommendations if now - r.at < longest]
    kept.append(Recommendation(at=now, count=count))
    return replace(memory, recommendations=_undominated(kept))


def _count_missing(run: _Run, memory: Memory) -> tuple[Memory, bool]:
    """The memory with this evaluation added to the missing-data streak, and whether the
    interval held the count back.

    The streak counts evaluations, but never more than one per `interval` since its first
    one: with `n` intervals elapsed it is at most `n + 1`. Early scheduled runs (jitter)
    catch up at the next one; a burst of triggered runs counts once. A streak saved
    without its start (an older state file) is taken as one evaluation per interval.
    """
    interval, now = run.policy.interval, run.now
    since = memory.missing_data_since
    if memory.missing_data_streak == 0 or (since is not None and since > now):
        since = now
    elif since is None:
        try:
            since = now - interval * memory.missing_data_streak
        except OverflowError:  # older than datetime reaches: as old as it can be
            since = datetime.min.replace(tzinfo=now.tzinfo)
    counted = memory.missing_data_streak + 1
    allowed = counted
    if interval > _ZERO:
        allowed = 1 + (now - since) // interval
    streak = min(counted, allowed)
    memory = replace(memory, missing_data_streak=streak, missing_data_since=since)
    return memory, streak < counted


def _no_blind_scale_in(run: _Run, count: int) -> int:
    """With a failed check, even lowered bounds (a schedule ending) never scale in.

    Removing capacity needs every check to vouch for it; the bounds apply again as soon as
    the data is back. This is the one place where bounds do not win.
    """
    if count < run.current:
        run.reasons.append(
            f"bounds allow {count}, but a check failed: staying at {run.current} until "
            "every check has data"
        )
        return run.current
    return count


def _fallback(policy: Policy) -> Fallback | None:
    if policy.on_missing_data is MissingData.FALLBACK:
        return policy.fallback
    return None


# --- step 4: stabilization -----------------------------------------------------------------


def _stabilize(run: _Run, recommendation: int, memory: Memory) -> tuple[int, Memory]:
    """The recommendation smoothed over the windows, exactly as the Kubernetes HPA does.

    Scale up only to the lowest recommendation of the `up` window and down only to the
    highest of the `down` window (both include this one). History older than the longest
    window is dropped from the returned memory; this recommendation is always kept, and so
    is every older one a later one does not stand in for (`_undominated`).
    """
    windows, now = run.policy.stabilization, run.now
    # One pass over the history (replays run this hundreds of thousands of times). Ages
    # (`now - at`) rather than cutoffs (`now - window`), which leave datetime's range when
    # `now` is near year 1.
    longest = max(windows.up, windows.down)
    up_rec = down_rec = recommendation
    kept: list[Recommendation] = []
    cutoffs = _cutoffs(now, longest, windows.up, windows.down)
    if cutoffs is not None:
        # `age < window` is `at > now - window`: one subtraction per window, not per record.
        keep_after, up_after, down_after = cutoffs
        for r in memory.recommendations:
            at, count = r.at, r.count
            if at > keep_after:
                kept.append(r)
                # A record from a clock that went back (dated after `now`) holds no
                # scale-up: an up window of 0s has only this recommendation in it, as in
                # the HPA. (It still holds a scale-in: that is the safe direction.)
                if count < up_rec and at > up_after and at <= now:
                    up_rec = count
                if count > down_rec and at > down_after:
                    down_rec = count
    else:
        zero = _ZERO
        for r in memory.recommendations:
            age, count = now - r.at, r.count
            if age < longest:
                kept.append(r)
                if count < up_rec and age < windows.up and age >= zero:
                    up_rec = count
                if count > down_rec and age < windows.down:
                    down_rec = count
    stabilized = min(max(run.current, up_rec), down_rec)
    kept.append(Recommendation(at=now, count=recommendation))
    memory = Memory(  # `replace(memory, recommendations=...)` at a third of its cost
        last_scaled_at=memory.last_scaled_at,
        recommendations=_undominated(kept),
        missing_data_streak=memory.missing_data_streak,
        missing_data_since=memory.missing_data_since,
    )

    if stabilized == recommendation:
        return stabilized, memory
    if stabilized < recommendation:
        direction, window, which, seen = "up", windows.up, "lowest", up_rec
    else:
        direction, window, which, seen = "down", windows.down, "highest", down_rec
    run.reasons.append(
        later(_stabilized_text, (direction, window, which), seen, stabilized, recommendation)
    )
    return stabilized, memory


def _stabilized_text(
    side: tuple[str, timedelta, str], seen: int, stabilized: int, recommendation: int
) -> str:
    direction, window, which = side
    return (
        f"stabilization {direction} {format_duration(window)}: {which} recommendation"
        f" {seen} → {stabilized} instead of {recommendation}"
    )


def _undominated(records: list[Recommendation]) -> tuple[Recommendation, ...]:
    """`records` without each one that a later one (by time) stands in for in every use.

    Every use of the history looks at a suffix of it in time: the windows (`age < window`)
    and the rising rule (since the last scaling action). In any such suffix holding a
    record, a later record is held too, so a record with a later one at least as high never
    sets a maximum (the down window, the rising rule), and with a later one at least as low
    never sets a minimum (the up window). Dropping what is both changes no decision, and a
    steady count keeps one record instead of one per evaluation of the longest window (at
    10,000 targets every 10 s with a 5-minute window: 30 each, some 30 MB, written to the
    state at every evaluation). Minima are kept even while the policy has no up window:
    the memory outlives the policy's windows (a reload or a restart may add one, and must
    find the lows the whole history holds). Records out of time order (a clock that went
    back) are all kept, as they always were.
    """
    if len(records) < 2:
        return tuple(records)
    at = records[0].at
    for r in records:
        if r.at < at:
            return tuple(records)
        at = r.at
    kept: list[Recommendation] = []
    high = low = records[-1].count
    kept.append(records[-1])
    for r in reversed(records[:-1]):
        count = r.count
        if count > high:
            high = count
            kept.append(r)
        elif count < low:
            low = count
            kept.append(r)
    kept.reverse()
    return tuple(kept)


def _cutoffs(
    now: datetime, longest: timedelta, up: timedelta, down: timedelta
) -> tuple[datetime, datetime, datetime] | None:
    """`now - window` for each of the three windows, when comparing with them is exactly
    comparing ages with the windows: `now` carries a fixed UTC offset (`datetime.timezone`, as every
    instant the controller makes does), so that instants compare as the instants they are,
    and the subtraction stays within datetime's range. None otherwise (the caller then
    subtracts each record's time from `now`)."""
    if type(now.tzinfo) is not timezone:
        return None
    try:
        keep = now - longest
        # One subtraction per distinct window (`now - 0` is `now`): most policies have a
        # zero window or two equal ones, and a replay makes this cut at every evaluation.
        return keep, _cut(now, up, longest, keep), _cut(now, down, longest, keep)
    except OverflowError:
        return None


def _cut(now: datetime, window: timedelta, longest: timedelta, keep: datetime) -> datetime:
    """`now - window`, given `keep` = `now - longest` (an equal instant either way)."""
    if window == longest:
        return keep
    return now - window if window else now


# --- steps 5 to 7: bounds, cooldown, action ------------------------------------------------


def _bound(run: _Run, count: int) -> int:
    """`count` within the policy's (or active schedules') bounds, then the target's own."""
    count = run.collect(bound(effective_bounds(run.policy, run.now), count))
    return run.collect(target_bound(run.status, count))


def _action(run: _Run, memory: Memory, desired: int, rising: str | None = None) -> Action:
    """`up`, `down` or `none`; `hold` while the cooldown of that direction runs (a scale-up
    while the metric keeps rising excepted), and a scale-down while the target is busy."""
    if desired == run.current:
        return Action.NONE
    direction = "up" if desired > run.current else "down"
    if direction == "down" and not run.status.ready:
        run.reasons.append("scale-down waits until the target is ready → hold")
        return Action.HOLD
    theirs = plausible(run.status.last_scaled_at, run.policy.cooldown, run.now)
    last = last_action(memory.last_scaled_at, theirs)
    left = cooldown_left(run.policy.cooldown, last, run.now).of(direction)
    if left > _ZERO:
        if direction == "up" and rising is not None:
            run.reasons.append(later(_rising_text, left, rising))
            return Action.UP
        run.reasons.append(later(_cooldown_text, direction, left))
        return Action.HOLD
    return Action.UP if direction == "up" else Action.DOWN


def _rising_text(left: timedelta, rising: str) -> str:
    return f"cooldown up: {human_seconds(left)} left, but {rising}: not delayed"


def _cooldown_text(direction: str, left: timedelta) -> str:
    return f"cooldown {direction}: {human_seconds(left)} left → hold"


def _rising(
    run: _Run, memory: Memory, recommendation: int, evaluated: Sequence[_Evaluated]
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
        f"{max(since)} recommended since the last scale-up)"
    )


def _decision(
    policy: Policy,
    *,
    now: datetime,
    dry_run: bool,
    current: int | None,
    desired: int | None,
    action: Action,
    reasons: Sequence[str],
    checks: tuple[CheckResult, ...],
) -> Decision:
    return Decision(
        policy=policy.name,
        target=str(policy.target),
        time=now,
        current=current,
        desired=desired,
        action=action,
        dry_run=dry_run or policy.dry_run,
        reasons=pending_reasons(reasons),
        checks=checks,
    )
