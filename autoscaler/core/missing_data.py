"""Step 3 of the decision when data is missing: failed checks, the streak, the fallback.

A failed check (or an implausible value) blocks scale-down, and no bound scales in while
one fails; every check failing holds, or after `fallback.after` evaluations without data
(counted at most once per interval) falls back to a floor. Kept together because each is
the answer to one question, what may be done without data, and the answer is the same
everywhere: never less than the current count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from autoscaler.core.durations import format_duration
from autoscaler.core.model import Action, CheckResult, Fallback, Memory, MissingData, Policy
from autoscaler.core.names import counted
from autoscaler.core.run import Outcome, Run, action, bounded
from autoscaler.core.stabilization import recorded

_ZERO = timedelta(0)


def _failures(failed: Sequence[CheckResult]) -> str:
    """`check a failed (why)` or `checks a (why), b (why) failed`."""
    if len(failed) == 1:
        return f"check {failed[0].name} failed ({failed[0].error})"
    listed = ", ".join(f"{result.name} ({result.error})" for result in failed)
    return f"checks {listed} failed"


def block_scale_down(run: Run, count: int, failed: Sequence[CheckResult]) -> int:
    """With any check failed, never recommend less than the current count."""
    blocked = f"{_failures(failed)}: scale-down blocked"
    if count < run.current:
        run.reasons.append(f"{blocked}, {run.current} instead of {count}")
        return run.current
    run.reasons.append(blocked)
    return count


def block_scale_down_implausible(run: Run, count: int) -> int:
    """With an implausible value, never recommend less than the current count."""
    if count < run.current:
        run.reasons.append(
            f"an implausible value blocks scale-down: {run.current} instead of {count}"
        )
        return run.current
    return count


def without_data(run: Run, memory: Memory, failed: Sequence[CheckResult]) -> Outcome:
    """Every check failed: hold, or fall back to a floor once the streak is long enough.

    The fallback skips stabilization and limits (it is a safety net, not a measurement),
    but bounds and cooldown still apply; it never scales down.
    """
    memory, capped = count_missing(run, memory)
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
        count = no_blind_scale_in(run, bounded(run, run.current))
        if count != run.current:  # the reasons must not say "holding" and then scale
            hold = hold.replace(": holding", ": holding, but the bounds still apply")
        if fallback is not None:
            hold += f", fallback after {fallback.after}"
        run.reasons.insert(at, hold)
        memory = recorded(run, memory, count)
        if count == run.current:
            return Outcome(run.finish(run.current, Action.HOLD), memory)
        return Outcome(run.finish(count, action(run, memory, count)), memory)
    run.reasons.append(
        f"no usable data for {counted(streak, 'evaluation')}: fallback to at least {fallback.count}"
    )
    count = _fallback_count(run, fallback)
    memory = recorded(run, memory, count)
    return Outcome(run.finish(count, action(run, memory, count)), memory)


def _fallback_count(run: Run, fallback: Fallback) -> int:
    """The fallback's count: at least the current one, within bounds, never a scale-in."""
    return no_blind_scale_in(run, bounded(run, max(run.current, fallback.count)))


def fallback_floor(run: Run, count: int, streak: int) -> int:
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
        f"no usable data from any query check for {counted(streak, 'evaluation')}: "
        f"fallback to at least {fallback.count}"
    )
    return max(count, floor)


def count_missing(run: Run, memory: Memory) -> tuple[Memory, bool]:
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


def no_blind_scale_in(
    run: Run, count: int, *, failed: bool = True, implausible: bool = False
) -> int:
    """With a failed check (or an implausible value), even lowered bounds (a schedule
    ending) never scale in.

    Removing capacity needs every check to vouch for it; the bounds apply again as soon as
    the data is back (and plausible). This is the one place where bounds do not win. The
    reason names what holds the count: a failed check, an implausible value, or both.
    """
    if count < run.current:
        causes, until = [], []
        if failed:
            causes.append("a check failed")
            until.append("every check has data")
        if implausible:
            causes.append("a check's value is implausible")
            until.append("every value is plausible")
        run.reasons.append(
            f"bounds allow {count}, but {' and '.join(causes)}: staying at {run.current} "
            f"until {' and '.join(until)}"
        )
        return run.current
    return count


def _fallback(policy: Policy) -> Fallback | None:
    if policy.on_missing_data is MissingData.FALLBACK:
        return policy.fallback
    return None
